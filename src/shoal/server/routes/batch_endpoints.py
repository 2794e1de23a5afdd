"""Batch endpoints, their deployments, and invoking them (a job)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from shoal.server.auth import Permission
from shoal.server.routes.common import base_url, ctx, guarded
from shoal.services.endpoints import batch

router = APIRouter(tags=["batch endpoints"])
PREFIX = "/workspaces/{workspace}/batchEndpoints"
DEPLOYMENTS = PREFIX + "/{endpoint}/deployments"


@guarded(router, "GET", PREFIX, Permission.READ)
def list_endpoints(request: Request, workspace: str) -> dict[str, Any]:
    return {"value": batch.list_endpoints(ctx(request), workspace, base_url(request)), "next_page_token": None}


@guarded(router, "PUT", PREFIX + "/{name}", Permission.WRITE)
def put_endpoint(request: Request, workspace: str, name: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return batch.put_endpoint(ctx(request), workspace, name, spec, base_url(request))


@guarded(router, "GET", PREFIX + "/{name}", Permission.READ)
def get_endpoint(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return batch.get_endpoint(ctx(request), workspace, name, base_url(request))


@guarded(router, "DELETE", PREFIX + "/{name}", Permission.WRITE, status_code=204)
def delete_endpoint(request: Request, workspace: str, name: str) -> None:
    batch.delete_endpoint(ctx(request), workspace, name)


@guarded(router, "POST", PREFIX + "/{name}/jobs", Permission.WRITE)
def invoke(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return batch.invoke(ctx(request), workspace, name, body, base_url(request))


@guarded(router, "GET", PREFIX + "/{name}/jobs", Permission.READ)
def list_jobs(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return {"value": batch.list_jobs(ctx(request), workspace, name, base_url(request)), "next_page_token": None}


@guarded(router, "GET", DEPLOYMENTS, Permission.READ)
def list_deployments(request: Request, workspace: str, endpoint: str) -> dict[str, Any]:
    return {"value": batch.list_deployments(ctx(request), workspace, endpoint), "next_page_token": None}


@guarded(router, "PUT", DEPLOYMENTS + "/{name}", Permission.WRITE)
def put_deployment(
    request: Request,
    workspace: str,
    endpoint: str,
    name: str,
    spec: dict[str, Any] = Body(...),
    set_default: bool = False,
) -> dict[str, Any]:
    return batch.put_deployment(ctx(request), workspace, endpoint, name, spec, set_default=set_default)


@guarded(router, "GET", DEPLOYMENTS + "/{name}", Permission.READ)
def get_deployment(request: Request, workspace: str, endpoint: str, name: str) -> dict[str, Any]:
    return batch.get_deployment(ctx(request), workspace, endpoint, name)


@guarded(router, "DELETE", DEPLOYMENTS + "/{name}", Permission.WRITE, status_code=204)
def delete_deployment(request: Request, workspace: str, endpoint: str, name: str) -> None:
    batch.delete_deployment(ctx(request), workspace, endpoint, name)
