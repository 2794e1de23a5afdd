"""tracking at scale: metric points keyed by themselves, indexes for search and job lists

The ``metric`` table loses its surrogate ``id``: the point, ``(job_id, key, step, timestamp, value,
is_nan)``, becomes the primary key (``WITHOUT ROWID`` on SQLite). It replaces the unique key that
made replays idempotent and the index that history pages were read by, so a point is written into
one B-tree instead of three, and a history page is a range of the key. Rows are copied over.

Three indexes keep a workspace of 100,000 runs responsive: ``ix_job_list`` (a workspace's jobs by
id, for ``job list``), ``ix_job_run_order`` (MLflow's default run order, newest first, within an
experiment; it replaces ``ix_job_experiment_id``, which it leads with) and
``ix_latest_metric_value`` (a search ordered by a metric it filters on walks that metric's values).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 10:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
POINT = ("job_id", "key", "step", "timestamp", "value", "is_nan")
COLUMNS = ", ".join(f'"{c}"' for c in POINT)


def _point_columns() -> list[sa.Column]:
    return [
        sa.Column("job_id", ID, nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
    ]


def _rename_constraints(table: str, renames: dict[str, str]) -> None:
    # PostgreSQL names constraints (and the indexes behind them) per schema: the old table's
    # names must be free before the new table takes them. SQLite keeps them per table.
    if op.get_bind().dialect.name == "postgresql":
        for old, new in renames.items():
            op.execute(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{old}" TO "{new}"')


def upgrade() -> None:
    op.rename_table("metric", "metric_0004")
    _rename_constraints(
        "metric_0004",
        {"pk_metric": "pk_metric_0004", "fk_metric_job_id_job": "fk_metric_0004_job_id_job"},
    )
    op.create_table(
        "metric",
        *_point_columns(),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_metric_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint(*POINT, name=op.f("pk_metric")),
        sqlite_with_rowid=False,
    )
    # The old unique key covered the same six columns: no point is copied twice.
    op.execute(f"INSERT INTO metric ({COLUMNS}) SELECT {COLUMNS} FROM metric_0004 ORDER BY {COLUMNS}")
    op.drop_table("metric_0004")

    op.create_index("ix_job_list", "job", ["workspace_id", "id"], unique=False)
    op.create_index(
        "ix_job_run_order", "job", ["experiment_id", sa.text("coalesce(start_time, created_at)"), "id"], unique=False
    )
    op.drop_index("ix_job_experiment_id", table_name="job")
    op.create_index("ix_latest_metric_value", "latest_metric", ["key", "value"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_latest_metric_value", table_name="latest_metric")
    op.create_index("ix_job_experiment_id", "job", ["experiment_id"], unique=False)
    op.drop_index("ix_job_run_order", table_name="job")
    op.drop_index("ix_job_list", table_name="job")

    op.rename_table("metric", "metric_0005")
    _rename_constraints(
        "metric_0005",
        {"pk_metric": "pk_metric_0005", "fk_metric_job_id_job": "fk_metric_0005_job_id_job"},
    )
    op.create_table(
        "metric",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        *_point_columns(),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_metric_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric")),
        sa.UniqueConstraint("job_id", "key", "timestamp", "step", "value", "is_nan", name="uq_metric_point"),
    )
    op.create_index("ix_metric_history", "metric", ["job_id", "key", "step", "timestamp", "id"], unique=False)
    op.execute(f"INSERT INTO metric ({COLUMNS}) SELECT {COLUMNS} FROM metric_0005 ORDER BY {COLUMNS}")
    op.drop_table("metric_0005")
