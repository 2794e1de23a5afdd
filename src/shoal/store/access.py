"""Users, API tokens, role assignments and audit records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from shoal.store.tables import (
    ApiTokenRow,
    AuditRow,
    CustomRoleRow,
    JobRow,
    RoleAssignmentRow,
    UserRow,
    WorkspaceRow,
)

# -- users ----------------------------------------------------------------------------------


def find_user(session: Session, name: str) -> UserRow | None:
    return session.scalar(select(UserRow).where(UserRow.name == name))


def list_users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.name)))


def add_user(session: Session, row: UserRow) -> UserRow:
    session.add(row)
    session.flush()
    return row


def delete_user(session: Session, row: UserRow) -> None:
    # Tokens and role assignments go with the user (ON DELETE CASCADE, also on SQLite: foreign
    # keys are on); deleting them here too keeps that true on a database without the pragma.
    session.execute(delete(ApiTokenRow).where(ApiTokenRow.user_id == row.id))
    session.execute(delete(RoleAssignmentRow).where(RoleAssignmentRow.user_id == row.id))
    session.delete(row)


# -- tokens ---------------------------------------------------------------------------------


def add_token(session: Session, row: ApiTokenRow) -> ApiTokenRow:
    session.add(row)
    session.flush()
    return row


def tokens_of(session: Session, user_id: int) -> list[ApiTokenRow]:
    return list(session.scalars(select(ApiTokenRow).where(ApiTokenRow.user_id == user_id).order_by(ApiTokenRow.id)))


def find_token(session: Session, user_id: int, token_id: str) -> ApiTokenRow | None:
    return session.scalar(select(ApiTokenRow).where(ApiTokenRow.user_id == user_id, ApiTokenRow.token_id == token_id))


def token_owner(session: Session, digest: str) -> tuple[ApiTokenRow, UserRow] | None:
    """The token with this sha256 and its user (revoked and expired ones too: the caller decides)."""
    found = session.execute(
        select(ApiTokenRow, UserRow)
        .join(UserRow, UserRow.id == ApiTokenRow.user_id)
        .where(ApiTokenRow.digest == digest)
    ).first()
    return (found[0], found[1]) if found is not None else None


# -- role assignments -----------------------------------------------------------------------


def roles_by_workspace(session: Session, user_id: int) -> dict[str, list[str]]:
    """A user's roles, by workspace name."""
    rows = session.execute(
        select(WorkspaceRow.name, RoleAssignmentRow.role)
        .join(WorkspaceRow, WorkspaceRow.id == RoleAssignmentRow.workspace_id)
        .where(RoleAssignmentRow.user_id == user_id)
        .order_by(WorkspaceRow.name, RoleAssignmentRow.role)
    )
    out: dict[str, list[str]] = {}
    for ws, role in rows:
        out.setdefault(ws, []).append(role)
    return out


def assignments(session: Session, ws_id: int) -> list[tuple[str, str, str, datetime]]:
    """(user, role, created_by, created_at) of a workspace, by user then role."""
    rows = session.execute(
        select(UserRow.name, RoleAssignmentRow.role, RoleAssignmentRow.created_by, RoleAssignmentRow.created_at)
        .join(UserRow, UserRow.id == RoleAssignmentRow.user_id)
        .where(RoleAssignmentRow.workspace_id == ws_id)
        .order_by(UserRow.name, RoleAssignmentRow.role)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def find_assignment(session: Session, ws_id: int, user_id: int, role: str) -> RoleAssignmentRow | None:
    return session.scalar(
        select(RoleAssignmentRow).where(
            RoleAssignmentRow.workspace_id == ws_id,
            RoleAssignmentRow.user_id == user_id,
            RoleAssignmentRow.role == role,
        )
    )


def add_assignment(session: Session, row: RoleAssignmentRow) -> None:
    session.add(row)
    session.flush()


def remove_assignments(session: Session, ws_id: int, user_id: int, role: str | None) -> int:
    query = delete(RoleAssignmentRow).where(
        RoleAssignmentRow.workspace_id == ws_id, RoleAssignmentRow.user_id == user_id
    )
    if role is not None:
        query = query.where(RoleAssignmentRow.role == role)
    return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


# -- custom roles ---------------------------------------------------------------------------


def list_custom_roles(session: Session) -> list[CustomRoleRow]:
    return list(session.scalars(select(CustomRoleRow).order_by(CustomRoleRow.name)))


def find_custom_role(session: Session, name: str) -> CustomRoleRow | None:
    """By name, case-insensitively (as Azure's role names)."""
    return session.scalar(select(CustomRoleRow).where(func.lower(CustomRoleRow.name) == name.strip().lower()))


def custom_roles_named(session: Session, names: Sequence[str]) -> list[CustomRoleRow]:
    if not names:
        return []
    return list(session.scalars(select(CustomRoleRow).where(CustomRoleRow.name.in_(list(names)))))


def add_custom_role(session: Session, row: CustomRoleRow) -> CustomRoleRow:
    session.add(row)
    session.flush()
    return row


def delete_custom_role(session: Session, row: CustomRoleRow) -> None:
    session.delete(row)
    session.flush()


def role_holders(session: Session, role: str) -> list[tuple[str, str]]:
    """(workspace, user) of every assignment of ``role``."""
    found = session.execute(
        select(WorkspaceRow.name, UserRow.name)
        .join(RoleAssignmentRow, RoleAssignmentRow.workspace_id == WorkspaceRow.id)
        .join(UserRow, UserRow.id == RoleAssignmentRow.user_id)
        .where(RoleAssignmentRow.role == role)
        .order_by(WorkspaceRow.name, UserRow.name)
    )
    return [(ws, user) for ws, user in found]


# -- jobs' submitters -----------------------------------------------------------------------


def set_submitter(session: Session, ws_id: int, job: str, user: str) -> None:
    row = session.scalar(select(JobRow).where(JobRow.workspace_id == ws_id, JobRow.name == job))
    if row is not None:
        row.user_id = user


def submitter_chain(session: Session, ws_id: int, job: str | None, depth: int) -> str | None:
    """The user who submitted ``job``, or the pipeline or sweep above it."""
    current: str | None = job
    for _ in range(depth):
        if current is None:
            return None
        found = session.execute(
            select(JobRow.user_id, JobRow.parent_job_name).where(JobRow.workspace_id == ws_id, JobRow.name == current)
        ).first()
        if found is None:
            return None
        if found[0]:
            return str(found[0])
        current = found[1]
    return None


# -- audit ----------------------------------------------------------------------------------


def add_audit(session: Session, records: Sequence[dict[str, Any]]) -> None:
    if records:
        session.execute(insert(AuditRow), list(records))


def delete_audit_before(session: Session, cutoff: datetime) -> int:
    return int(session.execute(delete(AuditRow).where(AuditRow.at < cutoff)).rowcount or 0)  # type: ignore[attr-defined]


def audit_page(
    session: Session,
    *,
    actor: str | None,
    workspace: str | None,
    since: datetime | None,
    until: datetime | None,
    outcome: str | None,
    before_id: int | None,
    limit: int,
) -> list[AuditRow]:
    """Newest first, keyset-paged on the id."""
    query = select(AuditRow)
    if actor is not None:
        query = query.where(AuditRow.actor == actor)
    if workspace is not None:
        query = query.where(AuditRow.workspace == workspace)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    if until is not None:
        query = query.where(AuditRow.at < until)
    if outcome is not None:
        query = query.where(AuditRow.outcome == outcome)
    if before_id is not None:
        query = query.where(AuditRow.id < before_id)
    return list(session.scalars(query.order_by(AuditRow.id.desc()).limit(limit)))
