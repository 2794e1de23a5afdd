"""Users, their API tokens, role assignments per workspace, and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response
from starlette.concurrency import run_in_threadpool

from shoal.errors import UserError
from shoal.server.auth import Permission, Principal
from shoal.server.routes.common import ctx, guarded
from shoal.services.access import audit, custom_roles, users
from shoal.services.access.roles import ROLES

router = APIRouter(tags=["access"])


def _principal(request: Request) -> Principal:
    return request.state.principal  # type: ignore[no-any-return]


@guarded(router, "GET", "/me", Permission.SIGNED_IN)
def whoami(request: Request) -> dict[str, Any]:
    """Who this token speaks for, and its roles."""
    p = _principal(request)
    return {
        "name": p.name,
        "kind": "job" if p.job else "user" if p.user else "admin" if p.is_admin else "token",
        "admin": p.is_admin,
        "workspace": p.workspace,
        "roles": users.get_user(ctx(request), p.user)["roles"] if p.user else [],
    }


# -- users ----------------------------------------------------------------------------------


@guarded(router, "GET", "/users", Permission.ADMIN)
def list_users(request: Request) -> dict[str, Any]:
    return {"value": users.list_users(ctx(request)), "next_page_token": None}


@guarded(router, "POST", "/users", Permission.ADMIN, status_code=201)
def create_user(request: Request, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return users.create_user(ctx(request), spec, _principal(request).name)


@guarded(router, "GET", "/users/{user}", Permission.ADMIN, allow_self=True)
def get_user(request: Request, user: str) -> dict[str, Any]:
    return users.get_user(ctx(request), user)


@guarded(router, "DELETE", "/users/{user}", Permission.ADMIN, status_code=204)
def delete_user(request: Request, user: str) -> None:
    users.delete_user(ctx(request), user)


# -- tokens (a user manages its own; an admin anyone's) ---------------------------------------


@guarded(router, "GET", "/users/{user}/tokens", Permission.ADMIN, allow_self=True)
def list_tokens(request: Request, user: str) -> dict[str, Any]:
    return {"value": users.list_tokens(ctx(request), user), "next_page_token": None}


@guarded(router, "POST", "/users/{user}/tokens", Permission.ADMIN, allow_self=True, status_code=201)
def create_token(request: Request, user: str, spec: dict[str, Any] | None = Body(None)) -> dict[str, Any]:
    """A new token; the body holds the token itself, shown this once."""
    return users.create_token(ctx(request), user, spec or {})


@guarded(router, "DELETE", "/users/{user}/tokens/{token_id}", Permission.ADMIN, allow_self=True)
def revoke_token(request: Request, user: str, token_id: str) -> dict[str, Any]:
    return users.revoke_token(ctx(request), user, token_id)


# -- roles ----------------------------------------------------------------------------------


@guarded(router, "GET", "/roles", Permission.SIGNED_IN)
def list_roles(request: Request) -> dict[str, Any]:
    """The built-in roles with the permissions each holds, then the custom roles with their actions."""
    return {"value": custom_roles.list_roles(ctx(request)), "next_page_token": None}


@guarded(router, "GET", "/roles/{name}", Permission.SIGNED_IN)
def get_role(request: Request, name: str) -> dict[str, Any]:
    return custom_roles.get_role(ctx(request), name)


@guarded(router, "PUT", "/roles/{name}", Permission.ADMIN)
def put_role(request: Request, response: Response, name: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Create or replace a custom role: ``{"actions": [...], "not_actions": [...], "description": ...}``."""
    body, created = custom_roles.put_role(ctx(request), name, spec, _principal(request).name)
    response.status_code = 201 if created else 200
    return body


@guarded(router, "DELETE", "/roles/{name}", Permission.ADMIN, status_code=204)
def delete_role(request: Request, name: str) -> None:
    """Delete a custom role that no one holds any more."""
    custom_roles.delete_role(ctx(request), name)


@guarded(router, "GET", "/workspaces/{workspace}/role-assignments", Permission.READ)
def list_assignments(request: Request, workspace: str) -> dict[str, Any]:
    return {"value": users.list_assignments(ctx(request), workspace), "next_page_token": None}


@guarded(router, "PUT", "/workspaces/{workspace}/role-assignments/{user}", Permission.ROLES)
def assign_role(request: Request, workspace: str, user: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Give ``user`` the role ``{"role": ...}`` in the workspace (roles combine)."""
    role = spec.get("role")
    if not isinstance(role, str):
        raise UserError('the body must be {"role": "<role>"}, one of ' + ", ".join(repr(r) for r in ROLES))
    return users.assign(ctx(request), workspace, user, role, _principal(request).name)


@guarded(router, "DELETE", "/workspaces/{workspace}/role-assignments/{user}", Permission.ROLES, status_code=204)
def remove_role(request: Request, workspace: str, user: str, role: str | None = None) -> None:
    """Take away one role (``?role=``), or all of the user's roles in the workspace."""
    users.unassign(ctx(request), workspace, user, role)


# -- audit ----------------------------------------------------------------------------------


@guarded(router, "GET", "/workspaces/{workspace}/audit", Permission.AUDIT)
async def list_workspace_audit(
    request: Request,
    workspace: str,
    user: str | None = None,
    since: str | None = None,
    until: str | None = None,
    outcome: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    """One workspace's audit records, newest first (its Owners, and the server's admins)."""
    return await list_audit(request, user, workspace, since, until, outcome, max_results, page_token)


@guarded(router, "GET", "/audit", Permission.ADMIN)
async def list_audit(
    request: Request,
    user: str | None = None,
    workspace: str | None = None,
    since: str | None = None,
    until: str | None = None,
    outcome: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    """Audit records, newest first: writes, secret reads and denied requests."""
    log = request.app.state.audit
    await run_in_threadpool(log.flush)  # what this server has pending is part of the answer
    return await run_in_threadpool(
        lambda: audit.list_page(
            ctx(request),
            user=user,
            workspace=workspace,
            since=since,
            until=until,
            outcome=outcome,
            max_results=max_results,
            page_token=page_token,
        )
    )
