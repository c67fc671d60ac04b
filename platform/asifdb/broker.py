"""Which Celery broker the platform uses: Redis when `REDIS_URL` is set, else PostgreSQL.

The embedded default needs no extra server: kombu's SQLAlchemy transport keeps the queue in
a database of the embedded PostgreSQL (durable across restarts). Either way the job tables
are the source of truth; lost messages are re-dispatched from them (see ingest/jobs.py).
"""

from sqlalchemy.engine import make_url

from asifdb.db import embedded


def broker_url(*, redis_url: str | None, database_url: str) -> str:
    if redis_url:
        return redis_url
    url = make_url(database_url)
    if url.database == embedded.DATABASE and url.query.get("host"):
        url = url.set(database=embedded.BROKER_DATABASE)
    return "sqla+" + url.render_as_string(hide_password=False)


def describe(url: str) -> str:
    """A broker URL without its password, for status output."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        rest = f"{user}:***@{host}" if ":" in creds else f"{user}@{host}"
    return f"{scheme}://{rest}"
