"""job runner handle (a string: Ray actors) and queue reason

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-05 17:00:00.000000

``runner_pid`` is dropped with a plain ``ALTER TABLE … DROP COLUMN`` (SQLite 3.35 and newer),
not Alembic's batch mode: a rebuilt job table would lose its expression index
(``ix_job_run_order``), which SQLite cannot reflect.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job", sa.Column("runner_handle", sa.String(length=255), nullable=True))
    op.add_column("job", sa.Column("queue_reason", sa.String(length=1024), nullable=True))
    # A local runner's handle is its pid, written in decimal.
    op.execute("UPDATE job SET runner_handle = CAST(runner_pid AS VARCHAR(32)) WHERE runner_pid IS NOT NULL")
    op.execute("ALTER TABLE job DROP COLUMN runner_pid")


def downgrade() -> None:
    op.add_column("job", sa.Column("runner_pid", sa.Integer(), nullable=True))
    # Only local handles (pids) have an integer form.
    op.execute(
        "UPDATE job SET runner_pid = CAST(runner_handle AS INTEGER) "
        "WHERE runner_handle IS NOT NULL AND runner_handle NOT LIKE '%:%'"
    )
    op.execute("ALTER TABLE job DROP COLUMN queue_reason")
    op.execute("ALTER TABLE job DROP COLUMN runner_handle")
