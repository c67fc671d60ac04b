"""A real HTTP server (uvicorn on a free port) serving the app on a fresh database."""

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from asifdb.api.main import create_app
from asifdb.context import Platform
from asifdb.services import keys
from asifdb.services.model import Encoders
from asifdb.settings import Settings


@dataclass
class Api:
    url: str
    platform: Platform
    keys: dict[str, str]

    def client(self, role: str | None) -> httpx.Client:
        headers = {"X-API-Key": self.keys[role]} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api_settings() -> dict[str, object]:
    """Settings a test module sets for its server (override this fixture): e.g. its limits."""
    return {}


@pytest.fixture
def api(
    db_url: str, tmp_path: Path, encoders: Encoders, api_settings: dict[str, object]
) -> Iterator[Api]:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", **api_settings)
    app = create_app(settings)
    platform: Platform = app.state.platform
    platform.__dict__["encoders"] = encoders  # the run's loaded encoders, not a fresh load
    with platform.sessions.begin() as session:
        role_keys = {
            role: keys.create(session, name=f"{role}-key", role=role, actor="test")
            for role in ("app", "annotator", "steward", "auditor", "admin")
        }
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield Api(f"http://127.0.0.1:{port}", platform, role_keys)
    server.should_exit = True
    thread.join(timeout=30)
