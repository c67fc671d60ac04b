"""A real Celery worker: jobs complete through it, and a worker killed mid-job loses nothing."""

import os
import signal
import socket
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


def _env(db_url: str, data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": db_url, "DATA_DIR": str(data_dir)}
    env.pop("REDIS_URL", None)
    return env


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return asifdb_cli(*args, env=env, timeout=600)


def _counts(db_url: str, job_id: int) -> tuple[str, int]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        status, processed = conn.execute(
            text("SELECT status, done + duplicates + rejected FROM jobs WHERE id = :j"),
            {"j": job_id},
        ).one()
    engine.dispose()
    return status, processed


def pairs_and_items(db_url: str, job_id: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(pairs, distinct source keys) and the job's (items, distinct keys, ready items)."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        pairs = conn.execute(text("SELECT count(*), count(DISTINCT source_key) FROM pairs")).one()
        items = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT key), count(*) FILTER (WHERE status = 'ready') "
                "FROM job_items WHERE job_id = :j"
            ),
            {"j": job_id},
        ).one()
    engine.dispose()
    return tuple(pairs), tuple(items)


@pytest.fixture
def source(tmp_path: Path, shared_data: Path) -> Path:
    folder = tmp_path / "wds"
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, 240)
    return folder


def test_a_worker_killed_mid_job_loses_nothing(db_url: str, source: Path, tmp_path: Path) -> None:
    env = _env(db_url, tmp_path / "data")
    log = tmp_path / "worker.log"
    assert _cli(env, "licenses", "create", "tiny").returncode == 0
    created = _cli(
        env, "ingest", str(source), "--license", "tiny", "--batch-size", "16", "--no-wait"
    )
    assert created.returncode == 0, created.stderr
    job_id = int(created.stdout.split("job ")[1].split(":")[0])

    worker = _worker(env, log)
    deadline = time.monotonic() + 300
    while True:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        status, processed = _counts(db_url, job_id)
        if processed >= 32:
            break
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    status, processed = _counts(db_url, job_id)
    assert status == "running" and processed < 240, "the kill must land mid-job"

    worker = _worker(env, log)
    try:
        while True:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            status, processed = _counts(db_url, job_id)
            if status == "done":
                break
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    pairs, items = pairs_and_items(db_url, job_id)
    assert tuple(pairs) == (240, 240), "every pair present exactly once"
    assert tuple(items) == (240, 240, 240)
    assert "re-sent" in log.read_text()


def _redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    # A Redis of the test's own (nothing on disk, like the machine's): restarting it loses
    # every queued message, the worst case for a broker restart.
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while (
        subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
        ).stdout.strip()
        != "PONG"
    ):
        assert time.monotonic() < deadline, "redis did not start"
        time.sleep(0.1)
    return proc


def test_a_redis_restart_mid_job_loses_nothing(db_url: str, source: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **_env(db_url, tmp_path / "data"),
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "RECOVERY_STALE_AFTER_S": "5",
        "RECOVERY_INTERVAL_S": "2",
    }
    log = tmp_path / "worker.log"
    redis = _redis(port, tmp_path)
    worker = None
    try:
        assert _cli(env, "licenses", "create", "tiny").returncode == 0
        created = _cli(
            env, "ingest", str(source), "--license", "tiny", "--batch-size", "16", "--no-wait"
        )
        assert created.returncode == 0, created.stderr
        job_id = int(created.stdout.split("job ")[1].split(":")[0])
        worker = _worker(env, log)
        deadline = time.monotonic() + 300
        while _counts(db_url, job_id)[1] < 32:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        redis.kill()
        redis.wait()
        assert _counts(db_url, job_id)[0] == "running"
        redis = _redis(port, tmp_path)  # empty: the queued batches are gone
        # The same worker reconnects; its recovery loop resends what the tables say is undone.
        while _counts(db_url, job_id)[0] != "done":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        redis.kill()
    pairs, _ = pairs_and_items(db_url, job_id)
    assert tuple(pairs) == (240, 240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build_counts(db_url: str, model: str) -> tuple[str, int, int, int]:
    """The model's status, its build's pairs done, its image encoder's stored embeddings and
    the pairs its view makes usable."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT m.status, (SELECT done FROM reencodes WHERE model = m.name "
                "ORDER BY id DESC LIMIT 1), (SELECT count(*) FROM pair_embeddings e "
                "WHERE e.encoder = m.image_encoder), (SELECT count(*) FROM model_usable_pairs u "
                "WHERE u.model = m.name) FROM models m WHERE m.name = :m"
            ),
            {"m": model},
        ).one()
    engine.dispose()
    return row[0], row[1], row[2], row[3]


def test_a_worker_killed_mid_model_build_loses_and_doubles_nothing(
    db_url: str, source: Path, tmp_path: Path
) -> None:
    env = _env(db_url, tmp_path / "data")
    log = tmp_path / "worker.log"
    assert _cli(env, "licenses", "create", "tiny").returncode == 0
    worker = _worker(env, log)
    try:
        ingested = _cli(env, "ingest", str(source), "--license", "tiny", "--batch-size", "60")
        assert ingested.returncode == 0, ingested.stderr
        added = _cli(
            env,
            "models",
            "add",
            "lite1",
            "--image-encoder",
            "tf_efficientnet_lite1",
            "--text-encoder",
            "all-MiniLM-L6-v2",
            "--batch-size",
            "16",
        )
        assert added.returncode == 0, added.stdout + added.stderr
        deadline = time.monotonic() + 300
        while _build_counts(db_url, "lite1")[1] < 32:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    status, done, _, _ = _build_counts(db_url, "lite1")
    assert status == "building" and done < 240, "the kill must land mid-build"

    worker = _worker(env, log)
    try:
        while _build_counts(db_url, "lite1")[0] == "building":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    # Every pair embedded once, counted once, and the model ready with all of them.
    assert _build_counts(db_url, "lite1") == ("ready", 240, 240, 240)
    assert "re-sent" in log.read_text()
