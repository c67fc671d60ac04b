"""Ingestion jobs through the service, with the real encoders and the real database."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.blobs import BlobStore, sha256_of_uri
from asifdb.errors import Conflict, InvalidInput, NotFound
from asifdb.services import ingestion, licences, model
from asifdb.services.model import Encoders
from tests.samples import TEST_ROOTS


@pytest.fixture
def sessions(engine: Engine, encoders: Encoders) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        model.ensure_state(
            session, image_encoder=encoders.image.name, text_encoder=encoders.text.name
        )
        licences.create(session, name="tiny-imagenet", actor="test")
    return factory


def _run(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    encoders: Encoders,
    source: Path,
    **options: object,
) -> dict:
    with sessions.begin() as session:
        job = ingestion.start_job(
            session,
            roots=TEST_ROOTS,
            source=str(source),
            license_name="tiny-imagenet",
            actor="annotator-1",
            batch_size=16,
            **options,
        )
        batches = ingestion.BATCHES.pending(session, job.id)
    for batch_id in batches:
        ingestion.process_batch(
            sessions=sessions, blobs=blobs, encoders=encoders, batch_id=batch_id
        )
    with sessions() as session:
        return ingestion.job_report(session, job_id=job.id)


def test_a_source_becomes_ready_pairs_and_reasoned_rejects(
    sessions: sessionmaker[Session], encoders: Encoders, mixed_shards, tmp_path: Path
) -> None:
    folder, good = mixed_shards
    blobs = BlobStore(tmp_path / "blobs")
    report = _run(sessions, blobs, encoders, folder)

    assert report.status == "done"
    assert report.total == 64
    assert (report.done, report.duplicates, report.rejected) == (60, 0, 4)
    assert report.reject_reasons == {
        "corrupt_image": 1,
        "empty_image": 1,
        "empty_caption": 1,
        "not_an_image": 1,
    }
    assert all(r.reason for r in report.rejects)

    with sessions() as session:
        rows = session.execute(
            text(
                "SELECT source_key, caption, blob_uri, source_metadata, image_encoder, "
                "vector_dims(image_embedding::vector) AS di, "
                "vector_dims(text_embedding::vector) AS dt "
                "FROM usable_pairs ORDER BY source_key"
            )
        ).all()
        usable = session.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
    assert [r.source_key.rsplit("/", 1)[-1] for r in rows] == sorted(good)
    assert usable == 60
    first = rows[0]
    assert (first.di, first.dt) == (1280, 384)
    assert first.source_metadata.get("wnid", "").startswith("n")
    assert blobs.exists(sha256_of_uri(first.blob_uri))


def test_ingesting_the_same_source_twice_adds_nothing(
    sessions: sessionmaker[Session], encoders: Encoders, mixed_shards, tmp_path: Path
) -> None:
    folder, _ = mixed_shards
    blobs = BlobStore(tmp_path / "blobs")
    _run(sessions, blobs, encoders, folder)
    with sessions() as session:
        version = model.current_version(session)

    again = _run(sessions, blobs, encoders, folder)

    assert (again.done, again.duplicates, again.rejected) == (0, 60, 4)
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM pairs")).scalar_one() == 60
        assert model.current_version(session) == version, "no change, no new model version"


def test_a_batch_delivered_twice_is_done_once(
    sessions: sessionmaker[Session], encoders: Encoders, mixed_shards, tmp_path: Path
) -> None:
    folder, _ = mixed_shards
    blobs = BlobStore(tmp_path / "blobs")
    with sessions.begin() as session:
        job = ingestion.start_job(
            session,
            roots=TEST_ROOTS,
            source=str(folder),
            license_name="tiny-imagenet",
            actor="a",
            batch_size=16,
        )
        first = ingestion.BATCHES.pending(session, job.id)[0]
    once = ingestion.process_batch(
        sessions=sessions, blobs=blobs, encoders=encoders, batch_id=first
    )
    twice = ingestion.process_batch(
        sessions=sessions, blobs=blobs, encoders=encoders, batch_id=first
    )
    assert once.status == "done" and once.ready == 16
    assert twice.status == "already_done"
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM job_items")).scalar_one() == 16


def test_a_batch_that_dies_mid_way_leaves_nothing(
    sessions: sessionmaker[Session], encoders: Encoders, mixed_shards, tmp_path: Path
) -> None:
    folder, _ = mixed_shards
    blobs = BlobStore(tmp_path / "blobs")
    with sessions.begin() as session:
        job = ingestion.start_job(
            session,
            roots=TEST_ROOTS,
            source=str(folder),
            license_name="tiny-imagenet",
            actor="a",
            batch_size=16,
        )
        first = ingestion.BATCHES.pending(session, job.id)[0]

    def die() -> None:
        raise RuntimeError("worker lost power after encoding")

    with pytest.raises(ingestion.BatchFailed) as failed:
        ingestion.process_batch(
            sessions=sessions, blobs=blobs, encoders=encoders, batch_id=first, on_encoded=die
        )
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert failed.value.attempts == 1 and failed.value.retry_in is not None  # to be tried again
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM pairs")).scalar_one() == 0
        assert session.execute(text("SELECT count(*) FROM job_items")).scalar_one() == 0
        assert ingestion.BATCHES.stalled(session, timedelta(0))
    done = ingestion.process_batch(
        sessions=sessions, blobs=blobs, encoders=encoders, batch_id=first
    )
    assert done.ready == 16


def test_class_folders_with_a_caption_template(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    report = _run(
        sessions,
        BlobStore(tmp_path / "blobs"),
        encoders,
        shared_data / "cifar10" / "train",
        template="a photo of a {}.",
        collection="cifar10-train",
    )
    assert (report.total, report.done, report.rejected) == (1000, 1000, 0)
    with sessions() as session:
        captions = set(session.execute(text("SELECT DISTINCT caption FROM pairs")).scalars())
    assert captions == {
        f"a photo of a {c}."
        for c in (shared_data / "cifar10" / "classnames.txt").read_text().split()
    }


def test_bad_requests_change_nothing(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with sessions.begin() as session, pytest.raises(InvalidInput, match="does not exist"):
        ingestion.start_job(
            session,
            roots=TEST_ROOTS,
            source=str(tmp_path / "missing"),
            license_name="tiny-imagenet",
            actor="a",
        )
    with sessions.begin() as session, pytest.raises(NotFound, match="licenses create"):
        ingestion.start_job(
            session, roots=TEST_ROOTS, source=str(tmp_path), license_name="nope", actor="a"
        )
    with sessions.begin() as session:
        session.execute(text("UPDATE licenses SET status = 'revoked'"))
    (tmp_path / "x.jsonl").write_text("")
    with sessions.begin() as session, pytest.raises(Conflict, match="revoked"):
        ingestion.start_job(
            session,
            roots=TEST_ROOTS,
            source=str(tmp_path / "x.jsonl"),
            license_name="tiny-imagenet",
            actor="a",
        )
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
