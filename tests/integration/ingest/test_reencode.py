"""Re-encoding every pair from the blob store, then one atomic switch: the real database, the real
encoders, and (last test) the real worker behind `asifdb reencode --wait`."""

import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors import store
from asifdb.blobs import BlobStore
from asifdb.db.session import make_engine
from asifdb.errors import ConfigError, Conflict
from asifdb.services import ingestion, licences, reencode
from asifdb.services.model import Encoders
from tests.samples import TEST_ROOTS, asifdb_cli, copy_samples, solo_worker


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


def _embeddings(session: Session, encoder: str | None = None) -> dict[int, np.ndarray]:
    """Image embeddings by `encoder` (default: the model's, of its usable pairs)."""
    rows = session.execute(
        text("SELECT id, CAST(image_embedding AS vector)::real[] FROM usable_pairs ORDER BY id")
        if encoder is None
        else text(
            "SELECT pair_id, CAST(embedding AS vector)::real[] FROM pair_embeddings "
            "WHERE encoder = :e ORDER BY pair_id"
        ),
        {"e": encoder},
    )
    return {pid: np.asarray(vec, dtype=np.float32) for pid, vec in rows}


def _state(session: Session) -> tuple:
    return tuple(
        session.execute(text("SELECT version, image_encoder, text_encoder FROM model_state")).one()
    )


class Renamed:
    """A real encoder under another identity: what switching to a different encoder looks like
    to the database (the only other image encoders need the model hub, out of reach here)."""

    def __init__(self, encoder: object, name: str) -> None:
        self._encoder, self.name = encoder, name
        self.modality, self.dim = encoder.modality, encoder.dim

    def embed_batch(self, items: list[bytes]) -> np.ndarray:
        return self._encoder.embed_batch(items)


def test_reencode_switches_only_when_every_pair_is_done(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    _ingest(sessions, blobs, encoders, _source(tmp_path / "a", shared_data, 20))
    with sessions.begin() as session:
        fresh = _embeddings(session)
        old_state = _state(session)
    # Another image encoder (the same model under a new identity, so the test can compare the
    # vectors): its embeddings must be computed from the blobs; the text encoder stays.
    new = Encoders(image=Renamed(encoders.image, "renamed/lite0"), text=encoders.text)

    with sessions.begin() as session:
        job = reencode.start(
            session,
            image_encoder=new.image.name,
            text_encoder=new.text.name,
            actor="steward-1",
            batch_size=8,
        )
        batches = reencode.BATCHES.pending(session, job.id)
    assert len(batches) == 3

    def encoders_for(image: str, text_: str) -> Encoders:
        assert (image, text_) == (new.image.name, new.text.name)
        return new

    first = reencode.process_batch(
        sessions=sessions, blobs=blobs, encoders_for=encoders_for, batch_id=batches[0]
    )
    assert (first.status, first.encoded) == ("done", 8)
    with sessions() as session:
        # Mid-way: the model and what it reads are untouched; the new embeddings wait beside.
        assert _state(session) == old_state
        assert _embeddings(session).keys() == fresh.keys()
        assert all((v == fresh[p]).all() for p, v in _embeddings(session).items())
        assert len(_embeddings(session, new.image.name)) == 8
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
        kept = _embeddings(session, encoders.image.name)
        usable = session.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
        change = session.execute(
            text("SELECT change FROM model_versions WHERE version = :v"), {"v": version}
        ).scalar_one()
    assert version > old_state[0] and report.switched_version == version
    assert (image_name, text_name) == (new.image.name, new.text.name)
    assert (report.status, report.total, report.done, report.missing) == (
        "done",
        21,
        21,
        0,
    )
    assert usable == 21 and change.startswith(f"reencode {job.id}")
    for pair_id, vector in fresh.items():
        assert float(vector @ after[pair_id]) > 0.999, "recomputed from the blob"
    # The old encoder's embeddings stay beside the new ones (a switch back needs no encoding).
    assert len(kept) == 21 and len(after) == 21


def test_a_pair_without_its_blob_drops_out_when_the_encoders_change(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    _ingest(sessions, blobs, encoders, _source(tmp_path / "a", shared_data, 6))
    with sessions() as session:
        lost_id, sha = session.execute(
            text("SELECT id, image_sha256 FROM pairs ORDER BY id LIMIT 1")
        ).one()
    image = blobs.get(sha)
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
        embedded_by = {
            name: set(
                session.scalars(
                    text("SELECT pair_id FROM pair_embeddings WHERE encoder = :e"), {"e": name}
                )
            )
            for name in (encoders.image.name, "renamed/lite0")
        }
        all_ids = set(session.scalars(text("SELECT id FROM pairs")))
        report = reencode.report(session, reencode_id=job.id)
    assert image_name == "renamed/lite0" and report.missing == 1
    assert lost_id not in usable and len(usable) == 5, "never a mix of encoders"
    assert closed == version
    assert embedded_by["renamed/lite0"] == all_ids - {lost_id}
    assert embedded_by[encoders.image.name] == all_ids, "the old embeddings stay"
    # Ingestion with the old encoders is refused from now on (the worker must be reconfigured).
    with pytest.raises(ConfigError, match="switch explicitly"):
        _ingest(sessions, blobs, encoders, _source(tmp_path / "b", shared_data, 2, offset=6))

    # The blob comes back: a re-encode to the model's own encoders embeds only that pair, and
    # it rejoins the model as a change of the usable set (a new version, its interval opened).
    blobs.put(image)
    with sessions.begin() as session:
        again = reencode.start(
            session, image_encoder=other.image.name, text_encoder=other.text.name, actor="s"
        )
        (batch_id,) = reencode.BATCHES.pending(session, again.id)
    outcome = reencode.process_batch(
        sessions=sessions, blobs=blobs, encoders_for=lambda i, t: other, batch_id=batch_id
    )
    assert (outcome.status, outcome.encoded, outcome.missing) == ("switched", 6, 0)
    with sessions() as session:
        usable = set(session.scalars(text("SELECT id FROM usable_pairs")))
        opened = session.execute(
            text(
                "SELECT from_version FROM pair_usability WHERE pair_id = :p AND to_version IS NULL"
            ),
            {"p": lost_id},
        ).scalar_one()
        joined = session.execute(
            text("SELECT change FROM model_versions WHERE version = :v"), {"v": opened}
        ).scalar_one()
    assert usable == all_ids
    assert opened > version and "+1 pairs embedded by the model's encoders" in joined


def test_one_reencode_at_a_time_any_width_and_an_encoders_width_is_fixed_once_seen(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    _ingest(sessions, blobs, encoders, _source(tmp_path / "a", shared_data, 3))
    with sessions.begin() as session:
        job = reencode.start(
            session,
            image_encoder="x-image",
            text_encoder=encoders.text.name,
            actor="steward-1",
            batch_size=2,
        )
        first, second = reencode.BATCHES.pending(session, job.id)
    with pytest.raises(Conflict), sessions.begin() as session:
        reencode.start(
            session,
            image_encoder=encoders.image.name,
            text_encoder=encoders.text.name,
            actor="steward-1",
        )

    class Narrow:
        """A real encoder whose rows are cut to 64 dimensions: an encoder of another width."""

        name, modality, dim = "narrow", "image", 64

        def embed_batch(self, items: list[bytes]) -> np.ndarray:
            return encoders.image.embed_batch(items)[:, :64]

    narrow = Encoders(image=Narrow(), text=encoders.text)
    # The first batch makes "x-image" a 64-d encoder; a second batch of another width (a
    # changed model under the same name) is refused, and the re-encode fails, switching nothing.
    reencode.process_batch(
        sessions=sessions, blobs=blobs, encoders_for=lambda i, t: narrow, batch_id=first
    )
    with pytest.raises(ConfigError, match="x-image gives 1280-d image embeddings, .* 64-d"):
        reencode.process_batch(
            sessions=sessions, blobs=blobs, encoders_for=lambda i, t: encoders, batch_id=second
        )
    with sessions.begin() as session:
        reencode.fail(session, batch_id=second, error="1280-d")
    with sessions() as session:
        assert reencode.report(session, reencode_id=job.id).status == "failed"
        assert _state(session)[1:] == (encoders.image.name, encoders.text.name)
        assert session.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one() == 3
    # The database itself refuses an embedding whose width is not its encoder's.
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.execute(
            text(
                "INSERT INTO pair_embeddings (pair_id, encoder, dim, embedding) "
                "SELECT id, 'x-image', 64, '[1,2,3]'::halfvec FROM pairs LIMIT 1"
            )
        )
    # A 64-d image encoder serves the same pairs: after its switch the model's anchors are
    # 64-d, the 1280-d embeddings of the old encoder still beside them.
    with sessions.begin() as session:
        job = reencode.start(
            session, image_encoder="narrow", text_encoder=encoders.text.name, actor="steward-1"
        )
        (only,) = reencode.BATCHES.pending(session, job.id)
    done = reencode.process_batch(
        sessions=sessions, blobs=blobs, encoders_for=lambda i, t: narrow, batch_id=only
    )
    assert (done.status, done.encoded) == ("switched", 3)
    with sessions() as session:
        anchors = store.load(session)
        widths = dict(session.execute(text("SELECT encoder, dim FROM pair_embeddings")).all())
    assert anchors.image.shape == (3, 64) and anchors.text.shape == (3, 384)
    assert widths == {
        encoders.image.name: 1280,
        "narrow": 64,
        "x-image": 64,
        encoders.text.name: 384,
    }


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
    with solo_worker(env, tmp_path / "worker.log"):
        assert cli("licenses", "create", "tiny").returncode == 0
        ingested = cli("ingest", str(source), "--license", "tiny")
        assert ingested.returncode == 0, ingested.stderr

        def reencode(image_encoder: str) -> subprocess.CompletedProcess[str]:
            done = cli(
                "reencode",
                "--image-encoder",
                image_encoder,
                "--text-encoder",
                "all-MiniLM-L6-v2",
                "--batch-size",
                "5",
                "--wait",
            )
            log = (tmp_path / "worker.log").read_text()
            assert done.returncode == 0, done.stdout + done.stderr + log[-3000:]
            return done

        # Lite1 is another image encoder: every pair is embedded again, by the worker.
        done = reencode("tf_efficientnet_lite1")
        # Back to Lite0: every pair still holds its Lite0 embedding, so nothing is embedded.
        back = reencode("tf_efficientnet_lite0")
    assert "re-encode 1 done: 12 of 12 pairs re-encoded, 0 without a blob" in done.stdout
    assert "re-encode 2 done: 12 of 12 pairs re-encoded, 0 without a blob" in back.stdout
    engine = make_engine(db_url)
    with engine.connect() as conn:
        batches = conn.execute(
            text(
                "SELECT reencode_id, count(*), bool_and(done), bool_and(timings ? 'encode_image') "
                "FROM reencode_batches GROUP BY reencode_id ORDER BY reencode_id"
            )
        ).all()
        switched = conn.execute(
            text("SELECT count(*) FROM audit_events WHERE action = 'model.reencode'")
        ).scalar_one()
        held = conn.execute(
            text("SELECT encoder, count(*) FROM pair_embeddings GROUP BY encoder ORDER BY 1")
        ).all()
    engine.dispose()
    assert [tuple(b) for b in batches] == [(1, 3, True, True), (2, 3, True, False)]
    assert switched == 2
    assert [count for _, count in held] == [12, 12, 12] and any("lite1" in e for e, _ in held)
