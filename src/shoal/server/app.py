"""``create_app(settings)``: mounts the routers, the error format and the start-up work."""

from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from shoal import __version__
from shoal.config import ShoalSettings
from shoal.errors import InternalError, NotFoundError, PayloadTooLargeError, ShoalError, SpecError, UserError
from shoal.jobtokens import JobTokenSigner
from shoal.server.auth import ALL_PERMISSIONS, Principal, TokenTable, ensure_admin_token
from shoal.server.routes import (
    assets,
    compute,
    connections,
    datastores,
    health,
    jobs,
    mlflow,
    mlflow_artifacts,
    runner,
    schedules,
)
from shoal.server.routes import workspaces as ws_routes
from shoal.services import workspaces
from shoal.services.context import ServiceContext
from shoal.services.jobs.dispatcher import Dispatcher
from shoal.services.schedules.firing import ScheduleTimer
from shoal.services.storage.cleanup import Sweeper

logger = logging.getLogger(__name__)

API_VERSION = "v1"
# JSON bodies are small; file content goes through the upload routes, which stream.
MAX_JSON_BODY = 4 * 1024 * 1024
# The one route whose body is raw file content, streamed to storage; every other body is JSON.
RAW_BODY_ROUTES = re.compile(
    r"^/api/v1/workspaces/[^/]+/(datastores/[^/]+/uploads/[^/]+/files|datastores/[^/]+/content|jobs/[^/]+/logs"
    r"|mlflow/api/2\.0/mlflow-artifacts/artifacts/.*)$"
)


def _error(exc: ShoalError) -> JSONResponse:
    return JSONResponse(exc.to_wire(), status_code=exc.http_status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ShoalError)
    async def _shoal(_: Request, exc: ShoalError) -> JSONResponse:
        if isinstance(exc, InternalError):
            logger.error("internal error: %s", exc.message)
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "path": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "message": err.get("msg", ""),
            }
            for err in exc.errors()
        ]
        text = "; ".join(f"{p['path'] or 'body'}: {p['message']}" for p in problems)
        return _error(SpecError(f"invalid request: {text}", details={"errors": problems}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(NotFoundError("no such route"))
        if exc.status_code == 405:
            err = UserError("method not allowed on this route")
            return JSONResponse(err.to_wire(), status_code=405)
        err = UserError(str(exc.detail))
        return JSONResponse(err.to_wire(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return _error(InternalError("internal server error; see the server log"))


class BodyGuard:
    """JSON bodies at most ``MAX_JSON_BODY`` (413) and ``application/json`` (415), except on the
    routes that stream raw bytes. A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs
    every request a task group and a memory stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            refusal = self._check(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _check(scope: Scope) -> JSONResponse | None:
        if RAW_BODY_ROUTES.match(scope["path"]):
            return None
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_JSON_BODY:
            return _error(PayloadTooLargeError(f"request body over {MAX_JSON_BODY} bytes"))
        ctype = headers.get("content-type", "")
        if length not in (None, "0") and not ctype.startswith("application/json"):
            err = UserError(f"request bodies must be application/json, got {ctype or 'no content type'!r}")
            return JSONResponse(
                {**err.to_wire(), "error": {**err.to_wire()["error"], "code": "UNSUPPORTED_MEDIA_TYPE"}},
                status_code=415,
            )
        return None


def create_app(
    settings: ShoalSettings,
    *,
    context: ServiceContext | None = None,
    server_url: str | None = None,
    heartbeat_timeout: float = 30.0,
) -> FastAPI:
    """The app. With ``server_url`` (a real listening server) it also runs the job dispatcher."""
    ctx = context or ServiceContext.from_settings(settings)
    ctx.db.migrate()
    workspaces.ensure_default(ctx)

    tokens = TokenTable()
    tokens.add(ensure_admin_token(settings.token_file), Principal("admin", ALL_PERMISSIONS))
    signer = JobTokenSigner(settings.resolved_home() / "job-signing.key")

    dispatcher = None
    if server_url:
        ctx.secrets.ensure_key()
        # Runners call back on the public URL (a load balancer before several servers), else
        # on this server's own.
        dispatcher = Dispatcher(
            ctx,
            settings.public_url or server_url,
            signer,
            heartbeat_timeout=heartbeat_timeout,
            server_id=settings.server_id,
            lease_seconds=settings.server_lease_seconds,
            own_url=server_url,
        )
    # Temporary files and upload folders a crash left behind (services/storage/cleanup.py).
    sweeper = Sweeper(ctx)
    timer = (
        ScheduleTimer(
            ctx,
            server_url,
            tick_seconds=settings.schedule_tick_seconds,
            misfire_grace=settings.schedule_misfire_grace,
        )
        if server_url
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        if dispatcher is not None:
            dispatcher.start()
        sweeper.start()
        if timer is not None:
            timer.start()
        yield
        if timer is not None:
            timer.stop()
        sweeper.stop()
        if dispatcher is not None:
            dispatcher.stop()
        if context is None:
            ctx.close()

    app = FastAPI(
        title="Shoal",
        version=__version__,
        description="A self-hosted Azure Machine Learning v2 workspace.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.tokens = tokens
    app.state.job_signer = signer
    app.state.dispatcher = dispatcher
    app.state.sweeper = sweeper
    app.state.schedule_timer = timer
    _install_error_handlers(app)
    app.add_middleware(BodyGuard)

    routers = (health, ws_routes, compute, datastores, connections, assets, jobs, schedules, runner, mlflow)
    for module in (*routers, mlflow_artifacts):
        app.include_router(module.router, prefix=f"/api/{API_VERSION}")
    return app
