"""The Shoal error tree: every error that crosses a public boundary is one of these.

    ShoalError
    ├── UserError            BAD_REQUEST        400  the caller can fix it
    │   ├── SpecError        INVALID_SPEC       422  YAML or field errors (file, line, field path)
    │   ├── NotFoundError    NOT_FOUND          404  kind, name, version
    │   ├── ConflictError    CONFLICT           409  an immutable version exists with another body
    │   ├── InvalidStateError INVALID_STATE     409  the operation does not fit the current state
    │   ├── UnsupportedError UNSUPPORTED        400  a backend lacks a capability
    │   ├── PayloadTooLargeError PAYLOAD_TOO_LARGE 413
    │   ├── AuthError        UNAUTHENTICATED    401  no token, or a wrong one
    │   └── PermissionDeniedError PERMISSION_DENIED 403
    ├── InfraError           INFRA_ERROR        502  an outside failure (storage, database)
    │   └── StorageFullError STORAGE_FULL       507  the artifact storage has no space left
    ├── ServerUnavailableError UNAVAILABLE      503  client side: no answer came back
    └── InternalError        INTERNAL           500  a bug; generic message on the wire

The wire format is ``{"error": {"code", "message", "details"}}``; the SDK re-raises the class
that matches ``code`` so local and remote callers see the same exception.
"""

from __future__ import annotations

import difflib
import errno
from typing import Any, ClassVar


class ShoalError(Exception):
    code: ClassVar[str] = "ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_wire(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def __str__(self) -> str:
        return self.message


class UserError(ShoalError):
    code = "BAD_REQUEST"
    http_status = 400


class SpecError(UserError):
    """A YAML file or request body does not describe a valid entity."""

    code = "INVALID_SPEC"
    http_status = 422


class NotFoundError(UserError):
    code = "NOT_FOUND"
    http_status = 404


class ConflictError(UserError):
    code = "CONFLICT"
    http_status = 409


class InvalidStateError(UserError):
    code = "INVALID_STATE"
    http_status = 409


class UnsupportedError(UserError):
    code = "UNSUPPORTED"
    http_status = 400


class PayloadTooLargeError(UserError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class AuthError(UserError):
    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDeniedError(UserError):
    code = "PERMISSION_DENIED"
    http_status = 403


class InfraError(ShoalError):
    code = "INFRA_ERROR"
    http_status = 502


class StorageFullError(InfraError):
    """The artifact storage ran out of space (ENOSPC, EDQUOT): nothing was stored, and the same
    request succeeds once space is freed, without a server restart."""

    code = "STORAGE_FULL"
    http_status = 507


class ServerUnavailableError(ShoalError):
    code = "UNAVAILABLE"
    http_status = 503


class InternalError(ShoalError):
    code = "INTERNAL"
    http_status = 500


def storage_full_from(exc: BaseException) -> StorageFullError | None:
    """A StorageFullError when ``exc`` (or an error it came from) is ENOSPC/EDQUOT, else None.

    The safety net of the server's last-resort error handlers: a full disk hit outside the
    ArtifactStore (which maps it itself) is still reported as what it is, not as a bare 500."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFullError(
                "a disk of the server is full (no space left on device); nothing was stored: "
                "free space on the server, then retry"
            )
        cur = cur.__cause__ or cur.__context__
    return None


ERROR_CLASSES: dict[str, type[ShoalError]] = {
    cls.code: cls
    for cls in (
        UserError,
        SpecError,
        NotFoundError,
        ConflictError,
        InvalidStateError,
        UnsupportedError,
        PayloadTooLargeError,
        AuthError,
        PermissionDeniedError,
        InfraError,
        StorageFullError,
        ServerUnavailableError,
        InternalError,
    )
}


def error_from_wire(payload: dict[str, Any], status: int) -> ShoalError:
    """Rebuild the matching ShoalError from a server's error body."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return InternalError(f"server answered {status} without a Shoal error body")
    cls = ERROR_CLASSES.get(str(err.get("code")), ShoalError)
    exc = cls(str(err.get("message", "")), details=err.get("details") or {})
    return exc


MAX_HINT_NAMES = 5


def not_found(
    kind: str,
    name: str,
    *,
    known: list[str] | None = None,
    list_hint: str | None = None,
    workspace: str | None = None,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> NotFoundError:
    """A NOT_FOUND that says what exists, as ``az ml`` does.

    The message keeps the ``{kind} '{name}' not found`` prefix, adds ``in workspace 'W'`` when
    known, then up to five existing names (close matches by ``difflib`` first) or, when the names
    are not given, the command that lists them: ``list_hint`` or ``shoal {kind} list``.
    """
    message = f"{subject or f'{kind} {name!r}'} not found"
    if workspace:
        message += f" in workspace {workspace!r}"
    message += not_found_hint(kind, name, known=known, list_hint=list_hint)
    return NotFoundError(message, details=details if details is not None else {"kind": kind, "name": name})


def not_found_hint(kind: str, name: str, *, known: list[str] | None = None, list_hint: str | None = None) -> str:
    """``; existing: a, b (see `shoal compute list`)``: the tail of a not-found message."""
    command = list_hint or f"shoal {kind} list"
    if known is None:
        return f"; see `{command}`"
    names = sorted({str(n) for n in known if str(n) != name})
    if not names:
        return f"; there are none yet (see `{command}`)"
    close = difflib.get_close_matches(name, names, n=MAX_HINT_NAMES, cutoff=0.5)
    shown = close + [n for n in names if n not in close][: MAX_HINT_NAMES - len(close)]
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return f"; existing: {', '.join(shown)}{more} (see `{command}`)"


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str:
    """`` (did you mean 'command'?)`` when ``word`` is a likely typo of a candidate, else ``""``."""
    close = difflib.get_close_matches(word, sorted({str(c) for c in candidates}), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
