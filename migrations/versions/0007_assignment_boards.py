"""assignments a class can trust: a public and a private part of the hidden set, caps per day, final
picks, the reveal

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public_share', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('public_rows', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('daily_cap', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_picks', sa.Integer(), server_default='2', nullable=False))
        batch_op.add_column(sa.Column('channel_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('reveal_due_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('revealed_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('private_macro_f1', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('private_accuracy', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('private_per_class_f1', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('private_baseline_macro_f1', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('picked_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('probe_macro_f1', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('private_probe_macro_f1', sa.Float(), nullable=True))
    # An assignment set before this revision was scored on its whole hidden set: that set is both parts
    # (nothing is private), and one whose deadline passed or that was closed counts as revealed then.
    op.execute("UPDATE scores SET private_macro_f1 = macro_f1, private_accuracy = accuracy, "
               "private_per_class_f1 = per_class_f1, private_baseline_macro_f1 = baseline_macro_f1")
    now = datetime.now(UTC).replace(tzinfo=None)
    op.execute(sa.text("UPDATE assignments SET reveal_due_at = deadline"))
    op.execute(sa.text("UPDATE assignments SET revealed_at = closed_at WHERE closed_at IS NOT NULL"))
    op.execute(sa.text("UPDATE assignments SET revealed_at = deadline WHERE revealed_at IS NULL "
                       "AND deadline IS NOT NULL AND deadline <= :now").bindparams(now=now))
    with op.batch_alter_table('scores', schema=None) as batch_op:
        for column in ('private_macro_f1', 'private_accuracy', 'private_baseline_macro_f1'):
            batch_op.alter_column(column, existing_type=sa.Float(), nullable=False)
        batch_op.alter_column('private_per_class_f1', existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        for column in ('private_probe_macro_f1', 'probe_macro_f1', 'picked_at', 'private_baseline_macro_f1', 'private_per_class_f1', 'private_accuracy',
                       'private_macro_f1'):
            batch_op.drop_column(column)
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        for column in ('revealed_at', 'reveal_due_at', 'channel_id', 'max_picks', 'daily_cap', 'public_rows',
                       'public_share'):
            batch_op.drop_column(column)
