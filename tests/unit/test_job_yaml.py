"""Job YAML files (tests/data/yaml/job/): they load, round-trip and resolve; bad ones name file, line, field."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shoal.entities import (
    KINDS,
    CommandJob,
    Environment,
    Input,
    MpiDistribution,
    Output,
    PipelineJob,
    PyTorchDistribution,
    SweepJob,
    TensorFlowDistribution,
    load_entity,
    load_job,
    parse_entity,
)
from shoal.entities.expressions import format_literal, resolve_command, resolve_output_path
from shoal.entities.io import input_value
from shoal.errors import SpecError

from .conftest import YAML_DIR, assert_spec_error

JOBS = YAML_DIR / "job"
VALID = sorted(JOBS.glob("*.yml"))


def _abs(rel: str) -> str:
    return Path(os.path.abspath(JOBS / rel)).as_posix()


def _values(job: CommandJob) -> dict[str, str | None]:
    """Input values as a runner would pass them: literals formatted, data inputs by their path."""
    return {k: None if v is None else format_literal(input_value(v)) for k, v in job.inputs.items()}


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_job_yaml_loads_and_round_trips(path: Path) -> None:
    job = load_job(path)
    assert isinstance(job, KINDS["job"].entity_types)
    body = job.to_dict()
    assert parse_entity("job", body) == job
    assert parse_entity("job", json.loads(json.dumps(body))) == job
    assert KINDS["job"].adapter.validate_python(body) == job
    assert job.without_read_only() == job


def test_job_kind_from_schema() -> None:
    assert isinstance(load_entity(None, JOBS / "hello-world.yml"), CommandJob)
    assert isinstance(load_entity(None, JOBS / "sweep.yml"), SweepJob)
    assert isinstance(load_entity(None, JOBS / "pipeline.yml"), PipelineJob)


def test_hello_world() -> None:
    job = load_job(JOBS / "hello-world.yml")
    assert isinstance(job, CommandJob)
    assert (job.type, job.command, job.compute) == ("command", 'echo "hello world"', "azureml:cpu-cluster")
    assert isinstance(job.environment, Environment) and job.environment.image == "library/python:latest"
    assert job.name is None and job.inputs == {} and job.outputs == {}
    assert job.resources is None and job.distribution is None and job.limits is None
    assert job.to_dict() == {
        "$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
        "type": "command",
        "compute": "azureml:cpu-cluster",
        "command": 'echo "hello world"',
        "environment": {"image": "library/python:latest", "os_type": "linux"},
    }
    assert resolve_command(job.command, {}, {}) == 'echo "hello world"'


def test_environment_variables_are_strings() -> None:
    job = load_job(JOBS / "env-var.yml")
    assert job.environment_variables == {
        "hello_env_var": "hello world",
        "GREETING": "${{inputs.greeting}}",
        "RETRIES": "3",
        "VERBOSE": "true",
    }
    assert (job.display_name, job.experiment_name, job.tags) == (
        "hello-env-var",
        "hello-world-example",
        {"hello": "world"},
    )
    values = _values(job)
    assert resolve_command(job.environment_variables["GREETING"], values, {}) == "hi"


def test_literal_inputs_keep_their_types() -> None:
    job = load_job(JOBS / "literal-inputs.yml")
    assert job.name == "literal_inputs_01"
    assert job.inputs == {"model_name": "resnet", "epochs": 10, "lr": 0.01, "shuffle": False, "quoted": "42"}
    assert [type(v) for v in job.inputs.values()] == [str, int, float, bool, str]
    assert job.code == _abs("src")
    assert resolve_command(job.command, _values(job), {}) == (
        'python train.py --name resnet --epochs 10 --lr 0.01 --shuffle False --quoted "42"'
    )


def test_data_inputs_types_modes_and_paths() -> None:
    job = load_job(JOBS / "data-inputs.yml")
    i = job.inputs
    assert all(isinstance(v, Input) for v in i.values())
    assert (i["iris"].type, i["iris"].mode, i["iris"].path) == ("uri_file", "download", _abs("data/iris.csv"))
    assert (i["folder"].mode, i["folder"].path) == (
        "ro_mount",
        "azureml://datastores/workspaceblobstore/paths/example-data/",
    )
    assert (i["table"].type, i["table"].mode, i["table"].path) == ("mltable", "eval_mount", "azureml:iris-table:1")
    assert (i["model"].type, i["model"].mode) == ("mlflow_model", "direct")
    # no type: uri_folder; no mode: ro_mount when run; a bare relative path is local
    local = i["local_folder"]
    assert (local.type, local.mode, local.effective_mode) == ("uri_folder", None, "ro_mount")
    assert (local.path, local.path_on_compute) == (_abs("data"), "/mnt/data")
    # types and modes are case-insensitive, as in azure-ai-ml
    assert (i["remote"].type, i["remote"].mode, i["remote"].datastore) == ("uri_file", "ro_mount", "workspaceblobstore")
    assert i["remote"].path.startswith("https://")
    assert job.to_dict()["inputs"]["local_folder"] == {
        "type": "uri_folder",
        "path": _abs("data"),
        "path_on_compute": "/mnt/data",
    }
    mounts = {k: f"/mnt/inputs/{k}" for k in i}
    assert resolve_command(job.command, mounts, {}).split() == ["ls", *mounts.values()]


def test_outputs_empty_null_path_and_registered() -> None:
    job = load_job(JOBS / "outputs.yml")
    assert job.outputs["empty"] is None and job.outputs["tilde"] is None
    assert job.effective_outputs["empty"] == Output() and job.effective_outputs["empty"].effective_mode == "rw_mount"
    custom = job.outputs["custom_path"]
    assert (custom.type, custom.mode) == ("uri_folder", "upload")
    path = resolve_output_path(
        custom.path, name="brave_otter_x1", output_name="custom_path", default_datastore="workspaceblobstore"
    )
    assert path == "azureml://datastores/workspaceblobstore/paths/brave_otter_x1/custom_path"
    registered = job.outputs["registered"]
    assert (registered.type, registered.name, registered.version) == ("mlflow_model", "iris-model", "3")
    body = job.to_dict()
    assert body["outputs"]["empty"] is None and body["outputs"]["tilde"] is None
    assert body["outputs"]["registered"]["version"] == "3"
    outputs = {k: f"/out/{k}" for k in job.outputs}
    assert resolve_command(job.command, {}, outputs) == (
        "python train.py --a /out/empty --b /out/tilde --c /out/custom_path --d /out/registered"
    )


def test_optional_fragments() -> None:
    job = load_job(JOBS / "optional-fragment.yml")
    assert job.inputs["max_epochs"] is None
    values = _values(job)
    assert values == {"data": "azureml:iris@latest", "max_epochs": None, "lr": "0.5"}
    command = resolve_command(job.command, {**values, "data": "/mnt/data"}, {"model": "/mnt/model"})
    assert command.split() == ["python", "train.py", "--data", "/mnt/data", "--lr", "0.5", "--out", "/mnt/model"]
    command = resolve_command(job.command, {**values, "data": "/d", "max_epochs": "5"}, {"model": "/m"})
    assert "--max-epochs 5" in command and "$[[" not in command and "]]" not in command


def test_pytorch_distribution_resources_limits_queue_identity_services() -> None:
    job = load_job(JOBS / "distributed-pytorch.yml")
    assert job.distribution == PyTorchDistribution(process_count_per_instance=2)
    r = job.resources
    assert (r.instance_count, r.shm_size, r.docker_args) == (2, "4g", ["--ipc=host", "--ulimit", "memlock=-1"])
    assert r.properties == {"AISuperComputer": {"interactive": False}}
    assert job.limits.timeout == 3600
    assert (job.queue_settings.job_tier, job.queue_settings.priority) == ("standard", "high")
    assert job.identity.type == "user_identity"
    assert set(job.services) == {"my_tensorboard", "my_vscode"}
    assert job.services["my_tensorboard"]["log_dir"] == "outputs/tblogs"


def test_tensorflow_distribution() -> None:
    job = load_job(JOBS / "distributed-tensorflow.yml")
    assert job.distribution == TensorFlowDistribution(worker_count=2)
    assert job.distribution.parameter_server_count == 0
    assert job.resources.docker_args == "--shm-size=8g"
    assert job.inputs["model_dir"] == "outputs/keras-model"  # a literal string, not a local path


def test_mpi_distribution_and_environment_file() -> None:
    job = load_job(JOBS / "distributed-mpi.yml")
    assert job.distribution == MpiDistribution(process_count_per_instance=8)
    assert (job.identity.type, job.identity.client_id) == ("managed", "00000000-0000-0000-0000-000000000001")
    # `environment: file:./env/environment.yml` is inlined, its build path made absolute against its own folder
    env = job.environment
    assert isinstance(env, Environment)
    assert (env.name, env.version, env.build.path) == ("nccl-tests", "1", _abs("env/context"))


def test_inline_environment_conda_file_is_read() -> None:
    job = load_job(JOBS / "inline-env-conda.yml")
    assert job.environment.conda_file["dependencies"] == ["python=3.11", "scikit-learn"]


def test_sweep_and_pipeline_are_kept() -> None:
    sweep = load_job(JOBS / "sweep.yml")
    assert isinstance(sweep, SweepJob)
    assert sweep.trial["code"] == _abs("src")
    assert sweep.inputs["iris"]["path"] == _abs("data/iris.csv")
    assert set(sweep.search_space) == {"lr", "boost"}
    assert (sweep.sampling_algorithm, sweep.objective["goal"], sweep.limits["max_total_trials"]) == (
        "random",
        "maximize",
        20,
    )
    assert sweep.early_termination["type"] == "bandit"
    pipe = load_job(JOBS / "pipeline.yml")
    assert isinstance(pipe, PipelineJob)
    assert pipe.settings == {"default_compute": "azureml:cpu-cluster", "continue_on_step_failure": False}
    assert pipe.inputs["raw"]["path"] == _abs("data")
    assert pipe.outputs == {"final_model": None}
    assert pipe.jobs["prep"]["code"] == _abs("src")
    assert pipe.jobs["train"]["component"] == Path(os.path.abspath(YAML_DIR / "component/train.yml")).as_posix()
    assert pipe.jobs["train"]["inputs"]["training_data"] == "${{parent.jobs.prep.outputs.clean}}"


def test_params_override_and_relative_origin(tmp_path: Path) -> None:
    job = load_job(JOBS / "literal-inputs.yml", params_override=[{"inputs.epochs": 3, "compute": "local"}])
    assert (job.inputs["epochs"], job.compute) == (3, "local")
    job = load_job(JOBS / "literal-inputs.yml", relative_origin=tmp_path)
    assert job.code == (tmp_path / "src").as_posix()


def test_read_only_fields_are_kept_and_dropped() -> None:
    body = {
        "command": "echo",
        "environment": "azureml:e:1",
        "name": "brave_otter_x1",
        "status": "Completed",
        "start_time": "2024-05-01T10:00:00Z",
        "end_time": "2024-05-01T10:01:00Z",
        "exit_code": 0,
        "error": None,
        "log_files": {"user_logs/std_log.txt": "azureml://..."},
        "id": "/subscriptions/s/.../jobs/brave_otter_x1",
    }
    job = parse_entity("job", body)
    assert (job.status, job.exit_code, job.archived) == ("Completed", 0, False)
    clean = job.without_read_only()
    assert (clean.status, clean.start_time, clean.exit_code, clean.log_files, clean.id) == (None,) * 5
    assert clean.name == "brave_otter_x1"


# --- invalid ---------------------------------------------------------------------------------

BAD = JOBS / "bad"
# (file under tests/data/yaml/job/bad, line, fragments of the message)
CASES = [
    ("unknown-input.yml", 3, ["field 'command'", "unknown input 'nope' in ${{inputs.nope}}", "declared inputs: lr"]),
    ("unknown-output.yml", 4, ["field 'command'", "unknown output 'modle'", "declared outputs: model"]),
    ("unsupported-expression.yml", 2, ["field 'command'", "unsupported expression ${{search_space.lr}}"]),
    (
        "bad-mode.yml",
        7,
        ["field 'inputs.iris.mode'", "'eval_mount' is not allowed", "allows ro_mount, download, direct"],
    ),
    ("output-mode-on-input.yml", 6, ["field 'inputs.data.mode'", "'rw_mount' is an output mode", "ro_mount, download"]),
    ("input-mode-on-output.yml", 6, ["field 'outputs.model.mode'", "'download' is an input mode", "rw_mount, upload"]),
    ("bad-distribution.yml", 6, ["field 'distribution.type'", "unknown distribution type 'horovod'", "pytorch, mpi"]),
    ("no-command.yml", 1, ["missing required field 'command'"]),
    ("missing-environment.yml", 1, ["missing required field 'environment'"]),
    ("bad-name.yml", 2, ["field 'name'", "job name 'my.job' is invalid"]),
    ("optional-outside-fragment.yml", 4, ["field 'command'", "optional input 'max_epochs'", "$[["]),
    ("bad-timeout.yml", 4, ["field 'limits.timeout'", "valid integer"]),
    ("list-input.yml", 4, ["field 'inputs.sizes'", "must be a literal"]),
    ("env-var-reference.yml", 4, ["field 'environment_variables.DATA'", "unknown input 'data'"]),
    ("unknown-type.yml", 2, ["field 'type'", "unknown job type 'automl'", "command, pipeline, sweep"]),
    ("output-version-without-name.yml", 6, ["field 'outputs.model.version'", "without a name"]),
    ("literal-input-with-path.yml", 6, ["field 'inputs.epochs.path'", "an integer input takes a literal value"]),
    ("unknown-field.yml", 3, ["unknown field 'instance_count'"]),
    ("bad-shm-size.yml", 4, ["field 'resources.shm_size'", "'lots' is not a size"]),
    ("unclosed-fragment.yml", 4, ["field 'command'", "not closed"]),
    ("bad-input-name.yml", 4, ["field 'inputs.learning-rate'", "letters, digits and '_'"]),
    ("bad-queue.yml", 4, ["field 'queue_settings.job_tier'", "got 'gold'"]),
    ("missing-env-file.yml", 2, ["field 'environment'", "environment file", "not found"]),
]


def test_every_bad_file_has_a_case() -> None:
    assert {p.name for p in BAD.glob("*.yml")} == {c[0] for c in CASES}


@pytest.mark.parametrize(("name", "line", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_job_names_file_line_and_field(name: str, line: int, fragments: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        load_job(BAD / name)
    assert_spec_error(info.value, file=f"job/bad/{name}", line=line, fragments=fragments)
    assert info.value.details["errors"][0]["line"] == line
