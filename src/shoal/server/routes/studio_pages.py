"""The studio's pages and what leads to them: ``/studio/...`` (the app's ``index.html`` for every
page path, its files under ``/studio/static/``), the login link ``/studio/login?code=…``, the page
MLflow's "View run" links land on (the tracking URI itself), Swagger UI at ``/docs`` from local
files, and the API calls of signing in and out (``/api/v1/studio/...``).

Pages are not API routes: their rules are in ``auth.OTHER_ROUTE_RULES`` (a page without a session
goes to the login page; its data calls are API routes behind ``Require``)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # the pinned package that ships Swagger UI's files

from shoal.errors import AuthError, UserError
from shoal.server.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Permission,
    Principal,
    mark_audit,
    token_digest,
)
from shoal.server.routes.common import base_url, ctx, guarded
from shoal.services.studio import job_search, logins
from shoal.studio import STATIC_DIR

router = APIRouter(tags=["studio"])
EXPERIMENT_PAGE = "/studio/workspaces/{workspace}/experiments/{exp_id}"
NO_STORE = {"Cache-Control": "no-store"}


# -- signing in and out (API routes) ----------------------------------------------------------------


@guarded(router, "POST", "/studio/login-codes", Permission.SIGNED_IN)
def create_login_code(request: Request) -> dict[str, Any]:
    """A one-time login link (5 minutes) bound to this request's bearer token: ``shoal studio``."""
    principal: Principal = request.state.principal
    header = request.headers.get("authorization", "")
    if not header:
        raise UserError("a login link comes from a bearer token, not from a studio session")
    if principal.job is not None:
        raise UserError("a job token cannot sign a browser in: use your own token (shoal studio)")
    mark_audit(request, "studio-login")
    code, expires = logins.create_code(ctx(request), token_digest(header), principal.name)
    return {
        "url": f"{base_url(request)}/studio/login?code={code}",
        "code": code,
        "expires_at": expires.isoformat(),
    }


@guarded(router, "GET", "/studio/me", Permission.SIGNED_IN)
def who_am_i(request: Request) -> dict[str, Any]:
    """Who the studio is signed in as, and which workspaces it may show (None: all of them)."""
    principal: Principal = request.state.principal
    visible = principal.visible_workspaces()
    return {
        "principal": principal.name,
        "user": principal.user,
        "admin": principal.is_admin,
        "workspaces": sorted(visible) if visible is not None else None,
    }


@guarded(router, "POST", "/studio/logout", Permission.SIGNED_IN)
def logout(request: Request) -> Response:
    secret = request.cookies.get(SESSION_COOKIE, "")
    if secret and getattr(request.state, "studio_session", None) is not None:
        logins.end(ctx(request), secret)
    response = Response(status_code=204)
    _clear_cookies(response)
    return response


# -- pages ------------------------------------------------------------------------------------------


def _static_dir(request: Request) -> Path:
    return Path(getattr(request.app.state, "studio_static", STATIC_DIR))


def _signed_in(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/studio/login?next={quote(here, safe='')}", status_code=303, headers=NO_STORE)


async def studio_page(request: Request) -> Response:
    """Every page path: the app's index.html for a signed-in caller, else the login page."""
    if _signed_in(request) is None:
        return _to_login(request)
    parts = request.url.path.strip("/").split("/")
    if len(parts) == 5 and parts[1] == "workspaces" and parts[3] == "experiments":
        return await _experiment_page(request, parts[2], parts[4])
    index = _static_dir(request) / "index.html"
    if not index.is_file():
        return HTMLResponse(_page("Studio not installed", "<p>This server has no studio pages.</p>"), 503)
    return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})


async def _experiment_page(request: Request, workspace: str, exp_id: str) -> Response:
    """MLflow's "View experiment" link: the experiment's jobs list (by name)."""
    principal = _signed_in(request)
    target = f"/studio/workspaces/{quote(workspace)}/jobs"
    if principal is not None and Permission.READ in principal.permissions_in(workspace):
        try:
            name = await run_in_threadpool(job_search.experiment_name, ctx(request), workspace, exp_id)
        except UserError:
            name = None
        if name is not None:
            target += f"?experiment={quote(name, safe='')}"
    return RedirectResponse(target, status_code=302)


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a studio path of this server only."""
    if value and value.startswith("/studio") and not value.startswith("//") and "\\" not in value:
        return value
    return "/studio/"


async def login(request: Request) -> Response:
    """``?code=``: trade a login code for the session cookies and go on; else say how to sign in."""
    code = request.query_params.get("code")
    after = _safe_next(request.query_params.get("next"))
    if not code:
        return HTMLResponse(_login_help(after), headers=NO_STORE)
    try:
        new, _ = await run_in_threadpool(logins.redeem, ctx(request), code)
    except AuthError as exc:
        request.state.denied = exc.message
        return HTMLResponse(_page("Login link not valid", f"<p>{html.escape(exc.message)}</p>"), 401, headers=NO_STORE)
    response = RedirectResponse(after, status_code=303, headers=NO_STORE)
    secure = request.url.scheme == "https"
    age = int((logins.SESSION_LIFETIME).total_seconds())
    response.set_cookie(
        SESSION_COOKIE, new.secret, max_age=age, path="/", httponly=True, samesite="strict", secure=secure
    )
    # Readable by the app's script, which sends it back as the CSRF header.
    response.set_cookie(CSRF_COOKIE, new.csrf, max_age=age, path="/", httponly=False, samesite="strict", secure=secure)
    return response


def _clear_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")


def _page(title: str, body: str, script: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{html.escape(title)} · Shoal studio</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/studio/static/app.css"></head>'
        f'<body><main id="main" class="login"><h1>{html.escape(title)}</h1>{body}</main>{script}</body></html>'
    )


def _login_help(after: str) -> str:
    body = (
        "<p>Run <code>shoal studio</code> where your Shoal token is (the CLI's machine): it prints a one-time "
        "link, valid for 5 minutes, that signs this browser in with that token's rights.</p>"
        "<p>A session lasts 12 hours, and ends when its token is revoked or expires.</p>"
    )
    # A link followed from another site arrives without the SameSite=Strict cookie: a browser that
    # is signed in after all goes on from here (this request is same-site, so the cookie goes along).
    script = (
        "<script>fetch('/api/v1/studio/me',{credentials:'same-origin'}).then(function(r){"
        f"if(r.ok)location.replace({json.dumps(after)});}}).catch(function(){{}});</script>"
    )
    return _page("Sign in to Shoal studio", body, script)


# -- MLflow's links ---------------------------------------------------------------------------------

# MLflow prints "View run at {tracking_uri}/#/experiments/{exp}/runs/{run}" (and "View experiment at
# {tracking_uri}/#/experiments/{exp}"): the fragment never reaches a server, so this page reads it.
_MLFLOW_REDIRECT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shoal studio</title></head>
<body><p>Opening the studio… (<a id="go" href="/studio/">studio</a>)</p><script>
(function () {
  var ws = %s;
  var base = "/studio/workspaces/" + encodeURIComponent(ws);
  var m = /^#\\/experiments\\/([^/?#]+)(?:\\/runs\\/([^/?#]+))?/.exec(location.hash || "");
  var to = base + "/jobs";
  if (m && m[2]) to = base + "/jobs/" + encodeURIComponent(decodeURIComponent(m[2]));
  else if (m) to = base + "/experiments/" + encodeURIComponent(decodeURIComponent(m[1]));
  document.getElementById("go").href = to;
  location.replace(to);
})();
</script></body></html>"""


async def mlflow_root(request: Request) -> Response:
    workspace = request.path_params["workspace"]
    return HTMLResponse(_MLFLOW_REDIRECT % json.dumps(workspace).replace("<", "\\u003c"), headers=NO_STORE)


# -- Swagger UI from local files --------------------------------------------------------------------


async def swagger(request: Request) -> Response:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Shoal API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
    )


def install(app: FastAPI, static_dir: Path | None = None) -> None:
    """Add the studio's pages, its files, the MLflow link page and Swagger UI to ``app``."""
    app.state.studio_static = static_dir or STATIC_DIR
    app.include_router(router, prefix="/api/v1")
    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="swagger-assets")
    app.add_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    if Path(app.state.studio_static).is_dir():
        app.mount("/studio/static", StaticFiles(directory=app.state.studio_static), name="studio-static")
    app.add_route("/studio/login", login, methods=["GET"], include_in_schema=False)
    app.add_route("/studio", studio_page, methods=["GET"], include_in_schema=False)
    app.add_route("/studio/{path:path}", studio_page, methods=["GET"], include_in_schema=False)
    for path in ("/api/v1/workspaces/{workspace}/mlflow", "/api/v1/workspaces/{workspace}/mlflow/"):
        app.add_route(path, mlflow_root, methods=["GET"], include_in_schema=False)
