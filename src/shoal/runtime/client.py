"""The runner's HTTP client: job token, retries, and finding the server again after a restart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

RETRY_FOR = 600.0  # a server restart must not kill running jobs: keep trying this long


class ServerGone(Exception):
    pass


class ServerRefused(Exception):
    """The server said no; ``code`` and ``message`` are its own words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    @classmethod
    def from_response(cls, method: str, path: str, response: httpx.Response) -> ServerRefused:
        try:
            err = response.json().get("error") or {}
        except ValueError:
            err = {}
        code = str(err.get("code") or f"HTTP_{response.status_code}")
        message = str(err.get("message") or response.text[:300])
        return cls(code, f"{message} ({method} {path.split('?')[0]})")


class Stale(Exception):
    """The server replaced this attempt: stop without reporting anything."""


class RunnerClient:
    def __init__(self, url: str, token: str, workspace: str, job: str, home: Path | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.workspace = workspace
        self.job = job
        self.home = home
        self.http = httpx.Client(timeout=60.0, headers={"Authorization": f"Bearer {token}"})

    # -- plumbing ---------------------------------------------------------------------------

    def _rediscover(self) -> None:
        """A local server that restarted may listen on a new port: read server.json again."""
        if self.home is None:
            return
        try:
            info = json.loads((self.home / "server.json").read_text())
        except (OSError, ValueError):
            return
        url = info.get("url")
        if isinstance(url, str) and url:
            self.url = url.rstrip("/")

    def request(self, method: str, path: str, *, retry_for: float = RETRY_FOR, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + retry_for
        delay = 0.2
        factory = kwargs.pop("content_factory", None)
        while True:
            if factory is not None:
                kwargs["content"] = factory()  # a streamed body cannot be replayed: make it anew
            try:
                response = self.http.request(method, f"{self.url}/api/v1{path}", **kwargs)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self._rediscover()  # the next call (a heartbeat, say) tries the new address
                    raise ServerGone(f"cannot reach the Shoal server at {self.url}") from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._rediscover()
                continue
            if response.status_code == 409 and (
                ("attempt" in response.text and "replaced" in response.text) or "already finished" in response.text
            ):
                raise Stale(response.text)  # the server ended or replaced this attempt: stop quietly
            if response.status_code >= 500 and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code >= 400:
                raise ServerRefused.from_response(method, path, response)
            return response

    @property
    def _job(self) -> str:
        return f"/workspaces/{self.workspace}/jobs/{self.job}"

    # -- job --------------------------------------------------------------------------------

    def run_spec(self) -> dict[str, Any]:
        return self.request("GET", f"{self._job}/runspec").json()

    def heartbeat(self) -> dict[str, Any]:
        return self.request("POST", f"{self._job}/heartbeat", retry_for=0).json()

    def report(
        self, status: str, *, exit_code: int | None = None, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"status": status, "exit_code": exit_code, "error": error}
        return self.request("POST", f"{self._job}/status", json=body).json()

    def append_log(self, path: str, offset: int, data: bytes) -> int:
        response = self.request(
            "POST",
            f"{self._job}/logs",
            params={"path": path, "offset": offset},
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        return int(response.json()["size"])

    # -- files ------------------------------------------------------------------------------

    def list_files(self, datastore: str, path: str) -> dict[str, Any]:
        ds = f"/workspaces/{self.workspace}/datastores/{datastore}"
        return self.request("GET", f"{ds}/files", params={"path": path}).json()

    def download(self, datastore: str, path: str, target: Path) -> None:
        ds = f"/workspaces/{self.workspace}/datastores/{datastore}"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        with self.http.stream("GET", f"{self.url}/api/v1{ds}/content", params={"path": path}) as response:
            if response.status_code >= 400:
                response.read()
                raise ServerRefused.from_response("GET", f"{ds}/content", response)
            with open(tmp, "wb") as fh:
                for chunk in response.iter_bytes(1024 * 1024):
                    fh.write(chunk)
        os.replace(tmp, target)

    def upload(self, datastore: str, path: str, source: Path) -> None:
        ds = f"/workspaces/{self.workspace}/datastores/{datastore}"

        def chunks() -> Iterator[bytes]:
            with open(source, "rb") as fh:
                while block := fh.read(1024 * 1024):
                    yield block

        self.request(
            "PUT",
            f"{ds}/content",
            params={"path": path},
            content_factory=chunks,
            headers={"content-type": "application/octet-stream"},
        )

    def upload_tree(self, datastore: str, prefix: str, folder: Path, files: Iterable[Path]) -> int:
        count = 0
        for f in files:
            rel = f.relative_to(folder).as_posix()
            self.upload(datastore, f"{prefix.rstrip('/')}/{rel}" if prefix else rel, f)
            count += 1
        return count
