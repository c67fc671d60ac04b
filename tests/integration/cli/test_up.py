"""`asifdb up` on the embedded defaults: it starts, /health reports every part, data persists."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from asifdb.db import embedded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "API_PORT": str(port), "DATABASE_URL": ""}
    env.pop("REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "asifdb.cli", "up"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError("the platform did not become healthy in time")


def _stop(proc: subprocess.Popen[str]) -> str:
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    stopped_in = time.monotonic() - started
    assert proc.returncode == 0, out
    # Ctrl-C stops every child (worker, API, UI) and the embedded server within 15 s.
    assert stopped_in < 15, f"asifdb up took {stopped_in:.1f} s to stop"
    return out


def _sql(data_dir: Path, query: str) -> str:
    return _cli(data_dir, "sql", query, "--json")


def _cli(data_dir: Path, *args: str) -> str:
    env = {**os.environ, "DATA_DIR": str(data_dir), "DATABASE_URL": ""}
    out = subprocess.run(
        [sys.executable, "-m", "asifdb.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def own_folder() -> Iterator[Path]:
    """A folder outside pytest's base: pytest re-tightens that base to 0700 when any session
    starts, which would lock the embedded server's OS user (when root) out of its data."""
    folder = Path(tempfile.mkdtemp(prefix="asifdb-test-data-up-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_up_starts_everything_and_a_restart_keeps_the_data(own_folder: Path) -> None:
    data_dir = own_folder / "asifdb"
    port = _free_port()
    proc = _start(data_dir, port)
    try:
        assert _wait_healthy(port, proc) == {"ok": True}  # nothing more without a key
        health = json.loads(_cli(data_dir, "status", "--json"))
    finally:
        _stop(proc)
    assert health["ok"] is True
    assert health["database"]["pgvector"].startswith("0.8")
    assert health["migrations"]["current"] == health["migrations"]["head"]
    assert health["broker"] == {"ok": True, "kind": "postgresql", "url": health["broker"]["url"]}

    # Data written between runs survives a restart of the embedded server.
    url = embedded.start(data_dir / "pg")
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("INSERT INTO licenses (name) VALUES ('kept-across-restarts')")
    embedded.stop(data_dir / "pg")

    proc = _start(data_dir, port)
    try:
        _wait_healthy(port, proc)
        assert "kept-across-restarts" in _sql(data_dir, "SELECT name FROM licenses")
    finally:
        _stop(proc)
    assert embedded.running_url(data_dir / "pg") is None, "up must stop the server it started"
