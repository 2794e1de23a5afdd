"""Jobs built in Python: ``Input``/``Output``, ``command(...)``, distributions and generated names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import shoal
from shoal.entities import (
    CommandJob,
    Environment,
    Input,
    MpiDistribution,
    Output,
    PyTorchDistribution,
    RayDistribution,
    TensorFlowDistribution,
    parse_entity,
)
from shoal.entities.io import input_modes, input_value, output_or_default
from shoal.entities.names import (
    ADJECTIVES,
    JOB_NAME,
    NOUNS,
    SUFFIX_ALPHABET,
    generate_display_name,
    generate_job_name,
    is_valid_job_name,
)
from shoal.errors import SpecError
from shoal.sdk_builders import command

# --- Input / Output --------------------------------------------------------------------------


def test_input_defaults_and_modes() -> None:
    i = Input(type="uri_file", path="./data.csv")
    assert (i.type, i.path, i.mode, i.effective_mode, i.is_literal) == (
        "uri_file",
        "./data.csv",
        None,
        "ro_mount",
        False,
    )
    assert Input().type == "uri_folder"
    assert Input(type="mltable", path="azureml:t:1", mode="eval_download").mode == "eval_download"
    assert Input(type="custom_model", path="azureml:m:1", mode="download").effective_mode == "download"
    assert input_modes("mltable") == ("ro_mount", "download", "direct", "eval_mount", "eval_download")
    assert input_modes("integer") == ()


def test_typed_literal_inputs() -> None:
    n = Input(type="number", default=0.1, min=0, max=1)
    assert (n.is_literal, n.effective_mode, input_value(n)) == (True, None, 0.1)
    assert Input(type="string", default=10).default == "10"
    assert input_value(Input(path="azureml:d:1")) == "azureml:d:1" and input_value(5) == 5
    with pytest.raises(SpecError, match="'x' is not a valid integer"):
        Input(type="integer", default="x")
    with pytest.raises(SpecError, match="not one of enum"):
        Input(type="string", default="c", enum=["a", "b"])
    with pytest.raises(SpecError, match="a boolean input takes a literal value"):
        Input(type="boolean", mode="download")
    with pytest.raises(SpecError, match="min is only for integer"):
        Input(type="uri_folder", min=1)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"type": "uri_file", "mode": "eval_mount"}, "'eval_mount' is not allowed; an input of type uri_file allows"),
        ({"type": "uri_folder", "mode": "upload"}, "'upload' is an output mode"),
        ({"type": "csv"}, "unknown input type 'csv'"),
    ],
)
def test_input_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        Input(**kwargs)
    assert fragment in str(info.value)
    assert str(info.value).startswith("Input: ")


def test_output() -> None:
    o = Output(type="mlflow_model")
    assert (o.type, o.mode, o.effective_mode) == ("mlflow_model", None, "rw_mount")
    assert Output(type="uri_folder", mode="mount").mode == "mount"
    assert Output(name="model", version=2).version == "2"
    assert output_or_default(None) == Output() and output_or_default(o) is o
    assert Output(type="integer").effective_mode is None
    with pytest.raises(
        SpecError, match="'ro_mount' is an input mode; an output allows rw_mount, upload, direct, mount"
    ):
        Output(mode="ro_mount")
    with pytest.raises(SpecError, match="without a name"):
        Output(version="1")
    with pytest.raises(SpecError, match="field 'name'"):
        Output(name="bad name")
    with pytest.raises(SpecError, match="control value; it has no path"):
        Output(type="string", path="x")


# --- command() -------------------------------------------------------------------------------


def test_command_builder_like_azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = command(
        code="./src",
        command="python train.py --data ${{inputs.data}} --lr ${{inputs.lr}} --out ${{outputs.model}}",
        inputs={"lr": 0.1, "data": Input(type="uri_folder", path="./data"), "remote": Input(path="azureml:d@latest")},
        outputs={"model": Output(type="mlflow_model"), "logs": None},
        environment="azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest",
        compute="cpu-cluster",
        display_name="train",
        experiment_name="iris",
        instance_count=2,
        shm_size="4g",
        docker_args="--ipc=host",
        timeout=600,
        distribution={"type": "pytorch", "process_count_per_instance": 4},
        environment_variables={"A": 1},
        job_tier="spot",
        priority="low",
        tags={"a": "b"},
    )
    assert isinstance(job, CommandJob)
    assert job.code == (tmp_path / "src").as_posix()
    assert job.inputs["data"].path == (tmp_path / "data").as_posix()
    assert job.inputs["remote"].path == "azureml:d@latest"
    assert job.inputs["lr"] == 0.1
    assert job.outputs["logs"] is None and job.outputs["model"].type == "mlflow_model"
    assert (job.resources.instance_count, job.resources.shm_size, job.resources.docker_args) == (2, "4g", "--ipc=host")
    assert job.limits.timeout == 600
    assert job.distribution == PyTorchDistribution(process_count_per_instance=4)
    assert job.environment_variables == {"A": "1"}
    assert (job.queue_settings.job_tier, job.queue_settings.priority) == ("spot", "low")
    assert parse_entity("job", job.to_dict()) == job


def test_command_minimal_and_inline_environment() -> None:
    job = command(command="echo hi", environment=Environment(image="python:3.11"))
    assert job.resources is None and job.limits is None and job.queue_settings is None
    assert job.to_dict() == {
        "type": "command",
        "command": "echo hi",
        "environment": {"image": "python:3.11", "os_type": "linux"},
    }
    assert command(command="echo", environment={"image": "python"}, is_deterministic=False).command == "echo"


def test_command_keeps_remote_code_and_mapping_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = command(
        command="ls ${{inputs.d}}",
        environment="azureml:e:1",
        code="azureml:my-code:1",
        inputs={"d": {"type": "uri_file", "path": "file:rel.csv"}},
    )
    assert job.code == "azureml:my-code:1"
    assert job.inputs["d"].path == (tmp_path / "rel.csv").as_posix()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"environment": "azureml:e:1"}, "missing required field 'command'"),
        ({"command": "echo"}, "missing required field 'environment'"),
        ({"command": "echo ${{inputs.x}}", "environment": "azureml:e:1"}, "unknown input 'x'"),
        ({"command": "echo", "environment": "azureml:e:1", "distribution": {"type": "deepspeed"}}, "distribution.type"),
        ({"command": "echo", "environment": "azureml:e:1", "instance_count": 0}, "resources.instance_count"),
        ({"command": "echo", "environment": "azureml:e:1", "name": "no spaces"}, "job name 'no spaces'"),
        ({"command": "   ", "environment": "azureml:e:1"}, "the command is empty"),
    ],
)
def test_command_errors_are_spec_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        command(**kwargs)
    assert fragment in str(info.value)
    assert str(info.value).startswith("CommandJob")


# --- distributions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"type": "pytorch"}, PyTorchDistribution(process_count_per_instance=1)),
        ({"type": "PyTorch", "process_count_per_instance": 8}, PyTorchDistribution(process_count_per_instance=8)),
        ({"distribution_type": "mpi", "process_count_per_instance": 2}, MpiDistribution(process_count_per_instance=2)),
        ({"type": "tensorflow", "worker_count": 3}, TensorFlowDistribution(worker_count=3, parameter_server_count=0)),
        ({"type": "ray", "port": 6379, "include_dashboard": True}, RayDistribution(port=6379, include_dashboard=True)),
        (TensorFlowDistribution(parameter_server_count=1), TensorFlowDistribution(parameter_server_count=1)),
    ],
)
def test_distribution_forms(given: object, expected: object) -> None:
    job = CommandJob(command="echo", environment="azureml:e:1", distribution=given)
    assert job.distribution == expected
    assert parse_entity("job", job.to_dict()) == job


def test_ray_keeps_unknown_keys() -> None:
    job = CommandJob(command="echo", environment="azureml:e:1", distribution={"type": "ray", "head_cpus": 4})
    assert job.to_dict()["distribution"] == {"type": "ray", "head_cpus": 4}


def test_distribution_without_type() -> None:
    with pytest.raises(SpecError, match="a distribution needs a type; one of: pytorch, mpi, tensorflow, ray"):
        CommandJob(command="echo", environment="azureml:e:1", distribution={"process_count_per_instance": 2})


# --- names -----------------------------------------------------------------------------------


def test_generated_job_names() -> None:
    names = {generate_job_name() for _ in range(200)}
    assert len(names) == 200
    pattern = re.compile(r"([a-z]+)_([a-z]+)_([b-df-hj-np-tv-z0-9]{10})")
    for name in names:
        m = pattern.fullmatch(name)
        assert m, name
        assert m.group(1) in ADJECTIVES and m.group(2) in NOUNS
        assert is_valid_job_name(name) and JOB_NAME.check(name) == name
    assert len(ADJECTIVES) >= 100 and len(NOUNS) >= 100
    assert all(w.isalpha() and w.islower() for w in ADJECTIVES + NOUNS)
    assert re.fullmatch(r"[a-z]+_[a-z]+_[b-df-hj-np-tv-z0-9]{2}", generate_display_name())


def test_job_name_rule() -> None:
    assert is_valid_job_name("Job-1_a") and is_valid_job_name("9" * 255)
    assert not is_valid_job_name("-a") and not is_valid_job_name("a.b") and not is_valid_job_name("a" * 256)


# --- the public surface ----------------------------------------------------------------------


def test_shoal_exports_the_job_helpers() -> None:
    for name in ("command", "Input", "Output", "load_job", "CommandJob", "PyTorchDistribution", "MpiDistribution"):
        assert name in shoal.__all__
    assert shoal.command is command
    assert shoal.Input is Input and shoal.Output is Output and shoal.CommandJob is CommandJob
    job = shoal.command(
        command="echo ${{inputs.x}}", environment="azureml:e:1", inputs={"x": shoal.Input(type="integer", default=1)}
    )
    assert job.inputs["x"].default == 1


def test_suffix_alphabet_is_azures() -> None:
    everything = "abcdefghijklmnopqrstuvwxyz0123456789"
    assert sorted(SUFFIX_ALPHABET) == sorted(c for c in everything if re.fullmatch(r"[b-df-hj-np-tv-z0-9]", c))
