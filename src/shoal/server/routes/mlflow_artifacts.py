"""MLflow's artifact proxy under a workspace's MLflow base URL, and its ``server-info`` probe.

``PUT/GET/DELETE …/api/2.0/mlflow-artifacts/artifacts/<path>`` and ``GET …/artifacts?path=<dir>``,
as ``mlflow server --serve-artifacts`` answers them. Errors are MLflow's format (``MlflowRoute``).
Multipart and presigned uploads are not offered (``server-info`` says so), so the client always
streams one ``PUT`` per file, which is written to a temporary name and renamed into place.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from shoal.errors import UserError
from shoal.server.auth import Permission
from shoal.server.routes.common import ctx, file_response, guarded, write_body
from shoal.server.routes.mlflow import PREFIX, MlflowRoute
from shoal.services.access import job_token_scope
from shoal.services.tracking import artifacts

router = APIRouter(tags=["mlflow"], route_class=MlflowRoute)
ARTIFACTS = PREFIX + "/api/2.0/mlflow-artifacts/artifacts"
R, W = Permission.READ, Permission.TRACK


def _path_param(request: Request, path: str) -> str:
    """The decoded path, refused when the raw URL hid a separator in it (``%2F``, ``%5C``): a run
    id "a%2F..%2Fb" must not become two segments after decoding."""
    raw = request.scope.get("raw_path", b"").decode("latin-1").lower()
    if "%2f" in raw or "%5c" in raw:
        raise UserError(f"invalid artifact path {path[:200]!r}: contains an encoded separator ('%2F' or '%5C')")
    return path


async def _check_scope(request: Request, workspace: str, rel: str) -> None:
    """A job token writes under its own runs and models only (services/job_token_scope.py)."""
    job = getattr(getattr(request.state, "principal", None), "job", None)
    if job is not None:
        await run_in_threadpool(job_token_scope.check_artifact_write, ctx(request), workspace, job, rel)


@guarded(router, "GET", ARTIFACTS, R, name="mlflow_artifacts_list")
def list_artifacts(request: Request, workspace: str, path: str | None = None) -> JSONResponse:
    return JSONResponse(artifacts.list_dir(ctx(request), workspace, path))


@guarded(router, "PUT", ARTIFACTS + "/{path:path}", W, name="mlflow_artifacts_upload")
async def upload_artifact(request: Request, workspace: str, path: str) -> JSONResponse:
    rel = _path_param(request, path)
    await _check_scope(request, workspace, rel)
    context = ctx(request)
    body = await write_body(request, lambda chunks: artifacts.upload(context, workspace, rel, chunks))
    return JSONResponse(body)


@guarded(router, "GET", ARTIFACTS + "/{path:path}", R, name="mlflow_artifacts_download")
async def download_artifact(request: Request, workspace: str, path: str) -> Response:
    rel = _path_param(request, path)
    store, rel = await run_in_threadpool(artifacts.locate, ctx(request), workspace, rel)
    return file_response(store, rel)


@guarded(router, "DELETE", ARTIFACTS + "/{path:path}", W, name="mlflow_artifacts_delete")
async def delete_artifact(request: Request, workspace: str, path: str) -> JSONResponse:
    rel = _path_param(request, path)
    await _check_scope(request, workspace, rel)
    return JSONResponse(await run_in_threadpool(artifacts.delete, ctx(request), workspace, rel))


@guarded(router, "GET", PREFIX + "/api/3.0/mlflow/server-info", R, name="mlflow_server_info")
def server_info(request: Request, workspace: str) -> JSONResponse:
    return JSONResponse(
        {
            "store_type": "SqlStore",
            "workspaces_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
        }
    )
