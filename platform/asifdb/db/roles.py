"""Database roles, least privilege: which role may do what, in one place.

Applied by migrations (revision 0007, and again after every upgrade for objects added later)
and by the embedded server's set-up. Components connect as a role, never as the superuser.
"""

from typing import Literal

from sqlalchemy import Connection, text

OWNER = "asifdb_owner"  # owns the schema; nobody logs in as it, migrations act for it
APP = "asifdb_app"  # API, UI, workers: their own tables; the audit log INSERT and SELECT only
AUDITOR = "asifdb_auditor"  # `asifdb sql`: SELECT on the documented tables and views only

# Which role a component connects as; "setup" is the migration / index-building connection.
Role = Literal["setup", "app", "auditor"]

# The application may add to these and read them, never change or remove a row.
APPEND_ONLY = ("audit_events",)
# The audit chain's head: written only by the audit insert trigger's function, as the owner.
HIDDEN_FROM_APP = ("audit_chain_head",)
# Erasure rewrites these tables (VACUUM FULL: the bytes of removed rows leave the files), so
# the application may maintain them (PostgreSQL 17's MAINTAIN: vacuum, analyze, reindex, lock;
# no change to any row); `erasures` last, for the blob hashes it keeps while resuming.
ERASURE_REWRITES = (
    "pairs",
    "pair_embeddings",
    "pair_fit",
    "near_duplicates",
    "review_marks",
    "job_items",
    "predictions",
)
MAINTAINED = (*ERASURE_REWRITES, "erasures")
# History the application adds to and updates, never removes: who erased what, and the ids.
NEVER_DELETED = ("pair_registry", "erasures")
# Auditors read every table and view of the schema except the keys' hashes.
HIDDEN_FROM_AUDITORS = ("api_keys",)
# Celery's embedded broker keeps its tables here when it shares the application's database.
BROKER_SCHEMA = "broker"
# Server-side large objects are a way to write (and to stash data) that no component needs.
_LARGE_OBJECT_FUNCTIONS = (
    "lo_creat(integer)",
    "lo_create(oid)",
    "lo_from_bytea(oid, bytea)",
    "lo_import(text)",
    "lo_import(text, oid)",
    "lo_export(oid, text)",
    "lo_put(oid, bigint, bytea)",
    "lo_open(oid, integer)",
    "lo_unlink(oid)",
)
# Auditors' queries are bounded even when they forget to be.
AUDITOR_STATEMENT_TIMEOUT = "30s"


def login(role: Role) -> str:
    """The database role a component of `role` logs in as (not for "setup": that is the
    server's superuser or a configured set-up URL)."""
    return {"app": APP, "auditor": AUDITOR}[role]


_ATTRIBUTES = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"


def ensure_roles(conn: Connection) -> None:
    """Create the three roles if they are missing and pin their attributes (no superpowers)."""
    for role, login in ((OWNER, "NOLOGIN"), (APP, "LOGIN"), (AUDITOR, "LOGIN")):
        conn.execute(
            text(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                f"THEN CREATE ROLE {role} {login} {_ATTRIBUTES}; END IF; END $$"
            )
        )
        conn.execute(text(f"ALTER ROLE {role} {login} {_ATTRIBUTES}"))
    # Erasure checkpoints so that its search of the table files sees what the server holds.
    conn.execute(text(f"GRANT pg_checkpoint TO {APP} WITH INHERIT TRUE"))
    conn.execute(
        text(
            f"ALTER ROLE {AUDITOR} SET default_transaction_read_only = on; "
            f"ALTER ROLE {AUDITOR} SET statement_timeout = '{AUDITOR_STATEMENT_TIMEOUT}'"
        )
    )


def set_passwords(conn: Connection, *, app: str | None, auditor: str | None) -> None:
    """Give the login roles passwords (a server that checks them; the embedded one trusts its
    socket, which only this machine reaches)."""
    for role, password in ((APP, app), (AUDITOR, auditor)):
        if password:
            quoted = conn.execute(text("SELECT quote_literal(:p)"), {"p": password}).scalar_one()
            conn.execute(text(f"ALTER ROLE {role} PASSWORD {quoted}"))


def grant_database(conn: Connection) -> None:
    """Who may connect to the current database, and who may create temporary tables there."""
    database = conn.execute(text("SELECT quote_ident(current_database())")).scalar_one()
    conn.execute(text(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC"))
    conn.execute(text(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {APP}"))
    conn.execute(text(f"GRANT CONNECT ON DATABASE {database} TO {AUDITOR}"))


def apply(conn: Connection) -> None:
    """Make the current database's privileges exactly the matrix above (idempotent)."""
    ensure_roles(conn)
    grant_database(conn)
    conn.execute(text(f"GRANT {OWNER} TO current_user"))
    _own_everything(conn)
    conn.execute(text("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
    conn.execute(text(f"GRANT USAGE, CREATE ON SCHEMA public TO {OWNER}"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {APP}, {AUDITOR}"))
    conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, {APP}, {AUDITOR}"))
    conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, {APP}"))
    conn.execute(
        text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP}")
    )
    conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP}"))
    for table in APPEND_ONLY:
        conn.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP}"))
    for table in _existing(conn, HIDDEN_FROM_APP):
        conn.execute(text(f"REVOKE ALL ON {table} FROM {APP}"))
    for table in _existing(conn, NEVER_DELETED):
        conn.execute(text(f"REVOKE DELETE, TRUNCATE ON {table} FROM {APP}"))
    if conn.execute(text("SHOW server_version_num")).scalar_one() >= "170000":
        for table in _existing(conn, MAINTAINED):
            conn.execute(text(f"GRANT MAINTAIN ON {table} TO {APP}"))
    conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {AUDITOR}"))
    for table in HIDDEN_FROM_AUDITORS:
        conn.execute(text(f"REVOKE ALL ON {table} FROM {AUDITOR}"))
    ensure_broker_schema(conn)
    for function in _LARGE_OBJECT_FUNCTIONS:
        conn.execute(text(f"REVOKE EXECUTE ON FUNCTION pg_catalog.{function} FROM PUBLIC"))


def _existing(conn: Connection, tables: tuple[str, ...]) -> list[str]:
    """Those of `tables` the schema has (migration 0007 applies this matrix before later
    revisions add theirs)."""
    exists = text("SELECT to_regclass(:t) IS NOT NULL")
    return [t for t in tables if conn.execute(exists, {"t": f"public.{t}"}).scalar_one()]


def ensure_broker_schema(conn: Connection) -> None:
    """The embedded Celery broker's schema, the application role's, hidden from auditors (the
    broker may be used before any migration, e.g. by a worker started first)."""
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {BROKER_SCHEMA} AUTHORIZATION {APP}"))
    conn.execute(text(f"REVOKE ALL ON SCHEMA {BROKER_SCHEMA} FROM PUBLIC, {AUDITOR}"))


def _own_everything(conn: Connection) -> None:
    """Hand every table, view, sequence and function of ours (not pgvector's) to the owner."""
    rows = conn.execute(
        text(
            """
            SELECT c.relkind::text, quote_ident(c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p')
              AND NOT EXISTS (SELECT FROM pg_depend d
                              WHERE d.objid = c.oid AND d.deptype = 'e')
            UNION ALL
            SELECT 'f', p.oid::regprocedure::text
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public'
              AND NOT EXISTS (SELECT FROM pg_depend d
                              WHERE d.objid = p.oid AND d.deptype = 'e')
            """
        )
    ).all()
    for kind, name in rows:
        statement = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FUNCTION"}.get(kind, "TABLE")
        conn.execute(text(f"ALTER {statement} {name} OWNER TO {OWNER}"))


# Built-in roles that read or write server files, run programs, signal others' backends or
# read every table: an auditor's connection must hold none of them.
_POWERFUL_BUILTINS = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
    "pg_read_all_data",
    "pg_write_all_data",
)


def more_than_auditor(conn: Connection) -> str | None:
    """Why the connection's role may do more than an auditor (None when it may not)."""
    row = conn.execute(
        text(
            """
            SELECT r.rolname, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls,
                   (SELECT string_agg(g.rolname, ', ') FROM pg_roles g
                    WHERE g.rolname = ANY(:powerful) AND pg_has_role(r.oid, g.oid, 'MEMBER'))
            FROM pg_roles r WHERE r.rolname = current_user
            """
        ),
        {"powerful": [OWNER, APP, *_POWERFUL_BUILTINS]},
    ).one()
    user, superpowers, memberships = row
    if superpowers:
        return f"{user!r} is a superuser or may create roles, databases or bypass row security"
    if memberships:
        return f"{user!r} is a member of {memberships}"
    return None
