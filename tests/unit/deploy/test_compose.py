"""docker-compose.yml is consistent with the code: images, commands, env wiring, GPU, order.

Docker does not run here, so this test reads the file and checks what each service would run
against the repository and the installed package.
"""

import importlib
import re
from pathlib import Path

import pytest
import yaml

from asifdb.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_services_and_images() -> None:
    assert set(SERVICES) == {"postgres", "redis", "migrate", "api", "worker", "ui"}
    assert SERVICES["postgres"]["image"].startswith("pgvector/pgvector:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    built = {name for name, s in SERVICES.items() if s.get("image", "").startswith("asifdb")}
    assert built == {"migrate", "api", "worker", "ui"}
    assert (ROOT / "Dockerfile").is_file()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_every_command_exists_in_the_code(
    db_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # The Celery app resolves its broker from the database at import: point it at a test one.
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    api = SERVICES["api"]["command"]
    module, _, attr = api[api.index("uvicorn") + 1].partition(":")
    assert hasattr(importlib.import_module(module), attr)

    worker = SERVICES["worker"]["command"]
    celery_app = importlib.import_module(worker[worker.index("-A") + 1]).app
    celery_app.loader.import_default_modules()
    assert "asifdb.ingest_batch" in celery_app.tasks

    ui = SERVICES["ui"]["command"]
    assert (ROOT / ui[ui.index("run") + 1]).is_file()

    from asifdb.cli import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    groups = {g.name for g in app.registered_groups}
    assert SERVICES["migrate"]["command"][:3] == ["asifdb", "db", "upgrade"]
    assert "db" in groups and {"up", "status", "sql"} <= names


def test_env_wiring_matches_settings() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in ("migrate", "api", "worker", "ui"):
        env = SERVICES[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert re.search(r"@postgres:5432/", env["DATABASE_URL"])
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        unknown = {k for k in env if k not in fields} - {"HF_HUB_OFFLINE"}
        assert not unknown, f"{name} sets variables the code does not read: {unknown}"
    pg_env = SERVICES["postgres"]["environment"]
    required = re.compile(r"\$\{[A-Z_]+:\?[^}]+\}")
    # Passwords are required secrets, never defaults written in the file.
    assert required.fullmatch(pg_env["POSTGRES_PASSWORD"])
    migrate = SERVICES["migrate"]["environment"]
    assert migrate["ADMIN_DATABASE_URL"].startswith(
        f"postgresql+psycopg://{pg_env['POSTGRES_USER']}:"
    )
    for secret in ("APP_DB_PASSWORD", "AUDITOR_DB_PASSWORD"):
        assert required.fullmatch(migrate[secret]), secret
    for name in ("api", "worker", "ui"):
        env = SERVICES[name]["environment"]
        # The components connect as the application role and never see the set-up password.
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://asifdb_app:${APP_DB_PASSWORD:?")
        assert "POSTGRES_PASSWORD" not in str(env) and "ADMIN_DATABASE_URL" not in env
    assert "asifdb:asifdb" not in (ROOT / "docker-compose.yml").read_text()


def test_order_health_gpu_and_volumes() -> None:
    for name in ("postgres", "redis", "api", "worker", "ui"):
        assert "healthcheck" in SERVICES[name], name
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    devices = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    named = set(COMPOSE["volumes"])
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in named
