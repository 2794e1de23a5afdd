"""The request gate: the ASGI middleware every HTTP request passes before any route.

In order, before the app reads a byte of the body:

1. **Who**: the ``Authorization`` header names a principal (``auth.authenticate``), or the
   request is answered 401 at once. FastAPI reads a route's ``Body(...)`` before it runs the
   route's dependencies, so without this an anonymous 100 MB body was parsed before its 401.
2. **What**: a JSON body is ``application/json`` (415) and at most ``MAX_JSON_BODY`` bytes (413),
   whether it declares a ``Content-Length`` or arrives chunked: the bytes are counted as they
   arrive and the request is answered 413 the moment the count passes the cap.
3. **How fast**: each piece of a body must arrive within ``body_timeout`` seconds, or the request
   is answered 408 (uvicorn times out idle connections, not a body that stalls half way).

When the gate answers in the middle of a body it tells the app the client went away and drops
whatever the app sends after. As the answer's last part goes out (or, with no answer, at the
end) it hands the audit record to the audit log: every write, every secret read (both marked by
``auth.Require``) and every 401 and 403.
"""

from __future__ import annotations

import hmac
import re
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.errors import AuthError, PayloadTooLargeError, PermissionDeniedError, ShoalError, UserError
from shoal.server.auth import (
    CSRF_HEADER,
    PUBLIC,
    SAFE_METHODS,
    SESSION_COOKIE,
    STUDIO_PAGE,
    TOKEN_IN_TEAM_MODE,
    Principal,
    authenticate,
    authenticate_session,
    rule_for,
)
from shoal.services.studio.logins import digest

# JSON bodies are small; file content goes through the upload routes, which stream.
MAX_JSON_BODY = 4 * 1024 * 1024
# Routes whose body is raw file content streamed to storage: no cap here, no content type.
STREAMED_BODY_ROUTES = re.compile(
    r"^/api/v1/workspaces/[^/]+/(datastores/[^/]+/uploads/[^/]+/files|datastores/[^/]+/contents?"
    r"|mlflow/api/2\.0/mlflow-artifacts/artifacts/.*)$"
)
# Online endpoints' scoring route: called with an endpoint key, which its own dependency checks
# (routes/endpoints.EndpointKey), not a Shoal token; any content type; up to Azure's 100 MB.
SCORING_ROUTES = re.compile(r"^/api/v1/workspaces/[^/]+/onlineEndpoints/[^/]+/(score|swagger\.json)$")
MAX_SCORING_BODY = 100 * 1024 * 1024
# Raw bytes, but small: a runner's log chunk (at most 1 MiB, runtime/logs.py), capped like JSON.
RAW_BODY_ROUTES = re.compile(r"^/api/v1/workspaces/[^/]+/jobs/[^/]+/logs$")
MLFLOW_ROUTES = re.compile(r"^/api/v1/workspaces/[^/]+/mlflow(/|$)")
WORKSPACE_OF = re.compile(r"^/api/v1/workspaces/([^/]+)")
# DELETE too: MLflow sends JSON bodies with DELETE (registered-models/delete, alias, …).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOSNIFF = (b"x-content-type-options", b"nosniff")


def error_response(path: str, exc: ShoalError, code: str | None = None) -> JSONResponse:
    """Shoal's error format, or MLflow's on the MLflow routes (its client reads that one)."""
    if MLFLOW_ROUTES.match(path):
        mlflow_codes = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 413: "INVALID_PARAMETER_VALUE"}
        body = {"error_code": mlflow_codes.get(exc.http_status, "INVALID_PARAMETER_VALUE"), "message": exc.message}
        return JSONResponse(body, status_code=exc.http_status)
    wire = exc.to_wire()
    if code is not None:
        wire["error"]["code"] = code
    return JSONResponse(wire, status_code=exc.http_status)


class RequestTimeoutError(UserError):
    code = "REQUEST_TIMEOUT"
    http_status = 408


class UnsupportedMediaTypeError(UserError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


class RequestGate:
    def __init__(self, app: ASGIApp, *, team_mode: bool = False, body_timeout: float = 60.0) -> None:
        self.app = app
        self.team_mode = team_mode
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        status = [0]
        audited = [False]

        def audit_once() -> None:
            if not audited[0]:
                audited[0] = True
                self._audit(scope, headers, state, status[0] or 500)

        async def send_tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                # Stored files go out as bytes: a browser never sniffs an uploaded .html into a page.
                sent = message.get("headers", [])
                if not any(name.lower() == NOSNIFF[0] for name, _ in sent):
                    message = {**message, "headers": [*sent, NOSNIFF]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Recorded before the client has its answer, so its next request (a read of the
                # audit log) finds this one.
                audit_once()
            await send(message)

        try:
            cap = self._body_cap(scope)
            refusal = await self._authenticate(scope, headers, state)
            if refusal is None:
                refusal = self._check_body_headers(scope, headers, cap)
            if refusal is not None:
                await refusal(scope, receive, send_tracked)
            else:
                await self._call_app(scope, receive, send_tracked, cap)
        finally:
            audit_once()  # also when the app failed before its answer was complete, or sent none

    # -- 1. who ---------------------------------------------------------------------------

    async def _authenticate(self, scope: Scope, headers: Headers, state: dict[str, Any]) -> JSONResponse | None:
        """A bearer token, else a studio session cookie (``auth.authenticate_session``): a request
        made with the cookie that changes state must also carry the session's CSRF token."""
        path = scope["path"]
        rule = rule_for(path)
        header = headers.get("authorization", "")
        cookie = "" if header else cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE, "")
        optional = rule in (PUBLIC, STUDIO_PAGE) or (rule == TOKEN_IN_TEAM_MODE and not self.team_mode)
        if optional or SCORING_ROUTES.match(path):
            # Optional here: health shows its version details to a signed-in caller; a studio
            # page sends a caller with no principal to the login page.
            try:
                if header:
                    state["principal"] = await authenticate(scope["app"], header)
                elif cookie and not SCORING_ROUTES.match(path):
                    state["principal"], state["studio_session"] = await authenticate_session(scope["app"], cookie)
            except AuthError:
                pass
            return None
        try:
            if cookie:
                state["principal"], grant = await authenticate_session(scope["app"], cookie)
                state["studio_session"] = grant
                refused = self._cross_site_write(scope, headers, grant.csrf_digest)
                if refused is not None:
                    state["denied"] = refused.message
                    return error_response(path, refused)
            else:
                state["principal"] = await authenticate(scope["app"], header)
        except AuthError as exc:
            state["denied"] = exc.message
            return error_response(path, exc)
        return None

    @staticmethod
    def _cross_site_write(scope: Scope, headers: Headers, csrf_digest: str) -> PermissionDeniedError | None:
        """A cookie request that changes state carries the session's CSRF token, and when the
        browser names its ``Origin``, that origin is this server's own (anchors BI-26/BI-36:
        belt and braces beside the SameSite=Strict cookie)."""
        if scope["method"] in SAFE_METHODS:
            return None
        if not hmac.compare_digest(digest(headers.get(CSRF_HEADER, "")), csrf_digest):
            return PermissionDeniedError(
                f"a studio request that changes something must carry the {CSRF_HEADER} header "
                "(the shoal_csrf cookie's value)"
            )
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
            return PermissionDeniedError(
                f"a studio request from origin {origin!r} may not change anything on this server "
                f"({headers.get('host', '')!r}): sessions act only for pages of the server's own origin"
            )
        return None

    # -- 2. what ---------------------------------------------------------------------------

    @staticmethod
    def _body_cap(scope: Scope) -> int | None:
        if scope["method"] not in BODY_METHODS or STREAMED_BODY_ROUTES.match(scope["path"]):
            return None
        return MAX_SCORING_BODY if SCORING_ROUTES.match(scope["path"]) else MAX_JSON_BODY

    def _check_body_headers(self, scope: Scope, headers: Headers, cap: int | None) -> JSONResponse | None:
        if cap is None:
            return None
        path = scope["path"]
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > cap:
            return error_response(path, PayloadTooLargeError(f"request body over {cap} bytes"))
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        has_body = chunked or length not in (None, "0")
        ctype = headers.get("content-type", "")
        raw = RAW_BODY_ROUTES.match(path) or SCORING_ROUTES.match(path)
        if has_body and not raw and not ctype.startswith("application/json"):
            return error_response(
                path,
                UnsupportedMediaTypeError(
                    f"request bodies must be application/json, got {ctype or 'no content type'!r}"
                ),
            )
        return None

    # -- 3. the body as it arrives ---------------------------------------------------------

    async def _call_app(self, scope: Scope, receive: Receive, send: Send, cap: int | None) -> None:
        path = scope["path"]
        received = [0]
        body_done = [scope["method"] not in BODY_METHODS]
        answered = [False]
        started = [False]

        async def refuse(exc: ShoalError) -> Message:
            # The app sees a client that went away; the client sees why.
            answered[0] = True
            if not started[0]:
                await error_response(path, exc)(scope, _no_more, send)
            return {"type": "http.disconnect"}

        async def guarded_receive() -> Message:
            if answered[0]:
                return {"type": "http.disconnect"}
            if body_done[0]:
                return await receive()
            try:
                with anyio.fail_after(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                return await refuse(
                    RequestTimeoutError(f"the request body stalled: nothing arrived for {self.body_timeout:g} s")
                )
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if cap is not None and received[0] > cap:
                    return await refuse(PayloadTooLargeError(f"request body over {cap} bytes"))
                if not message.get("more_body", False):
                    body_done[0] = True
            return message

        async def guarded_send(message: Message) -> None:
            if not answered[0]:
                started[0] = True
                await send(message)

        await self.app(scope, guarded_receive, guarded_send)

    # -- audit -----------------------------------------------------------------------------

    @staticmethod
    def _audit(scope: Scope, headers: Headers, state: dict[str, Any], status: int) -> None:
        action = state.get("audit_action")
        denied = status in (401, 403)
        if action is None and not denied:
            return
        audit = getattr(scope["app"].state, "audit", None)
        if audit is None:
            return
        principal: Principal | None = state.get("principal")
        client = scope.get("client")
        forwarded = headers.get("x-forwarded-for")
        found = WORKSPACE_OF.match(scope["path"])
        audit.record(
            actor=principal.name if principal is not None else "anonymous",
            workspace=found.group(1) if found else None,
            action=action or "request",
            method=scope["method"],
            path=scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""),
            status=status,
            outcome="denied" if denied else "allowed",
            client=(client[0] if client else "") + (f" (forwarded for {forwarded})" if forwarded else ""),
            detail=state.get("denied"),
        )


async def _no_more() -> Message:
    return {"type": "http.disconnect"}
