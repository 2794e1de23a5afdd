"""Compute targets."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Request

from shoal.compute import cluster_engine
from shoal.entities.kinds import KINDS
from shoal.errors import UserError
from shoal.server.auth import Permission
from shoal.server.routes.common import ctx, guarded, page_body
from shoal.services.compute import targets as compute_targets
from shoal.services.compute.instances import DevBoxes
from shoal.services.compute.targets import Viewer

router = APIRouter(tags=["compute"])
PREFIX = f"/workspaces/{{workspace}}/{KINDS['compute'].plural}"


def _viewer(request: Request) -> Viewer:
    principal = request.state.principal
    return Viewer(admin=principal.is_admin, user=principal.user)


def _devboxes(request: Request) -> DevBoxes:
    return request.app.state.devboxes  # type: ignore[no-any-return]


@guarded(router, "GET", PREFIX, Permission.COMPUTE_READ)
def list_computes(
    request: Request,
    workspace: str,
    type: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    page = compute_targets.list_page(
        ctx(request),
        workspace,
        compute_type=type,
        max_results=max_results,
        page_token=page_token,
        viewer=_viewer(request),
    )
    return page_body(page)


@guarded(router, "PUT", PREFIX + "/{name}", Permission.COMPUTE)
def put_compute(request: Request, workspace: str, name: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    if spec.get("name", name) != name:
        raise UserError(f"body name {spec.get('name')!r} does not match the URL's name {name!r}")
    new = not compute_targets.exists(ctx(request), workspace, name)
    body = compute_targets.create_or_update(ctx(request), workspace, {**spec, "name": name})
    if new and body["type"] == "computeinstance":  # a new instance starts, as on Azure
        started_by = request.state.principal.user
        return _devboxes(request).after_create(workspace, name, started_by=started_by, viewer=_viewer(request))
    return body


def _engine(request: Request) -> Any:
    """The server's cluster engine (its Ray backend), if it runs one: None otherwise."""
    dispatcher = getattr(request.app.state, "dispatcher", None)
    return cluster_engine(dispatcher.backend) if dispatcher is not None else None


@guarded(router, "GET", PREFIX + "/{name}", Permission.COMPUTE_READ)
def get_compute(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return compute_targets.get(ctx(request), workspace, name, _viewer(request), _engine(request))


@guarded(router, "PATCH", PREFIX + "/{name}", Permission.COMPUTE)
def patch_compute(request: Request, workspace: str, name: str, patch: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return compute_targets.update(ctx(request), workspace, name, patch)


@guarded(router, "GET", PREFIX + "/{name}/nodes", Permission.COMPUTE_READ)
def list_compute_nodes(request: Request, workspace: str, name: str) -> dict[str, Any]:
    nodes = compute_targets.list_nodes(ctx(request), workspace, name, _engine(request))
    return {"value": nodes, "next_page_token": None}


@guarded(router, "POST", PREFIX + "/{name}/{action}", Permission.COMPUTE)
def compute_action(
    request: Request, workspace: str, name: str, action: Literal["start", "stop", "restart"]
) -> dict[str, Any]:
    """A compute instance's power: start runs its dev box (JupyterLab), stop ends it."""
    principal = request.state.principal
    return _devboxes(request).action(workspace, name, action, started_by=principal.user, viewer=_viewer(request))


@guarded(router, "DELETE", PREFIX + "/{name}", Permission.COMPUTE, status_code=204)
def delete_compute(request: Request, workspace: str, name: str) -> None:
    _devboxes(request).before_delete(workspace, name)
    compute_targets.delete(ctx(request), workspace, name)
