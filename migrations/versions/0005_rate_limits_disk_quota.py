"""a class's rate limits (/check, /predict_file, /predict) and disk quota; when a member's role was last
checked; when retention removed an upload's file

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# existing classes get [quotas]' defaults
COLUMNS = {"checks_per_hour": 30, "predict_files_per_hour": 10, "predictions_per_minute": 30, "max_disk_mb": 2000}


def upgrade() -> None:
    with op.batch_alter_table('classes') as batch:
        for name, default in COLUMNS.items():
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default=str(default)))
    with op.batch_alter_table('members') as batch:
        batch.add_column(sa.Column('role_checked_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('datasets') as batch:
        batch.add_column(sa.Column('removed_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('datasets') as batch:
        batch.drop_column('removed_at')
    with op.batch_alter_table('members') as batch:
        batch.drop_column('role_checked_at')
    with op.batch_alter_table('classes') as batch:
        for name in COLUMNS:
            batch.drop_column(name)
