"""The results' embedded PostgreSQL: the anchor pairs ingested once, one clone per experiment.

Every experiment script calls `experiment_platform`; the 20,000-pair ingest runs on first use only.
"""

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from asifdb.context import Platform
from asifdb.db import embedded, schema
from asifdb.db.session import make_engine
from asifdb.schemas.pairs import Job as JobReport
from asifdb.services import ingestion, licences
from asifdb.services.model import Encoders, EncodersFor
from asifdb.settings import Settings

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]


def _shared_data() -> Path:
    """The read-only real data: $SHARED_DATA, else ../shared/data beside the checkout, else
    the workspace's (a checkout elsewhere, e.g. a clean clone under /tmp). The test suite
    takes this one too (tests/conftest.py)."""
    candidates = [
        os.environ.get("SHARED_DATA", ""),
        REPO.parent / "shared" / "data",
        Path("/work/shared/data"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return Path(candidates[1])


SHARED_DATA = _shared_data()
PAIRS = SHARED_DATA / "tiny-imagenet-pairs-wds"
# Under /tmp, never the repository: the database and blobs of 20,000 pairs are ~1 GB.
ROOT = Path(os.environ.get("ASIFDB_RESULTS_DIR", "/tmp/asifdb-results"))
# Where the benchmarks' sources lie (their SOURCE_ROOTS): the real data, the results folder and
# the temporary folders the integration tests copy data into.
ROOTS = (SHARED_DATA, ROOT, Path(tempfile.gettempdir()))
ANCHORS_LICENCE = "tiny-imagenet-pairs"
ACTOR = "results"


@contextmanager
def _exclusive(server: str, database: str) -> Iterator[None]:
    """One process at a time touches an anchors database: CREATE DATABASE ... TEMPLATE fails
    while another connection (an upgrade, an ingest, another clone) is open on it. The lock is
    the server's (a session advisory lock, from its `postgres` database): no file is left."""
    with _admin(server) as admin:
        admin.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"asifdb-anchors:{database}",))
        yield


def server_url() -> str:
    """The results' embedded server (started if needed); its default database's URL."""
    return embedded.start(ROOT / "pg")


def _admin(url: str) -> psycopg.Connection:
    host = make_url(url).query["host"]
    return psycopg.connect(f"postgresql://postgres@/postgres?host={host}", autocommit=True)


def _database_url(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def ingest(
    platform: Platform,
    source: Path,
    *,
    licence: str,
    encoders_for: EncodersFor | None = None,
    **options: object,
) -> JobReport:
    """Ingest `source` under a new licence through the platform's jobs, in this process.

    Resumes a job left unfinished (batches are idempotent). Returns the job's report.
    `encoders_for` as a worker's: the new pairs are embedded for every named model too.
    """
    with platform.sessions.begin() as session:
        existing = session.execute(
            text(
                "SELECT j.id FROM jobs j JOIN licenses l ON l.id = j.license_id "
                "WHERE l.name = :l ORDER BY j.id LIMIT 1"
            ),
            {"l": licence},
        ).scalar()
        if existing is None:
            licences.create(session, name=licence, actor=ACTOR)
            existing = ingestion.start_job(
                session,
                source=str(source),
                roots=ROOTS,
                license_name=licence,
                actor=ACTOR,
                **options,
            ).id
        batches = ingestion.BATCHES.pending(session, existing)
    started = time.perf_counter()
    for n, batch in enumerate(batches, start=1):
        ingestion.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders=platform.encoders,
            batch_id=batch,
            encoders_for=encoders_for,
        )
        log.info("ingest %s: batch %d/%d, %.0f s", licence, n, len(batches), _since(started))
    with platform.sessions() as session:
        return ingestion.job_report(session, job_id=existing)


def _since(started: float) -> float:
    return time.perf_counter() - started


def _anchors_name(source: Path, encoders: Encoders) -> str:
    key = f"{source.resolve()}|{encoders.image.name}|{encoders.text.name}"
    return f"anchors_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def anchors_database(encoders: Encoders, *, source: Path = PAIRS) -> str:
    """URL of the database holding `source` ingested under one licence, ingesting it once.

    A marker file, written when the ingest is complete, keys the cache by source and encoders.
    """
    with _exclusive(server_url(), _anchors_name(source, encoders)):
        return _anchors_database(encoders, source)


def _anchors_database(encoders: Encoders, source: Path) -> str:
    url = server_url()
    name = _anchors_name(source, encoders)
    marker = ROOT / f"{name}.json"
    anchors_url = _database_url(url, name)
    with _admin(url) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(anchors_url)
    # Another engineer's migration may have landed since the ingest: bring the clone's source up.
    schema.upgrade(engine)
    engine.dispose()
    if marker.exists():
        return anchors_url
    platform = Platform(Settings(database_url=anchors_url, data_dir=ROOT / "data"))
    platform.__dict__["encoders"] = encoders
    started = time.perf_counter()
    report = ingest(platform, source, licence=ANCHORS_LICENCE, batch_size=256)
    platform.close()
    marker.write_text(
        json.dumps(
            {
                "source": str(source),
                "image_encoder": encoders.image.name,
                "text_encoder": encoders.text.name,
                "ready": report.done,
                "rejected": report.rejected,
                "duplicates": report.duplicates,
                "ingest_seconds_this_run": round(_since(started), 1),
            },
            indent=2,
        )
    )
    return anchors_url


def anchors_ingest(encoders: Encoders, *, source: Path = PAIRS) -> dict:
    """What the marker recorded about the anchors' ingest (counts, time)."""
    anchors_database(encoders, source=source)
    return json.loads((ROOT / f"{_anchors_name(source, encoders)}.json").read_text())


def clone(anchors_url: str, name: str) -> str:
    """A fresh copy of the anchors database for one experiment (dropped first if it exists)."""
    template = str(make_url(anchors_url).database)
    with _exclusive(anchors_url, template), _admin(anchors_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return _database_url(anchors_url, name)


def experiment_platform(name: str, encoders: Encoders) -> Platform:
    """A platform on a fresh clone of the anchors database, with these (loaded) encoders."""
    url = clone(anchors_database(encoders), f"exp_{name}")
    platform = Platform(Settings(database_url=url, data_dir=ROOT / "data"))
    platform.__dict__["encoders"] = encoders
    return platform
