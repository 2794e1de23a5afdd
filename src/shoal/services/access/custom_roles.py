"""Custom roles: defined by a server admin from Azure-style actions (``services/access/actions.py``),
assigned per workspace by name like the built-in roles, and checked by the same permission
dependency (``server/auth.Require``). A change applies from the next request; a role still
assigned somewhere cannot be deleted (as in Azure), so an assignment never names a missing role.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shoal.errors import ConflictError, UserError, not_found
from shoal.services.access.actions import CustomRole, parse_definition
from shoal.services.access.roles import ROLES, builtin_role
from shoal.services.context import ServiceContext
from shoal.services.records import iso
from shoal.store import access as rows
from shoal.store.tables import CustomRoleRow

MAX_CUSTOM_ROLES = 1000


def _role(row: CustomRoleRow) -> CustomRole:
    return CustomRole(row.name, tuple(row.actions or ()), tuple(row.not_actions or ()), row.description or "")


def _body(row: CustomRoleRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "type": "custom",
        "description": row.description or "",
        "actions": list(row.actions or ()),
        "not_actions": list(row.not_actions or ()),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def builtin_bodies() -> list[dict[str, Any]]:
    return [
        {"name": name, "type": "built-in", "permissions": sorted(str(p) for p in held)} for name, held in ROLES.items()
    ]


def list_roles(ctx: ServiceContext) -> list[dict[str, Any]]:
    """The built-in roles, then the custom ones."""
    with ctx.db.read() as session:
        return builtin_bodies() + [_body(r) for r in rows.list_custom_roles(session)]


def get_role(ctx: ServiceContext, name: str) -> dict[str, Any]:
    builtin = builtin_role(name)
    if builtin is not None:
        return next(b for b in builtin_bodies() if b["name"] == builtin)
    with ctx.db.read() as session:
        row = rows.find_custom_role(session, name)
        if row is None:
            known = list(ROLES) + [r.name for r in rows.list_custom_roles(session)]
            raise not_found("role", name, known=known)
        return _body(row)


def put_role(ctx: ServiceContext, name: str, spec: dict[str, Any], by: str) -> tuple[dict[str, Any], bool]:
    """Create or replace a custom role; the body, and whether it was created."""
    role = parse_definition(name, spec)
    with ctx.db.write() as session:
        row = rows.find_custom_role(session, name)
        created = row is None
        if row is None:
            if len(rows.list_custom_roles(session)) >= MAX_CUSTOM_ROLES:
                raise UserError(f"a server holds at most {MAX_CUSTOM_ROLES} custom roles")
            row = rows.add_custom_role(
                session,
                CustomRoleRow(
                    name=name,
                    description=role.description,
                    actions=list(role.actions),
                    not_actions=list(role.not_actions),
                    created_by=by,
                ),
            )
        else:
            if row.name != name:
                raise ConflictError(f"a custom role named '{row.name}' exists; names differ only in case")
            row.description = role.description
            row.actions = list(role.actions)
            row.not_actions = list(role.not_actions)
            row.updated_at = datetime.now(UTC)
            session.flush()
        return _body(row), created


def delete_role(ctx: ServiceContext, name: str) -> None:
    if builtin_role(name) is not None:
        raise UserError(f"{name!r} is a built-in role; only custom roles can be deleted")
    with ctx.db.write() as session:
        row = rows.find_custom_role(session, name)
        if row is None:
            raise not_found("custom role", name, known=[r.name for r in rows.list_custom_roles(session)])
        holders = rows.role_holders(session, row.name)
        if holders:
            shown = ", ".join(f"{user} in {ws}" for ws, user in holders[:10])
            raise ConflictError(
                f"the role '{row.name}' is still assigned ({shown}{', …' if len(holders) > 10 else ''}); "
                "remove those assignments first"
            )
        rows.delete_custom_role(session, row)


def assignable_name(session: Any, name: str) -> str:
    """The stored name of a role to assign: a built-in role (or its alias) or a custom role."""
    builtin = builtin_role(name)
    if builtin is not None:
        return builtin
    row = rows.find_custom_role(session, str(name))
    if row is None:
        known = list(ROLES) + [r.name for r in rows.list_custom_roles(session)]
        raise UserError(f"unknown role {name!r}: one of {', '.join(repr(r) for r in known)}")
    return row.name


def definitions(session: Any, names: Iterable[str]) -> dict[str, CustomRole]:
    """The custom roles among ``names`` (built-in names are skipped), by name."""
    wanted = sorted({n for n in names if n not in ROLES})
    return {r.name: _role(r) for r in rows.custom_roles_named(session, wanted)}
