"""tamper-evident audit log: each audit event carries a SHA-256 hash chained to the previous one

Three columns on `audit_events`: `chain_seq` (1, 2, 3, ... without gaps), `prev_hash` (the
previous event's `hash`; 64 zeros for the first) and `hash`, the hex SHA-256 of
`audit_event_canonical(event)`. A BEFORE INSERT trigger sets all three (and `at`), whatever the
inserter passed, under the row lock of the one-row `audit_chain_head`, which only the trigger's
function (SECURITY DEFINER, owned by `asifdb_owner`) writes. Existing events are chained in id
order. `asifdb audit verify` (asifdb/services/audit_chain.py) recomputes the chain.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written here rather than imported: a revision keeps meaning what it meant when it was written.
_OWNER = "asifdb_owner"
_GENESIS = "0" * 64

# What an event's hash covers: every column but `hash` itself, `at` in UTC to the microsecond,
# as a JSON array (jsonb's text form is canonical: one spelling per value). The verifier reads
# this text from the server and hashes it itself.
_CANONICAL = """
CREATE FUNCTION audit_event_canonical(e public.audit_events) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_array(
        e.chain_seq, e.id, to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        e.actor, e.action, e.target_type, e.target_id, e.reason, e.details, e.model_version,
        e.prev_hash
    )::text
$$
"""
_HASH = """
CREATE FUNCTION audit_event_hash(e public.audit_events) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(sha256(convert_to(public.audit_event_canonical(e), 'UTF8')), 'hex')
$$
"""
# The head row's lock orders concurrent inserts: the chain has one next link at a time.
_LINK = """
CREATE FUNCTION audit_events_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head record;
BEGIN
    SELECT seq, hash INTO STRICT head FROM public.audit_chain_head WHERE id = 1 FOR UPDATE;
    NEW.at := now();
    NEW.chain_seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.hash := public.audit_event_hash(NEW);
    UPDATE public.audit_chain_head SET seq = NEW.chain_seq, hash = NEW.hash WHERE id = 1;
    RETURN NEW;
END $$
"""
# BEFORE triggers fire in name order: this one must be the last to touch the row it hashes.
_TRIGGER = """
CREATE TRIGGER zz_audit_events_chain BEFORE INSERT ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_chain()
"""
_BACKFILL = f"""
DO $$
DECLARE
    e public.audit_events;
    n bigint := 0;
    prev text := '{_GENESIS}';
BEGIN
    FOR e IN SELECT * FROM public.audit_events ORDER BY id LOOP
        n := n + 1;
        e.chain_seq := n;
        e.prev_hash := prev;
        e.hash := public.audit_event_hash(e);
        UPDATE public.audit_events SET chain_seq = e.chain_seq, prev_hash = e.prev_hash,
            hash = e.hash WHERE id = e.id;
        prev := e.hash;
    END LOOP;
    UPDATE public.audit_chain_head SET seq = n, hash = prev WHERE id = 1;
END $$
"""


def upgrade() -> None:
    # No event may be added while the existing ones are chained.
    op.execute("LOCK TABLE audit_events IN EXCLUSIVE MODE")
    op.add_column('audit_events', sa.Column('chain_seq', sa.BigInteger(), nullable=True))
    op.add_column('audit_events', sa.Column('prev_hash', sa.Text(), nullable=True))
    op.add_column('audit_events', sa.Column('hash', sa.Text(), nullable=True))
    op.create_table(
        'audit_chain_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.Text(), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_audit_chain_head_single_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head')),
    )
    op.execute(f"INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, '{_GENESIS}')")
    op.execute(_CANONICAL)
    op.execute(_HASH)
    op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete")
    # Before anything is sealed: a deleted pair's event kept its caption, which an erasure
    # could then never remove from an append-only log. The log keeps ids, never content.
    op.execute(
        "UPDATE audit_events SET details = details - 'caption' "
        "WHERE action = 'pair.delete' AND details ? 'caption'"
    )
    op.execute(_BACKFILL)
    op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete")
    for column in ('chain_seq', 'prev_hash', 'hash'):
        op.alter_column('audit_events', column, nullable=False)
    op.create_unique_constraint(op.f('uq_audit_events_chain_seq'), 'audit_events', ['chain_seq'])
    op.execute(_LINK)
    op.execute(_TRIGGER)
    # Who owns the definer function is who it acts as: the owner role, never the set-up one.
    op.execute(f"ALTER TABLE audit_chain_head OWNER TO {_OWNER}")
    for function in (
        "audit_event_canonical(audit_events)",
        "audit_event_hash(audit_events)",
        "audit_events_chain()",
    ):
        op.execute(f"ALTER FUNCTION {function} OWNER TO {_OWNER}")
    op.execute("REVOKE ALL ON FUNCTION audit_events_chain() FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP TRIGGER zz_audit_events_chain ON audit_events")
    op.execute("DROP FUNCTION audit_events_chain()")
    op.execute("DROP FUNCTION audit_event_hash(audit_events)")
    op.execute("DROP FUNCTION audit_event_canonical(audit_events)")
    op.drop_table('audit_chain_head')
    op.drop_constraint(op.f('uq_audit_events_chain_seq'), 'audit_events', type_='unique')
    op.drop_column('audit_events', 'hash')
    op.drop_column('audit_events', 'prev_hash')
    op.drop_column('audit_events', 'chain_seq')
