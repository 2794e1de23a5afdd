"""metric points keyed by themselves

The ``metric`` table loses its surrogate ``id``: the point, ``(job_id, key, step, timestamp, value,
is_nan)``, becomes the primary key (``WITHOUT ROWID`` on SQLite). It replaces the unique key that
made replays idempotent and the index that history pages were read by, so a point is written into
one B-tree instead of three, and a history page is a range of the key. Rows are copied over.

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


def downgrade() -> None:
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
