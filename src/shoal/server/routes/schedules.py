"""Job schedules: create or update, show, list, enable, disable, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from shoal.entities.kinds import KINDS
from shoal.errors import UserError
from shoal.server.auth import Permission
from shoal.server.routes.common import base_url, ctx, guarded, page_body
from shoal.services.schedules import firing
from shoal.services.schedules import records as schedules

router = APIRouter(tags=["schedules"])
PREFIX = f"/workspaces/{{workspace}}/{KINDS['schedule'].plural}"


@guarded(router, "GET", PREFIX, Permission.READ)
def list_schedules(
    request: Request,
    workspace: str,
    list_view_type: str = "enabled_only",
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    page = schedules.list_page(
        ctx(request), workspace, list_view_type=list_view_type, max_results=max_results, page_token=page_token
    )
    return page_body(page)


@guarded(router, "PUT", PREFIX + "/{name}", Permission.WRITE)
def put_schedule(request: Request, workspace: str, name: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    if spec.get("name", name) != name:
        raise UserError(f"body name {spec.get('name')!r} does not match the URL's name {name!r}")
    return schedules.create_or_update(ctx(request), workspace, {**spec, "name": name})


@guarded(router, "GET", PREFIX + "/{name}", Permission.READ)
def get_schedule(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return schedules.get(ctx(request), workspace, name)


@guarded(router, "POST", PREFIX + "/{name}/enable", Permission.WRITE)
def enable_schedule(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return schedules.set_enabled(ctx(request), workspace, name, True)


@guarded(router, "POST", PREFIX + "/{name}/disable", Permission.WRITE)
def disable_schedule(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return schedules.set_enabled(ctx(request), workspace, name, False)


@guarded(router, "POST", PREFIX + "/{name}/trigger", Permission.WRITE)
def trigger_schedule(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return firing.trigger_now(ctx(request), workspace, name, base_url(request))


@guarded(router, "DELETE", PREFIX + "/{name}", Permission.WRITE, status_code=204)
def delete_schedule(request: Request, workspace: str, name: str) -> None:
    schedules.delete(ctx(request), workspace, name)
