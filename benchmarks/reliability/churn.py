"""Ingestion under a licence that is revoked and restored every few seconds, while 4 clients
classify through the API: nothing lost or doubled, no 5xx, no usable pair of a revoked licence at
any version, every prediction's evidence drawn only from pairs usable at its version.

A load run with real processes (issue 23, item 6), not a test: an embedded PostgreSQL of its
own, a real Celery worker, a real API server (uvicorn), the real CLI to start the job. Figures
for docs/reliability.md:

    flock /tmp/asifdb-bench.lock .venv/bin/python benchmarks/reliability/churn.py --pairs 5000
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from asifdb.context import Platform  # noqa: E402
from asifdb.db import embedded, roles, schema  # noqa: E402
from asifdb.db.session import make_engine, with_user  # noqa: E402
from asifdb.services import keys, licences  # noqa: E402
from asifdb.settings import Settings  # noqa: E402

SHARED = Path(os.environ.get("SHARED_DATA") or ROOT.parent / "shared" / "data")
SHARDS = SHARED / "tiny-imagenet-pairs-wds"
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asifdb.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _source(work: Path, shard: int, pairs: int, name: str) -> Path:
    """A folder of whole 1,000-pair shards of the default collection (copied: read-only data)."""
    folder = work / name
    folder.mkdir()
    for i in range(shard, shard + pairs // 1000):
        shutil.copyfile(SHARDS / f"{i:05d}.tar", folder / f"{i:05d}.tar")
    return folder


def main() -> None:  # noqa: PLR0915 - one scripted run, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000, help="a multiple of 1,000")
    parser.add_argument("--toggle-every", type=float, default=3.0, help="seconds")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="asifdb-churn-"))
    pgdata = work / "pg"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        admin = embedded.start(pgdata)
        engine = make_engine(admin)
        schema.upgrade(engine)
        engine.dispose()
        url = with_user(admin, roles.APP, None)
        port = _port()
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
            "DATABASE_URL": url,
            "DATA_DIR": str(work / "data"),
            "HF_HUB_OFFLINE": "1",
            "SOURCE_ROOTS": json.dumps([str(work)]),
            "API_RATE_LIMIT": "1000000/minute",
        }
        env.pop("REDIS_URL", None)
        base = _source(work, 10, 1000, "base")  # anchors of another licence, never toggled
        churn = _source(work, 0, args.pairs, "churn")
        platform = Platform(Settings(database_url=url, data_dir=work / "data"))
        with platform.sessions.begin() as session:
            key = keys.create(session, name="client", role="app", actor="churn")
        log = (work / "worker.log").open("ab")
        worker_cmd = [sys.executable, "-m", "celery", "-A", "workers.app", "worker"]
        worker_cmd += ["--pool", "solo", "--without-gossip", "--without-mingle"]
        procs.append(subprocess.Popen(worker_cmd, env=env, cwd=ROOT, stdout=log, stderr=log))
        api_cmd = [sys.executable, "-m", "uvicorn", "asifdb.api.main:app", "--port", str(port)]
        procs.append(subprocess.Popen(api_cmd, env=env, cwd=ROOT, stdout=log, stderr=log))
        for name, folder in (("base", base),):
            assert _cli(env, "licenses", "create", name).returncode == 0
            out = _cli(env, "ingest", str(folder), "--license", name, "--wait")
            assert out.returncode == 0, out.stderr
        assert _cli(env, "licenses", "create", "churn").returncode == 0

        api = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        image = sorted((SHARED / "cifar10" / "test" / "cat").iterdir())[0].read_bytes()
        stop = threading.Event()
        statuses: Counter[int] = Counter()
        toggles: list[tuple[str, int]] = []

        def classify() -> None:
            with httpx.Client(base_url=api, headers={"X-API-Key": key}, timeout=120) as client:
                while not stop.is_set():
                    response = client.post(
                        "/v1/classify",
                        files=[("images", ("cat.png", image))],
                        data={"labels": CIFAR, "templates": "cifar"},
                    )
                    statuses[response.status_code] += 1

        def toggle() -> None:
            revoked = False
            while not stop.wait(args.toggle_every):
                with platform.sessions.begin() as session:
                    if revoked:
                        done = licences.restore(session, licence="churn", actor="steward")
                    else:
                        done = licences.revoke(
                            session, licence="churn", reason="churn run", actor="steward"
                        )
                revoked = not revoked
                toggles.append(("revoke" if revoked else "restore", done.model_version))
            if revoked:
                with platform.sessions.begin() as session:
                    done = licences.restore(session, licence="churn", actor="steward")
                toggles.append(("restore", done.model_version))

        started = time.monotonic()
        out = _cli(
            env, "ingest", str(churn), "--license", "churn", "--batch-size", "64", "--no-wait"
        )
        assert out.returncode == 0, out.stderr
        job_id = int(out.stdout.split("job ")[1].split(":")[0])
        threads = [threading.Thread(target=classify) for _ in range(args.clients)]
        threads.append(threading.Thread(target=toggle))
        for thread in threads:
            thread.start()
        status = "queued"
        while status in ("queued", "running"):
            time.sleep(1)
            with platform.sessions() as session:
                status = session.execute(
                    text("SELECT status FROM jobs WHERE id = :j"), {"j": job_id}
                ).scalar_one()
        seconds = time.monotonic() - started
        stop.set()
        for thread in threads:
            thread.join()
        print(json.dumps(_checks(platform, job_id, statuses, toggles, seconds), indent=2))
        platform.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        embedded.stop(pgdata)
        shutil.rmtree(work, ignore_errors=True)


_REVOKED_USABLE = """
-- Versions at which the churn licence was revoked: [revoke's version, next restore's version).
WITH events AS (
    SELECT action, model_version AS v,
           lead(model_version) OVER (ORDER BY model_version) AS next_v
    FROM audit_events
    WHERE action IN ('license.revoke', 'license.restore') AND target_id = :lic
), revoked AS (
    SELECT v AS from_v, next_v AS to_v FROM events WHERE action = 'license.revoke'
)
SELECT count(*) FROM pair_usability u
JOIN pairs p ON p.id = u.pair_id
JOIN revoked r ON u.from_version < coalesce(r.to_v, 9223372036854775807)
              AND coalesce(u.to_version, 9223372036854775807) > r.from_v
WHERE p.license_id = :lic_id
"""

_EVIDENCE_NOT_USABLE = """
SELECT count(*) FROM prediction_evidence e
JOIN predictions pr ON pr.id = e.prediction_id
WHERE NOT EXISTS (
    SELECT 1 FROM pair_usability u
    WHERE u.pair_id = e.pair_id AND u.from_version <= pr.model_version
      AND (u.to_version IS NULL OR u.to_version > pr.model_version)
)
"""


def _checks(
    platform: Platform,
    job_id: int,
    statuses: Counter[int],
    toggles: list[tuple[str, int]],
    seconds: float,
) -> dict[str, object]:
    with platform.sessions() as session:
        lic_id = session.execute(text("SELECT id FROM licenses WHERE name = 'churn'")).scalar_one()
        job = session.execute(
            text("SELECT status, total, done, duplicates, rejected FROM jobs WHERE id = :j"),
            {"j": job_id},
        ).one()
        items = session.execute(
            text("SELECT count(*), count(DISTINCT ordinal) FROM job_items WHERE job_id = :j"),
            {"j": job_id},
        ).one()
        pairs = session.execute(
            text(
                "SELECT count(*), count(DISTINCT (image_sha256, caption)) FROM pairs "
                "WHERE job_id = :j"
            ),
            {"j": job_id},
        ).one()
        revoked_usable = session.execute(
            text(_REVOKED_USABLE), {"lic": str(lic_id), "lic_id": lic_id}
        ).scalar_one()
        bad_evidence = session.execute(text(_EVIDENCE_NOT_USABLE)).scalar_one()
        predictions = session.execute(text("SELECT count(*) FROM predictions")).scalar_one()
        churn_evidence = session.execute(
            text(
                "SELECT count(*) FROM prediction_evidence e JOIN pairs p ON p.id = e.pair_id "
                "WHERE p.license_id = :l"
            ),
            {"l": lic_id},
        ).scalar_one()
        versions = session.execute(text("SELECT count(*) FROM model_versions")).scalar_one()
        usable = session.execute(
            text("SELECT count(*) FROM usable_pairs WHERE license_id = :l"), {"l": lic_id}
        ).scalar_one()
    return {
        "seconds": round(seconds, 1),
        "job": dict(job._mapping),
        "items recorded / distinct": list(items),
        "lost (total - items)": job.total - items[0],
        "pairs of the job / distinct": list(pairs),
        "doubled": pairs[0] - pairs[1],
        "usable at the end (licence restored)": usable,
        "toggles": len(toggles),
        "HTTP statuses": dict(statuses),
        "5xx": sum(n for code, n in statuses.items() if code >= 500),
        "predictions recorded": predictions,
        "evidence rows from the toggled licence's pairs": churn_evidence,
        "model versions": versions,
        "usability intervals overlapping a revoked span": revoked_usable,
        "evidence rows from pairs not usable at their version": bad_evidence,
    }


if __name__ == "__main__":
    main()
