"""``create_app(settings)``: mounts the routers, the error format and the start-up work."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from shoal import __version__
from shoal.config import ShoalSettings
from shoal.errors import (
    AuthError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    ServerUnavailableError,
    ShoalError,
    SpecError,
    UserError,
    storage_full_from,
)
from shoal.jobtokens import JobTokenSigner
from shoal.server.auth import TokenTable, admin_principal, ensure_admin_token
from shoal.server.gate import RequestGate
from shoal.server.routes import (
    access,
    assets,
    batch_endpoints,
    compute,
    connections,
    datastores,
    endpoints,
    health,
    jobs,
    mlflow,
    mlflow_artifacts,
    runner,
    schedules,
    studio_data,
    studio_pages,
)
from shoal.server.routes import workspaces as ws_routes
from shoal.server.scoring_path import ScoringFastPath
from shoal.services import workspaces
from shoal.services.access.audit import AuditLog
from shoal.services.compute.instances import DevBoxes
from shoal.services.context import ServiceContext
from shoal.services.endpoints.router import Router
from shoal.services.endpoints.supervisor import Supervisor
from shoal.services.jobs.cluster import server_id_for
from shoal.services.jobs.dispatcher import Dispatcher
from shoal.services.schedules.firing import ScheduleTimer
from shoal.services.storage.cleanup import Sweeper

logger = logging.getLogger(__name__)

API_VERSION = "v1"


def _error(exc: ShoalError) -> JSONResponse:
    return JSONResponse(exc.to_wire(), status_code=exc.http_status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ShoalError)
    async def _shoal(request: Request, exc: ShoalError) -> JSONResponse:
        if isinstance(exc, AuthError | PermissionDeniedError):
            request.state.denied = exc.message  # for the audit record
        if isinstance(exc, InternalError):
            logger.error("internal error: %s", exc.message)
        response = _error(exc)
        if isinstance(exc, ServerUnavailableError):
            response.headers["Retry-After"] = str(exc.details.get("retry_after_seconds", 1))
        return response

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

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client went away, or the gate answered (413, 408) and told the app so: nothing to log.
        return JSONResponse(UserError("the client closed the request").to_wire(), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        full = storage_full_from(exc)
        if full is not None:
            logger.error("disk full: %s", exc)
            return _error(full)
        logger.exception("unhandled error")
        return _error(InternalError("internal server error; see the server log"))


def create_app(
    settings: ShoalSettings,
    *,
    context: ServiceContext | None = None,
    server_url: str | None = None,
    heartbeat_timeout: float = 30.0,
    studio_static: Path | None = None,
) -> FastAPI:
    """The app. With ``server_url`` (a real listening server) it also runs the job dispatcher."""
    ctx = context or ServiceContext.from_settings(settings)
    ctx.db.migrate()
    workspaces.ensure_default(ctx)

    tokens = TokenTable()
    tokens.add(ensure_admin_token(settings.token_file), admin_principal())
    audit = AuditLog(ctx, settings.audit_retention_days)
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
    # Online endpoints' instances; with several servers, the one holding the endpoints duty runs them.
    supervisor = Supervisor(
        ctx,
        server_id=dispatcher.cluster.server_id if dispatcher is not None else server_id_for(settings.resolved_home()),
        lease_seconds=settings.server_lease_seconds,
        instance_host=settings.endpoint_instance_host,
        shared=dispatcher is not None,
    )
    # Compute instances' dev boxes (JupyterLab); their notebooks call back as runners do.
    devboxes = DevBoxes(
        ctx,
        settings.public_url or server_url,
        signer,
        settings.server_id or server_id_for(settings.resolved_home()),
        tick_seconds=settings.devbox_tick_seconds,
        start_timeout=settings.devbox_start_timeout,
    )
    scoring = Router(supervisor)
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
        supervisor.start()
        devboxes.start()
        if timer is not None:
            timer.start()
        yield
        devboxes.stop()
        supervisor.stop()
        await scoring.close()
        if timer is not None:
            timer.stop()
        sweeper.stop()
        if dispatcher is not None:
            dispatcher.stop()
        audit.close()
        if context is None:
            ctx.close()

    team_mode = settings.is_team_mode()
    app = FastAPI(
        title="Shoal",
        version=__version__,
        description="A self-hosted Azure Machine Learning v2 workspace.",
        lifespan=lifespan,
        # Swagger UI at /docs comes from local files (routes/studio_pages.py); ReDoc only from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.tokens = tokens
    app.state.job_signer = signer
    app.state.dispatcher = dispatcher
    app.state.audit = audit
    app.state.team_mode = team_mode
    app.state.sweeper = sweeper
    app.state.schedule_timer = timer
    app.state.endpoints = supervisor
    app.state.devboxes = devboxes
    app.state.scoring = scoring
    _install_error_handlers(app)
    app.add_middleware(RequestGate, team_mode=team_mode, body_timeout=settings.body_timeout)
    # Outside the gate: an authorized scoring request is answered before the general stack.
    app.add_middleware(ScoringFastPath, router=scoring, body_timeout=settings.body_timeout)

    routers = (health, ws_routes, compute, datastores, connections, assets, jobs, schedules, runner, mlflow)
    for module in (*routers, endpoints, batch_endpoints, mlflow_artifacts, access, studio_data):
        app.include_router(module.router, prefix=f"/api/{API_VERSION}")
    studio_pages.install(app, studio_static)
    return app
