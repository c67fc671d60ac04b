"""A blob is removed only when nothing references it, decided atomically with the reference
change: deleting a pair while the same image is uploaded again never leaves the new, live pair
(or a prediction's query image) pointing at a removed blob. Both orders of the race are forced
deterministically; real database, real blob store, the worker's batch code."""

import json
import shutil
from pathlib import Path

from sqlalchemy import select

from asifdb.context import Platform
from asifdb.db.models import Pair, Prediction
from asifdb.services import ingestion, licences, pairs
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.samples import TEST_ROOTS


def _platform(db_url: str, tmp_path: Path, encoders: Encoders) -> Platform:
    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    platform.__dict__["encoders"] = encoders
    return platform


def _job(platform: Platform, source: Path, licence: str) -> int:
    with platform.sessions.begin() as session:
        licences.create(session, name=licence, actor="test")
        job = ingestion.start_job(
            session, source=str(source), roots=TEST_ROOTS, license_name=licence, actor="test"
        )
        (batch,) = ingestion.BATCHES.pending(session, job.id)
    return batch


def _source(tmp_path: Path, image: Path, caption: str, name: str) -> Path:
    """A JSONL of one line: the image copied beside it (it must lie under the JSONL's root)."""
    copy = tmp_path / f"{name}.png"
    shutil.copyfile(image, copy)
    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps({"image": str(copy), "caption": caption}) + "\n")
    return path


def _live_pair(platform: Platform, caption: str) -> Pair:
    with platform.sessions() as session:
        return session.scalars(
            select(Pair).where(Pair.caption == caption, Pair.deleted_at.is_(None))
        ).one()


def _first_pair(platform: Platform, tmp_path: Path, image: Path) -> tuple[int, str | None]:
    batch = _job(platform, _source(tmp_path, image, "a cat", "first"), "first")
    run = dict(sessions=platform.sessions, blobs=platform.blobs, encoders=platform.encoders)
    assert ingestion.process_batch(**run, batch_id=batch).ready == 1
    pair = _live_pair(platform, "a cat")
    with platform.sessions.begin() as session:
        blob = pairs.delete(session, pair_id=pair.id, actor="steward")
    assert blob is not None  # the only pair with these bytes: its blob is to go
    return pair.id, blob


def test_a_removal_after_the_reupload_committed_keeps_the_blob(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    image = next((shared_data / "cifar10" / "test" / "cat").glob("*.png"))
    platform = _platform(db_url, tmp_path, encoders)
    _, blob = _first_pair(platform, tmp_path, image)
    # The same bytes come back (another caption) before the delete's removal runs.
    batch = _job(platform, _source(tmp_path, image, "the same cat", "again"), "again")
    run = dict(sessions=platform.sessions, blobs=platform.blobs, encoders=platform.encoders)
    assert ingestion.process_batch(**run, batch_id=batch).ready == 1
    pairs.remove_blob(platform.sessions, platform.blobs, blob)
    new = _live_pair(platform, "the same cat")
    assert new.blob_uri is not None
    assert platform.blobs.get(blob) == image.read_bytes()  # still there, intact
    platform.close()


def test_a_removal_during_the_reupload_is_undone_before_the_new_pair_commits(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    image = next((shared_data / "cifar10" / "test" / "cat").glob("*.png"))
    platform = _platform(db_url, tmp_path, encoders)
    _, blob = _first_pair(platform, tmp_path, image)
    batch = _job(platform, _source(tmp_path, image, "the same cat", "again"), "again")
    removed = []

    def remove_now() -> None:
        # The batch has its bytes (the blob exists, so it wrote nothing) and has not inserted
        # its pair: the delete's removal runs to its end here, from its own connection.
        pairs.remove_blob(platform.sessions, platform.blobs, blob)
        removed.append(not platform.blobs.path(blob).exists())

    ingestion.process_batch(
        sessions=platform.sessions,
        blobs=platform.blobs,
        encoders=platform.encoders,
        batch_id=batch,
        on_encoded=remove_now,
    )
    assert removed == [True]  # the race happened: the file was gone mid-batch
    new = _live_pair(platform, "the same cat")
    assert new.blob_uri is not None
    assert platform.blobs.get(blob) == image.read_bytes()  # written again before the commit
    platform.close()


def test_a_blob_a_prediction_keeps_is_not_removed_with_the_pair(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    image = next((shared_data / "cifar10" / "test" / "cat").glob("*.png"))
    platform = _platform(db_url, tmp_path, encoders)
    _, blob = _first_pair(platform, tmp_path, image)
    with platform.sessions.begin() as session:
        session.add(
            Prediction(
                task="classify",
                input_sha256=blob,
                candidates={},
                result={},
                model_version=1,
                image_encoder="x",
                text_encoder="y",
                k=1,
                p=1.0,
                topk_method="exact",
                channel="api",
            )
        )
    pairs.remove_blob(platform.sessions, platform.blobs, blob)
    assert platform.blobs.path(blob).exists()
    platform.close()
