"""Routes runners call with their job token: run spec, status, heartbeat, log chunks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from shoal.entities.kinds import KINDS
from shoal.errors import PermissionDeniedError
from shoal.server.auth import Permission, Principal
from shoal.server.routes.common import base_url, ctx, guarded
from shoal.services.access.job_token_scope import check_datastore_write
from shoal.services.jobs import inline_files, runner_api

router = APIRouter(tags=["runner"])
PREFIX = f"/workspaces/{{workspace}}/{KINDS['job'].plural}/{{name}}"


def _attempt(request: Request, name: str, attempt: int | None) -> int:
    """A job token speaks for its own job and attempt only; an admin must say which attempt."""
    principal: Principal = request.state.principal
    if principal.job is not None:
        if principal.job != name:
            raise PermissionDeniedError(f"this job token belongs to job '{principal.job}'")
        return int(principal.attempt or 0)
    if not principal.is_admin:
        raise PermissionDeniedError("runner routes need the job's own token (or an admin's, with an attempt)")
    if attempt is None:
        raise PermissionDeniedError("runner routes need a job token (or an explicit attempt)")
    return attempt


@guarded(router, "GET", PREFIX + "/runspec", Permission.READ)
def get_run_spec(request: Request, workspace: str, name: str, attempt: int | None = None) -> dict[str, Any]:
    return runner_api.run_spec(ctx(request), workspace, name, _attempt(request, name, attempt), base_url(request))


@guarded(router, "POST", PREFIX + "/heartbeat", Permission.TRACK)
def post_heartbeat(request: Request, workspace: str, name: str, attempt: int | None = None) -> dict[str, Any]:
    return runner_api.heartbeat(ctx(request), workspace, name, _attempt(request, name, attempt))


@guarded(router, "POST", PREFIX + "/status", Permission.TRACK)
def post_status(
    request: Request, workspace: str, name: str, event: dict[str, Any] = Body(...), attempt: int | None = None
) -> dict[str, Any]:
    chosen = _attempt(request, name, attempt)
    # Small outputs and artifacts that come with a Completed report (``inline_files``): a job
    # token writes its own outputs and its runs' artifacts only, as with ``PUT …/contents``.
    writes = inline_files.parse_writes(event.get("files"))
    job = request.state.principal.job
    if job is not None:
        for datastore, prefix, items in writes:
            for rel in [prefix] if prefix else [rel for rel, _ in items]:
                check_datastore_write(ctx(request), workspace, job, datastore, rel)
    return runner_api.report(
        ctx(request),
        workspace,
        name,
        chosen,
        str(event.get("status")),
        exit_code=event.get("exit_code"),
        error=event.get("error"),
        outputs=event.get("outputs"),
        writes=writes,
    )


@guarded(router, "POST", PREFIX + "/logs", Permission.TRACK)
async def post_log_chunk(
    request: Request, workspace: str, name: str, path: str, offset: int, attempt: int | None = None
) -> dict[str, Any]:
    data = await request.body()
    chosen = _attempt(request, name, attempt)
    import anyio.to_thread

    return await anyio.to_thread.run_sync(
        lambda: runner_api.append_log(ctx(request), workspace, name, chosen, path, offset, data)
    )
