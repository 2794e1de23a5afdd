"""load_yaml safety, line numbers, overrides, kind detection and relative-path resolution."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
import yaml

from shoal.entities import (
    AmlCompute,
    Data,
    Model,
    apply_overrides,
    load_compute,
    load_data,
    load_datastore,
    load_entity,
    load_environment,
    load_model,
    load_yaml,
)
from shoal.entities import yamlfile as loader_module
from shoal.entities.loader import MAX_BYTES, MAX_NODES, parse_override_value
from shoal.errors import SpecError

from .conftest import YAML_DIR, assert_spec_error

LOADER = YAML_DIR / "loader"


def _fail(source, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_yaml(source, **kwargs)
    return info.value


# --- YAML safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.yml", "comments-only.yml"])
def test_empty_file(name: str) -> None:
    assert_spec_error(_fail(LOADER / name), file=name, line=None, fragments=["is empty"])


def test_list_at_top() -> None:
    err = _fail(LOADER / "list-top.yml")
    assert_spec_error(err, file="list-top.yml", line=1, fragments=["must be a mapping, got a list"])


def test_scalar_at_top() -> None:
    err = _fail(io.StringIO("just text\n"))
    assert "must be a mapping, got a string" in str(err)


def test_python_tag_is_rejected() -> None:
    err = _fail(LOADER / "python-tag.yml")
    assert_spec_error(
        err, file="python-tag.yml", line=2, fragments=["'!!python/object/apply:os.system'", "not allowed"]
    )


@pytest.mark.parametrize("tag", ["!!python/name:os.system", "!!set {a, b}", "!custom x", "!!omap [a: 1]"])
def test_other_tags_are_rejected(tag: str) -> None:
    assert "not allowed" in str(_fail(io.StringIO(f"name: m\npath: {tag}\n")))


def test_duplicate_key() -> None:
    err = _fail(LOADER / "duplicate-key.yml")
    assert_spec_error(err, file="duplicate-key.yml", line=4, fragments=["duplicate key 'name'"])


def test_duplicate_nested_key() -> None:
    err = _fail(io.StringIO("a:\n  b: 1\n  c: 2\n  b: 3\n"))
    assert_spec_error(err, file="<stream>", line=4, fragments=["duplicate key 'b'"])


def test_syntax_error_names_line() -> None:
    err = _fail(LOADER / "syntax-error.yml")
    assert_spec_error(err, file="syntax-error.yml", line=3, fragments=["invalid YAML"])


def test_multiple_documents() -> None:
    err = _fail(LOADER / "multi-doc.yml")
    assert_spec_error(err, file="multi-doc.yml", line=3, fragments=["single document"])


def test_alias_bomb_fails_fast() -> None:
    start = time.perf_counter()
    err = _fail(LOADER / "alias-bomb.yml")
    assert time.perf_counter() - start < 1.0
    assert_spec_error(err, file="alias-bomb.yml", line=None, fragments=["expands to a huge document (anchors/aliases)"])


def test_alias_bomb_through_load_entity_fails_fast() -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError, match="huge document"):
        load_model(LOADER / "alias-bomb.yml")
    assert time.perf_counter() - start < 1.0


def test_too_many_plain_nodes(tmp_path: Path) -> None:
    path = tmp_path / "many.yml"
    path.write_text("name: m\nitems: [" + ", ".join(["1"] * (MAX_NODES + 1)) + "]\n")
    assert "huge document" in str(_fail(path))


def test_alias_expansion_over_size_limit() -> None:
    big = "x" * (MAX_BYTES // 4 + 1)
    text = f"a: &a {big}\nb: [*a, *a, *a, *a]\n"
    assert "huge document" in str(_fail(io.StringIO(text)))


def test_file_over_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_bytes(b"a: " + b"x" * MAX_BYTES + b"\n")
    assert "larger than 10 MB" in str(_fail(path))


def test_recursive_alias() -> None:
    err = _fail(LOADER / "recursive-alias.yml")
    assert_spec_error(err, file="recursive-alias.yml", line=None, fragments=["recursive alias"])


def test_complex_key() -> None:
    err = _fail(LOADER / "bad-key.yml")
    assert_spec_error(err, file="bad-key.yml", line=2, fragments=["keys must be plain strings"])


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert "file not found" in str(_fail(tmp_path / "nope.yml"))
    assert "not a file" in str(_fail(tmp_path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert_spec_error(_fail(path), file="latin1.yml", line=None, fragments=["not UTF-8"])


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    err = _fail(io.StringIO("a: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nest" in str(err)  # libyaml: "maximum nesting depth"; pure Python: "nested too deeply"


# --- values and lines ------------------------------------------------------------------------


def test_values_and_line_map() -> None:
    text = (
        "name: m\n"  # 1
        "version: 1\n"  # 2
        "flag: yes\n"  # 3
        "when: 2024-01-08\n"  # 4
        "ratio: 0.5\n"  # 5
        "nothing: ~\n"  # 6
        "nested:\n"  # 7
        "  list:\n"  # 8
        "    - a\n"  # 9
        "    - key: v\n"  # 10
        "yes: key-as-written\n"  # 11
    )
    data, lines = load_yaml(io.StringIO(text))
    assert data == {
        "name": "m",
        "version": 1,
        "flag": True,
        "when": "2024-01-08",  # timestamps stay text
        "ratio": 0.5,
        "nothing": None,
        "nested": {"list": ["a", {"key": "v"}]},
        "yes": "key-as-written",
    }
    assert lines[""] == 1
    assert lines["nested"] == 7
    assert lines["nested.list"] == 8
    assert lines["nested.list[1]"] == 10
    assert lines["nested.list[1].key"] == 10
    assert lines.find("nested.list[1].missing") == 10
    assert lines.find("absent.deeper") == 1


def test_anchors_and_merge_keys() -> None:
    data, _ = load_yaml(LOADER / "anchors.yml")
    assert data["ssh_settings"] == {"admin_username": "azureuser", "admin_password": "base-pw"}
    c = load_compute(LOADER / "anchors.yml")
    assert isinstance(c, AmlCompute) and c.tags == {"team": "vision", "stage": "dev"}


@pytest.mark.parametrize("value", ["!!int abc", "!!float x", "!!bool maybe"])
def test_bad_explicit_scalar_tags(value: str) -> None:
    assert_spec_error(
        _fail(io.StringIO(f"name: m\nx: {value}\n")), file="<stream>", line=2, fragments=["is not a valid"]
    )


def test_merge_keeps_explicit_key_lines() -> None:
    _, lines = load_yaml(LOADER / "anchors.yml")
    assert lines["ssh_settings.admin_username"] == 8
    assert lines["ssh_settings.admin_password"] == 7


def test_aliases_are_independent_copies() -> None:
    data, _ = load_yaml(io.StringIO("a: &x {k: 1}\nb: *x\n"))
    data["a"]["k"] = 2
    assert data["b"] == {"k": 1}


def test_bytes_stream_with_bom() -> None:
    data, _ = load_yaml(io.BytesIO("\ufeffname: m\n".encode()))
    assert data == {"name": "m"}


# --- overrides -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("0.5", 0.5),
        ("true", True),
        ("False", False),
        ("null", None),
        ("yes", "yes"),
        ("01", "01"),
        ("", ""),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ('"quoted"', "quoted"),
        ("NaN", "NaN"),
        ("echo a: b", "echo a: b"),
        ("Standard_NC6", "Standard_NC6"),
    ],
)
def test_override_values(text: str, value: object) -> None:
    assert parse_override_value(text) == value


def test_apply_overrides_cli_and_sdk_forms() -> None:
    data = {"name": "c", "tags": {"a": "1"}, "rules": [{"name": "r"}]}
    out = apply_overrides(
        data,
        [
            "max_instances=3",
            "tags.x=yes",
            "identity.type=system_assigned",
            "rules[0].name=renamed",
            {"ssh_settings.admin_username": "azureuser", "description": 42},
        ],
    )
    assert out == {
        "name": "c",
        "tags": {"a": "1", "x": "yes"},
        "rules": [{"name": "renamed"}],
        "max_instances": 3,
        "identity": {"type": "system_assigned"},
        "ssh_settings": {"admin_username": "azureuser"},
        "description": 42,
    }
    assert data == {"name": "c", "tags": {"a": "1"}, "rules": [{"name": "r"}]}  # not mutated
    assert apply_overrides(data, ["rules.0.name=z"])["rules"] == [{"name": "z"}]
    assert apply_overrides(data, {"name": "single"})["name"] == "single"


@pytest.mark.parametrize("bad", ["no-equals", "=x", "name.sub=x", "rules[3].name=x", "rules.name=x"])
def test_bad_overrides(bad: str) -> None:
    with pytest.raises(SpecError, match="invalid override"):
        apply_overrides({"name": "c", "rules": [{"name": "r"}]}, [bad])


def test_load_with_overrides() -> None:
    c = load_compute(
        YAML_DIR / "compute/cluster-minimal.yml",
        params_override=["max_instances=3", "tags.x=yes", {"tier": "low_priority"}],
    )
    assert (c.max_instances, c.tags, c.tier) == (3, {"x": "yes"}, "low_priority")
    data, _ = load_yaml(YAML_DIR / "compute/cluster-minimal.yml", params_override=["name=other"])
    assert data["name"] == "other"


def test_override_can_fix_an_invalid_name() -> None:
    with pytest.raises(SpecError):
        load_compute(YAML_DIR / "compute/invalid/bad-name.yml")
    assert load_compute(YAML_DIR / "compute/invalid/bad-name.yml", params_override=[{"name": "ok-name"}])


# --- kind detection --------------------------------------------------------------------------


def test_kind_from_schema() -> None:
    assert isinstance(load_entity(None, YAML_DIR / "model/local-file.yml"), Model)
    assert isinstance(load_entity(None, YAML_DIR / "data/import-database.yml"), Data)


def test_kind_without_schema() -> None:
    with pytest.raises(SpecError, match=r"no-schema.yml: cannot tell what kind of spec this is from its \$schema"):
        load_entity(None, LOADER / "no-schema.yml")


def test_kind_not_handled_here() -> None:
    with pytest.raises(SpecError, match="this is a registry spec"):
        load_entity(None, LOADER / "registry-schema.yml")
    # online endpoints are loaded (entities/endpoint.py)
    assert load_entity(None, LOADER / "endpoint-schema.yml").auth_mode == "key"
    # schedules are loaded (entities/schedule.py): this one lacks the job it would create
    with pytest.raises(SpecError, match="missing required field 'create_job'"):
        load_entity(None, LOADER / "schedule-schema.yml")


def test_unknown_kind() -> None:
    with pytest.raises(SpecError, match="unknown entity kind 'widget'"):
        load_entity("widget", LOADER / "no-schema.yml")


# --- relative paths --------------------------------------------------------------------------


def _posix(path: Path | str) -> str:
    return Path(os.path.abspath(path)).as_posix()


@pytest.mark.parametrize(
    "remote",
    [
        "azureml:iris:1",
        "azureml://datastores/workspaceblobstore/paths/x/",
        "azureml://jobs/j/outputs/artifacts/paths/model/",
        "runs:/run-1/model",
        "https://example.org/x.csv",
        "http://example.org/x.csv",
        "wasbs://c@a.blob.core.windows.net/x",
        "abfss://fs@a.dfs.core.windows.net/x",
        "adl://store.azuredatalakestore.net/x",
        "s3://bucket/x",
        "gs://bucket/x",
        "azureml://datastores/${{default_datastore}}/paths/${{name}}",
    ],
)
def test_remote_paths_are_kept(tmp_path: Path, remote: str) -> None:
    spec = tmp_path / "data.yml"
    spec.write_text(f"name: d\npath: {remote}\n")
    assert load_data(spec).path == remote


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("data/iris.csv", "data/iris.csv"),
        ("./data/", "data/"),
        ("file:data/iris.csv", "data/iris.csv"),
        ("file:./data", "data"),
        ("../up/x.csv", "../up/x.csv"),
    ],
)
def test_local_paths_resolve_against_yaml_folder(tmp_path: Path, given: str, expected: str) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "data.yml").write_text(f"name: d\npath: {given}\n")
    want = _posix(folder / expected) + ("/" if expected.endswith("/") else "")
    assert load_data(folder / "data.yml").path == want


def test_absolute_and_file_url_paths(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text("name: m\npath: /srv/models/m.pkl\n")
    assert load_model(tmp_path / "m.yml").path == "/srv/models/m.pkl"
    (tmp_path / "m2.yml").write_text("name: m\npath: file:///srv/models/m.pkl\n")
    assert load_model(tmp_path / "m2.yml").path == "/srv/models/m.pkl"


def test_relative_origin_and_streams(tmp_path: Path) -> None:
    stream = io.StringIO("name: m\npath: weights.bin\n")
    assert load_model(stream, relative_origin=tmp_path).path == _posix(tmp_path / "weights.bin")
    assert load_model(YAML_DIR / "model/local-file.yml", relative_origin=tmp_path).path == _posix(
        tmp_path / "artifacts/model.pkl"
    )
    with open(YAML_DIR / "model/local-file.yml") as fh:
        assert load_model(fh).path == _posix(YAML_DIR / "model/artifacts/model.pkl")


def test_string_source_is_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(YAML_DIR)
    m = load_model("model/local-file.yml")
    assert m.path == _posix(YAML_DIR / "model/artifacts/model.pkl")


def test_conda_file_is_inlined(tmp_path: Path) -> None:
    (tmp_path / "envs").mkdir()
    conda = {"name": "x", "channels": ["conda-forge"], "dependencies": ["python=3.11", {"pip": ["numpy"]}]}
    (tmp_path / "envs/conda.yml").write_text(yaml.safe_dump(conda))
    (tmp_path / "env.yml").write_text("name: e\nimage: python:3.11\nconda_file: file:envs/conda.yml\n")
    env = load_environment(tmp_path / "env.yml")
    assert env.conda_file == conda
    assert env.to_dict()["conda_file"] == conda


def test_bad_conda_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "conda.yml").write_text("- not\n- a mapping\n")
    (tmp_path / "env.yml").write_text("name: e\nimage: python:3.11\nconda_file: conda.yml\n")
    with pytest.raises(SpecError, match=r"conda.yml line 1: the document must be a mapping"):
        load_environment(tmp_path / "env.yml")


def test_remote_conda_file_is_kept(tmp_path: Path) -> None:
    (tmp_path / "env.yml").write_text("name: e\nimage: python:3.11\nconda_file: https://example.org/c.yml\n")
    assert load_environment(tmp_path / "env.yml").conda_file == "https://example.org/c.yml"


def test_home_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ds.yml").write_text("name: scratch\ntype: local\npath: ~/scratch\n")
    assert load_datastore(tmp_path / "ds.yml").path == _posix(tmp_path / "scratch")


def test_non_local_datastore_fields_are_not_paths(tmp_path: Path) -> None:
    (tmp_path / "s3.yml").write_text("name: s3ds\ntype: s3\nbucket: b\nprefix: some/prefix\n")
    assert load_datastore(tmp_path / "s3.yml").prefix == "some/prefix"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("alias-bomb.yml", "huge document"),
        ("duplicate-key.yml", "line 4: duplicate key 'name'"),
        ("syntax-error.yml", "line 3: invalid YAML"),
        ("python-tag.yml", "line 2: YAML tag '!!python/object/apply:os.system' is not allowed"),
        ("multi-doc.yml", "single document"),
    ],
)
def test_pure_python_parser_gives_the_same_errors(monkeypatch: pytest.MonkeyPatch, name: str, fragment: str) -> None:
    # PyYAML without libyaml falls back to the pure-Python scanner/parser.
    monkeypatch.setattr(loader_module, "_Loader", loader_module._PyLoader)
    assert fragment in str(_fail(LOADER / name))
    data, lines = load_yaml(LOADER / "anchors.yml")
    assert data["name"] == "anchored-cluster" and lines["ssh_settings"] == 6
