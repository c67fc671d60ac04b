"""drop the caption HNSW index: no query reads it, and every ingested pair paid to maintain it

The approximate top-k runs on the image side only (`services.classify`, `auto` above 1M
pairs); caption neighbours are always exact (cached per label set in the live model).
Maintaining the caption index cost about 30 % of a batch's database time (measured: 5,120
pairs inserted in 26.9 s with both HNSW indexes, 19.0 s with the image one only).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 09:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index('ix_pairs_text_embedding_hnsw', table_name='pairs', postgresql_using='hnsw', postgresql_with={'m': 16, 'ef_construction': 64}, postgresql_ops={'text_embedding': 'halfvec_cosine_ops'})


def downgrade() -> None:
    op.create_index('ix_pairs_text_embedding_hnsw', 'pairs', ['text_embedding'], unique=False, postgresql_using='hnsw', postgresql_with={'m': 16, 'ef_construction': 64}, postgresql_ops={'text_embedding': 'halfvec_cosine_ops'})
