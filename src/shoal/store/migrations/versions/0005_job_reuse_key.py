"""job reuse key (pipeline step reuse)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reuse_key", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_job_reuse", ["workspace_id", "reuse_key", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_reuse")
        batch_op.drop_column("reuse_key")
