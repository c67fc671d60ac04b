"""Platform health: database, pgvector, migrations, broker and model, for status and /health."""

from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from asifdb.anchors import ann_index
from asifdb.broker import describe
from asifdb.db import schema
from asifdb.errors import AsifdbError
from asifdb.schemas.health import BrokerState, DatabaseState, Health, MigrationsState, ModelState


def _database(engine: Engine) -> DatabaseState:
    with engine.connect() as conn:
        server = conn.execute(text("SHOW server_version")).scalar_one()
        vector = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
    return DatabaseState(
        ok=True,
        url=engine.url.render_as_string(hide_password=True),
        server_version=server,
        pgvector=vector,
    )


# The migration scripts a process ships with, and its broker connections, do not change while
# it runs: read and opened once, so /health stays a few milliseconds under load.
_head_revision = lru_cache(maxsize=8)(schema.head_revision)


@lru_cache(maxsize=8)
def _broker_probe(url: str) -> Any:
    if url.startswith(("redis://", "rediss://")):
        import redis

        return redis.Redis.from_url(url, socket_connect_timeout=2)
    return create_engine(url.removeprefix("sqla+"), pool_pre_ping=True)


def _migrations(engine: Engine) -> MigrationsState:
    head = _head_revision(engine.url.render_as_string(hide_password=False))
    current = schema.current_revision(engine)
    ok = current == head
    fix = None if ok else "run `asifdb db upgrade`"
    return MigrationsState(ok=ok, current=current, head=head, fix=fix)


def _broker(url: str) -> BrokerState:
    kind = "redis" if url.startswith(("redis://", "rediss://")) else "postgresql"
    try:
        probe = _broker_probe(url)
        if kind == "redis":
            probe.ping()
        else:
            with probe.connect() as conn:
                conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the broker is reported, not raised
        return BrokerState(ok=False, kind=kind, url=describe(url), error=str(exc)[:300])
    return BrokerState(ok=True, kind=kind, url=describe(url))


def _model(engine: Engine) -> ModelState:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT version, image_encoder, text_encoder FROM model_state WHERE id = 1")
        ).first()
        usable = conn.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
        ann = ann_index.status(conn).state
    if row is None:
        return ModelState(
            version=None, usable_pairs=0, image_encoder=None, text_encoder=None, ann_index=ann
        )
    return ModelState(
        version=row.version,
        image_encoder=row.image_encoder,
        text_encoder=row.text_encoder,
        usable_pairs=usable,
        ann_index=ann,
    )


def platform_status(*, engine: Engine, broker_url: str) -> Health:
    """Each part's state; `ok` is true only if the database, schema and broker all are."""
    try:
        database = _database(engine)
    except (SQLAlchemyError, AsifdbError) as exc:
        return Health(ok=False, database=DatabaseState(ok=False, error=str(exc).splitlines()[0]))
    migrations = _migrations(engine)
    broker = _broker(broker_url)
    ok = database.ok and migrations.ok and broker.ok
    if not migrations.ok:
        return Health(ok=ok, database=database, migrations=migrations, broker=broker)
    return Health(
        ok=ok, database=database, migrations=migrations, broker=broker, model=_model(engine)
    )
