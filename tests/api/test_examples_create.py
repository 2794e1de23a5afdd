"""Every YAML in examples/ — and, when SHOAL_AZUREML_EXAMPLES points at a checkout of the public
Azure/azureml-examples repository, every asset and resource YAML of its cli/ folder — creates
unchanged through the SDK, and shows again as it was stored."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.config import ShoalSettings
from shoal.entities import kind_of_schema, load_entity, load_yaml
from tests.unit.test_azureml_examples import PLACEHOLDER_NAMES, _folder_kind

from .conftest import Api

ROOT = Path(__file__).resolve().parents[2]
AML = os.environ.get("SHOAL_AZUREML_EXAMPLES")
YAML_SUFFIXES = (".yml", ".yaml")


@pytest.fixture
def sqlite_api(shoal_home: Path) -> Iterator[Api]:
    """The API with examples/datastore allowed for local datastores, as the README's admin does."""
    api = Api(ShoalSettings(home=shoal_home, local_datastore_roots=str(ROOT / "examples" / "datastore")))
    yield api
    api.close()


def _is_conda_file(data: dict) -> bool:
    return "channels" in data or "dependencies" in data


def create(ml, path: Path, kind: str | None = None):
    data, _ = load_yaml(path)
    kind = kind or kind_of_schema(data.get("$schema")) or _folder_kind(path)
    overrides = []
    if isinstance(data.get("name"), str) and "<" in data["name"]:
        overrides.append({"name": PLACEHOLDER_NAMES.get(kind, "example")})
    entity = load_entity(kind, path, params_override=overrides)
    if kind == "workspace":
        created = ml.workspaces.begin_create(entity).result()
    elif kind == "compute":
        created = ml.compute.begin_create_or_update(entity).result()
    else:
        created = ml.create_or_update(entity)
    assert created.name
    return kind, created


def _our_examples() -> list:
    files = sorted(p for p in (ROOT / "examples").rglob("*") if p.suffix in YAML_SUFFIXES)
    files = [p for p in files if not _is_conda_file(load_yaml(p)[0]) and "MLTable" not in p.name]
    # The endpoint example is deployed end to end by `make demo` and tests/e2e/test_endpoints.py:
    # a deployment needs its endpoint and a registered model first.
    files = [p for p in files if p.parent.name != "endpoint"]
    return [pytest.param(p, id=p.relative_to(ROOT / "examples").as_posix()) for p in files]


@pytest.mark.parametrize("path", _our_examples())
def test_our_examples_create(sqlite_api, path):
    if path.parent.name == "component":
        create(sqlite_api.ml, ROOT / "examples/environment/sklearn-conda.yml")
    if path.parent.name == "jobs":
        create(sqlite_api.ml, ROOT / "examples/data/iris-mltable.yml")
    kind, created = create(sqlite_api.ml, path)
    if kind == "job":
        assert created.status == "Queued"  # no dispatcher in-process: e2e tests run jobs
        return
    if kind in ("model", "data", "environment", "component"):
        group = {"model": "models", "data": "data", "environment": "environments", "component": "components"}[kind]
        again = getattr(sqlite_api.ml, group).get(created.name, version=created.version)
        assert again.to_dict() == created.to_dict()


def _aml_files() -> list:
    if not AML:
        return [pytest.param(None, marks=pytest.mark.skip(reason="SHOAL_AZUREML_EXAMPLES is not set"))]
    cli = Path(AML) / "cli"
    roots = [cli / "assets"] + [cli / "resources" / k for k in ("compute", "datastore", "workspace")]
    files = sorted(p for r in roots for p in r.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
    return [pytest.param(p, id=p.relative_to(cli).as_posix()) for p in files]


@pytest.mark.parametrize("path", _aml_files())
def test_azureml_examples_create_unchanged(sqlite_api, path):
    data, _ = load_yaml(path)
    if _is_conda_file(data):
        pytest.skip("a conda file, read through the environment that names it")
    if kind_of_schema(data.get("$schema")) == "schedule":
        pytest.skip("a Schedule spec: schedules are a later issue")
    create(sqlite_api.ml, path)
