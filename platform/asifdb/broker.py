"""Which Celery broker the platform uses: Redis when `REDIS_URL` is set, else PostgreSQL.

The embedded default needs no extra server: kombu's SQLAlchemy transport keeps the queue in
the platform's PostgreSQL, in a schema of its own that the application role owns and auditors
cannot see (durable across restarts). Either way the job tables
are the source of truth; lost messages are re-dispatched from them (see ingest/jobs.py).
"""

from sqlalchemy.engine import make_url

from asifdb.db import roles


def broker_url(*, redis_url: str | None, database_url: str) -> str:
    if redis_url:
        return redis_url
    url = make_url(database_url).update_query_dict(
        {"options": f"-csearch_path={roles.BROKER_SCHEMA}"}
    )
    return "sqla+" + url.render_as_string(hide_password=False)


def describe(url: str) -> str:
    """A broker URL without its password, for status output."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        rest = f"{user}:***@{host}" if ":" in creds else f"{user}@{host}"
    return f"{scheme}://{rest}"
