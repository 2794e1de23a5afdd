"""In-process API fixtures: the real app behind Starlette's TestClient, and an SDK client on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shoal.client.ml_client import MLClient
from shoal.config import ShoalSettings
from shoal.server.app import create_app
from shoal.store.db import Database
from tests.conftest import pg_database


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


# -- the schema, made once per test process ----------------------------------------------------
# Migrating a new database costs ~0.4 s on SQLite and ~1.5 s on PostgreSQL, and these tests make
# some 300. Here ``database_url`` (the root conftest's, overridden) is a copy of one database
# migrated once: a file copy, or CREATE DATABASE … TEMPLATE. The app still migrates it when it
# starts and finds it at head. Migrating from nothing is tested by tests/store/test_migrations.py
# and by every server the e2e tests start.


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "shoal.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


@pytest.fixture(scope="session")
def migrated_pg() -> Iterator[str]:
    """A PostgreSQL database at head, the template of each test's (its name)."""
    with pg_database() as url:
        db = Database(url)
        db.migrate()
        db.dispose()  # a template must have no connections
        yield url.rsplit("/", 1)[1]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, shoal_home: Path) -> Iterator[str]:
    if request.param == "sqlite":
        shoal_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), shoal_home / "shoal.db")
        yield f"sqlite:///{shoal_home / 'shoal.db'}"
        return
    with pg_database(template=request.getfixturevalue("migrated_pg")) as url:
        yield url


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
