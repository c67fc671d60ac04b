"""Starts and supervises the platform's processes for `asifdb up` (API, worker, UI)."""

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from asifdb.encoders.runtime import runtime_env
from asifdb.settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    name: str
    argv: list[str]
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def services(settings: Settings) -> list[Service]:
    """The processes `asifdb up` runs, in start order."""
    py = sys.executable
    worker = "celery -A workers.app worker --pool solo --loglevel INFO --hostname asifdb-worker@%h"
    api = f"uvicorn asifdb.api.main:app --host {settings.api_host} --port {settings.api_port}"
    ui = (
        f"streamlit run ui/app.py --server.address {settings.api_host} "
        f"--server.port {settings.ui_port} --server.headless true "
        "--browser.gatherUsageStats false"
    )
    return [
        Service("worker", [py, "-m", *worker.split()], env=runtime_env()),
        Service(
            "api",
            [py, "-m", *api.split()],
            f"http://{settings.api_host}:{settings.api_port}",
            env=runtime_env(),
        ),
        Service(
            "ui",
            [py, "-m", *ui.split()],
            f"http://{settings.api_host}:{settings.ui_port}",
            env=runtime_env(),
        ),
    ]


# A worker killed mid-batch loses nothing: acks late, and recovery redoes the batch from the
# job tables.
STOP_GRACE_S = 10.0


def run(services_to_run: list[Service], env: dict[str, str]) -> int:
    """Start every service, wait until one exits or we are told to stop, then stop them all."""
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for service in services_to_run:
            children[service.name] = subprocess.Popen(
                service.argv, env={**os.environ, **env, **service.env}, cwd=ROOT
            )
            log.info("started %s (pid %d)", service.name, children[service.name].pid)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    log.error(
                        "%s exited with code %s; stopping the platform", name, child.returncode
                    )
                    return child.returncode or 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_all(list(children.values()))


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every child, one shared STOP_GRACE_S deadline, then SIGKILL to the rest: the
    platform is down within STOP_GRACE_S of Ctrl-C. A second Ctrl-C kills at once."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    try:
        for child in children:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    for child in children:
        if child.poll() is None:
            log.warning("pid %d did not stop: killed", child.pid)
            child.kill()
            child.wait()
