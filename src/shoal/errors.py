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
    ├── ServerUnavailableError UNAVAILABLE      503  client side: no answer came back
    └── InternalError        INTERNAL           500  a bug; generic message on the wire

The wire format is ``{"error": {"code", "message", "details"}}``; the SDK re-raises the class
that matches ``code`` so local and remote callers see the same exception.
"""

from __future__ import annotations

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


class ServerUnavailableError(ShoalError):
    code = "UNAVAILABLE"
    http_status = 503


class InternalError(ShoalError):
    code = "INTERNAL"
    http_status = 500


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
