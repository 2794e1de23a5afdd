"""Who is calling, and whether they may: bearer tokens, principals and per-route permissions.

Deny by default: every route of the app declares its rule, and a test walks ``app.routes`` and
fails on one without (``tests/api/test_auth_and_errors.py``). An API route declares a permission
through :class:`Require`; the few routes that are not API routes (``/api/v1/health``, the OpenAPI
document and its pages) have theirs in :data:`OTHER_ROUTE_RULES`.

The request gate (``server/gate.py``) finds the principal from the ``Authorization`` header
before any body is read, and answers 401 itself; :class:`Require` then checks the route's
permission in the route's workspace. Three kinds of token sign in:

- the server's admin token (``$SHOAL_HOME/token``, made at first start, mode 0600): every right;
- user API tokens (``shoalu_…``, ``services/access/users.py``): the user's roles per workspace,
  or every right for an admin user;
- job tokens (``jobtokens.py``): ``read`` and ``track`` in their job's workspace, never more than
  the submitting user holds there now, and narrowed to the job by ``job_token_scope``;
- compute-instance tokens (a dev box's notebooks, ``services/compute/instances.py``): read, write
  and track in their instance's workspace while that start of it runs, never more than its
  starter holds there now; jobs they submit are the starter's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from shoal.errors import AuthError, PermissionDeniedError
from shoal.jobtokens import INSTANCE_PREFIX
from shoal.services.access import job_attempts, users
from shoal.services.access.actions import CustomRole, route_action
from shoal.services.access.roles import (
    ALL_PERMISSIONS,
    BOOTSTRAP_ADMIN,
    ROLES,
    Permission,
    permissions_of,
)
from shoal.services.compute import instances
from shoal.services.studio import logins

__all__ = ["ALL_PERMISSIONS", "OTHER_ROUTE_RULES", "Permission", "Principal", "Require", "TokenTable"]

# Permissions that only read: a request that holds one of these is not a write for the audit log,
# whatever its HTTP method (MLflow's searches are POSTs).
READ_PERMISSIONS = frozenset({Permission.READ, Permission.COMPUTE_READ, Permission.SIGNED_IN})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JOB_PERMISSIONS = frozenset({Permission.READ, Permission.TRACK})

# Routes that are not API routes, and who may call them. "public": anyone; "token in team mode":
# anyone on a local server, a valid token on a team server (``ShoalSettings.is_team_mode``).
# "studio page": anyone reaches the route, which sends a caller without a session (or token) to the
# login page; the page itself holds no data, its data calls are API routes.
PUBLIC = "public"
TOKEN_IN_TEAM_MODE = "token in team mode"
STUDIO_PAGE = "studio page"
OTHER_ROUTE_RULES: dict[str, str] = {
    "/api/v1/health": PUBLIC,  # liveness; its version details need a token in team mode
    "/openapi.json": TOKEN_IN_TEAM_MODE,
    "/docs": TOKEN_IN_TEAM_MODE,
    "/docs/assets": PUBLIC,  # Swagger UI's own files (from the swagger-ui-bundle package): no data
    "/studio/static": PUBLIC,  # the studio's own files: no data
    "/studio/login": PUBLIC,  # trades a login code for a session; else says how to get one
    "/studio": STUDIO_PAGE,
    "/studio/{path:path}": STUDIO_PAGE,
    # MLflow's "View run" links point under the tracking URI: a page that sends them to the studio.
    "/api/v1/workspaces/{workspace}/mlflow": PUBLIC,
    "/api/v1/workspaces/{workspace}/mlflow/": PUBLIC,
}
# The rules above by request path (the gate sees paths, not route templates).
_RULE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/docs/assets/"), PUBLIC),
    (re.compile(r"^/studio/static/"), PUBLIC),
    (re.compile(r"^/studio(/.*)?$"), STUDIO_PAGE),
    (re.compile(r"^/api/v1/workspaces/[^/]+/mlflow/?$"), PUBLIC),
]
SESSION_COOKIE = "shoal_session"
CSRF_COOKIE = "shoal_csrf"
CSRF_HEADER = "x-shoal-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def rule_for(path: str) -> str | None:
    """The rule of a non-API route by request path; None for API routes (a token, and ``Require``)."""
    rule = OTHER_ROUTE_RULES.get(path)
    if rule is not None and "{" not in path:
        return rule
    for pattern, found in _RULE_PATTERNS:
        if pattern.match(path):
            return found
    return None


@dataclass(frozen=True)
class Principal:
    name: str
    # Held in every workspace (the admin token: all of them).
    permissions: frozenset[Permission]
    # A job token is limited to its workspace, and names its job and attempt.
    workspace: str | None = None
    job: str | None = None
    attempt: int | None = None
    # A job token whose attempt has ended: good only for its runner's last calls (replayed reports).
    ended: bool = False
    # A user token: the user, and what its roles grant by workspace.
    user: str | None = None
    grants: Mapping[str, frozenset[Permission]] = field(default_factory=dict, hash=False, compare=False)
    # Its custom roles by workspace: they allow requests by the route's action (``actions.py``).
    custom: Mapping[str, tuple[CustomRole, ...]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return Permission.ADMIN in self.permissions

    def permissions_in(self, workspace: str | None) -> frozenset[Permission]:
        """What this principal may do in ``workspace`` (None: on routes outside any workspace)."""
        if self.workspace is not None and workspace is not None and workspace != self.workspace:
            return frozenset()
        held = self.permissions | {Permission.SIGNED_IN}
        if workspace is not None:
            held |= self.grants.get(workspace, frozenset())
        return held

    def visible_workspaces(self) -> set[str] | None:
        """The workspaces it may see at all; None: every workspace."""
        if self.is_admin or (self.user is None and self.workspace is None and Permission.READ in self.permissions):
            return None
        if self.workspace is not None:
            return {self.workspace}
        return {ws for ws, held in self.grants.items() if held} | {ws for ws, roles in self.custom.items() if roles}

    def allows_action(self, workspace: str | None, action: str | None) -> bool:
        """Whether one of its custom roles in ``workspace`` allows ``action``."""
        if workspace is None or action is None:
            return False
        return any(role.allows(action) for role in self.custom.get(workspace, ()))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Tokens the server holds in memory (its admin token), by their sha256, so a timing-safe
    compare never sees the raw value."""

    def __init__(self) -> None:
        self._by_digest: dict[bytes, Principal] = {}

    def add(self, token: str, principal: Principal) -> None:
        self._by_digest[_digest(token)] = principal

    def lookup(self, token: str) -> Principal | None:
        return self.lookup_digest(_digest(token))

    def lookup_digest(self, wanted: bytes) -> Principal | None:
        found = None
        for digest, principal in self._by_digest.items():
            if hmac.compare_digest(digest, wanted):
                found = principal
        return found


def ensure_admin_token(path: Path) -> str:
    """Read the admin token, creating it (mode 0600) on first start."""
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def admin_principal() -> Principal:
    return Principal(BOOTSTRAP_ADMIN, ALL_PERMISSIONS)


def bearer_token(header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("a bearer token is required (Authorization: Bearer <token>)")
    return token.strip()


# -- rights beyond one route's permission ------------------------------------------------------
# Each is one named check, so that roles can be mapped onto it in one place.


def require_local_datastore_right(principal: Principal) -> None:
    """Creating or changing a ``local`` datastore: it reads and writes the server's own disk (within
    the allowed roots, storage/local_roots.py), so it takes the admin right, not just ``write``."""
    if not principal.is_admin:
        raise PermissionDeniedError(
            "creating or changing a local datastore needs the 'admin' permission: it gives access to the "
            "server's own disk"
        )


async def authenticate(app: Any, header: str) -> Principal:
    """The principal a request's ``Authorization`` header names; AuthError when none.

    Async on purpose: the admin token costs no thread hop; user and job tokens need the database,
    and only those go to a thread."""
    token = bearer_token(header)
    tokens: TokenTable = app.state.tokens
    principal = tokens.lookup(token)
    if principal is None and token.startswith(users.TOKEN_PREFIX):
        principal = await run_in_threadpool(_user_principal, app, token)
    elif principal is None and token.startswith(INSTANCE_PREFIX + "."):
        principal = await run_in_threadpool(_instance_principal, app, token)
    elif principal is None:
        principal = await run_in_threadpool(_job_principal, app, token)
    if principal is None:
        raise AuthError("the bearer token is not valid for this server")
    return principal


def token_digest(header: str) -> str:
    """The sha256 (hex) of a request's bearer token: what a studio login is bound to."""
    return hashlib.sha256(bearer_token(header).encode()).hexdigest()


async def authenticate_session(app: Any, secret: str) -> tuple[Principal, logins.SessionGrant]:
    """The principal of a studio session cookie: its token signed in again, by digest, so the
    session holds what the token holds now (a revoked or expired token: AuthError)."""
    grant = await run_in_threadpool(logins.grant, app.state.ctx, secret) if secret else None
    if grant is None:
        raise AuthError("no studio session (signed out or expired): run `shoal studio` for a login link")
    tokens: TokenTable = app.state.tokens
    principal = tokens.lookup_digest(bytes.fromhex(grant.token_digest))
    if principal is None:
        identity = await run_in_threadpool(users.identify_digest, app.state.ctx, grant.token_digest)
        principal = _identity_principal(identity)
    if principal is None:
        raise AuthError("the token this studio session came from is gone: run `shoal studio` again")
    return principal, grant


def _user_principal(app: Any, token: str) -> Principal | None:
    return _identity_principal(users.identify(app.state.ctx, token))


def _identity_principal(identity: users.Identity | None) -> Principal | None:
    if identity is None:
        return None
    if identity.admin:
        return Principal(identity.user, ALL_PERMISSIONS, user=identity.user)
    grants = {ws: permissions_of(roles) for ws, roles in identity.roles.items()}
    custom = {
        ws: tuple(identity.custom[r] for r in roles if r in identity.custom) for ws, roles in identity.roles.items()
    }
    return Principal(identity.user, frozenset(), user=identity.user, grants=grants, custom=custom)


def _job_principal(app: Any, token: str) -> Principal | None:
    signer = getattr(app.state, "job_signer", None)
    claim = signer.verify(token) if signer is not None else None
    if claim is None:
        return None
    grant = job_attempts.attempt_grant(app.state.ctx, claim.workspace, claim.job, claim.attempt)
    if grant is None:
        return None
    name = f"job:{claim.workspace}/{claim.job}"
    held = JOB_PERMISSIONS & grant.submitter_permissions
    return Principal(name, held, claim.workspace, claim.job, claim.attempt, ended=grant.state == "ended")


def _instance_principal(app: Any, token: str) -> Principal | None:
    signer = getattr(app.state, "job_signer", None)
    claim = signer.verify_instance(token) if signer is not None else None
    if claim is None:
        return None
    grant = instances.instance_grant(app.state.ctx, claim.workspace, claim.compute, claim.session)
    if grant is None:
        return None
    # ``user``: jobs it submits are recorded as the starter's, and carry the starter's roles.
    return Principal(f"computeinstance:{claim.workspace}/{claim.compute}", grant.permissions, claim.workspace,
                     user=grant.starter)  # fmt: skip


def _is_own_runner_route(request: Request, principal: Principal) -> bool:
    own = f"/workspaces/{principal.workspace}/jobs/{principal.job}/"
    path = request.url.path
    return own in path and path.rsplit("/", 1)[-1] in ("status", "heartbeat", "logs", "runspec")


def _granting_roles(permission: Permission) -> str:
    names = [name for name, held in ROLES.items() if permission in held]
    return ", ".join(names) if names else "a server admin"


def denied(request: Request, message: str, details: dict[str, Any] | None = None) -> PermissionDeniedError:
    """A 403, its reason kept for the audit record."""
    request.state.denied = message
    return PermissionDeniedError(message, details=details)


def mark_audit(request: Request, action: str) -> None:
    """Have the gate write this request to the audit log, as ``action``."""
    request.state.audit_action = action


class Require:
    """FastAPI dependency: the request's principal holds this permission in the route's workspace.

    ``allow_self``: also a user acting on itself (the route's ``{user}`` is the caller)."""

    def __init__(self, permission: Permission, *, allow_self: bool = False) -> None:
        self.permission = permission
        self.allow_self = allow_self

    def action(self, request: Request) -> str | None:
        """The request's Azure action, for custom roles (``services/access/actions.py``)."""
        route = request.scope.get("route")
        template = getattr(route, "path", None)
        if template is None:
            return None
        return route_action(template, request.method, self.permission, request.path_params)

    async def __call__(self, request: Request) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # the app without its gate (never in create_app): authenticate here
            principal = await authenticate(request.app, request.headers.get("authorization", ""))
            request.state.principal = principal
        if principal.ended and not _is_own_runner_route(request, principal):
            raise AuthError("this job token expired when its job ended")
        workspace = request.path_params.get("workspace")
        if request.method in WRITE_METHODS and self.permission not in READ_PERMISSIONS:
            mark_audit(request, str(self.permission))
        # A job token: first what it may do at all, then where.
        if self.permission in principal.permissions_in(principal.workspace or workspace):
            if principal.workspace is not None and workspace is not None and workspace != principal.workspace:
                raise denied(request, f"this job token is valid for workspace '{principal.workspace}' only")
            return principal
        # A token limited to one workspace (a job's, an instance's) never acts as its user.
        acts_as_user = principal.user is not None and principal.workspace is None
        if self.allow_self and acts_as_user and request.path_params.get("user") == principal.user:
            return principal
        if principal.custom and principal.allows_action(workspace, self.action(request)):
            return principal
        where = f" in workspace '{workspace}'" if workspace else ""
        granted = _granting_roles(self.permission)
        action = self.action(request)
        custom = f"; no custom role of it allows '{action}'" if principal.custom and action else ""
        raise denied(
            request,
            f"this token lacks the '{self.permission}' permission{where} (granted by: {granted}){custom}",
            details={
                "permission": str(self.permission),
                "action": action,
                "workspace": workspace,
                "principal": principal.name,
            },
        )


def require_secrets(request: Request, include_secrets: bool, what: str = "datastore") -> None:
    """Reading datastore (or connection) credentials back needs the ``secrets`` permission, and is
    audited."""
    if not include_secrets:
        return
    principal: Principal = request.state.principal
    mark_audit(request, "secrets")
    workspace = request.path_params.get("workspace")
    if Permission.SECRETS in principal.permissions_in(workspace):
        return
    template = getattr(request.scope.get("route"), "path", "")
    action = route_action(template, request.method, Permission.SECRETS, request.path_params)
    if principal.allows_action(workspace, action):
        return
    raise denied(
        request,
        f"reading {what} credentials needs the 'secrets' permission "
        f"(granted by: {_granting_roles(Permission.SECRETS)}, or a custom role allowing '{action}')",
    )
