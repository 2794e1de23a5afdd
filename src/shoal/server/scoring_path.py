"""The scoring route's fast path: an ASGI layer in front of the whole app for ``POST …/score``.

A scoring request is the one request a server sees thousands of times a second, and the general
stack (the request gate's token lookup, FastAPI's dependency resolution and request objects)
costs more than the hop to the instance. This layer answers an *authorized* scoring request
itself: the endpoint's keys (and the secret its access tokens are signed with) are in memory
(``Supervisor.endpoints``; no database read), the body is read within the same 100 MB cap and
stall limit as the gate's, and the router forwards it.

Anything else goes down the ordinary stack unchanged, and so does every scoring request this
layer would not accept (no key, a wrong key, an unknown endpoint, a user's own Shoal token on an
``aml_token`` endpoint): the route ``routes/endpoints.score`` then answers it with the same
checks, a refusal in Shoal's error format and in the audit log. So the fast path never decides
a refusal on its own."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from shoal.server.gate import MAX_SCORING_BODY
from shoal.services.endpoints import tokens as endpoint_tokens
from shoal.services.endpoints.router import DEPLOYMENT_HEADER, Router

SCORE_PATH = re.compile(r"^/api/v1/workspaces/([^/]+)/onlineEndpoints/([^/]+)/score$")
_DEPLOYMENT_HEADER = DEPLOYMENT_HEADER.encode()


class _Fallback(Exception):
    """Let the ordinary stack answer (it will refuse, with the audit record)."""


class ScoringFastPath:
    def __init__(self, app: ASGIApp, router: Router, *, body_timeout: float = 60.0) -> None:
        self.app = app
        self.router = router
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = SCORE_PATH.match(scope["path"])
            if found is not None and self._authorized(scope, found.group(1), found.group(2)):
                await self._score(scope, receive, send, found.group(1), found.group(2))
                return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope, workspace: str, endpoint: str) -> bool:
        view = self.router.supervisor.endpoints.get((workspace, endpoint))
        if view is None:
            return False
        bearer = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    bearer = rest.strip()
                break
        if not bearer:
            return False
        if view.auth_mode != "key":  # an access token from get-credentials; a user's token: the slow path
            text = bearer.decode("latin-1")
            return endpoint_tokens.verify(view.keys.get("primaryKey") or "", text, workspace, endpoint)
        matched = False
        for key in view.keys.values():  # every key compared: no early exit to time
            if key and hmac.compare_digest(bearer, key.encode()):
                matched = True
        return matched

    async def _score(self, scope: Scope, receive: Receive, send: Send, workspace: str, endpoint: str) -> None:
        content_type = "application/json"
        pinned = None
        length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == _DEPLOYMENT_HEADER:
                pinned = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        if length is not None and length.isdigit() and int(length) > MAX_SCORING_BODY:
            why = json.dumps({"message": f"request body over {MAX_SCORING_BODY} bytes"}).encode()
            await _answer(send, 413, why, "application/json", {})
            return
        body = await self._body(receive)
        if isinstance(body, int):
            if body:  # a client that went away gets no answer
                why = "the request body stalled" if body == 408 else f"request body over {MAX_SCORING_BODY} bytes"
                await _answer(send, body, json.dumps({"message": why}).encode(), "application/json", {})
            return
        answer = await self.router.score(workspace, endpoint, body, content_type, pinned=pinned)
        await _answer(send, answer.status, answer.body, answer.media_type, answer.headers)

    async def _body(self, receive: Receive) -> bytes | int:
        """The body, or the status to refuse it with (408 stalled, 413 too big; 0: client gone)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                return 408
            if message["type"] != "http.request":
                return 0
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_SCORING_BODY:
                return 413
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, media_type: str, headers: dict[str, Any]) -> None:
    raw = [
        (b"content-type", media_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        *((k.encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
