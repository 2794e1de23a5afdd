"""HTTP transport: one httpx client, bearer auth, Shoal errors re-raised by code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from shoal.errors import ServerUnavailableError, error_from_wire

API_PREFIX = "/api/v1"


class Transport:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        http_client: httpx.Client | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if http_client is None:
            # Every request goes to base_url (relative paths only), so a plain-http server never
            # needs the TLS context; building it (the CA bundle) costs ~20 ms per CLI call.
            verify = self.base_url.startswith("https:")
            http_client = httpx.Client(base_url=self.base_url, timeout=timeout, verify=verify)
        http_client.headers.update(headers)
        self.http = http_client

    def _url(self, path: str) -> str:
        return API_PREFIX + path

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """``timeout``: seconds for this request, for the few that wait on purpose (a compute
        instance's start); else the client's."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        extra = {"timeout": timeout} if timeout is not None else {}
        try:
            response = self.http.request(
                method, self._url(path), json=json, params=clean, content=content, headers=headers, **extra
            )
        except httpx.TransportError as exc:
            raise ServerUnavailableError(f"cannot reach the Shoal server at {self.base_url}: {exc}") from exc
        return self._decode(response)

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = {}
            raise error_from_wire(payload, response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def stream_download(
        self, path: str, params: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> Iterator[bytes]:
        with self.stream("GET", path, params=params, headers=headers) as response:
            yield from response.iter_bytes(1024 * 1024)

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """A response to read as it arrives; an error answer raises its Shoal error. A
        connection lost while reading raises ``httpx.TransportError`` from the iteration."""
        try:
            with self.http.stream(method, self._url(path), params=params, json=json, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response)
                yield response
        except httpx.TransportError as exc:
            raise ServerUnavailableError(f"cannot reach the Shoal server at {self.base_url}: {exc}") from exc

    def paged(self, path: str, params: dict[str, Any] | None = None, *, limit: int | None = None) -> Iterator[Any]:
        """Follow next_page_token until the items (or ``limit``) run out."""
        params = dict(params or {})
        seen = 0
        while True:
            body = self.request("GET", path, params=params)
            for item in body.get("value", []):
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            token = body.get("next_page_token")
            if not token:
                return
            params["page_token"] = token

    def close(self) -> None:
        self.http.close()
