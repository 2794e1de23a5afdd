"""The MLflow REST API (2.0) of a workspace: ``MLFLOW_TRACKING_URI=<server>/api/v1/workspaces/<ws>/mlflow``.

Errors on these routes use MLflow's own format, ``{"error_code": ..., "message": ...}``, because
the MLflow client reads that one; every other route keeps Shoal's ``{"error": {...}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from shoal.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ShoalError,
    UserError,
    storage_full_from,
)
from shoal.server.auth import Permission
from shoal.server.request_checks import CheckedRoute, parse_json
from shoal.server.routes.common import base_url, ctx, file_response, guarded
from shoal.services.access import job_token_scope
from shoal.services.context import ServiceContext
from shoal.services.registry import model_files, model_versions, registered_models
from shoal.services.tracking import (
    experiments,
    history_sampling,
    logged_model_metrics,
    logged_models,
    metrics,
    run_search,
    runs,
)

logger = logging.getLogger(__name__)
PREFIX = "/workspaces/{workspace}/mlflow"
BASES = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")


def mlflow_error(exc: Exception) -> JSONResponse:
    """MLflow's error body and status for any exception a route raised."""
    if isinstance(exc, NotFoundError):
        code, status = "RESOURCE_DOES_NOT_EXIST", 404
    elif isinstance(exc, ConflictError):
        code, status = "RESOURCE_ALREADY_EXISTS", 400
    elif isinstance(exc, AuthError):
        code, status = "UNAUTHENTICATED", 401
    elif isinstance(exc, PermissionDeniedError):
        code, status = "PERMISSION_DENIED", 403
    elif isinstance(exc, (UserError, RequestValidationError, ClientDisconnect)):
        # ClientDisconnect: the client left, or the request gate answered 413/408 itself.
        code, status = "INVALID_PARAMETER_VALUE", 400
    elif isinstance(exc, ShoalError):
        code, status = "INTERNAL_ERROR", exc.http_status
    elif (full := storage_full_from(exc)) is not None:
        logger.error("disk full in an MLflow route: %s", exc)
        return JSONResponse({"error_code": "INTERNAL_ERROR", "message": full.message}, status_code=full.http_status)
    else:
        logger.exception("unhandled error in an MLflow route", exc_info=exc)
        return JSONResponse({"error_code": "INTERNAL_ERROR", "message": "internal server error"}, status_code=500)
    message = exc.message if isinstance(exc, ShoalError) else str(exc)
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


class MlflowRoute(CheckedRoute):
    """Translates every error of the route (auth included) into MLflow's format."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error leaves in MLflow's format
                if isinstance(exc, AuthError | PermissionDeniedError):
                    request.state.denied = exc.message  # for the audit record
                return mlflow_error(exc)

        return translated


router = APIRouter(tags=["mlflow"], route_class=MlflowRoute)

READ, TRACK = Permission.READ, Permission.TRACK
# Registry changes beyond registering a new model or version need the ``write`` permission (job
# tokens lack it): a job may register what it produced, not move another model's aliases.
WRITE = Permission.WRITE
ENDPOINTS: list[tuple[str, str, Callable[..., dict[str, Any]], Permission]] = [
    ("experiments/create", "POST", experiments.create_experiment, TRACK),
    ("experiments/get", "GET", experiments.get_experiment, READ),
    ("experiments/get-by-name", "GET", experiments.get_experiment_by_name, READ),
    ("experiments/search", "POST", experiments.search_experiments, READ),
    ("experiments/search", "GET", experiments.search_experiments, READ),
    ("experiments/update", "POST", experiments.update_experiment, TRACK),
    ("experiments/delete", "POST", experiments.delete_experiment, TRACK),
    ("experiments/restore", "POST", experiments.restore_experiment, TRACK),
    ("experiments/set-experiment-tag", "POST", experiments.set_experiment_tag, TRACK),
    ("runs/create", "POST", runs.create_run, TRACK),
    ("runs/get", "GET", runs.get_run, READ),
    ("runs/update", "POST", runs.update_run, TRACK),
    ("runs/delete", "POST", runs.delete_run, TRACK),
    ("runs/restore", "POST", runs.restore_run, TRACK),
    ("runs/search", "POST", run_search.search_runs, READ),
    # Points with a model_id also go to that logged model (services/tracking/logged_model_metrics.py).
    ("runs/log-metric", "POST", logged_model_metrics.log_metric, TRACK),
    ("runs/log-batch", "POST", logged_model_metrics.log_batch, TRACK),
    ("runs/log-parameter", "POST", runs.log_param, TRACK),
    ("runs/set-tag", "POST", runs.set_tag, TRACK),
    ("runs/delete-tag", "POST", runs.delete_tag, TRACK),
    ("runs/log-inputs", "POST", runs.log_inputs, TRACK),
    ("metrics/get-history", "GET", metrics.get_metric_history, READ),
    ("metrics/get-history-bulk-interval", "GET", history_sampling.get_metric_history_bulk_interval, READ),
    ("logged-models/search", "POST", logged_models.search_logged_models, READ),
    ("logged-models", "POST", logged_models.create_logged_model, TRACK),
    ("logged-models/{model_id}", "GET", logged_models.get_logged_model, READ),
    ("logged-models/{model_id}", "PATCH", logged_models.finalize_logged_model, TRACK),
    ("logged-models/{model_id}", "DELETE", logged_models.delete_logged_model, TRACK),
    ("logged-models/{model_id}/params", "POST", logged_models.log_logged_model_params, TRACK),
    ("logged-models/{model_id}/tags", "PATCH", logged_models.set_logged_model_tags, TRACK),
    ("logged-models/{model_id}/tags/{tag_key}", "DELETE", logged_models.delete_logged_model_tag, TRACK),
    ("logged-models/{model_id}/artifacts/directories", "GET", logged_models.list_logged_model_artifacts, READ),
    ("runs/outputs", "POST", logged_models.log_outputs, TRACK),
    ("runs/log-model", "POST", logged_models.log_model, TRACK),
    # The model registry, on model assets (services/registry/).
    ("registered-models/create", "POST", registered_models.create_registered_model, TRACK),
    ("registered-models/get", "GET", registered_models.get_registered_model, READ),
    ("registered-models/update", "PATCH", registered_models.update_registered_model, WRITE),
    ("registered-models/rename", "POST", registered_models.rename_registered_model, WRITE),
    ("registered-models/delete", "DELETE", registered_models.delete_registered_model, WRITE),
    ("registered-models/search", "GET", registered_models.search_registered_models, READ),
    ("registered-models/get-latest-versions", "GET", registered_models.get_latest_versions, READ),
    ("registered-models/get-latest-versions", "POST", registered_models.get_latest_versions, READ),
    ("registered-models/set-tag", "POST", registered_models.set_registered_model_tag, WRITE),
    ("registered-models/delete-tag", "DELETE", registered_models.delete_registered_model_tag, WRITE),
    ("registered-models/alias", "POST", registered_models.set_registered_model_alias, WRITE),
    ("registered-models/alias", "DELETE", registered_models.delete_registered_model_alias, WRITE),
    ("registered-models/alias", "GET", registered_models.get_model_version_by_alias, READ),
    ("model-versions/create", "POST", model_versions.create_model_version, TRACK),
    ("model-versions/get", "GET", model_versions.get_model_version, READ),
    ("model-versions/update", "PATCH", model_versions.update_model_version, WRITE),
    ("model-versions/transition-stage", "POST", model_versions.transition_model_version_stage, WRITE),
    ("model-versions/delete", "DELETE", model_versions.delete_model_version, WRITE),
    ("model-versions/search", "GET", model_versions.search_model_versions, READ),
    ("model-versions/set-tag", "POST", model_versions.set_model_version_tag, WRITE),
    ("model-versions/delete-tag", "DELETE", model_versions.delete_model_version_tag, WRITE),
]


def _query(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        data[key] = values if len(values) > 1 or key in ("experiment_ids", "order_by") else values[0]
    return data


def dumps(body: Any) -> bytes:
    """orjson (a 100,000-point history is encoded several times faster), else the standard encoder
    for what orjson cannot encode (integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _payload(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    data = parse_json(raw)  # NUL, 64-bit and depth checks included (server/request_checks.py)
    if not isinstance(data, dict):
        raise UserError("the request body must be a JSON object")
    return data


def _serve(
    fn: Callable[..., dict[str, Any]],
    context: ServiceContext,
    workspace: str,
    data: dict[str, Any] | None,
    raw: bytes,
    path_params: dict[str, Any],
    job: str | None = None,
    path: str = "",
) -> bytes:
    """The whole request in one worker thread: parse, check a job token's scope, run the
    service, encode the answer."""
    if data is None:
        data = _payload(raw)
    # Path parameters ({model_id}, {tag_key}) win over the body's.
    data.update(path_params)
    if job is not None:
        job_token_scope.check_mlflow(context, workspace, job, path, data)
    return dumps(fn(context, workspace, data))


def _register(path: str, method: str, fn: Callable[..., dict[str, Any]], permission: Permission, base: str) -> None:
    slug = path.replace("/", "_").replace("-", "_").replace("{", "").replace("}", "")
    route_name = f"mlflow_{base.strip('/').split('/')[0]}_{method.lower()}_{slug}"

    @guarded(
        router,
        method,
        PREFIX + base + path,
        permission,
        name=route_name,
        operation_id=route_name,
        include_in_schema=base == BASES[0],
    )
    async def endpoint(request: Request, workspace: str) -> Response:
        if request.method == "GET":
            data, raw = _query(request), b""
        else:
            data, raw = None, await request.body()
        path_params = {k: v for k, v in request.path_params.items() if k != "workspace"}
        principal = getattr(request.state, "principal", None)
        # A job token writes its own run and what it creates only (services/access/job_token_scope.py).
        job = principal.job if permission == Permission.TRACK and principal is not None else None
        body = await run_in_threadpool(_serve, fn, ctx(request), workspace, data, raw, path_params, job, path)
        return Response(body, media_type="application/json")


for _base in BASES:
    for _path, _method, _fn, _perm in ENDPOINTS:
        _register(_path, _method, _fn, _perm, _base)


# A logged model's files, as MLflow's server offers them to its UI (under both bases here).
for _base in BASES:

    @guarded(
        router,
        "GET",
        PREFIX + _base + "logged-models/{model_id}/artifacts/files",
        READ,
        name=f"mlflow_{_base.strip('/').split('/')[0]}_get_logged_model_artifact_file",
        include_in_schema=_base == BASES[0],
    )
    async def logged_model_file(
        request: Request, workspace: str, model_id: str, artifact_file_path: str | None = None
    ) -> Response:
        store, rel = await run_in_threadpool(
            logged_models.logged_model_artifact, ctx(request), workspace, model_id, artifact_file_path
        )
        return file_response(store, rel)


# The download URI of a model version: it names this server when the files are on a datastore
# other than the artifact store, so it needs the request's base URL.
for _base in BASES:

    @guarded(
        router,
        "GET",
        PREFIX + _base + "model-versions/get-download-uri",
        READ,
        name=f"mlflow_{_base.strip('/').split('/')[0]}_get_model_version_download_uri",
        include_in_schema=_base == BASES[0],
    )
    async def model_version_download_uri(request: Request, workspace: str) -> Response:
        data = dict(request.query_params)
        tracking_uri = f"{base_url(request)}/api/v1/workspaces/{workspace}/mlflow"
        body = await run_in_threadpool(
            model_files.get_model_version_download_uri, ctx(request), workspace, data, tracking_uri
        )
        return JSONResponse(body)


# A registered version's files on any datastore, read-only, in the artifact proxy's protocol
# (what the download URI above points an MLflow client at).
FILES = PREFIX + "/" + model_files.FILES + "/{name}/{version}/api/2.0/mlflow-artifacts/artifacts"


@guarded(router, "GET", FILES, READ, name="mlflow_model_version_files_list")
async def list_model_version_files(
    request: Request, workspace: str, name: str, version: str, path: str | None = None
) -> Response:
    body = await run_in_threadpool(model_files.list_version_files, ctx(request), workspace, name, version, path)
    return JSONResponse(body)


@guarded(router, "GET", FILES + "/{path:path}", READ, name="mlflow_model_version_files_download")
async def download_model_version_file(request: Request, workspace: str, name: str, version: str, path: str) -> Response:
    store, rel = await run_in_threadpool(model_files.version_file, ctx(request), workspace, name, version, path)
    return file_response(store, rel)
