"""Compute and datastore rows: named, unversioned, one spec each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.errors import NotFoundError, not_found
from shoal.store import workspaces
from shoal.store.paging import Page, clamp_page_size, decode_token, encode_token
from shoal.store.tables import ResourceRow, WorkspaceRow, utcnow


def find_row(session: Session, workspace_id: int, kind: str, name: str) -> ResourceRow | None:
    return session.scalar(
        select(ResourceRow).where(
            ResourceRow.workspace_id == workspace_id, ResourceRow.kind == kind, ResourceRow.name == name
        )
    )


def version_of(session: Session, workspace: str, kind: str, name: str) -> tuple[int, Any] | None:
    """``(row id, updated_at)`` by workspace name, in one read: enough to tell whether what was
    built from the row earlier (a datastore's file tree) is still current."""
    found = session.execute(
        select(ResourceRow.id, ResourceRow.updated_at)
        .join(WorkspaceRow, WorkspaceRow.id == ResourceRow.workspace_id)
        .where(WorkspaceRow.name == workspace, ResourceRow.kind == kind, ResourceRow.name == name)
    ).first()
    return (found[0], found[1]) if found is not None else None


def get_row(session: Session, workspace_id: int, kind: str, name: str, *, lock: bool = False) -> ResourceRow:
    """The row; ``lock``: held (``FOR UPDATE`` on PostgreSQL) until the transaction ends, so a
    read-modify-write of its spec (a compute instance's power state) is never lost."""
    row = find_row(session, workspace_id, kind, name)
    if row is not None and lock:
        row = session.get(ResourceRow, row.id, with_for_update=True, populate_existing=True)
    if row is None:
        raise missing(session, workspace_id, kind, name)
    return row


def names(session: Session, workspace_id: int, kind: str) -> list[str]:
    """Every name of ``kind`` in the workspace (computes and datastores are few)."""
    return list(
        session.scalars(
            select(ResourceRow.name).where(ResourceRow.workspace_id == workspace_id, ResourceRow.kind == kind)
        )
    )


def missing(session: Session, workspace_id: int, kind: str, name: str, *, extra: tuple[str, ...] = ()) -> NotFoundError:
    """The NOT_FOUND for a compute or datastore, naming the workspace and what does exist."""
    known = [*extra, *names(session, workspace_id, kind)]
    return not_found(kind, name, known=known, workspace=workspaces.name_of(session, workspace_id))


def put(
    session: Session,
    workspace_id: int,
    kind: str,
    name: str,
    type_: str,
    spec: dict[str, Any],
    secrets: str | None,
) -> tuple[ResourceRow, bool]:
    row = find_row(session, workspace_id, kind, name)
    if row is None:
        row = ResourceRow(workspace_id=workspace_id, kind=kind, name=name, type=type_, spec=spec, secrets=secrets)
        session.add(row)
        session.flush()
        return row, True
    row.type = type_
    row.spec = spec
    row.secrets = secrets
    row.updated_at = utcnow()
    return row, False


def list_page(
    session: Session,
    workspace_id: int,
    kind: str,
    *,
    type_: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[ResourceRow]:
    size = clamp_page_size(max_results)
    query = select(ResourceRow).where(ResourceRow.workspace_id == workspace_id, ResourceRow.kind == kind)
    if type_:
        query = query.where(ResourceRow.type == type_)
    after = decode_token(page_token)
    if after:
        query = query.where(ResourceRow.name > str(after[0]))
    rows = list(session.scalars(query.order_by(ResourceRow.name).limit(size + 1)))
    token = encode_token([rows[size - 1].name]) if len(rows) > size else None
    return Page(rows[:size], token)


def of_type(session: Session, kind: str, type_: str) -> list[tuple[str, ResourceRow]]:
    """Every row of this kind and type in every workspace, with its workspace's name."""
    query = (
        select(WorkspaceRow.name, ResourceRow)
        .join(WorkspaceRow, WorkspaceRow.id == ResourceRow.workspace_id)
        .where(ResourceRow.kind == kind, ResourceRow.type == type_)
        .order_by(ResourceRow.id)
    )
    return [(str(ws), row) for ws, row in session.execute(query)]


def delete(session: Session, row: ResourceRow) -> None:
    session.delete(row)
