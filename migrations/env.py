"""Alembic environment: runs migrations on a given connection or on the configured database."""

from alembic import context
from sqlalchemy import Connection

from asifdb.anchors.ann_index import INDEX_NAME
from asifdb.db.models import Base
from asifdb.db.session import database_url, make_engine
from asifdb.settings import get_settings

config = context.config
target_metadata = Base.metadata

# Tables and views created in SQL by migrations, not by models.
_SQL_OBJECTS = {"usable_pairs", "prediction_provenance", "licence_influence"}


def _include_object(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001
    # kombu_* are the embedded Celery broker's tables (schema `broker`, created by 0007); the image
    # HNSW index is built and dropped on demand (`asifdb ann`), not by migrations.
    if name in _SQL_OBJECTS or name == INDEX_NAME:
        return False
    return not (name or "").startswith("kombu_")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or database_url(get_settings(), role="setup")
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


main()
