"""bounded batch retries: a batch records its last error and may end failed; a job may end partial

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('queued', 'running', 'done', 'failed', 'cancelled')"
_NEW = "status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'partial')"


def upgrade() -> None:
    op.add_column(
        'job_batches', sa.Column('failed', sa.Boolean(), server_default='false', nullable=False)
    )
    op.add_column('job_batches', sa.Column('error', sa.Text(), nullable=True))
    op.drop_constraint(op.f('ck_jobs_status'), 'jobs', type_='check')
    op.create_check_constraint(op.f('ck_jobs_status'), 'jobs', _NEW)


def downgrade() -> None:
    op.execute("UPDATE jobs SET status = 'failed' WHERE status = 'partial'")
    op.drop_constraint(op.f('ck_jobs_status'), 'jobs', type_='check')
    op.create_check_constraint(op.f('ck_jobs_status'), 'jobs', _OLD)
    op.drop_column('job_batches', 'error')
    op.drop_column('job_batches', 'failed')
