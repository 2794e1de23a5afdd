"""online deployments: where their instances run (several servers on one database)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 17:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("online_deployment") as batch:
        batch.add_column(sa.Column("served_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("instances", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("online_deployment") as batch:
        batch.drop_column("instances")
        batch.drop_column("served_by")
