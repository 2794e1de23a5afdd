"""Schedule rows: named per workspace; the scheduler's due query and its claim."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shoal.errors import NotFoundError, not_found
from shoal.store import workspaces
from shoal.store.paging import Page, clamp_page_size, decode_token, encode_token
from shoal.store.tables import ScheduleRow, WorkspaceRow, utcnow

KIND = "schedule"


def find_row(session: Session, workspace_id: int, name: str) -> ScheduleRow | None:
    return session.scalar(select(ScheduleRow).where(ScheduleRow.workspace_id == workspace_id, ScheduleRow.name == name))


def names(session: Session, workspace_id: int) -> list[str]:
    return list(session.scalars(select(ScheduleRow.name).where(ScheduleRow.workspace_id == workspace_id)))


def missing(session: Session, workspace_id: int, name: str) -> NotFoundError:
    return not_found(
        KIND, name, known=names(session, workspace_id), workspace=workspaces.name_of(session, workspace_id)
    )


def get_row(session: Session, workspace_id: int, name: str) -> ScheduleRow:
    row = find_row(session, workspace_id, name)
    if row is None:
        raise missing(session, workspace_id, name)
    return row


def put(
    session: Session, workspace_id: int, name: str, spec: dict[str, Any], next_fire_at: datetime | None
) -> ScheduleRow:
    """Create or replace a schedule; a replaced one keeps its enabled flag and its history."""
    row = find_row(session, workspace_id, name)
    if row is None:
        row = ScheduleRow(workspace_id=workspace_id, name=name, spec=spec, enabled=True, next_fire_at=next_fire_at)
        row.fire_count = 0
        session.add(row)
        session.flush()
        return row
    row.spec = spec
    row.next_fire_at = next_fire_at if row.enabled else None
    row.updated_at = utcnow()
    return row


def set_enabled(row: ScheduleRow, enabled: bool, next_fire_at: datetime | None) -> None:
    row.enabled = enabled
    row.next_fire_at = next_fire_at if enabled else None
    row.updated_at = utcnow()


def list_page(
    session: Session,
    workspace_id: int,
    *,
    enabled: bool | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[ScheduleRow]:
    size = clamp_page_size(max_results)
    query = select(ScheduleRow).where(ScheduleRow.workspace_id == workspace_id)
    if enabled is not None:
        query = query.where(ScheduleRow.enabled == enabled)
    after = decode_token(page_token)
    if after:
        query = query.where(ScheduleRow.name > str(after[0]))
    rows = list(session.scalars(query.order_by(ScheduleRow.name).limit(size + 1)))
    token = encode_token([rows[size - 1].name]) if len(rows) > size else None
    return Page(rows[:size], token)


def delete(session: Session, row: ScheduleRow) -> None:
    session.delete(row)


def due(session: Session, now: datetime, *, limit: int = 100) -> list[tuple[int, str, str, dict[str, Any], datetime]]:
    """Enabled schedules whose next fire time has come: (id, workspace, name, spec, next_fire_at)."""
    rows = session.execute(
        select(ScheduleRow.id, WorkspaceRow.name, ScheduleRow.name, ScheduleRow.spec, ScheduleRow.next_fire_at)
        .join(WorkspaceRow, WorkspaceRow.id == ScheduleRow.workspace_id)
        .where(ScheduleRow.enabled.is_(True), ScheduleRow.next_fire_at.is_not(None), ScheduleRow.next_fire_at <= now)
        .order_by(ScheduleRow.next_fire_at, ScheduleRow.id)
        .limit(limit)
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def claim(
    session: Session,
    schedule_id: int,
    expected: datetime,
    following: datetime | None,
    *,
    fired: bool,
) -> bool:
    """Move a due schedule from ``expected`` to ``following`` if no one else has: the one
    conditional update that makes a fire time belong to exactly one server. ``fired`` False
    records a skipped (missed) fire time without counting it."""
    values: dict[str, Any] = {"next_fire_at": following, "updated_at": utcnow()}
    if fired:
        values |= {"last_fire_at": expected, "fire_count": ScheduleRow.fire_count + 1}
    result = session.execute(
        update(ScheduleRow)
        .where(
            ScheduleRow.id == schedule_id,
            ScheduleRow.enabled.is_(True),
            ScheduleRow.next_fire_at == expected,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def record_outcome(session: Session, schedule_id: int, job_name: str | None, error: str | None) -> None:
    """What the last fire did: the job it started, or why it could not."""
    values: dict[str, Any] = {"last_error": error}
    if job_name is not None:
        values["last_job_name"] = job_name
    session.execute(update(ScheduleRow).where(ScheduleRow.id == schedule_id).values(**values))
