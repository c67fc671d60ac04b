"""pair_fit records the space, k and p each row was scored with

The mismatch list is scored in the encoders' spaces below ALIGN_PAIRS_PER_DIMENSION pairs a
dimension and in the collection's alignment above (services/curation.py); an incremental refresh
after the collection crosses that size would mix rows of both spaces in one list. The columns say
which rows are which (`fit_status` reports them); NULL: scored before this revision.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('pair_fit', sa.Column('aligned', sa.Boolean(), nullable=True))
    op.add_column('pair_fit', sa.Column('k', sa.Integer(), nullable=True))
    op.add_column('pair_fit', sa.Column('p', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('pair_fit', 'p')
    op.drop_column('pair_fit', 'k')
    op.drop_column('pair_fit', 'aligned')
