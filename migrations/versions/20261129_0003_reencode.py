"""reencode: switching encoders by re-embedding every pair; per-stage seconds of worker batches

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 02:10:00
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('job_batches', sa.Column('timings', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table('reencodes',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('image_encoder', sa.Text(), nullable=False),
    sa.Column('text_encoder', sa.Text(), nullable=False),
    sa.Column('from_image_encoder', sa.Text(), nullable=True),
    sa.Column('from_text_encoder', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('missing', sa.Integer(), server_default='0', nullable=False),
    sa.Column('switched_version', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'cancelled')", name=op.f('ck_reencodes_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reencodes'))
    )
    op.create_table('reencode_batches',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('reencode_id', sa.BigInteger(), nullable=False),
    sa.Column('pair_ids', postgresql.ARRAY(sa.BigInteger()), nullable=False),
    sa.Column('done', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('timings', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.ForeignKeyConstraint(['reencode_id'], ['reencodes.id'], name=op.f('fk_reencode_batches_reencode_id_reencodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reencode_batches'))
    )
    op.create_index(op.f('ix_reencode_batches_reencode_id'), 'reencode_batches', ['reencode_id'], unique=False)
    op.create_table('reencode_embeddings',
    sa.Column('reencode_id', sa.BigInteger(), nullable=False),
    sa.Column('pair_id', sa.BigInteger(), nullable=False),
    sa.Column('image_embedding', pgvector.sqlalchemy.HALFVEC(dim=1280), nullable=False),
    sa.Column('text_embedding', pgvector.sqlalchemy.HALFVEC(dim=384), nullable=False),
    sa.ForeignKeyConstraint(['pair_id'], ['pairs.id'], name=op.f('fk_reencode_embeddings_pair_id_pairs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reencode_id'], ['reencodes.id'], name=op.f('fk_reencode_embeddings_reencode_id_reencodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('reencode_id', 'pair_id', name=op.f('pk_reencode_embeddings'))
    )


def downgrade() -> None:
    op.drop_table('reencode_embeddings')
    op.drop_index(op.f('ix_reencode_batches_reencode_id'), table_name='reencode_batches')
    op.drop_table('reencode_batches')
    op.drop_table('reencodes')
    op.drop_column('job_batches', 'timings')
