"""Versioned assets: containers (one per name) and their immutable versions.

Version allocation is concurrency-safe on both databases: the container row's ``next_version``
counter is bumped with a single ``UPDATE … RETURNING`` (a row lock on PostgreSQL; SQLite write
transactions are already serialised by ``BEGIN IMMEDIATE``), and the unique constraint on
``(container_id, version)`` is the backstop the caller retries on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select, true, update
from sqlalchemy.orm import Session

from shoal.errors import InvalidStateError, NotFoundError, not_found
from shoal.store import workspaces
from shoal.store.paging import Page, clamp_page_size, decode_token, encode_token
from shoal.store.tables import AssetContainerRow, AssetVersionRow, utcnow


def find_container(session: Session, workspace_id: int, kind: str, name: str) -> AssetContainerRow | None:
    return session.scalar(
        select(AssetContainerRow).where(
            AssetContainerRow.workspace_id == workspace_id,
            AssetContainerRow.kind == kind,
            AssetContainerRow.name == name,
        )
    )


def get_container(session: Session, workspace_id: int, kind: str, name: str) -> AssetContainerRow:
    row = find_container(session, workspace_id, kind, name)
    if row is None:
        raise missing_container(session, workspace_id, kind, name)
    return row


def container_names(session: Session, workspace_id: int, kind: str, limit: int = 1000) -> list[str]:
    """Up to ``limit`` names of ``kind`` in the workspace (for not-found hints)."""
    query = select(AssetContainerRow.name).where(
        AssetContainerRow.workspace_id == workspace_id, AssetContainerRow.kind == kind
    )
    return list(session.scalars(query.limit(limit)))


def missing_container(session: Session, workspace_id: int, kind: str, name: str) -> NotFoundError:
    """NOT_FOUND for an asset name: the workspace, and close existing names of that kind."""
    known = container_names(session, workspace_id, kind)
    return not_found(kind, name, known=known, workspace=workspaces.name_of(session, workspace_id))


def ensure_container(session: Session, workspace_id: int, kind: str, name: str) -> AssetContainerRow:
    row = find_container(session, workspace_id, kind, name)
    if row is None:
        row = AssetContainerRow(workspace_id=workspace_id, kind=kind, name=name, next_version=1, tags={})
        session.add(row)
        session.flush()  # a concurrent creator hits the unique constraint; the caller retries
    return row


def find_version(session: Session, container_id: int, version: str) -> AssetVersionRow | None:
    return session.scalar(
        select(AssetVersionRow).where(AssetVersionRow.container_id == container_id, AssetVersionRow.version == version)
    )


def get_version(session: Session, container: AssetContainerRow, version: str) -> AssetVersionRow:
    row = find_version(session, container.id, version)
    if row is None:
        versions = select(AssetVersionRow.version).where(AssetVersionRow.container_id == container.id)
        known = list(session.scalars(versions))
        raise not_found(
            container.kind,
            version,
            subject=f"{container.kind} '{container.name}' version '{version}'",
            known=known,
            list_hint=f"shoal {container.kind} list --name {container.name}",
            details={"kind": container.kind, "name": container.name, "version": version},
        )
    return row


def latest_version(session: Session, container: AssetContainerRow) -> AssetVersionRow:
    """The most recently created version that is not archived."""
    if container.archived:
        raise NotFoundError(
            f"{container.kind} '{container.name}' is archived: it has no latest version until restored",
            details={"kind": container.kind, "name": container.name, "label": "latest"},
        )
    row = session.scalar(
        select(AssetVersionRow)
        .where(AssetVersionRow.container_id == container.id, AssetVersionRow.archived.is_(False))
        .order_by(AssetVersionRow.id.desc())
        .limit(1)
    )
    if row is None:
        raise NotFoundError(
            f"{container.kind} '{container.name}' has no active version (all are archived)",
            details={"kind": container.kind, "name": container.name, "label": "latest"},
        )
    return row


def allocate_version(session: Session, container: AssetContainerRow) -> str:
    """Take the next free integer version from the container's counter."""
    while True:
        number = session.execute(
            update(AssetContainerRow)
            .where(AssetContainerRow.id == container.id)
            .values(next_version=AssetContainerRow.next_version + 1)
            .returning(AssetContainerRow.next_version)
        ).scalar_one()
        candidate = str(number - 1)
        # An explicit version may already occupy the number: skip it rather than fail.
        if find_version(session, container.id, candidate) is None:
            return candidate


def note_explicit_version(session: Session, container: AssetContainerRow, version: str) -> None:
    """Keep auto-increment above explicit integer versions, as Azure ML's next_version does."""
    if version.isdigit() and len(version) < 10:
        session.execute(
            update(AssetContainerRow)
            .where(AssetContainerRow.id == container.id, AssetContainerRow.next_version <= int(version))
            .values(next_version=int(version) + 1)
        )


def insert_version(
    session: Session,
    container: AssetContainerRow,
    version: str,
    spec: dict[str, Any],
    spec_hash: str,
    stage: str | None,
) -> AssetVersionRow:
    row = AssetVersionRow(
        container_id=container.id,
        version=version,
        spec=spec,
        spec_hash=spec_hash,
        archived=False,
        stage=stage,
    )
    session.add(row)
    container.updated_at = utcnow()
    session.flush()
    return row


def set_archived(
    session: Session, container: AssetContainerRow, version: AssetVersionRow | None, archived: bool
) -> None:
    if version is None:
        container.archived = archived
        container.updated_at = utcnow()
        return
    if not archived and container.archived:
        raise InvalidStateError(
            f"{container.kind} '{container.name}' is archived as a whole: restore the name before "
            f"restoring version '{version.version}'"
        )
    version.archived = archived
    version.updated_at = utcnow()


def list_versions(
    session: Session,
    container: AssetContainerRow,
    *,
    archived: bool | None = False,
    stage: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[AssetVersionRow]:
    """Versions of one name, newest first. ``archived=None`` lists both."""
    size = clamp_page_size(max_results)
    query = select(AssetVersionRow).where(AssetVersionRow.container_id == container.id)
    # A whole archived name counts as archived for every one of its versions.
    if archived is False:
        if container.archived:
            return Page([], None)
        query = query.where(AssetVersionRow.archived.is_(False))
    elif archived is True and not container.archived:
        query = query.where(AssetVersionRow.archived.is_(True))
    if stage:
        query = query.where(AssetVersionRow.stage == stage)
    after = decode_token(page_token)
    if after:
        query = query.where(AssetVersionRow.id < int(after[0]))
    rows = list(session.scalars(query.order_by(AssetVersionRow.id.desc()).limit(size + 1)))
    token = encode_token([rows[size - 1].id]) if len(rows) > size else None
    return Page(rows[:size], token)


def list_latest(
    session: Session,
    workspace_id: int,
    kind: str,
    *,
    archived: bool | None = False,
    stage: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[tuple[AssetContainerRow, AssetVersionRow]]:
    """One row per name with its latest version, ordered by name (keyset on name)."""
    size = clamp_page_size(max_results)
    latest_id = (
        select(func.max(AssetVersionRow.id))
        .where(AssetVersionRow.container_id == AssetContainerRow.id)
        .where(AssetVersionRow.archived.is_(False) if archived is False else true())
        .where(AssetVersionRow.stage == stage if stage else true())
        .correlate(AssetContainerRow)
        .scalar_subquery()
    )
    query = (
        select(AssetContainerRow, AssetVersionRow)
        .join(AssetVersionRow, and_(AssetVersionRow.id == latest_id))
        .where(AssetContainerRow.workspace_id == workspace_id, AssetContainerRow.kind == kind)
    )
    if archived is False:
        query = query.where(AssetContainerRow.archived.is_(False))
    elif archived is True:
        query = query.where(AssetContainerRow.archived.is_(True))
    after = decode_token(page_token)
    if after:
        query = query.where(AssetContainerRow.name > str(after[0]))
    rows = [tuple(r) for r in session.execute(query.order_by(AssetContainerRow.name).limit(size + 1))]
    token = encode_token([rows[size - 1][0].name]) if len(rows) > size else None
    return Page(rows[:size], token)  # type: ignore[arg-type]


def first_version(session: Session, container_id: int) -> AssetVersionRow | None:
    """The oldest version of a name, archived or not (who created the name, for job tokens)."""
    query = select(AssetVersionRow).where(AssetVersionRow.container_id == container_id)
    return session.scalars(query.order_by(AssetVersionRow.id).limit(1)).first()
