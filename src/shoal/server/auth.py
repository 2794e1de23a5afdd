"""Bearer-token authentication and per-route permissions.

Every route but ``/api/v1/health`` declares a permission through :class:`Require`; a test walks the
app's routes and fails when one has none. The local server's admin token is generated at first
start and stored readable by its owner only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from shoal.errors import AuthError, PermissionDeniedError
from shoal.services.access import job_attempts


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    # Reading datastore credentials back is its own permission (Azure: list secrets).
    SECRETS = "secrets"
    # Recording what a run does: MLflow writes, runner reports and logs, job outputs. Job tokens
    # hold this and READ only, so code in a job cannot submit jobs or change resources.
    TRACK = "track"
    ADMIN = "admin"


ALL_PERMISSIONS = frozenset(Permission)


@dataclass(frozen=True)
class Principal:
    name: str
    permissions: frozenset[Permission]
    # A job token is limited to its workspace, and names its job and attempt.
    workspace: str | None = None
    job: str | None = None
    attempt: int | None = None
    # A job token whose attempt has ended: good only for its runner's last calls (replayed reports).
    ended: bool = False


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Known tokens by their sha256, so a timing-safe compare never sees the raw value."""

    def __init__(self) -> None:
        self._by_digest: dict[bytes, Principal] = {}

    def add(self, token: str, principal: Principal) -> None:
        self._by_digest[_digest(token)] = principal

    def lookup(self, token: str) -> Principal | None:
        wanted = _digest(token)
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


class Require:
    """FastAPI dependency: the request carries a valid bearer token with this permission."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> Principal:
        # Async on purpose: a sync dependency costs every request a hop to the thread pool. Only a
        # job token needs the database (is its attempt still live?), and only that goes to a thread.
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("a bearer token is required (Authorization: Bearer <token>)")
        tokens: TokenTable = request.app.state.tokens
        principal = tokens.lookup(token.strip())
        if principal is None:
            principal = await run_in_threadpool(_job_principal, request, token.strip())
        if principal is None:
            raise AuthError("the bearer token is not valid for this server")
        if principal.ended and not _is_own_runner_route(request, principal):
            raise AuthError("this job token expired when its job ended")
        if self.permission not in principal.permissions:
            raise PermissionDeniedError(f"this token lacks the '{self.permission}' permission")
        workspace = request.path_params.get("workspace")
        if principal.workspace is not None and workspace is not None and workspace != principal.workspace:
            raise PermissionDeniedError(f"this job token is valid for workspace '{principal.workspace}' only")
        request.state.principal = principal
        return principal


# -- rights beyond one route's permission ------------------------------------------------------
# Each is one named check, so that roles can be mapped onto it in one place.


def require_local_datastore_right(principal: Principal) -> None:
    """Creating or changing a ``local`` datastore: it reads and writes the server's own disk (within
    the allowed roots, storage/local_roots.py), so it takes the admin right, not just ``write``."""
    if Permission.ADMIN not in principal.permissions:
        raise PermissionDeniedError(
            "creating or changing a local datastore needs the 'admin' permission: it gives access to the "
            "server's own disk"
        )


JOB_PERMISSIONS = frozenset({Permission.READ, Permission.TRACK})


def _job_principal(request: Request, token: str) -> Principal | None:
    signer = getattr(request.app.state, "job_signer", None)
    claim = signer.verify(token) if signer is not None else None
    if claim is None:
        return None
    state = _attempt_state(request, claim.workspace, claim.job, claim.attempt)
    if state is None:
        return None
    name = f"job:{claim.workspace}/{claim.job}"
    return Principal(name, JOB_PERMISSIONS, claim.workspace, claim.job, claim.attempt, ended=state == "ended")


def _is_own_runner_route(request: Request, principal: Principal) -> bool:
    own = f"/workspaces/{principal.workspace}/jobs/{principal.job}/"
    path = request.url.path
    return own in path and path.rsplit("/", 1)[-1] in ("status", "heartbeat", "logs", "runspec")


def _attempt_state(request: Request, workspace: str, job: str, attempt: int) -> str | None:
    return job_attempts.attempt_state(request.app.state.ctx, workspace, job, attempt)
