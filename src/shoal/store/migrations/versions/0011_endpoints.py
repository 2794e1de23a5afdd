"""online and batch endpoints and their deployments

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 14:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "online_endpoint",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("workspace_id", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_online_endpoint_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_online_endpoint")),
        sa.UniqueConstraint("workspace_id", "name", name="uq_online_endpoint_name"),
    )
    op.create_table(
        "online_deployment",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("resolved", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["online_endpoint.id"],
            name=op.f("fk_online_deployment_endpoint_id_online_endpoint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_online_deployment")),
        sa.UniqueConstraint("endpoint_id", "name", name="uq_online_deployment_name"),
    )

    op.create_table(
        "batch_endpoint",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("workspace_id", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("jobs", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_batch_endpoint_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_endpoint")),
        sa.UniqueConstraint("workspace_id", "name", name="uq_batch_endpoint_name"),
    )
    op.create_table(
        "batch_deployment",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["batch_endpoint.id"],
            name=op.f("fk_batch_deployment_endpoint_id_batch_endpoint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_deployment")),
        sa.UniqueConstraint("endpoint_id", "name", name="uq_batch_deployment_name"),
    )


def downgrade() -> None:
    op.drop_table("batch_deployment")
    op.drop_table("batch_endpoint")
    op.drop_table("online_deployment")
    op.drop_table("online_endpoint")
