"""Workspaces."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from shoal.errors import UserError
from shoal.server.auth import Permission
from shoal.server.routes.common import base_url, ctx, guarded
from shoal.services import workspaces

router = APIRouter(tags=["workspaces"])


@guarded(router, "GET", "/workspaces", Permission.SIGNED_IN)
def list_workspaces(request: Request) -> dict[str, Any]:
    """The workspaces the caller has a role in (an admin: all of them)."""
    found = workspaces.list_all(ctx(request), base_url(request))
    visible = request.state.principal.visible_workspaces()
    if visible is not None:
        found = [w for w in found if w.get("name") in visible]
    return {"value": found, "next_page_token": None}


@guarded(router, "PUT", "/workspaces/{workspace}", Permission.ADMIN)
def put_workspace(request: Request, workspace: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    if spec.get("name", workspace) != workspace:
        raise UserError(f"body name {spec.get('name')!r} does not match the URL's workspace {workspace!r}")
    return workspaces.create_or_update(ctx(request), {**spec, "name": workspace}, base_url(request))


@guarded(router, "GET", "/workspaces/{workspace}", Permission.READ)
def get_workspace(request: Request, workspace: str) -> dict[str, Any]:
    return workspaces.get(ctx(request), workspace, base_url(request))


@guarded(router, "PATCH", "/workspaces/{workspace}", Permission.MANAGE)
def patch_workspace(request: Request, workspace: str, patch: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return workspaces.update(ctx(request), workspace, patch, base_url(request))


@guarded(router, "DELETE", "/workspaces/{workspace}", Permission.ADMIN, status_code=204)
def delete_workspace(request: Request, workspace: str) -> None:
    workspaces.delete(ctx(request), workspace)
