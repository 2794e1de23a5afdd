"""Shared fixtures: an isolated SHOAL_HOME per test, and the store on SQLite and PostgreSQL.

PostgreSQL tests use the server on 127.0.0.1:5432 (trust auth) with a fresh database per test.
Where it is unreachable they are skipped with a message, except under CI (CI=true), where
``.ci/run`` has started it and a missing server is an error.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("SHOAL_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)


@pytest.fixture(autouse=True)
def shoal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SHOAL_HOME; nothing touches ~/.shoal."""
    home = tmp_path / "shoal-home"
    monkeypatch.setenv("SHOAL_HOME", str(home))
    for var in ("SHOAL_DATABASE_URL", "SHOAL_ARTIFACT_ROOT", "SHOAL_SERVER_URL", "SHOAL_TOKEN", "SHOAL_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    return home


def _pg_available() -> str | None:
    try:
        import psycopg  # noqa: F401
        from sqlalchemy import create_engine, text
    except ImportError as exc:
        return f"psycopg is not installed: {exc}"
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"
    return None


_PG_PROBLEM: list[str | None] = []


def pg_problem() -> str | None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_pg_available())
    return _PG_PROBLEM[0]


@contextlib.contextmanager
def pg_database(template: str | None = None) -> Iterator[str]:
    """A fresh PostgreSQL database (empty, or a copy of ``template``), dropped afterwards; the
    test is skipped where PostgreSQL is unreachable (failed under CI)."""
    problem = pg_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests, but {problem}")
        pytest.skip(problem)
    from sqlalchemy import create_engine, text

    name = f"shoal_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, shoal_home: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{shoal_home / 'shoal.db'}"
    return request.getfixturevalue("pg_url")


# -- object stores ----------------------------------------------------------------------------
# moto's S3 server and Azurite, one process each per session (tests/objstores.py), started on
# first use. Missing tools skip the tests that need them, except under CI, where they are errors.


def _need(kind: str) -> None:
    from tests.objstores import missing

    problem = missing(kind)
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the {kind} tests, but {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    _need("s3")
    from tests.objstores import start_moto, stop

    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    stop(server.proc)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    _need("azure_blob")
    from tests.objstores import start_azurite, stop

    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    stop(server.proc)


def make_backend(request: pytest.FixtureRequest, kind: str, tmp: Path) -> object:
    from tests.objstores import Backend

    if kind == "s3":
        return Backend(kind, tmp, s3=request.getfixturevalue("moto_s3"))
    if kind == "azure_blob":
        return Backend(kind, tmp, azurite=request.getfixturevalue("azurite"))
    # A local datastore must lie inside SHOAL_LOCAL_DATASTORE_ROOTS: the default one of this home.
    return Backend(kind, request.getfixturevalue("shoal_home") / "local-datastores")


@pytest.fixture(params=["local", "s3", "azure_blob"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A fresh place on local disk, on S3 (moto) and on Azure Blob (Azurite): see tests/objstores.py."""
    return make_backend(request, request.param, tmp_path / "backend")


@pytest.fixture(params=["s3", "azure_blob"])
def cloud_backend(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """``backend`` without local disk, for what only object stores do."""
    return make_backend(request, request.param, tmp_path / "backend")


# -- the longest modules first ----------------------------------------------------------------
# `make test` hands whole modules to its workers (pytest-xdist, --dist loadfile) in collection
# order: a long module handed out late runs on alone while the other workers sit idle. These are
# the longest (about a minute or more each on the 2-core test machine; ``--durations`` says when
# another joins them), started first and longest first; every other module keeps its place.
# Only the order of modules changes: every test runs, in its module's order.
LONGEST_MODULES = (
    "tests/e2e/test_ray_compute.py",
    "tests/e2e/test_spark_jobs.py",
    "tests/api/test_jobs_api.py",
    "tests/e2e/test_sweeps.py",
    # Its Ray cluster starts a little after the one above: two at once slow each other's start.
    "tests/compute/test_backend_contract.py",
    "tests/e2e/test_transfer_restart.py",
    "tests/e2e/test_jobs.py",
    "tests/e2e/test_endpoints_mlflow.py",
    "tests/e2e/test_devbox.py",
    "tests/api/test_resources.py",
    "tests/api/test_versioning.py",
    "tests/e2e/test_cli.py",
    "tests/e2e/test_endpoints_auth.py",
    "tests/e2e/test_endpoints.py",
    "tests/e2e/test_server.py",
    "tests/e2e/test_mlflow_in_job.py",
    "tests/e2e/test_schedules_cli.py",
    "tests/api/test_auth_and_errors.py",
    "tests/envs/test_builder.py",
    "tests/e2e/test_pipelines_client.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist would otherwise hand out the modules with the most tests first (its
    # --loadscope-reorder, on by default), whatever their length.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable
