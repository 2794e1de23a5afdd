"""Workspace rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.errors import NotFoundError, not_found
from shoal.store.tables import WorkspaceRow, utcnow


def get_row(session: Session, name: str) -> WorkspaceRow:
    row = session.scalar(select(WorkspaceRow).where(WorkspaceRow.name == name))
    if row is None:
        raise missing(session, name)
    return row


def id_of(session: Session, name: str) -> int:
    """A workspace's row id by name: nearly every request asks, so only the id column is read."""
    ws_id = session.scalar(select(WorkspaceRow.id).where(WorkspaceRow.name == name))
    if ws_id is None:
        raise missing(session, name)
    return int(ws_id)


def missing(session: Session, name: str) -> NotFoundError:
    """NOT_FOUND for a workspace, with the names that do exist."""
    return not_found("workspace", name, known=list(session.scalars(select(WorkspaceRow.name))))


def find_row(session: Session, name: str) -> WorkspaceRow | None:
    return session.scalar(select(WorkspaceRow).where(WorkspaceRow.name == name))


def upsert(session: Session, name: str, spec: dict[str, Any]) -> tuple[WorkspaceRow, bool]:
    row = find_row(session, name)
    if row is None:
        row = WorkspaceRow(name=name, spec=spec)
        session.add(row)
        session.flush()
        return row, True
    row.spec = spec
    row.updated_at = utcnow()
    return row, False


def list_rows(session: Session) -> list[WorkspaceRow]:
    return list(session.scalars(select(WorkspaceRow).order_by(WorkspaceRow.name)))


def name_of(session: Session, ws_id: int) -> str | None:
    """A workspace's name by row id (None once it is gone)."""
    ws = session.get(WorkspaceRow, ws_id)
    return ws.name if ws is not None else None
