"""Access tokens of ``aml_token`` endpoints: what ``get-credentials`` hands out, as Azure does.

Azure gives a caller with the right to score an endpoint a short-lived bearer token for it
(``accessToken``, ``expiryTimeUtc``, ``refreshAfterTimeUtc``, ``tokenType``). Shoal's token names
its workspace, endpoint, holder and expiry, signed with HMAC-SHA256 under the endpoint's own
secret (its stored key, never shown for an ``aml_token`` endpoint). So the router checks it in
memory, without a database read, it is good for that endpoint only, and an endpoint deleted and
created again under the same name does not take old tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

PREFIX = "shoalep_"
LIFETIME_S = 24 * 3600  # Azure's aml tokens last hours; refresh at half-life
REFRESH_AFTER_S = LIFETIME_S // 2


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mint(secret: str, workspace: str, endpoint: str, holder: str, *, now: float | None = None) -> dict[str, Any]:
    """``get-credentials``' answer for an aml_token endpoint (Azure's field names)."""
    issued = time.time() if now is None else now
    claims = {"ws": workspace, "ep": endpoint, "sub": holder, "exp": int(issued + LIFETIME_S)}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return {
        "accessToken": f"{PREFIX}{payload}.{_sign(secret, payload)}",
        "expiryTimeUtc": _iso(claims["exp"]),
        "refreshAfterTimeUtc": _iso(issued + REFRESH_AFTER_S),
        "tokenType": "Bearer",
    }


def verify(secret: str, token: str, workspace: str, endpoint: str) -> bool:
    """True when ``token`` was minted for this endpoint under ``secret`` and has not expired."""
    if not token.startswith(PREFIX) or not secret:
        return False
    payload, _, signature = token[len(PREFIX) :].partition(".")
    if not payload or not hmac.compare_digest(signature, _sign(secret, payload)):
        return False
    try:
        claims = json.loads(_unb64(payload))
    except ValueError:
        return False
    return (
        isinstance(claims, dict)
        and claims.get("ws") == workspace
        and claims.get("ep") == endpoint
        and isinstance(claims.get("exp"), int)
        and claims["exp"] > time.time()
    )
