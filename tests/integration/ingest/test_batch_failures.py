"""A batch that fails on its data is tried a bounded number of times with a doubling back-off,
then ends failed with its reason, and its job ends partial instead of waiting forever; an item
the database alone refuses is rejected and the rest of its batch goes in. Real database, real
worker code; the refusals are the database's own (a value PostgreSQL's jsonb cannot hold, a
real check constraint), nothing is mocked."""

import json
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from asifdb.context import Platform
from asifdb.db.models import Job, JobBatch, Pair
from asifdb.services import ingestion, licences
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.conftest import setup_url
from tests.samples import TEST_ROOTS, asifdb_cli, cli_env, ingest_now

ROOT = Path(__file__).resolve().parents[3]


def _images(shared_data: Path, n: int, folder: Path) -> list[Path]:
    """Real images copied beside the JSONL (a JSONL's images must lie under its root)."""
    folder.mkdir(exist_ok=True)
    originals = sorted((shared_data / "cifar10" / "test" / "cat").glob("*.png"))[:n]
    for original in originals:
        shutil.copyfile(original, folder / original.name)
    return [folder / original.name for original in originals]


def _jsonl(path: Path, lines: list[dict]) -> Path:
    # allow_nan: Python writes NaN, which JSON and PostgreSQL's jsonb refuse: a real poison line.
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _platform(db_url: str, tmp_path: Path, encoders: Encoders) -> Platform:
    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    platform.__dict__["encoders"] = encoders
    return platform


def test_an_item_only_the_database_refuses_is_rejected_and_its_batch_goes_in(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    images = _images(shared_data, 3, tmp_path / "images")
    source = _jsonl(
        tmp_path / "items.jsonl",
        [
            {"image": str(images[0]), "caption": "a cat", "score": 0.5},
            {"image": str(images[1]), "caption": "a poisoned cat", "score": float("nan")},
            {"image": str(images[2]), "caption": "another cat", "score": 1.0},
        ],
    )
    platform = _platform(db_url, tmp_path, encoders)
    ingest_now(platform, source, "nan")
    with platform.sessions() as session:
        job_id = session.scalars(select(Job.id)).one()
        report = ingestion.job_report(session, job_id=job_id)
        captions = set(session.scalars(select(Pair.caption)))
    platform.close()
    assert report.status == "done", report
    assert (report.done, report.rejected) == (2, 1), report
    (reject,) = report.rejects
    assert reject.code == "refused_by_database"
    assert "json" in reject.reason and "NaN" not in reject.reason, reject
    assert captions == {"a cat", "another cat"}


def _poisoned_source(db_url: str, tmp_path: Path, shared_data: Path) -> Path:
    """Four items (two batches of two); a real CHECK on job_items refuses the third, always."""
    images = _images(shared_data, 4, tmp_path / "images")
    source = _jsonl(
        tmp_path / "items.jsonl",
        [{"image": str(image), "caption": f"cat {i}"} for i, image in enumerate(images)],
    )
    url = make_url(setup_url(db_url)).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute("ALTER TABLE job_items ADD CONSTRAINT poison CHECK (key NOT LIKE '%:3')")
    return source


def _poisoned_job(db_url: str, tmp_path: Path, shared_data: Path, platform: Platform) -> int:
    source = _poisoned_source(db_url, tmp_path, shared_data)
    with platform.sessions.begin() as session:
        licences.create(session, name="poison", actor="test")
        job = ingestion.start_job(
            session,
            source=str(source),
            roots=TEST_ROOTS,
            license_name="poison",
            actor="test",
            batch_size=2,
        )
        return job.id


def test_a_batch_failing_on_its_data_is_retried_with_backoff_then_fails_and_the_job_is_partial(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    platform = _platform(db_url, tmp_path, encoders)
    job_id = _poisoned_job(db_url, tmp_path, shared_data, platform)
    with platform.sessions() as session:
        first, second = ingestion.BATCHES.pending(session, job_id)
    run = dict(sessions=platform.sessions, blobs=platform.blobs, encoders=platform.encoders)
    retries = ingestion.Retries(max_attempts=3, backoff_s=2.0)
    assert ingestion.process_batch(**run, batch_id=first, retries=retries).status == "done"
    waits = []
    for attempt in (1, 2, 3):
        with pytest.raises(ingestion.BatchFailed) as failed:
            ingestion.process_batch(**run, batch_id=second, retries=retries)
        assert failed.value.attempts == attempt
        assert "violates check constraint" in failed.value.error, failed.value.error
        waits.append(failed.value.retry_in)
    assert waits == [2.0, 4.0, None]  # doubling back-off, then given up

    with platform.sessions() as session:
        report = ingestion.job_report(session, job_id=job_id)
        batch = session.get_one(JobBatch, second)
        assert (batch.failed, batch.done, batch.attempts) == (True, False, 3)
        # Never sent again by the recovery loop, never tried again by a late delivery.
        assert second not in ingestion.BATCHES.stalled(session, timedelta(0))
    assert ingestion.process_batch(**run, batch_id=second, retries=retries).status == "failed"
    assert report.status == "partial", report
    assert report.done == 2 and report.finished_at is not None
    assert "1 of 2 batches failed" in report.error
    (given_up,) = report.failed_batches
    assert given_up.batch == second and given_up.items == [2, 4]
    assert given_up.attempts == 3

    out = asifdb_cli("job", str(job_id), env=cli_env(db_url, tmp_path / "cli"))
    platform.close()
    assert out.returncode == 0, out.stderr
    assert "partial" in out.stdout
    assert f"batch {second} (items 2–3) failed after 3 tries" in out.stderr


def test_a_real_worker_retries_a_failing_batch_then_ends_its_job_partial(
    db_url: str, tmp_path: Path, shared_data: Path
) -> None:
    source = _poisoned_source(db_url, tmp_path, shared_data)
    env = {**cli_env(db_url, tmp_path / "data"), "INGEST_MAX_ATTEMPTS": "3"}
    env["INGEST_RETRY_BACKOFF_S"] = "0.5"
    env.pop("REDIS_URL", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "solo"]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env,
        cwd=ROOT,
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert asifdb_cli("licenses", "create", "poison", env=env).returncode == 0
        started = asifdb_cli(
            "ingest", str(source), "--license", "poison", "--batch-size", "2", "--no-wait",
            env=env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 240
        while True:
            out = asifdb_cli("job", "1", "--json", env=env)
            report = json.loads(out.stdout)
            if report["status"] not in ("queued", "running") or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert report["status"] == "partial", (report, log[-3000:])
    assert report["done"] == 2
    (given_up,) = report["failed_batches"]
    assert given_up["attempts"] == 3, report
    # The worker's own account: two waits, doubling, then given up; the database says why.
    assert "try 1: the database refused it" in log and "(retry in 0.5 s)" in log, log[-3000:]
    assert "try 2:" in log and "(retry in 1 s)" in log and "try 3:" in log, log[-3000:]
    assert "(given up)" in log, log[-3000:]
