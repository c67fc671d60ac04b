"""Re-encoding every pair from the blob store, then one atomic switch: the real database, the real
encoders, and (last test) the real worker behind `asifdb reencode --wait`."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.blobs import BlobStore
from asifdb.db.session import make_engine
from asifdb.errors import ConfigError, Conflict
from asifdb.services import ingestion, licences, reencode
from asifdb.services.model import Encoders
from tests.samples import TEST_ROOTS, asifdb_cli, copy_samples

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        licences.create(session, name="tiny-imagenet", actor="test")
    return factory


def _source(folder: Path, shared_data: Path, n: int, offset: int = 0) -> Path:
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, n, offset=offset)
    return folder


def _ingest(
    sessions: sessionmaker[Session], blobs: BlobStore, encoders: Encoders, source: Path
) -> None:
    with sessions.begin() as session:
        job = ingestion.start_job(
            session,
            roots=TEST_ROOTS,
            source=str(source),
            license_name="tiny-imagenet",
            actor="test",
        )
        batches = ingestion.BATCHES.pending(session, job.id)
    for batch_id in batches:
        ingestion.process_batch(
            sessions=sessions, blobs=blobs, encoders=encoders, batch_id=batch_id
        )


def _embeddings(session: Session) -> dict[int, np.ndarray]:
    rows = session.execute(
        text("SELECT id, CAST(image_embedding AS vector)::real[] FROM pairs ORDER BY id")
    )
    return {pid: np.asarray(vec, dtype=np.float32) for pid, vec in rows}


def _state(session: Session) -> tuple:
    return tuple(
        session.execute(text("SELECT version, image_encoder, text_encoder FROM model_state")).one()
    )


def test_reencode_switches_only_when_every_pair_is_done(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    _ingest(sessions, blobs, encoders, _source(tmp_path / "a", shared_data, 20))
    with sessions.begin() as session:
        fresh = _embeddings(session)
        # Stand-in for "the old encoder's embeddings": every stored image embedding replaced,
        # so the test can tell old from new. The re-encode must recompute them from the blobs.
        session.execute(
            text("UPDATE pairs SET image_embedding = CAST(:v AS halfvec)"),
            {"v": "[" + ",".join(["1"] + ["0"] * 1279) + "]"},
        )
        old_state = _state(session)

    with sessions.begin() as session:
        job = reencode.start(
            session,
            image_encoder=encoders.image.name,
            text_encoder=encoders.text.name,
            actor="steward-1",
            batch_size=8,
        )
        batches = reencode.BATCHES.pending(session, job.id)
    assert len(batches) == 3

    def encoders_for(image: str, text_: str) -> Encoders:
        assert (image, text_) == (encoders.image.name, encoders.text.name)
        return encoders

    first = reencode.process_batch(
        sessions=sessions, blobs=blobs, encoders_for=encoders_for, batch_id=batches[0]
    )
    assert (first.status, first.encoded) == ("done", 8)
    with sessions() as session:
        # Mid-way: the model and its pairs are untouched; the new embeddings wait aside.
        assert _state(session) == old_state
        assert all(v[0] == 1 and not v[1:].any() for v in _embeddings(session).values())
        staged = session.execute(text("SELECT count(*) FROM reencode_embeddings")).scalar_one()
        assert staged == 8
        assert reencode.report(session, reencode_id=job.id).status == "running"

    # A pair ingested while the re-encode runs is re-encoded too, at the switch.
    _ingest(sessions, blobs, encoders, _source(tmp_path / "b", shared_data, 1, offset=20))

    again = reencode.process_batch(
        sessions=sessions, blobs=blobs, encoders_for=encoders_for, batch_id=batches[0]
    )
    assert again.status == "already_done"
    outcomes = [
        reencode.process_batch(
            sessions=sessions, blobs=blobs, encoders_for=encoders_for, batch_id=batch_id
        )
        for batch_id in batches[1:]
    ]
    assert [o.status for o in outcomes] == ["done", "switched"]

    with sessions() as session:
        version, image_name, text_name = _state(session)
        report = reencode.report(session, reencode_id=job.id)
        after = _embeddings(session)
        staged = session.execute(text("SELECT count(*) FROM reencode_embeddings")).scalar_one()
        usable = session.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
        change = session.execute(
            text("SELECT change FROM model_versions WHERE version = :v"), {"v": version}
        ).scalar_one()
    assert version > old_state[0] and report.switched_version == version
    assert (image_name, text_name) == (encoders.image.name, encoders.text.name)
    assert (report.status, report.total, report.done, report.missing) == (
        "done",
        21,
        21,
        0,
    )
    assert staged == 0 and usable == 21 and change.startswith(f"reencode {job.id}")
    for pair_id, vector in fresh.items():
        assert float(vector @ after[pair_id]) > 0.999, "recomputed from the blob"


class Renamed:
    """A real encoder under another identity: what switching to a different encoder looks like
    to the database (the only other image encoders need the model hub, out of reach here)."""

    def __init__(self, encoder: object, name: str) -> None:
        self._encoder, self.name = encoder, name
        self.modality, self.dim = encoder.modality, encoder.dim

    def embed_batch(self, items: list[bytes]) -> np.ndarray:
        return self._encoder.embed_batch(items)


def test_a_pair_without_its_blob_drops_out_when_the_encoders_change(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    _ingest(sessions, blobs, encoders, _source(tmp_path / "a", shared_data, 6))
    with sessions() as session:
        lost_id, sha = session.execute(
            text("SELECT id, image_sha256 FROM pairs ORDER BY id LIMIT 1")
        ).one()
    assert blobs.delete(sha)
    other = Encoders(image=Renamed(encoders.image, "renamed/lite0"), text=encoders.text)
    with sessions.begin() as session:
        job = reencode.start(
            session,
            image_encoder=other.image.name,
            text_encoder=other.text.name,
            actor="steward-1",
        )
        (batch_id,) = reencode.BATCHES.pending(session, job.id)
    outcome = reencode.process_batch(
        sessions=sessions, blobs=blobs, encoders_for=lambda i, t: other, batch_id=batch_id
    )
    assert (outcome.status, outcome.encoded, outcome.missing) == ("switched", 5, 1)
    with sessions() as session:
        usable = set(session.scalars(text("SELECT id FROM usable_pairs")))
        closed = session.execute(
            text("SELECT to_version FROM pair_usability WHERE pair_id = :p"), {"p": lost_id}
        ).scalar_one()
        version, image_name, _ = _state(session)
        encoders_of_pairs = dict(session.execute(text("SELECT id, image_encoder FROM pairs")).all())
        report = reencode.report(session, reencode_id=job.id)
    assert image_name == "renamed/lite0" and report.missing == 1
    assert lost_id not in usable and len(usable) == 5, "never a mix of encoders"
    assert closed == version
    assert encoders_of_pairs.pop(lost_id) == encoders.image.name
    assert set(encoders_of_pairs.values()) == {"renamed/lite0"}
    # Ingestion with the old encoders is refused from now on (the worker must be reconfigured).
    with pytest.raises(ConfigError, match="switch explicitly"):
        _ingest(sessions, blobs, encoders, _source(tmp_path / "b", shared_data, 2, offset=6))


def test_one_reencode_at_a_time_and_encoders_must_fit_the_columns(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    _ingest(sessions, blobs, encoders, _source(tmp_path / "a", shared_data, 3))
    with sessions.begin() as session:
        job = reencode.start(
            session, image_encoder="x-image", text_encoder="x-text", actor="steward-1"
        )
        (batch_id,) = reencode.BATCHES.pending(session, job.id)
    with pytest.raises(Conflict), sessions.begin() as session:
        reencode.start(
            session,
            image_encoder=encoders.image.name,
            text_encoder=encoders.text.name,
            actor="steward-1",
        )

    class Narrow:
        """A real encoder whose rows are cut to fewer dimensions than the columns hold."""

        name, modality, dim = "narrow", "image", 64

        def embed_batch(self, items: list[bytes]) -> np.ndarray:
            return encoders.image.embed_batch(items)[:, :64]

    with pytest.raises(ConfigError, match="64-d"):
        reencode.process_batch(
            sessions=sessions,
            blobs=blobs,
            encoders_for=lambda i, t: Encoders(image=Narrow(), text=encoders.text),
            batch_id=batch_id,
        )
    with sessions.begin() as session:
        reencode.fail(session, batch_id=batch_id, error="64-d")
    with sessions() as session:
        assert reencode.report(session, reencode_id=job.id).status == "failed"
        assert _state(session)[1:] == (encoders.image.name, encoders.text.name)
        assert session.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one() == 3


def test_canonical_names_reject_an_unknown_encoder() -> None:
    with pytest.raises(ConfigError, match="unknown encoder"):
        reencode.canonical_names(image_encoder="no-such-model", text_encoder="all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match="image encoder"):
        reencode.canonical_names(image_encoder="all-MiniLM-L6-v2", text_encoder="all-MiniLM-L6-v2")


def test_the_cli_reencodes_through_a_real_worker(
    db_url: str, shared_data: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data")}
    env.pop("REDIS_URL", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return asifdb_cli(*args, env=env, timeout=600)

    source = _source(tmp_path / "wds", shared_data, 12)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "solo"]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env,
        cwd=ROOT,
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert cli("licenses", "create", "tiny").returncode == 0
        ingested = cli("ingest", str(source), "--license", "tiny")
        assert ingested.returncode == 0, ingested.stderr
        done = cli(
            "reencode",
            "--image-encoder",
            "tf_efficientnet_lite0",
            "--text-encoder",
            "all-MiniLM-L6-v2",
            "--batch-size",
            "5",
            "--wait",
        )
        log = (tmp_path / "worker.log").read_text()
        assert done.returncode == 0, done.stdout + done.stderr + log[-3000:]
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert "re-encode 1 done: 12 of 12 pairs re-encoded, 0 without a blob" in done.stdout
    engine = make_engine(db_url)
    with engine.connect() as conn:
        batches = conn.execute(
            text(
                "SELECT count(*), bool_and(done), bool_and(timings ? 'encode_image') "
                "FROM reencode_batches"
            )
        ).one()
        switched = conn.execute(
            text("SELECT action FROM audit_events WHERE action = 'model.reencode'")
        ).scalar_one()
    engine.dispose()
    assert tuple(batches) == (3, True, True) and switched == "model.reencode"
