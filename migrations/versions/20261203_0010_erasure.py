"""erasure: a licence's pairs physically removed, each pair's id kept in a registry as history

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:30:00

Every pair id ever used lives in `pair_registry` (id, licence, erased at); history that
names a pair (prediction evidence, usability intervals, job items) references the registry,
so a pair's row can go while its history stays. The database itself keeps the rules: a pair's
row is deleted only when its licence is erased and its registry row says so; a licence is
erased only from revoked, and never comes back; no pair is added under an erased licence.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES_OLD = "status IN ('active', 'revoked')"
_STATUSES_NEW = "status IN ('active', 'revoked', 'erased')"
# (table, old FK name): history that names a pair, re-pointed at the registry.
_HISTORY = (
    ("prediction_evidence", "fk_prediction_evidence_pair_id_pairs"),
    ("pair_usability", "fk_pair_usability_pair_id_pairs"),
    ("job_items", "fk_job_items_pair_id_pairs"),
)

_PROVENANCE = """
    CREATE OR REPLACE VIEW prediction_provenance AS
    SELECT pr.id AS prediction_id,
           pr.created_at,
           pr.task,
           pr.channel,
           pr.client,
           pr.predicted_label,
           pr.score AS prediction_score,
           pr.model_version,
           pr.k,
           pr.p,
           e.rank,
           e.label AS evidence_label,
           e.image_similarity,
           e.caption_similarity,
           e.contribution,
           e.contribution / NULLIF(pr.score, 0) AS share_of_score,
           r.id AS pair_id,
           p.caption,
           p.collection,
           p.source_uri,
           p.deleted_at IS NOT NULL OR r.erased_at IS NOT NULL AS pair_deleted,
           l.id AS license_id,
           l.name AS license_name,
           l.status AS license_status,
           r.erased_at AS pair_erased_at
    FROM predictions pr
    JOIN prediction_evidence e ON e.prediction_id = pr.id
    JOIN pair_registry r ON r.id = e.pair_id
    LEFT JOIN pairs p ON p.id = e.pair_id
    JOIN licenses l ON l.id = r.license_id
"""

_PROVENANCE_OLD = """
    CREATE OR REPLACE VIEW prediction_provenance AS
    SELECT pr.id AS prediction_id,
           pr.created_at,
           pr.task,
           pr.channel,
           pr.client,
           pr.predicted_label,
           pr.score AS prediction_score,
           pr.model_version,
           pr.k,
           pr.p,
           e.rank,
           e.label AS evidence_label,
           e.image_similarity,
           e.caption_similarity,
           e.contribution,
           e.contribution / NULLIF(pr.score, 0) AS share_of_score,
           p.id AS pair_id,
           p.caption,
           p.collection,
           p.source_uri,
           p.deleted_at IS NOT NULL AS pair_deleted,
           l.id AS license_id,
           l.name AS license_name,
           l.status AS license_status
    FROM predictions pr
    JOIN prediction_evidence e ON e.prediction_id = pr.id
    JOIN pairs p ON p.id = e.pair_id
    JOIN licenses l ON l.id = p.license_id
"""

_RULES = [
    # Every new pair gets its registry row (one statement per insert, not per row).
    """
    CREATE FUNCTION pairs_register() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT FROM added a JOIN licenses l ON l.id = a.license_id
                   WHERE l.status = 'erased') THEN
            RAISE EXCEPTION 'no pair may be added under an erased licence';
        END IF;
        INSERT INTO pair_registry (id, license_id) SELECT id, license_id FROM added;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER pairs_register AFTER INSERT ON pairs
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION pairs_register()
    """,
    # A pair's row goes only by erasure: its licence erased, its registry row marked.
    """
    CREATE FUNCTION pairs_delete_only_erased() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT FROM gone g
                   JOIN pair_registry r ON r.id = g.id
                   JOIN licenses l ON l.id = g.license_id
                   WHERE r.erased_at IS NULL OR l.status <> 'erased') THEN
            RAISE EXCEPTION 'a pair is removed only by erasing its licence '
                            '(asifdb licenses erase); to take it out of the model, delete it';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER pairs_delete_only_erased AFTER DELETE ON pairs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION pairs_delete_only_erased()
    """,
    # Erased only from revoked; erased for good.
    """
    CREATE FUNCTION licenses_erasure_final() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.status = 'erased' AND NEW.status <> 'erased' THEN
            RAISE EXCEPTION 'licence % is erased: erasure cannot be undone', OLD.name;
        END IF;
        IF NEW.status = 'erased' AND OLD.status NOT IN ('revoked', 'erased') THEN
            RAISE EXCEPTION 'licence % must be revoked before it is erased', OLD.name;
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER licenses_erasure_final BEFORE UPDATE OF status ON licenses
    FOR EACH ROW EXECUTE FUNCTION licenses_erasure_final()
    """,
]

_RULES_DOWN = [
    "DROP TRIGGER IF EXISTS licenses_erasure_final ON licenses",
    "DROP FUNCTION IF EXISTS licenses_erasure_final()",
    "DROP TRIGGER IF EXISTS pairs_delete_only_erased ON pairs",
    "DROP FUNCTION IF EXISTS pairs_delete_only_erased()",
    "DROP TRIGGER IF EXISTS pairs_register ON pairs",
    "DROP FUNCTION IF EXISTS pairs_register()",
]


def upgrade() -> None:
    op.drop_constraint(op.f("ck_licenses_status"), "licenses", type_="check")
    op.create_check_constraint(op.f("ck_licenses_status"), "licenses", _STATUSES_NEW)
    op.create_table(
        "erasures",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("license_id", sa.Integer(), nullable=False),
        sa.Column("license_name", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("erased_by", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="scrubbing", nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "removed",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint("status IN ('scrubbing', 'complete')", name=op.f("ck_erasures_status")),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_erasures_license_id_licenses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
        sa.UniqueConstraint("license_id", name=op.f("uq_erasures_license_id")),
    )
    op.create_table(
        "pair_registry",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("license_id", sa.Integer(), nullable=False),
        sa.Column("erasure_id", sa.BigInteger(), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["erasure_id"], ["erasures.id"], name=op.f("fk_pair_registry_erasure_id_erasures")
        ),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_pair_registry_license_id_licenses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pair_registry")),
    )
    op.create_index("ix_pair_registry_license_id", "pair_registry", ["license_id"], unique=False)
    op.execute("INSERT INTO pair_registry (id, license_id) SELECT id, license_id FROM pairs")
    for table, old in _HISTORY:
        op.drop_constraint(old, table, type_="foreignkey")
        op.create_foreign_key(
            op.f(f"fk_{table}_pair_id_pair_registry"), table, "pair_registry", ["pair_id"], ["id"]
        )
    op.create_foreign_key(
        op.f("fk_pairs_id_pair_registry"),
        "pairs",
        "pair_registry",
        ["id"],
        ["id"],
        deferrable=True,
        initially="DEFERRED",
    )
    for statement in _RULES:
        op.execute(statement)
    op.execute(_PROVENANCE)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS licence_influence")
    op.execute("DROP VIEW IF EXISTS prediction_provenance")
    op.execute(_PROVENANCE_OLD)
    op.execute(
        """
        CREATE VIEW licence_influence AS
        SELECT license_id, license_name, prediction_id, predicted_label,
               count(*) AS evidence_pairs,
               sum(contribution) AS contribution,
               sum(contribution) / NULLIF(max(prediction_score), 0) AS share_of_score
        FROM prediction_provenance
        GROUP BY license_id, license_name, prediction_id, predicted_label
        """
    )
    for statement in _RULES_DOWN:
        op.execute(statement)
    op.drop_constraint(op.f("fk_pairs_id_pair_registry"), "pairs", type_="foreignkey")
    # History of erased pairs cannot point at rows that are gone: it goes with them.
    for table, _ in _HISTORY:
        op.execute(f"DELETE FROM {table} WHERE pair_id NOT IN (SELECT id FROM pairs)")
    for table, old in _HISTORY:
        op.drop_constraint(op.f(f"fk_{table}_pair_id_pair_registry"), table, type_="foreignkey")
        op.create_foreign_key(old, table, "pairs", ["pair_id"], ["id"])
    op.drop_index("ix_pair_registry_license_id", table_name="pair_registry")
    op.drop_table("pair_registry")
    op.drop_table("erasures")
    op.execute("UPDATE licenses SET status = 'revoked' WHERE status = 'erased'")
    op.drop_constraint(op.f("ck_licenses_status"), "licenses", type_="check")
    op.create_check_constraint(op.f("ck_licenses_status"), "licenses", _STATUSES_OLD)
