"""job runner handle (a string: Ray actors) and queue reason

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-05 17:00:00.000000

The integer ``runner_pid`` column stays in the table, unused (nullable): dropping it would make
SQLite rebuild the job table, which loses its expression index (``ix_job_run_order``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job", sa.Column("runner_handle", sa.String(length=255), nullable=True))
    op.add_column("job", sa.Column("queue_reason", sa.String(length=1024), nullable=True))
    # A local runner's handle is its pid, written in decimal.
    op.execute("UPDATE job SET runner_handle = CAST(runner_pid AS VARCHAR(32)) WHERE runner_pid IS NOT NULL")
    op.execute("UPDATE job SET runner_pid = NULL")


def downgrade() -> None:
    # Only local handles (pids) have an integer form.
    op.execute(
        "UPDATE job SET runner_pid = CAST(runner_handle AS INTEGER) "
        "WHERE runner_handle IS NOT NULL AND runner_handle NOT LIKE '%:%'"
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("queue_reason")
        batch_op.drop_column("runner_handle")
