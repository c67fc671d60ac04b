"""blob references indexed: whether a pair or a prediction still holds a blob is one probe

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 21:20:00

`blob_refs` asks, before it removes a blob, whether any pair still has it as its image
(`pairs.blob_uri`) or any prediction keeps it as its query image (`predictions.input_sha256`).
Without an index each question was a scan of the whole table: an erasure of 10,000 pairs from
100,000 removed 22 blobs a second (7.5 minutes for the blobs alone).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_pairs_blob_uri", "pairs", ["blob_uri"])
    op.create_index("ix_predictions_input_sha256", "predictions", ["input_sha256"])


def downgrade() -> None:
    op.drop_index("ix_predictions_input_sha256", table_name="predictions")
    op.drop_index("ix_pairs_blob_uri", table_name="pairs")
