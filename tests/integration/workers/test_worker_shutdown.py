"""A real Celery worker stops on SIGTERM: idle within 10 s; busy, after finishing its batch or
handing it back, so that the next worker completes the job with every pair exactly once."""

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from asifdb.db.session import make_engine
from tests.samples import asifdb_cli, copy_samples

ROOT = Path(__file__).resolve().parents[3]
IDLE_EXIT_S = 10


def _env(db_url: str, data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": db_url, "DATA_DIR": str(data_dir)}
    env.pop("REDIS_URL", None)
    return env


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Started as `asifdb up` and docker-compose start it (gossip, mingle and heartbeat on).
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "solo"]
        + ["--loglevel", "INFO"],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(log: Path, needle: str, worker: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in log.read_text(errors="replace"):
        assert worker.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _sigterm_and_time(worker: subprocess.Popen[bytes], log: Path, limit: float) -> float:
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        pytest.fail(f"the worker did not exit {limit} s after SIGTERM:\n{log.read_text()[-3000:]}")
    return time.monotonic() - started


def test_an_idle_worker_exits_within_10_s_of_sigterm(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = _worker(_env(db_url, tmp_path / "data"), log)
    _wait_for(log, "ready.", worker, timeout=180)
    # What its recovery loop and first connections start is running by now.
    time.sleep(2)
    children = _children(worker.pid)
    took = _sigterm_and_time(worker, log, IDLE_EXIT_S)
    assert worker.returncode == 0, log.read_text()[-3000:]
    print(f"idle worker exited {took:.2f} s after SIGTERM")
    assert children == [], f"the worker had child processes: {children}"


@pytest.fixture
def source(tmp_path: Path, shared_data: Path) -> Path:
    folder = tmp_path / "wds"
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, 160)
    return folder


def _job_state(db_url: str, job_id: int) -> tuple[str, int, int]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        status, processed = conn.execute(
            text("SELECT status, done + duplicates + rejected FROM jobs WHERE id = :j"),
            {"j": job_id},
        ).one()
        batches_done = conn.execute(
            text("SELECT count(*) FILTER (WHERE done) FROM job_batches WHERE job_id = :j"),
            {"j": job_id},
        ).scalar_one()
    engine.dispose()
    return status, processed, batches_done


def test_a_busy_worker_finishes_its_batch_on_sigterm_and_loses_nothing(
    db_url: str, source: Path, tmp_path: Path
) -> None:
    env = _env(db_url, tmp_path / "data")
    log = tmp_path / "worker.log"
    assert asifdb_cli("licenses", "create", "tiny", env=env, timeout=300).returncode == 0
    created = asifdb_cli(
        "ingest", str(source), "--license", "tiny", "--batch-size", "16", "--no-wait",
        env=env, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    job_id = int(created.stdout.split("job ")[1].split(":")[0])

    worker = _worker(env, log)
    _wait_for(log, "received", worker, timeout=300)
    _wait_for(log, "succeeded", worker, timeout=300)  # encoders loaded: a batch takes seconds
    took = _sigterm_and_time(worker, log, 60)
    in_flight = log.read_text().count("received")
    print(f"busy worker exited {took:.2f} s after SIGTERM")
    status, processed, batches_done = _job_state(db_url, job_id)
    assert status == "running" and processed < 160, "SIGTERM must land mid-job"
    # Warm shutdown: every batch it had started is finished (acknowledged late, after it ends).
    assert batches_done == in_flight
    assert processed == 16 * batches_done

    worker = _worker(env, log)
    try:
        deadline = time.monotonic() + 300
        while _job_state(db_url, job_id)[0] != "done":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        _sigterm_and_time(worker, log, 60)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        pairs = conn.execute(text("SELECT count(*), count(DISTINCT source_key) FROM pairs")).one()
    engine.dispose()
    assert tuple(pairs) == (160, 160), "every pair present exactly once"
