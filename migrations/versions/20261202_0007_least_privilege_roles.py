"""least-privilege database roles: an owner, the application, the auditors

Every table, view and function moves to `asifdb_owner`; the application role (API, UI,
workers) may change its own tables but only INSERT into and SELECT from `audit_events`; the
auditor role (`asifdb sql`) may only SELECT the documented tables and views. The matrix lives
in `asifdb.db.roles`, which `asifdb db upgrade` applies again after every later migration.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:30:00
"""

from collections.abc import Sequence

from alembic import op

from asifdb.db import roles

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    roles.apply(op.get_bind())


def downgrade() -> None:
    # The roles are the cluster's and other databases may use them: leave them, only stop
    # denying PUBLIC what it had before this revision.
    op.execute("GRANT USAGE, CREATE ON SCHEMA public TO PUBLIC")
