"""Jobs: submit, read, list, stream logs, cancel, update, archive."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from shoal.entities.kinds import KINDS
from shoal.errors import UserError
from shoal.server.auth import Permission
from shoal.server.routes.common import base_url, ctx, guarded, page_body
from shoal.services.access import users
from shoal.services.jobs import changes, queries, runner_api, submission

router = APIRouter(tags=["jobs"])
PREFIX = f"/workspaces/{{workspace}}/{KINDS['job'].plural}"
MAX_LOG_READ = 4 * 1024 * 1024


@guarded(router, "POST", PREFIX, Permission.WRITE)
def submit_job(request: Request, workspace: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Submit a job; the name is generated when the body has none."""
    body = submission.submit(ctx(request), workspace, spec, base_url(request))
    principal = request.state.principal
    if principal.user is not None:  # its job token carries this user's role (services/access/job_attempts.py)
        users.record_submitter(ctx(request), workspace, str(body["name"]), principal.user)
    return body


@guarded(router, "GET", PREFIX, Permission.READ)
def list_jobs(
    request: Request,
    workspace: str,
    parent_job_name: str | None = None,
    list_view_type: str = "ActiveOnly",
    status: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    page = queries.list_page(
        ctx(request),
        workspace,
        parent_job_name=parent_job_name,
        list_view_type=list_view_type,
        status=status,
        max_results=max_results,
        page_token=page_token,
    )
    return page_body(page)


@guarded(router, "GET", PREFIX + "/{name}", Permission.READ)
def get_job(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return queries.get(ctx(request), workspace, name, base_url(request))


@guarded(router, "PATCH", PREFIX + "/{name}", Permission.WRITE)
def update_job(request: Request, workspace: str, name: str, patch: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return changes.update(ctx(request), workspace, name, patch)


@guarded(router, "POST", PREFIX + "/{name}/cancel", Permission.WRITE)
def cancel_job(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return changes.request_cancel(ctx(request), workspace, name)


@guarded(router, "POST", PREFIX + "/{name}/archive", Permission.WRITE)
def archive_job(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return changes.set_archived(ctx(request), workspace, name, True)


@guarded(router, "POST", PREFIX + "/{name}/restore", Permission.WRITE)
def restore_job(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return changes.set_archived(ctx(request), workspace, name, False)


@guarded(router, "GET", PREFIX + "/{name}/logs", Permission.READ)
def read_job_log(
    request: Request,
    workspace: str,
    name: str,
    path: str = "user_logs/std_log.txt",
    offset: int = 0,
    limit: int = 65536,
) -> Response:
    """Bytes of one log file from ``offset``; the ``X-Log-Size`` header gives its current size."""
    if offset < 0 or limit < 1:
        raise UserError("offset must be >= 0 and limit >= 1")
    data, size = runner_api.read_log(ctx(request), workspace, name, path, offset, min(limit, MAX_LOG_READ))
    return Response(data, media_type="application/octet-stream", headers={"X-Log-Size": str(size)})
