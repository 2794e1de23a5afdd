"""Small things users trip on: not-found hints, "did you mean", print(entity)."""

from __future__ import annotations

import pytest

from shoal.entities.compute import Compute
from shoal.entities.datastore import Datastore
from shoal.entities.job import CommandJob
from shoal.entities.kinds import KINDS, parse_entity
from shoal.errors import NotFoundError, SpecError, UserError, did_you_mean, not_found, not_found_hint


def test_not_found_lists_close_names_first_and_keeps_the_prefix() -> None:
    err = not_found("compute", "gpu-cluster", known=["local", "cpu-cluster", "a", "b", "c", "d"], workspace="default")
    assert isinstance(err, NotFoundError) and err.code == "NOT_FOUND" and err.http_status == 404
    assert err.message.startswith("compute 'gpu-cluster' not found in workspace 'default'; existing: cpu-cluster, ")
    assert err.message.endswith("cpu-cluster, a, b, c, d and 1 more (see `shoal compute list`)")
    assert err.details == {"kind": "compute", "name": "gpu-cluster"}


def test_not_found_without_names_or_with_none() -> None:
    assert not_found("job", "j1").message == "job 'j1' not found; see `shoal job list`"
    assert not_found_hint("datastore", "x", known=[]) == "; there are none yet (see `shoal datastore list`)"
    err = not_found("model", "3", subject="model 'm' version '3'", known=["1", "2"], list_hint="shoal model list -n m")
    assert err.message == "model 'm' version '3' not found; existing: 1, 2 (see `shoal model list -n m`)"


def test_did_you_mean() -> None:
    assert did_you_mean("comand", ["command", "code", "environment"]) == " (did you mean 'command'?)"
    assert did_you_mean("zzz", ["command"]) == ""


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("model", {"name": "m", "path": "p", "pathh": "x"}, "unknown field 'pathh' (did you mean 'path'?)"),
        (
            "job",
            {"type": "command", "command": "x", "comand": "x", "environment": "azureml:e:1"},
            "unknown field 'comand' (did you mean 'command'?)",
        ),
        (
            "component",
            {"name": "c", "type": "command", "command": "x", "environment": {"image": "p", "imagee": "p"}},
            "unknown field 'environment.imagee' (did you mean 'image'?)",
        ),
        ("compute", {"name": "cpu", "type": "amlcompute", "max_nodes": 3}, "(did you mean 'max_instances'?)"),
        ("model", {"name": "m", "path": "p", "zzzzzz": 1}, "unknown field 'zzzzzz'"),
    ],
)
def test_unknown_fields_suggest_a_close_field(kind: str, data: dict, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_entity(kind, data)
    assert expected in str(info.value)
    if "did you mean" not in expected:
        assert "did you mean" not in str(info.value)


def test_unknown_field_hint_keeps_file_and_line(tmp_path) -> None:
    from shoal.entities.loader import load_entity

    spec = tmp_path / "job.yml"
    spec.write_text("command: echo hi\nenvironment: azureml:e:1\ncomputee: local\n")
    with pytest.raises(SpecError) as info:
        load_entity("job", spec)
    assert "job.yml line 3: unknown field 'computee' (did you mean 'compute'?)" in str(info.value)


def test_sdk_constructor_suggests_too() -> None:
    with pytest.raises(SpecError, match=r"unknown field 'comand' \(did you mean 'command'\?\)"):
        CommandJob(comand="echo", command="echo", environment="azureml:e:1")


def test_print_entity_is_yaml_and_repr_is_short() -> None:
    job = parse_entity("job", {"name": "j1", "type": "command", "command": "echo hi", "environment": "azureml:e:1"})
    assert str(job) == "name: j1\ntype: command\ncommand: echo hi\nenvironment: azureml:e:1\n"
    assert repr(job) == "CommandJob(name='j1', type='command')"
    model = parse_entity("model", {"name": "m", "version": "1", "path": "azureml://datastores/d/paths/m"})
    assert "name: m\n" in str(model) and repr(model) == "Model(name='m', version='1', type='custom_model')"


def test_print_and_repr_never_show_secrets() -> None:
    ds = parse_entity(
        "datastore",
        {"name": "blob", "type": "azure_blob", "account_name": "acc", "container_name": "c"}
        | {"credentials": {"account_key": "SUPERSECRET"}},
    )
    assert ds.to_dict()["credentials"]["account_key"] == "SUPERSECRET"  # round trips keep it
    for text in (str(ds), repr(ds), repr(ds.credentials), f"{ds}"):
        assert "SUPERSECRET" not in text
    assert "account_name: acc" in str(ds)
    assert set(Datastore.PRINT_HIDDEN) == set(KINDS["datastore"].secret_paths)
    assert set(Compute.PRINT_HIDDEN) == set(KINDS["compute"].secret_paths)


def test_metric_summary_goal_rule_and_iso_times() -> None:
    from shoal.client.metric_summary import default_goal, iso_time, summarize

    assert default_goal("val_loss") == "minimize" and default_goal("Error_rate") == "minimize"
    assert default_goal("accuracy") == "maximize"
    assert iso_time(0) == "1970-01-01T00:00:00.000+00:00" and iso_time("x") == "x"
    rows = [
        {"name": "loss", "step": 0, "value": 2.0, "timestamp": 1000},
        {"name": "loss", "step": 1, "value": 0.5, "timestamp": 2000},
        {"name": "loss", "step": 2, "value": float("nan"), "timestamp": 3000},
    ]
    [loss] = summarize(rows)
    assert (loss["count"], loss["min"], loss["min_step"], loss["max"], loss["max_step"]) == (3, 0.5, 1, 2.0, 0)
    assert (loss["goal"], loss["best"], loss["best_step"], loss["last_step"]) == ("minimize", 0.5, 1, 2)
    assert summarize(rows, "maximize")[0]["best_step"] == 0
    with pytest.raises(UserError, match="--goal must be one of"):
        summarize(rows, "up")
