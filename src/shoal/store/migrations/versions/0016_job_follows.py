"""job follows: the job whose node a job's runner was prepared on, to start when it ends

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 02:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job", sa.Column("follows", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE job DROP COLUMN follows")
