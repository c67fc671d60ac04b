"""the image HNSW index is built on demand (`asifdb ann build`), not kept by the schema

`auto` serves collections up to 1M pairs with the exact scan (faster, full agreement), so the
index was maintained for nothing there, at about 2.4 ms an ingested pair (docs/benchmarks-ingest.md).
A database whose collection needs it builds it with `asifdb ann build`; alembic ignores it
(migrations/env.py), whether present or not.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_pairs_image_embedding_hnsw")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_pairs_image_embedding_hnsw ON pairs "
        "USING hnsw (image_embedding halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
