"""In-process API fixtures: the real app behind Starlette's TestClient, and an SDK client on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shoal.client.ml_client import MLClient
from shoal.config import ShoalSettings
from shoal.server.app import create_app


class Api:
    """The app, a raw HTTP client carrying the admin token, and an SDK client."""

    def __init__(self, settings: ShoalSettings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.token = settings.token_file.read_text().strip()
        self.http = TestClient(self.app, raise_server_exceptions=False)
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.anon = TestClient(self.app, raise_server_exceptions=False)
        self.ml = MLClient(
            http_client=TestClient(self.app, raise_server_exceptions=False),
            token=self.token,
            base_url="http://testserver",
        )

    def url(self, path: str, workspace: str = "default") -> str:
        return f"/api/v1/workspaces/{workspace}{path}"

    def client(self, workspace: str) -> MLClient:
        return MLClient(
            http_client=TestClient(self.app, raise_server_exceptions=False),
            token=self.token,
            base_url="http://testserver",
            workspace_name=workspace,
        )

    def close(self) -> None:
        self.http.close()
        self.anon.close()
        self.ml.close()
        self.app.state.audit.close()
        self.app.state.ctx.close()


@pytest.fixture
def api(shoal_home: Path, database_url: str) -> Iterator[Api]:
    """The API on SQLite and on PostgreSQL (each test runs twice)."""
    settings = ShoalSettings(home=shoal_home, database_url=database_url)
    a = Api(settings)
    yield a
    a.close()


@pytest.fixture
def sqlite_api(shoal_home: Path) -> Iterator[Api]:
    """The API on the embedded default only, for tests that are about files rather than SQL."""
    a = Api(ShoalSettings(home=shoal_home))
    yield a
    a.close()


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert "error" in body, body
    return body["error"]
