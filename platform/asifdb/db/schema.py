"""Schema state through Alembic: upgrade to head, and say whether a database is at the head."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from asifdb.db import roles
from asifdb.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def alembic_config(url: str) -> Config:
    """The project's alembic.ini, pointed at `url`."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision(url: str) -> str:
    heads = ScriptDirectory.from_config(alembic_config(url)).get_heads()
    if len(heads) != 1:
        raise ConfigError(f"migrations have {len(heads)} heads ({heads}): merge them")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(
    engine: Engine, *, app_password: str | None = None, auditor_password: str | None = None
) -> str:
    """Apply every pending migration, then the role matrix (also to objects added since);
    return the new revision. `engine` connects as the set-up role (owner or superuser)."""
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        _require_setup_role(conn)
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        roles.apply(conn)
        roles.set_passwords(conn, app=app_password, auditor=auditor_password)
    return head_revision(url)


def _require_setup_role(conn: Connection) -> None:
    can = conn.execute(
        text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).scalar_one()
    if not can:
        user = conn.execute(text("SELECT current_user")).scalar_one()
        raise ConfigError(
            f"migrations need the database's set-up role (a superuser, or a role with "
            f"CREATEROLE), not {user!r}: run `asifdb db upgrade` with ADMIN_DATABASE_URL set to "
            "such a role's URL (the components then connect as asifdb_app / asifdb_auditor)"
        )


def require_head(engine: Engine) -> str:
    """Raise ConfigError naming the fix unless the schema is at the single head."""
    head = head_revision(engine.url.render_as_string(hide_password=False))
    current = current_revision(engine)
    if current != head:
        state = "empty" if current is None else f"at {current}"
        raise ConfigError(
            f"the database schema is {state}, not at head {head}: run `asifdb db upgrade`"
        )
    return head
