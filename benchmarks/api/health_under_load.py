"""/health and a one-image classify while heavy classifications run: p50/p99 latency.

A benchmark, not a test (figures for docs/benchmarks.md). For each code tree given (this
checkout, and e.g. a `git worktree` of an older commit for "before"), a server process is
started from that tree's code on its own database of one embedded PostgreSQL, seeded with real
pairs; then `--heavy` clients classify one image among 990 fresh labels x 2 templates each
(1,980 captions to encode, near the 2,000 API_MAX_CAPTIONS allows by default) in a loop, while one
client polls /health and another classifies one image among the 10 CIFAR labels (cached).

    flock /tmp/asifdb-bench.lock .venv/bin/python benchmarks/api/health_under_load.py \\
        --tree before=/tmp/asifdb-before --tree after=.
"""

import argparse
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psycopg

SHARED_DATA = Path(os.environ.get("SHARED_DATA", "/work/shared/data"))
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
HERE = Path(__file__).resolve()


def serve(url: str, data_dir: Path, port: int, pairs: int, key_file: Path) -> None:
    """In the tree's interpreter: migrate, seed, create a key, serve until killed."""
    import uvicorn

    from asifdb.api.main import create_app
    from asifdb.db import schema
    from asifdb.db.session import make_engine
    from asifdb.services import keys
    from asifdb.settings import Settings
    from tests.samples import ingest_now, tiny_shard

    engine = make_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    app = create_app(Settings(database_url=url, data_dir=data_dir))
    platform = app.state.platform
    data_dir.mkdir(parents=True, exist_ok=True)
    shard = tiny_shard(SHARED_DATA, data_dir / "wds", pairs)
    ingest_now(platform, shard, "tiny", batch_size=128)
    with platform.sessions.begin() as session:
        key = keys.create(session, name="bench", role="app", actor="bench")
    key_file.write_text(key)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(
    tree: Path, server_url: str, work: Path, pairs: int
) -> tuple[subprocess.Popen[bytes], str, str]:
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:8]}"
    server = make_url(server_url)
    libpq = f"postgresql://{server.username}@/postgres?host={server.query['host']}"
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    port, key_file = _free_port(), work / f"{name}.key"
    data_dir = work / name
    env = {
        **os.environ,
        "PYTHONPATH": f"{tree / 'platform'}:{tree}",
        "DATABASE_URL": url,
        "DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        # The benchmark's clients must not be rate-limited (the trees that have limits).
        "API_RATE_LIMIT": "1000000/minute",
        "API_ANONYMOUS_RATE_LIMIT": "1000000/minute",
    }
    args = ["serve", url, str(data_dir), str(port), str(pairs), str(key_file)]
    proc = subprocess.Popen([sys.executable, str(HERE), *args], cwd=tree, env=env)
    deadline = time.monotonic() + 900
    while not key_file.exists() or not _up(port):
        assert proc.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}", key_file.read_text()


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _percentiles(seconds: list[float]) -> str:
    if not seconds:
        return "no answers"
    ms = np.array(seconds) * 1000
    return (
        f"n={ms.size} p50={np.percentile(ms, 50):.1f} ms p99={np.percentile(ms, 99):.1f} ms "
        f"max={ms.max():.1f} ms"
    )


def measure(base: str, key: str, image: Path, heavy: int, duration: float) -> dict[str, str]:
    stop = threading.Event()
    counter = itertools.count()
    heavy_times: list[float] = []
    failures: list[str] = []
    data = image.read_bytes()

    def heavy_loop() -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=600) as client:
            while not stop.is_set():
                round_ = next(counter)
                # 990, not 1000: the older tree's multipart parser refuses over 1,000 fields.
                labels = [f"thing {round_} number {i}" for i in range(990)]
                started = time.monotonic()
                response = client.post(
                    "/v1/classify",
                    files=[("images", (image.name, data))],
                    data={"labels": labels, "template": ["a photo of {}.", "a picture of {}."]},
                )
                heavy_times.append(time.monotonic() - started)
                if response.status_code != 200:
                    failures.append(f"heavy {response.status_code}")

    def timed(call) -> list[float]:  # noqa: ANN001
        times: list[float] = []
        while not stop.is_set():
            started = time.monotonic()
            response = call()
            times.append(time.monotonic() - started)
            if response.status_code != 200:
                failures.append(f"{response.request.url.path} {response.status_code}")
            time.sleep(0.05)
        return times

    results: dict[str, list[float]] = {}
    with (
        httpx.Client(base_url=base, timeout=600) as anonymous,
        httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=600) as app,
    ):

        def health() -> None:
            results["health"] = timed(lambda: anonymous.get("/health"))

        def one_image() -> None:
            results["classify"] = timed(
                lambda: app.post(
                    "/v1/classify",
                    files=[("images", (image.name, data))],
                    data={"labels": CIFAR, "templates": "cifar"},
                )
            )

        app.post(  # the CIFAR captions encoded once, as a live service has them
            "/v1/classify",
            files=[("images", (image.name, data))],
            data={"labels": CIFAR, "templates": "cifar"},
        )
        threads = [threading.Thread(target=heavy_loop) for _ in range(heavy)]
        threads += [threading.Thread(target=health), threading.Thread(target=one_image)]
        for thread in threads:
            thread.start()
        time.sleep(duration)
        stop.set()
        for thread in threads:
            thread.join()
    return {
        "/health": _percentiles(results["health"]),
        "one-image classify": _percentiles(results["classify"]),
        "heavy classify": _percentiles(heavy_times),
        "non-200": ", ".join(sorted(set(failures))) or "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="name=path of a checkout")
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--heavy", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60)
    args = parser.parse_args()

    sys.path[:0] = [str(HERE.parents[2] / "platform"), str(HERE.parents[2])]
    from asifdb.db import embedded

    image = sorted((SHARED_DATA / "cifar10" / "test" / "ship").iterdir())[0]
    work = Path(tempfile.mkdtemp(prefix="asifdb-bench-api-"))
    pgdata = work / "pg"
    server_url = embedded.start(pgdata)
    try:
        for spec in args.tree:
            name, _, path = spec.partition("=")
            proc, base, key = _start(Path(path).resolve(), server_url, work, args.pairs)
            try:
                quiet_health = []
                with httpx.Client(base_url=base, timeout=60) as client:
                    for _ in range(40):
                        started = time.monotonic()
                        client.get("/health")
                        quiet_health.append(time.monotonic() - started)
                        time.sleep(0.05)
                print(f"== {name} ({path}), {args.pairs} pairs, {args.heavy} heavy clients")
                print(f"  quiet /health: {_percentiles(quiet_health)}")
                for what, figure in measure(base, key, image, args.heavy, args.duration).items():
                    print(f"  {what}: {figure}")
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    finally:
        embedded.stop(pgdata)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        url, data_dir, port, pairs, key_file = sys.argv[2:]
        serve(url, Path(data_dir), int(port), int(pairs), Path(key_file))
    else:
        main()
