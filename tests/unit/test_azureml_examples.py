"""Every asset/resource YAML of the public Azure/azureml-examples repository loads unchanged.

Skipped unless SHOAL_AZUREML_EXAMPLES points at a checkout (or an exported tree) of that
repository, e.g.::

    git -C <bare repo> archive HEAD cli/assets cli/resources cli/schedules | tar -x -C /tmp/aml
    SHOAL_AZUREML_EXAMPLES=/tmp/aml pytest tests/unit/test_azureml_examples.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.entities import KINDS, Data, kind_of_schema, load_entity, load_yaml, parse_entity
from shoal.errors import SpecError

ROOT = os.environ.get("SHOAL_AZUREML_EXAMPLES")
FOLDER_KINDS = ("model", "data", "environment", "component", "compute", "datastore", "workspace", "connection")
# Valid stand-ins for `name: <PLACEHOLDER>` in the examples.
PLACEHOLDER_NAMES = {
    "compute": "example-compute",
    "datastore": "example_datastore",
    "workspace": "example-ws",
    "component": "example_component",
}


def _files() -> list:
    if not ROOT:
        return [pytest.param(None, marks=pytest.mark.skip(reason="SHOAL_AZUREML_EXAMPLES is not set"))]
    cli = Path(ROOT) / "cli"
    roots = [cli / "assets", cli / "schedules"]
    roots += [cli / "resources" / k for k in ("compute", "datastore", "workspace", "connections")]
    files = sorted(p for r in roots for p in r.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no YAML files under {cli}"))]
    return [pytest.param(p, id=p.relative_to(cli).as_posix()) for p in files]


def _folder_kind(path: Path) -> str:
    for parent in path.parents:
        if parent.name.removesuffix("s") in FOLDER_KINDS:  # resources/connections holds connections
            return parent.name.removesuffix("s")
    raise AssertionError(f"cannot tell the kind of {path} from its folder")


@pytest.mark.parametrize("path", _files())
def test_example_loads(path: Path) -> None:
    data, _ = load_yaml(path)
    if "channels" in data or "dependencies" in data:
        # A conda file kept next to environments/models; loading it as an environment must say so.
        with pytest.raises(SpecError, match="conda file"):
            load_entity("environment", path)
        return
    schema_kind = kind_of_schema(data.get("$schema"))
    if schema_kind == "schedule" and "import_data" in data:
        pytest.skip("a data import schedule: Shoal loads job schedules only")
    kind = schema_kind or _folder_kind(path)
    assert kind in KINDS, f"{path}: kind {kind!r}"
    overrides = []
    name = data.get("name")
    if isinstance(name, str) and "<" in name:
        overrides.append({"name": PLACEHOLDER_NAMES.get(kind, "example")})
    entity = load_entity(kind, path, params_override=overrides)
    assert isinstance(entity, KINDS[kind].entity_types)
    assert parse_entity(kind, entity.to_dict()) == entity
    if data.get("source") is not None:
        assert isinstance(entity, Data) and entity.source is not None
