"""Users, their API tokens and their roles in workspaces.

A token is ``shoalu_`` and 43 random URL-safe characters (256 bits); only its sha256 is stored,
so a copy of the database signs nobody in, and a plain hash is enough at that entropy (a slow
password hash protects guessable secrets; these are not). A token is shown once, at creation.
There are no passwords, so there is no default one: the first admin is the server's own token
file (``$SHOAL_HOME/token``), and it creates the users.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.errors import AuthError, ConflictError, NotFoundError, UserError, not_found
from shoal.services.access import custom_roles
from shoal.services.access.actions import CustomRole
from shoal.services.access.roles import BOOTSTRAP_ADMIN
from shoal.services.context import ServiceContext
from shoal.services.workspaces import workspace_id
from shoal.store import access as rows
from shoal.store.tables import ApiTokenRow, RoleAssignmentRow, UserRow

TOKEN_PREFIX = "shoalu_"
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MAX_TOKEN_DAYS = 3650


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for what was stored in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.isoformat() if value is not None else None


# -- users ----------------------------------------------------------------------------------


def _user_body(row: UserRow, roles: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": row.name,
        "display_name": row.display_name,
        "admin": bool(row.admin),
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
    }
    if roles is not None:
        body["roles"] = [{"workspace": ws, "role": r} for ws, names in roles.items() for r in names]
    return body


def _get_user(session: Any, name: str) -> UserRow:
    row = rows.find_user(session, name)
    if row is None:
        raise not_found("user", name, known=[u.name for u in rows.list_users(session)])
    return row


def create_user(ctx: ServiceContext, spec: dict[str, Any], created_by: str) -> dict[str, Any]:
    name = str(spec.get("name") or "")
    if not USER_NAME.match(name):
        raise UserError(
            f"invalid user name {name[:80]!r}: 1-64 characters, letters, digits and _ . @ -, "
            "starting with a letter or digit"
        )
    if name == BOOTSTRAP_ADMIN:
        raise UserError(f"the user name {BOOTSTRAP_ADMIN!r} is the server's own admin token; choose another")
    unknown = set(spec) - {"name", "display_name", "admin"}
    if unknown:
        raise UserError(f"unknown user fields: {', '.join(sorted(unknown))} (name, display_name, admin)")
    admin = spec.get("admin", False)
    if not isinstance(admin, bool):
        raise UserError(f"admin must be true or false, got {admin!r}")
    with ctx.db.write() as session:
        if rows.find_user(session, name) is not None:
            raise ConflictError(f"a user named '{name}' already exists")
        row = rows.add_user(
            session,
            UserRow(name=name, display_name=spec.get("display_name"), admin=admin, created_by=created_by),
        )
        return _user_body(row, {})


def list_users(ctx: ServiceContext) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        return [_user_body(r) for r in rows.list_users(session)]


def get_user(ctx: ServiceContext, name: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = _get_user(session, name)
        body = _user_body(row, rows.roles_by_workspace(session, row.id))
        body["tokens"] = [_token_body(t) for t in rows.tokens_of(session, row.id)]
        return body


def delete_user(ctx: ServiceContext, name: str) -> None:
    with ctx.db.write() as session:
        rows.delete_user(session, _get_user(session, name))


# -- tokens ---------------------------------------------------------------------------------


def _token_body(row: ApiTokenRow) -> dict[str, Any]:
    expires = _aware(row.expires_at)
    state = "revoked" if row.revoked_at else "expired" if expires is not None and expires <= _now() else "active"
    return {
        "id": row.token_id,
        "name": row.name,
        "created_at": _iso(row.created_at),
        "expires_at": _iso(expires),
        "revoked_at": _iso(row.revoked_at),
        "state": state,
    }


def create_token(ctx: ServiceContext, user: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A new token for ``user``: the body holds the token itself, shown this once."""
    unknown = set(spec) - {"name", "expires_in_days"}
    if unknown:
        raise UserError(f"unknown token fields: {', '.join(sorted(unknown))} (name, expires_in_days)")
    days = spec.get("expires_in_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS):
        raise UserError(f"expires_in_days must be a whole number from 1 to {MAX_TOKEN_DAYS} (or null), got {days!r}")
    name = str(spec.get("name") or "")[:255]
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with ctx.db.write() as session:
        owner = _get_user(session, user)
        row = rows.add_token(
            session,
            ApiTokenRow(
                token_id="t-" + secrets.token_hex(6),
                user_id=owner.id,
                name=name,
                digest=digest(token),
                expires_at=_now() + timedelta(days=days) if days is not None else None,
            ),
        )
        return {**_token_body(row), "user": user, "token": token}


def list_tokens(ctx: ServiceContext, user: str) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        return [_token_body(t) for t in rows.tokens_of(session, _get_user(session, user).id)]


def revoke_token(ctx: ServiceContext, user: str, token_id: str) -> dict[str, Any]:
    with ctx.db.write() as session:
        owner = _get_user(session, user)
        row = rows.find_token(session, owner.id, token_id)
        if row is None:
            raise not_found("token", token_id, known=[t.token_id for t in rows.tokens_of(session, owner.id)])
        if row.revoked_at is None:
            row.revoked_at = _now()
        return _token_body(row)


# -- signing in -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who a user token speaks for: the user, whether an admin, and the roles by workspace."""

    user: str
    admin: bool
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The custom roles among ``roles``, by name.
    custom: dict[str, CustomRole] = field(default_factory=dict)


def identify(ctx: ServiceContext, token: str) -> Identity | None:
    """The identity of a user token; None when it is none of ours. A revoked or expired token
    is refused by name, so its holder knows to ask for a new one."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return identify_digest(ctx, digest(token))


def identify_digest(ctx: ServiceContext, token_digest: str) -> Identity | None:
    """:func:`identify` by the token's digest (a studio session keeps only that)."""
    with ctx.db.read() as session:
        found = rows.token_owner(session, token_digest)
        if found is None:
            return None
        tok, user = found
        if tok.revoked_at is not None:
            raise AuthError(f"this token ({tok.token_id} of user '{user.name}') was revoked")
        expires = _aware(tok.expires_at)
        if expires is not None and expires <= _now():
            raise AuthError(f"this token ({tok.token_id} of user '{user.name}') expired at {expires.isoformat()}")
        roles = {ws: tuple(names) for ws, names in rows.roles_by_workspace(session, user.id).items()}
        custom = custom_roles.definitions(session, [r for names in roles.values() for r in names])
        return Identity(user.name, bool(user.admin), roles, custom)


# -- role assignments -----------------------------------------------------------------------


def list_assignments(ctx: ServiceContext, workspace: str) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        found = rows.assignments(session, workspace_id(session, workspace))
    return [
        {"user": u, "role": r, "workspace": workspace, "created_by": by, "created_at": _iso(at)}
        for u, r, by, at in found
    ]


def assign(ctx: ServiceContext, workspace: str, user: str, role: str, created_by: str) -> dict[str, Any]:
    with ctx.db.write() as session:
        role = custom_roles.assignable_name(session, role)
        ws_id = workspace_id(session, workspace)
        owner = _get_user(session, user)
        if rows.find_assignment(session, ws_id, owner.id, role) is None:
            rows.add_assignment(
                session, RoleAssignmentRow(workspace_id=ws_id, user_id=owner.id, role=role, created_by=created_by)
            )
    return {"user": user, "role": role, "workspace": workspace}


def unassign(ctx: ServiceContext, workspace: str, user: str, role: str | None) -> None:
    with ctx.db.write() as session:
        role = custom_roles.assignable_name(session, role) if role else None
        ws_id = workspace_id(session, workspace)
        removed = rows.remove_assignments(session, ws_id, _get_user(session, user).id, role)
    if not removed:
        held = f"does not hold the role '{role}'" if role else "has no role"
        raise NotFoundError(f"user '{user}' {held} in workspace '{workspace}'")


def record_submitter(ctx: ServiceContext, workspace: str, job: str, user: str) -> None:
    """Remember who submitted a job: its job token carries that user's role (``job_attempts``)."""
    with ctx.db.write() as session:
        rows.set_submitter(session, workspace_id(session, workspace), job, user)
