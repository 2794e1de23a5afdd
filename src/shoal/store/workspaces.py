"""Workspace rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.errors import NotFoundError
from shoal.store.tables import WorkspaceRow, utcnow


def get_row(session: Session, name: str) -> WorkspaceRow:
    row = session.scalar(select(WorkspaceRow).where(WorkspaceRow.name == name))
    if row is None:
        raise NotFoundError(f"workspace '{name}' not found", details={"kind": "workspace", "name": name})
    return row


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
