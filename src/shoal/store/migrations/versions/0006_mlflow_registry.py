"""mlflow model registry aliases and logged-model metrics

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "logged_model_metric",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("model_id", PK, nullable=False),
        sa.Column("job_id", PK, nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("dataset_name", sa.String(length=500), nullable=False),
        sa.Column("dataset_digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_logged_model_metric_job_id_job"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_model.id"],
            name=op.f("fk_logged_model_metric_model_id_logged_model"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logged_model_metric")),
        sa.UniqueConstraint(
            "model_id",
            "job_id",
            "key",
            "timestamp",
            "step",
            "value",
            "is_nan",
            "dataset_name",
            "dataset_digest",
            name="uq_logged_model_metric_point",
        ),
    )
    with op.batch_alter_table("logged_model_metric", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logged_model_metric_model_id"), ["model_id"], unique=False)

    op.create_table(
        "model_alias",
        sa.Column("container_id", PK, nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("version_id", PK, nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["asset_container.id"],
            name=op.f("fk_model_alias_container_id_asset_container"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["asset_version.id"],
            name=op.f("fk_model_alias_version_id_asset_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("container_id", "alias", name=op.f("pk_model_alias")),
    )
    with op.batch_alter_table("model_alias", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_alias_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_alias", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_alias_version_id"))
    op.drop_table("model_alias")
    with op.batch_alter_table("logged_model_metric", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_model_metric_model_id"))
    op.drop_table("logged_model_metric")
