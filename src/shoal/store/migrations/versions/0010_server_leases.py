"""server leases: several servers on one database (job owner, server heartbeats, controller duty)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 14:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite >= 3.35 has ADD and DROP COLUMN): a batch copy of the job table
    # would lose its expression index ix_job_run_order, which reflection cannot see.
    op.add_column("job", sa.Column("claimed_by", sa.String(length=64), nullable=True))
    op.create_table(
        "server_lease",
        sa.Column("server_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server_id"),
    )
    op.create_table(
        "cluster_lease",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("cluster_lease")
    op.drop_table("server_lease")
    op.drop_column("job", "claimed_by")
