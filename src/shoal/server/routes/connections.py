"""Workspace connections (credentials returned only with include_secrets and the secrets permission)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from shoal.entities.kinds import KINDS
from shoal.errors import PermissionDeniedError, UserError
from shoal.server.auth import Permission, Principal
from shoal.server.routes.common import ctx, guarded, page_body
from shoal.services.connections import records as connections

router = APIRouter(tags=["connections"])
PREFIX = f"/workspaces/{{workspace}}/{KINDS['connection'].plural}"


def _check_secrets_permission(request: Request, include_secrets: bool) -> None:
    principal: Principal = request.state.principal
    if include_secrets and Permission.SECRETS not in principal.permissions:
        raise PermissionDeniedError("reading connection credentials needs the 'secrets' permission")


@guarded(router, "GET", PREFIX, Permission.READ)
def list_connections(
    request: Request,
    workspace: str,
    type: str | None = None,
    include_secrets: bool = False,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    _check_secrets_permission(request, include_secrets)
    page = connections.list_page(
        ctx(request),
        workspace,
        connection_type=type,
        include_secrets=include_secrets,
        max_results=max_results,
        page_token=page_token,
    )
    return page_body(page)


@guarded(router, "PUT", PREFIX + "/{name}", Permission.WRITE)
def put_connection(request: Request, workspace: str, name: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    if spec.get("name", name) != name:
        raise UserError(f"body name {spec.get('name')!r} does not match the URL's name {name!r}")
    return connections.create_or_update(ctx(request), workspace, {**spec, "name": name})


@guarded(router, "GET", PREFIX + "/{name}", Permission.READ)
def get_connection(request: Request, workspace: str, name: str, include_secrets: bool = False) -> dict[str, Any]:
    _check_secrets_permission(request, include_secrets)
    return connections.get(ctx(request), workspace, name, include_secrets=include_secrets)


@guarded(router, "DELETE", PREFIX + "/{name}", Permission.WRITE, status_code=204)
def delete_connection(request: Request, workspace: str, name: str) -> None:
    connections.delete(ctx(request), workspace, name)
