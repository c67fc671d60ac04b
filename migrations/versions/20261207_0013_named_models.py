"""named models beside the default one: `models`, `model_usable_pairs`, predictions record theirs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 16:00:00

A model is two encoders, k, p and which pairs (all, or one collection). The default model is
what it was (`model_state`'s encoders, read through `usable_pairs`), with k and p of its own
once a named model is made the default (`model_state.k`, `p`; NULL: the settings');
`models` holds the others, each built by a re-encode job (`reencodes.model`) that writes its
encoders' embeddings beside the default's, then `ready`. `model_usable_pairs` is the one
definition of a usable pair of a named model: the default's rule (ready, not deleted, licence
active) plus its two encoders' embeddings and its collection; so a revocation or deletion leaves
every model at once. A named model's definition never changes (a trigger refuses it): a
prediction's model name always means the same encoders, k, p and pairs (nor is a model deleted,
so a name is never reused). Every earlier
prediction ran on the default model.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VIEW = """
CREATE VIEW model_usable_pairs AS
SELECT md.name AS model, p.*, ie.embedding AS image_embedding, te.embedding AS text_embedding,
       md.image_encoder, md.text_encoder
FROM models md
JOIN pairs p ON md.collection IS NULL OR p.collection = md.collection
JOIN licenses l ON l.id = p.license_id
JOIN pair_embeddings ie ON ie.pair_id = p.id AND ie.encoder = md.image_encoder
JOIN pair_embeddings te ON te.pair_id = p.id AND te.encoder = md.text_encoder
WHERE p.status = 'ready'
  AND p.deleted_at IS NULL
  AND l.status = 'active'
"""

_FIXED = """
CREATE FUNCTION models_definition_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'model %: a model is never deleted (its name keeps its meaning)',
            OLD.name USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.name, NEW.image_encoder, NEW.text_encoder, NEW.k, NEW.p, NEW.collection)
       IS DISTINCT FROM
       (OLD.name, OLD.image_encoder, OLD.text_encoder, OLD.k, OLD.p, OLD.collection) THEN
        RAISE EXCEPTION 'model %: a model''s definition never changes (add another model)',
            OLD.name USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER models_definition_fixed BEFORE UPDATE OR DELETE ON models
FOR EACH ROW EXECUTE FUNCTION models_definition_fixed();
"""


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("image_encoder", sa.Text(), nullable=False),
        sa.Column("text_encoder", sa.Text(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("p", sa.Float(), nullable=False),
        sa.Column("collection", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="building", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('building', 'ready', 'failed')", name=op.f("ck_models_status")
        ),
        sa.CheckConstraint(
            "name ~ '^[a-z0-9][a-z0-9._-]{0,62}$' AND name <> 'default'",
            name=op.f("ck_models_name"),
        ),
        sa.CheckConstraint("k BETWEEN 1 AND 10000", name=op.f("ck_models_k")),
        sa.CheckConstraint("p >= 1 AND p <= 64", name=op.f("ck_models_p")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_models")),
    )
    op.add_column("reencodes", sa.Column("model", sa.Text(), nullable=True))
    op.add_column(
        "reencodes",
        sa.Column("make_default", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("model_state", sa.Column("k", sa.Integer(), nullable=True))
    op.add_column("model_state", sa.Column("p", sa.Float(), nullable=True))
    op.create_foreign_key(
        op.f("fk_reencodes_model_models"), "reencodes", "models", ["model"], ["name"]
    )
    op.add_column(
        "predictions",
        sa.Column("model", sa.Text(), server_default="default", nullable=False),
    )
    op.execute(_VIEW)
    op.execute(_FIXED)


def downgrade() -> None:
    op.execute("DROP TRIGGER models_definition_fixed ON models")
    op.execute("DROP FUNCTION models_definition_fixed()")
    op.execute("DROP VIEW model_usable_pairs")
    op.drop_column("predictions", "model")
    op.drop_constraint(op.f("fk_reencodes_model_models"), "reencodes", type_="foreignkey")
    op.drop_column("reencodes", "model")
    op.drop_column("reencodes", "make_default")
    op.drop_column("model_state", "k")
    op.drop_column("model_state", "p")
    op.drop_table("models")
