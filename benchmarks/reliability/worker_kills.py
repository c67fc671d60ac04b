"""A worker killed (SIGKILL) every N batches during a 20,000-pair ingestion: nothing lost, nothing
doubled (issue 23, item 6). Real processes: an embedded PostgreSQL of its own (also the broker),
a Celery worker started again after each kill, the CLI to start the job. Figures for
docs/reliability.md:

    flock /tmp/asifdb-bench.lock .venv/bin/python benchmarks/reliability/worker_kills.py
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from asifdb.db import embedded, roles, schema  # noqa: E402
from asifdb.db.session import make_engine, with_user  # noqa: E402
from benchmarks.reliability.churn import SHARDS, _cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=20, help="1,000 pairs each")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--kill-every", type=int, default=10, help="batches")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="asifdb-kills-"))
    pgdata = work / "pg"
    worker: subprocess.Popen[bytes] | None = None
    try:
        admin = embedded.start(pgdata)
        engine = make_engine(admin)
        schema.upgrade(engine)
        engine.dispose()
        url = with_user(admin, roles.APP, None)
        source = work / "source"
        source.mkdir()
        for i in range(args.shards):
            shutil.copyfile(SHARDS / f"{i:05d}.tar", source / f"{i:05d}.tar")
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
            "DATABASE_URL": url,
            "DATA_DIR": str(work / "data"),
            "HF_HUB_OFFLINE": "1",
            "SOURCE_ROOTS": json.dumps([str(work)]),
            "RECOVERY_STALE_AFTER_S": "5",
            "RECOVERY_INTERVAL_S": "2",
        }
        env.pop("REDIS_URL", None)
        log = (work / "worker.log").open("ab")
        command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool"]
        command += ["solo", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        assert _cli(env, "licenses", "create", "anchors").returncode == 0
        out = _cli(
            env, "ingest", str(source), "--license", "anchors",
            "--batch-size", str(args.batch_size), "--no-wait",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        job_id = int(out.stdout.split("job ")[1].split(":")[0])
        engine = make_engine(url)
        kills, started = 0, time.monotonic()

        def batches_done() -> tuple[str, int]:
            with engine.connect() as conn:
                return conn.execute(
                    text(
                        "SELECT j.status, count(*) FILTER (WHERE b.done) FROM jobs j "
                        "JOIN job_batches b ON b.job_id = j.id WHERE j.id = :j GROUP BY j.status"
                    ),
                    {"j": job_id},
                ).one()

        next_kill = args.kill_every
        while True:
            worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
            while True:
                status, done = batches_done()
                if status not in ("queued", "running") or done >= next_kill:
                    break
                time.sleep(0.2)
            if status not in ("queued", "running"):
                break
            worker.send_signal(signal.SIGKILL)  # mid-batch: the next one is being encoded
            worker.wait()
            kills += 1
            next_kill = done + args.kill_every
        seconds = time.monotonic() - started
        with engine.connect() as conn:
            job = conn.execute(
                text("SELECT status, total, done, duplicates, rejected FROM jobs WHERE id = :j"),
                {"j": job_id},
            ).one()
            items = conn.execute(
                text("SELECT count(*), count(DISTINCT ordinal) FROM job_items WHERE job_id = :j"),
                {"j": job_id},
            ).one()
            pairs = conn.execute(
                text("SELECT count(*), count(DISTINCT (image_sha256, caption)) FROM pairs")
            ).one()
            usable = conn.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
        engine.dispose()
        print(
            json.dumps(
                {
                    "seconds": round(seconds, 1),
                    "kills": kills,
                    "job": dict(job._mapping),
                    "items recorded / distinct": list(items),
                    "lost (total - items)": job.total - items[0],
                    "pairs / distinct": list(pairs),
                    "doubled": pairs[0] - pairs[1],
                    "usable": usable,
                },
                indent=2,
            )
        )
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        embedded.stop(pgdata)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
