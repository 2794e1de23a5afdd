"""studio: metric rollups for long charts, login codes and sessions, the experiment job list index

``metric_rollup`` sums each metric of a run up in buckets of 1,024 consecutive steps (min, max,
sum, count, step and time range), filled here from the points already stored and kept by the
write path from now on. ``studio_login`` holds login codes and browser sessions (digests only).
``ix_job_experiment_list`` and ``ix_job_status_list`` read one experiment's (one status's) top-level jobs
newest first.

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-05 16:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# store/metric_rollup.ROLLUP_SHIFT (a migration keeps its own copy: it must not change later).
SHIFT = 10


def upgrade() -> None:
    op.create_table(
        "metric_rollup",
        sa.Column("job_id", ID, nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Double(), nullable=False),
        sa.Column("vmin", sa.Double(), nullable=False),
        sa.Column("vmax", sa.Double(), nullable=False),
        sa.Column("step_min", sa.BigInteger(), nullable=False),
        sa.Column("step_max", sa.BigInteger(), nullable=False),
        sa.Column("ts_min", sa.BigInteger(), nullable=False),
        sa.Column("ts_max", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_metric_rollup_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "key", "bucket", name=op.f("pk_metric_rollup")),
        sqlite_with_rowid=False,
    )
    # Floor division on both databases (steps may be negative): (step - mod) / width.
    width = 1 << SHIFT
    bucket = f'(("step" - ((("step" % {width}) + {width}) % {width})) / {width})'
    op.execute(
        'INSERT INTO metric_rollup ("job_id", "key", "bucket", "n", "total", "vmin", "vmax", '
        '"step_min", "step_max", "ts_min", "ts_max") '
        f'SELECT "job_id", "key", {bucket}, COUNT(*), SUM("value"), MIN("value"), MAX("value"), '
        'MIN("step"), MAX("step"), MIN("timestamp"), MAX("timestamp") FROM metric '
        f'WHERE NOT "is_nan" GROUP BY "job_id", "key", {bucket}'
    )
    op.create_table(
        "studio_login",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret_digest", sa.String(length=64), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=255), nullable=False),
        sa.Column("csrf_digest", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studio_login")),
        sa.UniqueConstraint("secret_digest", name=op.f("uq_studio_login_secret_digest")),
    )
    op.create_index("ix_job_experiment_list", "job", ["experiment_id", "parent_job_name", "id"])
    op.create_index("ix_job_status_list", "job", ["workspace_id", "parent_job_name", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_job_status_list", table_name="job")
    op.drop_index("ix_job_experiment_list", table_name="job")
    op.drop_table("studio_login")
    op.drop_table("metric_rollup")
