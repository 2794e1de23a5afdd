"""How storage failures reach users: local OS errors and object-store drivers' errors (s3fs,
adlfs/azure-storage, botocore, aiohttp) become Shoal errors that name the store, with every secret
of the store blanked out of the message."""

from __future__ import annotations

import errno
from collections.abc import Iterable

from shoal.errors import (
    InfraError,
    NotFoundError,
    PermissionDeniedError,
    ShoalError,
    StorageFullError,
    UserError,
)


def local_error(action: str, rel: str, exc: OSError) -> ShoalError:
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"{rel!r} not found", details={"path": rel})
    if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
        return UserError(f"cannot {action} {rel!r}: a file and a folder have the same name")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(
            f"the artifact storage is full: no space left to {action} {rel!r}; nothing was stored "
            "(free space on the artifact storage or delete unused assets, then retry)",
            details={"path": rel},
        )
    reason = exc.strerror or exc.__class__.__name__
    return InfraError(f"storage failure while trying to {action} {rel!r}: {reason}", details={"path": rel})


def _first_line(exc: BaseException, hide: Iterable[str]) -> str:
    """A driver's message, cut to its first line (Azure appends request ids and XML) and with
    every secret of the store blanked out: errors must never carry a credential."""
    text = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
    for secret in hide:
        if secret:
            text = text.replace(secret, "***")
    return text or exc.__class__.__name__


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status an object-store driver attached to its error, where it did."""
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return value if isinstance(value, int) else None
    return None


_UNREACHABLE = (
    "ServiceRequestError",
    "ServiceResponseError",
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ClientConnectionResetError",
    "ServerDisconnectedError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
)


def remote_error(label: str, action: str, rel: str, exc: Exception, hide: Iterable[str]) -> ShoalError:
    """Map an object-store driver's error (s3fs, adlfs/azure-storage, botocore, aiohttp) to a
    Shoal error that names the store: refused credentials are a 403 the user can act on,
    an unreachable store a 502, never a 500 with a traceback."""
    reason = _first_line(exc, hide)
    status = _status_of(exc)
    name = exc.__class__.__name__
    details = {"path": rel}
    if isinstance(exc, PermissionError) or status in (401, 403) or name == "ClientAuthenticationError":
        return PermissionDeniedError(
            f"{label} refused access while trying to {action} {rel!r}: {reason} (check the datastore's credentials)",
            details=details,
        )
    if isinstance(exc, FileNotFoundError) or status == 404 or name == "ResourceNotFoundError":
        return NotFoundError(f"{rel!r} not found in {label}: {reason}", details=details)
    if name in _UNREACHABLE or isinstance(exc, (ConnectionError, TimeoutError)):
        return InfraError(f"cannot reach {label} to {action} {rel!r}: {reason}", details=details)
    if isinstance(exc, OSError):
        return local_error(action, rel, exc)
    if status is not None and 400 <= status < 500:
        return UserError(f"{label} rejected the request to {action} {rel!r}: {reason}", details=details)
    return InfraError(f"{label} failed to {action} {rel!r}: {reason}", details=details)
