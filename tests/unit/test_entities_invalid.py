"""Every invalid YAML fails with a SpecError naming the file, the line and the field path."""

from __future__ import annotations

import pytest

from shoal.entities import load_entity
from shoal.errors import SpecError

from .conftest import YAML_DIR, assert_spec_error

# (file under tests/data/yaml, line, field path as shown, message fragment)
CASES = [
    ("compute/invalid/no-type.yml", 1, "'type'", "amlcompute, computeinstance"),
    (
        "compute/invalid/unknown-type.yml",
        2,
        "'type'",
        "unknown compute type 'batchai'; allowed types: amlcompute",
    ),
    ("compute/invalid/bad-name.yml", 2, "'name'", "must start with a letter"),
    ("compute/invalid/long-name.yml", 2, "'name'", "2 to 24 characters"),
    (
        "compute/invalid/bad-tier.yml",
        3,
        "'tier'",
        "Input should be 'dedicated' or 'low_priority', got 'spot'",
    ),
    ("compute/invalid/min-gt-max.yml", 3, "'min_instances'", "larger than max_instances"),
    ("compute/invalid/unknown-field.yml", 3, "unknown field 'max_nodes'", ""),
    ("compute/invalid/wrong-int.yml", 3, "'max_instances'", "valid integer"),
    (
        "compute/invalid/bad-identity.yml",
        7,
        "unknown field 'identity.user_assigned_identities[0].resourceid'",
        "",
    ),
    (
        "datastore/invalid/gen2-account-key.yml",
        5,
        "'credentials'",
        "not valid for datastore type azure_data_lake_gen2; use service principal",
    ),
    ("datastore/invalid/hyphen-name.yml", 1, "'name'", "no '-'"),
    ("datastore/invalid/missing-container.yml", 1, "missing required field 'container_name'", ""),
    ("datastore/invalid/unknown-credentials.yml", 5, "'credentials'", "cannot tell the kind of credentials"),
    ("datastore/invalid/gen1-account-name.yml", 4, "unknown field 'account_name'", ""),
    ("datastore/invalid/no-type.yml", 1, "'type'", "azure_blob"),
    ("workspace/invalid/bad-name.yml", 1, "'name'", "3 to 33 characters"),
    ("workspace/invalid/bad-kind.yml", 2, "'kind'", "got 'lakehouse'"),
    (
        "workspace/invalid/bad-isolation.yml",
        3,
        "'managed_network.isolation_mode'",
        "allow_only_approved_outbound",
    ),
    (
        "model/invalid/bad-type.yml",
        4,
        "field 'type'",
        "Input should be 'custom_model', 'mlflow_model' or 'triton_model'",
    ),
    ("model/invalid/typo-field.yml", 4, "unknown field 'pathh'", ""),
    ("model/invalid/bad-version.yml", 2, "'version'", "version '-1' is invalid"),
    ("model/invalid/bad-name.yml", 1, "'name'", "name 'churn model' is invalid"),
    ("model/invalid/no-path.yml", 1, "missing required field 'path'", ""),
    ("data/invalid/no-path.yml", 1, "missing required field 'path'", "source for a data import"),
    ("data/invalid/bad-type.yml", 2, "'type'", "'uri_folder'"),
    ("data/invalid/bad-source.yml", 4, "'source.type'", "'database' or 'file_system'"),
    ("environment/invalid/both-image-build.yml", 3, "'build'", "exactly one of 'image' or 'build'"),
    ("environment/invalid/neither.yml", 1, "'image'", "needs 'image' or 'build'"),
    ("environment/invalid/conda-file-itself.yml", 2, "'channels'", "this looks like a conda file"),
    ("environment/invalid/missing-conda.yml", 3, "'conda_file'", "does-not-exist.yml' not found"),
    ("environment/invalid/conda-with-build.yml", 4, "'conda_file'", "only be used with 'image'"),
    ("environment/invalid/bad-os.yml", 3, "'os_type'", "'linux' or 'windows'"),
    ("component/invalid/bad-name.yml", 1, "'name'", "lowercase"),
    (
        "component/invalid/bad-input-type.yml",
        8,
        "'inputs.epochs.type'",
        "unknown input type 'int'; use one of integer",
    ),
    ("component/invalid/bad-default.yml", 7, "'inputs.epochs.default'", "'ten' is not a valid integer"),
    ("component/invalid/unknown-type.yml", 2, "'type'", "command, pipeline, parallel, spark"),
    ("component/invalid/no-command.yml", 1, "missing required field 'command'", ""),
    ("component/invalid/bad-env.yml", 5, "unknown field 'environment.imagee'", ""),
]


@pytest.mark.parametrize(("rel", "line", "field", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_invalid_yaml(rel: str, line: int, field: str, fragment: str) -> None:
    path = YAML_DIR / rel
    with pytest.raises(SpecError) as info:
        load_entity(rel.split("/")[0], path)
    assert_spec_error(info.value, file=path.name, line=line, fragments=[field, fragment])
    errors = info.value.details["errors"]
    assert errors and all({"path", "line", "message"} <= set(e) for e in errors)
    assert line in [e["line"] for e in errors]
    assert info.value.details["source"].endswith(path.name)


def test_every_invalid_file_has_a_case() -> None:
    files = {p.relative_to(YAML_DIR).as_posix() for p in YAML_DIR.glob("*/invalid/*.yml")}
    assert files == {c[0] for c in CASES}


def test_several_errors_are_all_reported() -> None:
    text = "name: Bad Name\ncommand: x\nenvironment: azureml:e:1\nfoo: 1\nis_deterministic: maybe\n"
    from io import StringIO

    stream = StringIO(text)
    stream.name = "comp.yml"
    with pytest.raises(SpecError) as info:
        load_entity("component", stream)
    message = str(info.value)
    assert message.startswith("comp.yml: 3 problems in the component spec:")
    assert "line 1: field 'name'" in message
    assert "line 4: unknown field 'foo'" in message
    assert "line 5: field 'is_deterministic'" in message
    assert [e["line"] for e in info.value.details["errors"]] == [1, 4, 5]
