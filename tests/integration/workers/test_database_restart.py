"""The database server killed mid-batch and started again: the job completes through a real
worker, every pair exactly once (issue 23, item 6). The server is a real embedded PostgreSQL of
this test's own (it also holds the broker's queue, so the worker loses both at once); it is
stopped in PostgreSQL's `immediate` mode, which is a crash (no checkpoint; crash recovery at
the next start) from the clients' side: every open connection is cut."""

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from asifdb.db import embedded, roles, schema
from asifdb.db.session import make_engine, with_user
from tests.integration.workers.test_worker_recovery import _cli, _counts, _worker, pairs_and_items
from tests.samples import cli_env, copy_samples


def _crash(pgdata: Path) -> None:
    from pgserver._commands import pg_ctl
    from pgserver.postgres_server import PostgresServer

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user)
    # pgserver keeps the server it started per process: forget it, so the next start starts.
    PostgresServer._instances.pop(pgdata.resolve(), None)


def test_a_database_killed_mid_batch_and_restarted_loses_and_doubles_nothing(
    tmp_path: Path, shared_data: Path
) -> None:
    # Not under pytest's tmp_path (0700 to root: the server's own OS user could not enter it).
    folder = Path(tempfile.mkdtemp(prefix="asifdb-test-crash-"))
    pgdata = folder / "pg"
    worker = None
    try:
        admin = embedded.start(pgdata)
        engine = make_engine(admin)
        schema.upgrade(engine)
        engine.dispose()
        url = with_user(admin, roles.APP, None)
        source = tmp_path / "wds"
        source.mkdir()
        with tarfile.open(source / "00000.tar", "w") as tar:
            copy_samples(shared_data, tar, 192)
        env = {**cli_env(url, tmp_path / "data"), "RECOVERY_STALE_AFTER_S": "5"}
        env["RECOVERY_INTERVAL_S"] = "2"
        env.pop("REDIS_URL", None)
        log = tmp_path / "worker.log"
        assert _cli(env, "licenses", "create", "tiny").returncode == 0
        created = _cli(
            env, "ingest", str(source), "--license", "tiny", "--batch-size", "16", "--no-wait"
        )
        assert created.returncode == 0, created.stderr
        job_id = int(created.stdout.split("job ")[1].split(":")[0])
        worker = _worker(env, log)
        deadline = time.monotonic() + 300
        while _counts(url, job_id)[1] < 32:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

        _crash(pgdata)  # mid-job: batches done, one in flight, the rest queued
        time.sleep(3)  # the worker meets a dead server for a while
        assert embedded.start(pgdata) == admin  # same socket: the worker's URL holds
        status, processed = _counts(url, job_id)
        assert status == "running" and processed < 192, "the crash must land mid-job"

        while (status := _counts(url, job_id)[0]) in ("queued", "running"):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert status == "done", log.read_text()[-3000:]
        pairs, items = pairs_and_items(url, job_id)
        engine = make_engine(url)
        with engine.connect() as conn:
            usable = conn.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
        engine.dispose()
        assert tuple(pairs) == (192, 192), "every pair present exactly once"
        assert tuple(items) == (192, 192, 192)
        assert usable == 192
        worker_log = log.read_text()
        assert "Connection to broker lost" in worker_log  # the outage reached the worker
        assert "re-sent" in worker_log  # and the batches it lost were found in the tables
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        embedded.stop(pgdata)
        shutil.rmtree(folder, ignore_errors=True)
