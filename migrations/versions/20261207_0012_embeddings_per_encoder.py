"""embeddings per encoder, of any width: `encoders` and `pair_embeddings` replace the fixed columns

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:20:00

`pairs.image_embedding halfvec(1280)` / `text_embedding halfvec(384)` held one encoder's
embeddings of one width, so no encoder of another width could ever be used and a re-encode kept
its new embeddings aside in `reencode_embeddings` until the switch. Now every embedding is a row
of `pair_embeddings` (pair, encoder, width, vector of that width), so one collection holds the
embeddings of several encoders at once; `encoders` records each encoder's modality and width,
and the database refuses an embedding whose width is not its encoder's (a composite foreign key
to `encoders (name, dim)` plus `vector_dims(embedding) = dim`).

`usable_pairs` keeps its columns: a usable pair now also needs an embedding by each of the
model's encoders, and the view shows those two as `image_embedding` / `text_embedding` (with
the model's encoders as `image_encoder` / `text_encoder`). Every pair keeps its embeddings, a
re-encode's staged ones included. The on-demand HNSW index was on the dropped column: rebuild
it with `asifdb ann build` (it is now a partial index per image encoder).
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VIEW = """
CREATE VIEW usable_pairs AS
SELECT p.*, ie.embedding AS image_embedding, te.embedding AS text_embedding,
       m.image_encoder, m.text_encoder
FROM pairs p
JOIN licenses l ON l.id = p.license_id
JOIN model_state m ON m.id = 1
JOIN pair_embeddings ie ON ie.pair_id = p.id AND ie.encoder = m.image_encoder
JOIN pair_embeddings te ON te.pair_id = p.id AND te.encoder = m.text_encoder
WHERE p.status = 'ready'
  AND p.deleted_at IS NULL
  AND l.status = 'active'
"""

_OLD_VIEW = """
CREATE VIEW usable_pairs AS
SELECT p.*
FROM pairs p
JOIN licenses l ON l.id = p.license_id
JOIN model_state m ON m.id = 1
WHERE p.status = 'ready'
  AND p.deleted_at IS NULL
  AND l.status = 'active'
  AND p.image_encoder = m.image_encoder
  AND p.text_encoder = m.text_encoder
"""


def upgrade() -> None:
    op.create_table(
        "encoders",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("modality", sa.String(length=8), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("modality IN ('image', 'text')", name=op.f("ck_encoders_modality")),
        sa.CheckConstraint("dim BETWEEN 1 AND 16000", name=op.f("ck_encoders_width")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_encoders")),
        sa.UniqueConstraint("name", "dim", name=op.f("uq_encoders_name_dim")),
    )
    op.create_table(
        "pair_embeddings",
        sa.Column("pair_id", sa.BigInteger(), nullable=False),
        sa.Column("encoder", sa.Text(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.HALFVEC(), nullable=False),
        sa.CheckConstraint("vector_dims(embedding) = dim", name=op.f("ck_pair_embeddings_width")),
        sa.ForeignKeyConstraint(
            ["pair_id"],
            ["pairs.id"],
            name=op.f("fk_pair_embeddings_pair_id_pairs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["encoder", "dim"],
            ["encoders.name", "encoders.dim"],
            name=op.f("fk_pair_embeddings_encoder_encoders"),
        ),
        sa.PrimaryKeyConstraint("pair_id", "encoder", name=op.f("pk_pair_embeddings")),
    )
    op.create_index("ix_pair_embeddings_encoder", "pair_embeddings", ["encoder", "pair_id"])
    op.execute(
        """
        INSERT INTO encoders (name, modality, dim)
        SELECT DISTINCT image_encoder, 'image', 1280 FROM pairs WHERE image_encoder IS NOT NULL
        UNION SELECT DISTINCT text_encoder, 'text', 384 FROM pairs WHERE text_encoder IS NOT NULL
        UNION SELECT DISTINCT r.image_encoder, 'image', 1280 FROM reencodes r
              WHERE EXISTS (SELECT FROM reencode_embeddings e WHERE e.reencode_id = r.id)
        UNION SELECT DISTINCT r.text_encoder, 'text', 384 FROM reencodes r
              WHERE EXISTS (SELECT FROM reencode_embeddings e WHERE e.reencode_id = r.id)
        ON CONFLICT DO NOTHING
        """
    )
    op.execute(
        """
        INSERT INTO pair_embeddings (pair_id, encoder, dim, embedding)
        SELECT id, image_encoder, 1280, image_embedding FROM pairs
        WHERE image_embedding IS NOT NULL AND image_encoder IS NOT NULL
        UNION ALL
        SELECT id, text_encoder, 384, text_embedding FROM pairs
        WHERE text_embedding IS NOT NULL AND text_encoder IS NOT NULL
        """
    )
    op.execute(
        """
        INSERT INTO pair_embeddings (pair_id, encoder, dim, embedding)
        SELECT e.pair_id, r.image_encoder, 1280, e.image_embedding
        FROM reencode_embeddings e JOIN reencodes r ON r.id = e.reencode_id
        UNION ALL
        SELECT e.pair_id, r.text_encoder, 384, e.text_embedding
        FROM reencode_embeddings e JOIN reencodes r ON r.id = e.reencode_id
        ON CONFLICT DO NOTHING
        """
    )
    op.execute("DROP VIEW usable_pairs")
    op.execute("DROP INDEX IF EXISTS ix_pairs_image_embedding_hnsw")
    for column in ("image_embedding", "text_embedding", "image_encoder", "text_encoder"):
        op.drop_column("pairs", column)
    op.drop_table("reencode_embeddings")
    op.execute(_VIEW)


def downgrade() -> None:
    """Back to the fixed columns: each pair keeps the embeddings of the model's encoders (which
    must be 1280-d and 384-d); embeddings by other encoders are lost."""
    op.execute("DROP VIEW usable_pairs")
    op.add_column("pairs", sa.Column("image_embedding", pgvector.sqlalchemy.HALFVEC(dim=1280)))
    op.add_column("pairs", sa.Column("text_embedding", pgvector.sqlalchemy.HALFVEC(dim=384)))
    op.add_column("pairs", sa.Column("image_encoder", sa.Text()))
    op.add_column("pairs", sa.Column("text_encoder", sa.Text()))
    op.execute(
        """
        UPDATE pairs p SET image_embedding = ie.embedding::halfvec(1280),
                           text_embedding = te.embedding::halfvec(384),
                           image_encoder = m.image_encoder, text_encoder = m.text_encoder
        FROM model_state m, pair_embeddings ie, pair_embeddings te
        WHERE m.id = 1 AND ie.pair_id = p.id AND ie.encoder = m.image_encoder
          AND te.pair_id = p.id AND te.encoder = m.text_encoder
          AND ie.dim = 1280 AND te.dim = 384
        """
    )
    op.create_table(
        "reencode_embeddings",
        sa.Column("reencode_id", sa.BigInteger(), nullable=False),
        sa.Column("pair_id", sa.BigInteger(), nullable=False),
        sa.Column("image_embedding", pgvector.sqlalchemy.HALFVEC(dim=1280), nullable=False),
        sa.Column("text_embedding", pgvector.sqlalchemy.HALFVEC(dim=384), nullable=False),
        sa.ForeignKeyConstraint(
            ["pair_id"],
            ["pairs.id"],
            name=op.f("fk_reencode_embeddings_pair_id_pairs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reencode_id"],
            ["reencodes.id"],
            name=op.f("fk_reencode_embeddings_reencode_id_reencodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("reencode_id", "pair_id", name=op.f("pk_reencode_embeddings")),
    )
    op.drop_index("ix_pair_embeddings_encoder", table_name="pair_embeddings")
    op.drop_table("pair_embeddings")
    op.drop_table("encoders")
    op.execute(_OLD_VIEW)
