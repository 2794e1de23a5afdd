"""``shoal.dsl``: pipelines built by calling components in a decorated function, as azure-ai-ml does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import shoal
from shoal import Input, Output, command, dsl, load_component
from shoal.entities import PipelineJob, parse_entity
from shoal.errors import UserError

PREP = """\
name: prep_data
type: command
inputs:
  raw: {type: uri_folder}
  scale: {type: number, default: 1.0}
outputs:
  clean: {type: uri_folder}
code: ./src
environment: azureml:sklearn-env:1
command: python prep.py ${{inputs.raw}} ${{inputs.scale}} ${{outputs.clean}}
"""

TRAIN = """\
name: train_model
version: "1"
type: command
inputs:
  training_data: {type: uri_folder}
  max_epochs: {type: integer, optional: true}
  learning_rate: {type: number, default: 0.01}
outputs:
  model_output: {type: mlflow_model}
code: ./src
environment: azureml:sklearn-env:1
command: >-
  python train.py --data ${{inputs.training_data}} $[[--max-epochs ${{inputs.max_epochs}}]]
  --lr ${{inputs.learning_rate}} --out ${{outputs.model_output}}
"""


@pytest.fixture
def components(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    (tmp_path / "src").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "prep.yml").write_text(PREP)
    (tmp_path / "train.yml").write_text(TRAIN)
    monkeypatch.chdir(tmp_path)
    return load_component("prep.yml"), load_component("train.yml")


def _inline(component) -> dict:
    return dsl.inline_component(component)


def test_dsl_is_exported_from_shoal() -> None:
    assert "dsl" in shoal.__all__ and shoal.dsl is dsl and shoal.PipelineJob is PipelineJob


def test_a_two_step_flow(components, tmp_path: Path) -> None:
    prep_data, train = components

    @dsl.pipeline(experiment_name="exp", default_compute="cpu-cluster", continue_on_step_failure=False)
    def flow(raw: Input, lr: float = 0.05):
        """Prepare, then train."""
        prep = prep_data(raw=raw)
        trained = train(training_data=prep.outputs.clean, learning_rate=lr)
        return {"model": trained.outputs.model_output}

    job = flow(raw=Input(type="uri_folder", path="./data"))
    assert isinstance(job, PipelineJob)
    assert job.to_dict() == {
        "type": "pipeline",
        "display_name": "flow",
        "description": "Prepare, then train.",
        "experiment_name": "exp",
        "settings": {"default_compute": "cpu-cluster", "continue_on_step_failure": False},
        "inputs": {"raw": {"type": "uri_folder", "path": (tmp_path / "data").as_posix()}, "lr": 0.05},
        "outputs": {"model": {"type": "mlflow_model"}},
        "jobs": {
            "prep": {
                "type": "command",
                "component": _inline(prep_data),
                "inputs": {"raw": "${{parent.inputs.raw}}"},
            },
            "trained": {
                "type": "command",
                "component": _inline(train),
                "inputs": {
                    "training_data": "${{parent.jobs.prep.outputs.clean}}",
                    "learning_rate": "${{parent.inputs.lr}}",
                },
                "outputs": {"model_output": "${{parent.outputs.model}}"},
            },
        },
    }
    # The inline components keep their local code folder, absolute, for the client to upload.
    assert job.jobs["prep"]["component"]["code"] == (tmp_path / "src").as_posix()
    assert parse_entity("job", job.to_dict()) == job


def test_the_issue_example(components, tmp_path: Path) -> None:
    prep_step, train = components

    @dsl.pipeline(default_compute="cpu-cluster")
    def flow(data: Input):
        prep = prep_step(raw=data)
        return {"model": train(training_data=prep.outputs.clean).outputs.model_output}

    body = flow(Input(path="./data")).to_dict()
    assert body["inputs"] == {"data": {"type": "uri_folder", "path": (tmp_path / "data").as_posix()}}
    assert list(body["jobs"]) == ["prep", "train_model"]  # the anonymous step takes its component's name
    assert body["jobs"]["train_model"]["inputs"] == {"training_data": "${{parent.jobs.prep.outputs.clean}}"}
    assert body["jobs"]["train_model"]["outputs"] == {"model_output": "${{parent.outputs.model}}"}
    assert body["outputs"] == {"model": {"type": "mlflow_model"}}
    assert body["settings"] == {"default_compute": "cpu-cluster"}


def test_literal_inputs_defaults_and_keywords(components) -> None:
    prep_data, train = components

    @dsl.pipeline(name="tuning", force_rerun=True, tags={"team": "ml"}, compute="local", on_init="setup")
    def flow(data, epochs: int, lr: float = 0.1, tag: str = "x", flag: bool = False, **extra):
        train(training_data=data, max_epochs=epochs, learning_rate=lr)
        train(training_data="azureml:iris:1", learning_rate=0.5)

    job = flow("azureml:iris@latest", 3, scale=2.0)
    body = job.to_dict()
    assert body["display_name"] == "tuning" and body["tags"] == {"team": "ml"} and body["compute"] == "local"
    assert body["settings"] == {"force_rerun": True, "on_init": "setup"}
    # Given values, then the defaults; **extra keywords are inputs too.
    assert body["inputs"] == {
        "data": "azureml:iris@latest",
        "epochs": 3,
        "lr": 0.1,
        "tag": "x",
        "flag": False,
        "scale": 2.0,
    }
    first, second = body["jobs"]["train_model"], body["jobs"]["train_model_1"]
    assert first["inputs"] == {
        "training_data": "${{parent.inputs.data}}",
        "max_epochs": "${{parent.inputs.epochs}}",
        "learning_rate": "${{parent.inputs.lr}}",
    }
    # A string given to a data input of a component is its path; literals stay literals.
    assert second["inputs"] == {"training_data": {"type": "uri_folder", "path": "azureml:iris:1"}, "learning_rate": 0.5}


def test_a_data_annotation_makes_a_string_a_path(components, tmp_path: Path) -> None:
    _, train = components

    @dsl.pipeline()
    def flow(data: Input(type="uri_file"), other: Input = None):  # noqa: B008 - azure-ai-ml's own style
        train(training_data=data)
        train(training_data=other)

    body = flow("./data").to_dict()
    assert body["inputs"] == {"data": {"type": "uri_file", "path": (tmp_path / "data").as_posix()}}
    # An optional pipeline input left unset leaves the step input unset.
    assert body["jobs"]["train_model_1"].get("inputs") is None


def test_step_attributes_and_output_settings(components) -> None:
    prep_data, train = components

    @dsl.pipeline()
    def flow(data: Input, cluster: str = "gpu"):
        prep = prep_data(raw=data, scale=2)
        prep.compute = "cpu-cluster"
        prep.environment_variables["LEVEL"] = 3
        prep.set_resources(instance_count=2, shm_size="4g")
        prep.set_limits(timeout=600)
        prep.display_name = "Prepare"
        prep.tags = {"k": "v"}
        prep.outputs.clean.mode = "upload"
        prep.inputs.raw.mode = "download"
        prep.inputs.scale = 3
        trained = train(training_data=prep.outputs.clean, max_epochs=prep.inputs.scale)
        trained.compute = cluster  # a pipeline input bound to a field
        trained.outputs.model_output = Output(type="mlflow_model", name="my-model", version="7")
        trained.name = "fit"
        with pytest.raises(AttributeError, match="no attribute 'computer'"):
            trained.computer = "x"
        with pytest.raises(AttributeError, match="no input 'nope'"):
            _ = trained.inputs.nope

    jobs = flow(Input(path="azureml:d:1")).to_dict()["jobs"]
    prep = jobs["prep"]
    assert prep["compute"] == "cpu-cluster" and prep["display_name"] == "Prepare" and prep["tags"] == {"k": "v"}
    assert prep["environment_variables"] == {"LEVEL": "3"}
    assert prep["resources"] == {"instance_count": 2, "shm_size": "4g"} and prep["limits"] == {"timeout": 600}
    assert prep["inputs"] == {
        "raw": {"type": "uri_folder", "path": "${{parent.inputs.data}}", "mode": "download"},
        "scale": 3,
    }
    assert prep["outputs"] == {"clean": {"type": "uri_folder", "mode": "upload"}}
    # An explicit name beats the variable's; a step's input can feed another step.
    fit = jobs["fit"]
    assert fit["compute"] == "${{parent.inputs.cluster}}"
    assert fit["inputs"]["max_epochs"] == "${{parent.jobs.prep.inputs.scale}}"
    assert fit["outputs"] == {"model_output": {"type": "mlflow_model", "name": "my-model", "version": "7"}}


def test_nested_pipelines(components) -> None:
    prep_data, train = components

    @dsl.pipeline(default_compute="gpu")
    def train_pipeline(data: Input, lr: float = 0.1, epochs: int = None):
        prep = prep_data(raw=data)
        train_job = train(training_data=prep.outputs.clean, learning_rate=lr, max_epochs=epochs)
        return {"model": train_job.outputs.model_output}

    @dsl.pipeline(default_compute="cpu")
    def flow(raw: Input, lr: float = 0.3):
        first = train_pipeline(data=raw, lr=lr)
        second = train_pipeline(data=raw)
        second.compute = "big"
        return {"best": first.outputs.model, "other": second.outputs.model}

    body = flow(Input(path="azureml:iris:1")).to_dict()
    assert list(body["jobs"]) == ["first", "second"]
    first = body["jobs"]["first"]
    assert first["type"] == "pipeline"
    assert first["inputs"] == {"data": "${{parent.inputs.raw}}", "lr": "${{parent.inputs.lr}}"}
    assert first["outputs"] == {"model": "${{parent.outputs.best}}"}
    component = first["component"]
    assert component["type"] == "pipeline" and component["name"] == "train_pipeline"
    assert component["inputs"] == {
        "data": {"type": "uri_folder"},
        "lr": {"type": "number", "default": 0.1},
        "epochs": {"type": "integer", "optional": True},
    }
    assert component["outputs"] == {"model": {"type": "mlflow_model"}}
    inner = component["jobs"]
    assert inner["prep"]["inputs"] == {"raw": "${{parent.inputs.data}}"}
    assert inner["train_job"]["inputs"]["max_epochs"] == "${{parent.inputs.epochs}}"
    assert inner["train_job"]["outputs"] == {"model_output": "${{parent.outputs.model}}"}
    # The inner pipeline's default_compute goes to its steps; the outer one is the job's setting.
    assert inner["prep"]["compute"] == "gpu" and body["settings"] == {"default_compute": "cpu"}
    assert body["jobs"]["second"]["inputs"] == {"data": "${{parent.inputs.raw}}"}
    assert body["jobs"]["second"]["compute"] == "big"
    assert body["outputs"] == {"best": {"type": "mlflow_model"}, "other": {"type": "mlflow_model"}}
    assert parse_entity("job", body).to_dict() == body


def test_step_names_for_repeated_components(components) -> None:
    prep_data, train = components

    @dsl.pipeline()
    def anonymous(data: Input):
        prep_data(raw=data)
        prep_data(raw=data)
        prep_data(raw=data)

    assert list(anonymous(Input(path="azureml:d:1")).jobs) == ["prep_data", "prep_data_1", "prep_data_2"]

    @dsl.pipeline()
    def named_first(data: Input):
        clean = prep_data(raw=data)
        prep_data(raw=clean.outputs.clean)
        for _ in range(2):
            last = train(training_data=clean.outputs.clean)
        return {"model": last.outputs.model_output}

    jobs = named_first(Input(path="azureml:d:1")).jobs
    # As azure-ai-ml: after a variable's name, the same component's anonymous steps count on from it.
    assert list(jobs) == ["clean", "clean_1", "last_1", "last"]
    assert jobs["clean_1"]["inputs"] == {"raw": "${{parent.jobs.clean.outputs.clean}}"}

    @dsl.pipeline()
    def clash(data: Input):
        a = prep_data(raw=data)
        b = prep_data(raw=data)
        b.name = "a"
        return {"x": a.outputs.clean}

    with pytest.raises(UserError, match="two steps are named 'a'"):
        clash(Input(path="azureml:d:1"))


def test_arguments_that_do_not_fit(components) -> None:
    prep_data, _ = components

    @dsl.pipeline()
    def returns_an_input(data: Input):
        prep = prep_data(raw=data)
        return {"used": prep.inputs.raw}

    with pytest.raises(UserError, match="output 'used' must be a step's output"):
        returns_an_input(Input(path="azureml:d:1"))

    @dsl.pipeline()
    def flow(data: Input, lr: float = 0.1):
        prep_data(raw=data)

    with pytest.raises(dsl.PipelineArgumentError, match="missing required input 'data'") as info:
        flow(lr=0.2)
    assert isinstance(info.value, TypeError) and isinstance(info.value, UserError)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        flow(Input(path="azureml:d:1"), nope=1)
    with pytest.raises(TypeError, match="too many positional arguments"):
        flow(1, 2, 3)

    @dsl.pipeline()
    def bad_input(data: Input):
        prep_data(raw=data, nope=1)

    with pytest.raises(dsl.PipelineArgumentError, match="prep_data has no input 'nope'.*raw, scale"):
        bad_input(Input(path="azureml:d:1"))

    @dsl.pipeline()
    def empty(data: Input):
        return None

    with pytest.raises(UserError, match="has no steps"):
        empty(Input(path="azureml:d:1"))
    with pytest.raises(dsl.PipelineArgumentError, match="by name"):
        prep_data(Input(path="x"))


def test_bindings_do_not_cross_pipelines(components) -> None:
    prep_data, train = components
    outside = prep_data(raw=Input(path="azureml:d:1"))  # a step made outside any pipeline

    @dsl.pipeline()
    def flow(data: Input):
        train(training_data=outside.outputs.clean)

    with pytest.raises(UserError, match="is not part of this pipeline"):
        flow(Input(path="azureml:d:1"))


def test_command_steps(components, tmp_path: Path) -> None:
    (tmp_path / "steps").mkdir()
    report = command(
        command="python report.py ${{inputs.model}} ${{inputs.n}} ${{outputs.out}}",
        code="./steps",
        environment={"image": "python:3.11"},
        inputs={"model": Input(type="mlflow_model"), "n": 1},
        outputs={"out": Output(type="uri_file")},
        compute="local",
    )
    prep_data, train = components

    @dsl.pipeline()
    def flow(data: Input, n: int = 2):
        trained = train(training_data=data)
        summary = report(model=trained.outputs.model_output, n=n)  # a command() made outside, called here
        echo = command(  # and one made here, with bindings among its inputs
            command="cat ${{inputs.f}}", environment="azureml:e:1", inputs={"f": summary.outputs.out}
        )
        assert echo.type == "command"
        return {"report": summary.outputs.out}

    jobs = flow(Input(path="azureml:d:1")).to_dict()["jobs"]
    assert jobs["summary"] == {
        "type": "command",
        "command": "python report.py ${{inputs.model}} ${{inputs.n}} ${{outputs.out}}",
        "code": (tmp_path / "steps").as_posix(),
        "environment": {"image": "python:3.11", "os_type": "linux"},
        "inputs": {"model": "${{parent.jobs.trained.outputs.model_output}}", "n": "${{parent.inputs.n}}"},
        "outputs": {"out": "${{parent.outputs.report}}"},
        "compute": "local",
    }
    assert jobs["echo"] == {
        "type": "command",
        "command": "cat ${{inputs.f}}",
        "environment": "azureml:e:1",
        "inputs": {"f": "${{parent.jobs.summary.outputs.out}}"},
        "outputs": {},
    }
    # Outside a pipeline, calling a command gives a command job with new inputs.
    again = report(n=5)
    assert again.inputs["n"] == 5 and again.command == report.command and report.inputs["n"] == 1


def test_a_registered_component_is_referenced(components) -> None:
    _, train = components
    registered = train.model_copy(update={"id": "azureml:/…/components/train_model/versions/1"})

    @dsl.pipeline()
    def flow(data: Input):
        registered(training_data=data)

    assert flow(Input(path="azureml:d:1")).jobs["train_model"]["component"] == "azureml:train_model:1"


def test_a_pipeline_component_file_is_callable(components, tmp_path: Path) -> None:
    (tmp_path / "sub.yml").write_text(
        textwrap.dedent(
            """\
            type: pipeline
            name: sub
            inputs: {raw: {type: uri_folder}}
            outputs: {out: {type: uri_folder}}
            jobs:
              p:
                type: command
                component: ./prep.yml
                inputs: {raw: "${{parent.inputs.raw}}"}
                outputs: {clean: "${{parent.outputs.out}}"}
            """
        )
    )
    sub = load_component("sub.yml")

    @dsl.pipeline()
    def flow(data: Input):
        s = sub(raw=data)
        return {"out": s.outputs.out}

    step = flow(Input(path="azureml:d:1")).jobs["s"]
    assert (
        step["type"] == "pipeline" and step["component"]["jobs"]["p"]["component"] == (tmp_path / "prep.yml").as_posix()
    )
    assert step["outputs"] == {"out": "${{parent.outputs.out}}"}
