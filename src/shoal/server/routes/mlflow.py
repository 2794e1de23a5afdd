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
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from shoal.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ShoalError,
    UserError,
)
from shoal.server.auth import Permission
from shoal.server.routes.common import ctx, guarded
from shoal.services import logged_models, tracking
from shoal.services.context import ServiceContext

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
    elif isinstance(exc, (UserError, RequestValidationError)):
        code, status = "INVALID_PARAMETER_VALUE", 400
    elif isinstance(exc, ShoalError):
        code, status = "INTERNAL_ERROR", exc.http_status
    else:
        logger.exception("unhandled error in an MLflow route", exc_info=exc)
        return JSONResponse({"error_code": "INTERNAL_ERROR", "message": "internal server error"}, status_code=500)
    message = exc.message if isinstance(exc, ShoalError) else str(exc)
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


class MlflowRoute(APIRoute):
    """Translates every error of the route (auth included) into MLflow's format."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error leaves in MLflow's format
                return mlflow_error(exc)

        return translated


router = APIRouter(tags=["mlflow"], route_class=MlflowRoute)

R, W = Permission.READ, Permission.TRACK
ENDPOINTS: list[tuple[str, str, Callable[..., dict[str, Any]], Permission]] = [
    ("experiments/create", "POST", tracking.create_experiment, W),
    ("experiments/get", "GET", tracking.get_experiment, R),
    ("experiments/get-by-name", "GET", tracking.get_experiment_by_name, R),
    ("experiments/search", "POST", tracking.search_experiments, R),
    ("experiments/search", "GET", tracking.search_experiments, R),
    ("experiments/update", "POST", tracking.update_experiment, W),
    ("experiments/delete", "POST", tracking.delete_experiment, W),
    ("experiments/restore", "POST", tracking.restore_experiment, W),
    ("experiments/set-experiment-tag", "POST", tracking.set_experiment_tag, W),
    ("runs/create", "POST", tracking.create_run, W),
    ("runs/get", "GET", tracking.get_run, R),
    ("runs/update", "POST", tracking.update_run, W),
    ("runs/delete", "POST", tracking.delete_run, W),
    ("runs/restore", "POST", tracking.restore_run, W),
    ("runs/search", "POST", tracking.search_runs, R),
    ("runs/log-metric", "POST", tracking.log_metric, W),
    ("runs/log-batch", "POST", tracking.log_batch, W),
    ("runs/log-parameter", "POST", tracking.log_param, W),
    ("runs/set-tag", "POST", tracking.set_tag, W),
    ("runs/delete-tag", "POST", tracking.delete_tag, W),
    ("runs/log-inputs", "POST", tracking.log_inputs, W),
    ("metrics/get-history", "GET", tracking.get_metric_history, R),
    ("logged-models/search", "POST", logged_models.search_logged_models, R),
    ("logged-models", "POST", logged_models.create_logged_model, W),
    ("logged-models/{model_id}", "GET", logged_models.get_logged_model, R),
    ("logged-models/{model_id}", "PATCH", logged_models.finalize_logged_model, W),
    ("logged-models/{model_id}", "DELETE", logged_models.delete_logged_model, W),
    ("logged-models/{model_id}/params", "POST", logged_models.log_logged_model_params, W),
    ("logged-models/{model_id}/tags", "PATCH", logged_models.set_logged_model_tags, W),
    ("logged-models/{model_id}/tags/{tag_key}", "DELETE", logged_models.delete_logged_model_tag, W),
    ("runs/outputs", "POST", logged_models.log_outputs, W),
    ("runs/log-model", "POST", logged_models.log_model, W),
]


def _query(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        data[key] = values if len(values) > 1 or key in ("experiment_ids", "order_by") else values[0]
    return data


def loads(raw: bytes) -> Any:
    """orjson, and the standard parser for what orjson refuses but MLflow's server accepts (bare
    ``NaN``/``Infinity`` literals, as Python's ``json.dumps`` writes them)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


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
    try:
        data = loads(raw)
    except ValueError as exc:
        raise UserError(f"the request body is not valid JSON: {exc}") from exc
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
) -> bytes:
    """The whole request in one worker thread: parse, run the service, encode the answer."""
    if data is None:
        data = _payload(raw)
    # Path parameters ({model_id}, {tag_key}) win over the body's.
    data.update(path_params)
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
        body = await run_in_threadpool(_serve, fn, ctx(request), workspace, data, raw, path_params)
        return Response(body, media_type="application/json")


for _base in BASES:
    for _path, _method, _fn, _perm in ENDPOINTS:
        _register(_path, _method, _fn, _perm, _base)
