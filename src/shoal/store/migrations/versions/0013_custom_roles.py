"""custom roles: admin-defined roles from Azure-style actions and not-actions

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-05 17:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "custom_role",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("not_actions", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_role")),
        sa.UniqueConstraint("name", name=op.f("uq_custom_role_name")),
    )


def downgrade() -> None:
    op.drop_table("custom_role")
