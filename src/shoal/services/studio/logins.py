"""Studio logins: ``shoal studio`` asks for a one-time code bound to its bearer token; the browser
trades the code for a session cookie (and a CSRF token); every request of that session then signs
in with the token again (``server/auth.py``), so a session never holds more than its token does
now, and a revoked or expired token ends it at once.

Only sha256 digests are stored: of the code, of the session and CSRF secrets, and of the token
(for a user token the same digest ``api_token`` keeps, so no copy of the token is made).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shoal.errors import AuthError
from shoal.services.context import ServiceContext
from shoal.store import studio_logins as rows
from shoal.store.tables import StudioLoginRow

CODE_LIFETIME = timedelta(minutes=5)
SESSION_LIFETIME = timedelta(hours=12)
CODE = "code"
SESSION = "session"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class NewSession:
    secret: str
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionGrant:
    """What a live session stands for: its token (by digest) and its CSRF token's digest."""

    token_digest: str
    csrf_digest: str
    principal: str


def create_code(ctx: ServiceContext, token_digest: str, principal: str) -> tuple[str, datetime]:
    """A one-time login code for the token of that digest, valid for ``CODE_LIFETIME``."""
    code = secrets.token_urlsafe(32)
    now = _now()
    with ctx.db.write() as session:
        rows.purge_expired(session, now)
        rows.add(
            session,
            StudioLoginRow(
                kind=CODE,
                secret_digest=digest(code),
                token_digest=token_digest,
                principal=principal,
                created_at=now,
                expires_at=now + CODE_LIFETIME,
            ),
        )
    return code, now + CODE_LIFETIME


def redeem(ctx: ServiceContext, code: str) -> tuple[NewSession, str]:
    """Trade a code for a new session (and the token digest it is bound to); a code works once."""
    refused = AuthError("this login link is not valid: it was used already or it expired; run `shoal studio` again")
    now = _now()
    with ctx.db.write() as session:
        row = rows.find(session, CODE, digest(code)) if code else None
        if row is None or row.used_at is not None or _aware(row.expires_at) <= now:
            raise refused
        if not rows.use_code(session, row.id, now):
            raise refused
        new = NewSession(secrets.token_urlsafe(32), secrets.token_urlsafe(24), now + SESSION_LIFETIME)
        rows.add(
            session,
            StudioLoginRow(
                kind=SESSION,
                secret_digest=digest(new.secret),
                token_digest=row.token_digest,
                principal=row.principal,
                csrf_digest=digest(new.csrf),
                created_at=now,
                expires_at=new.expires_at,
            ),
        )
        return new, row.token_digest


def grant(ctx: ServiceContext, secret: str) -> SessionGrant | None:
    """The live session a cookie names; None when there is none (unknown, ended or expired)."""
    with ctx.db.read() as session:
        row = rows.find(session, SESSION, digest(secret))
        if row is None or _aware(row.expires_at) <= _now():
            return None
        return SessionGrant(row.token_digest, row.csrf_digest or "", row.principal)


def end(ctx: ServiceContext, secret: str) -> None:
    with ctx.db.write() as session:
        rows.remove(session, SESSION, digest(secret))
