"""What azure-ai-ml notebooks do with Shoal's SDK objects, without a server (issue #16): job
settings as objects, sweep setters, identities, conda files read at construction, ARM ids as
inputs, lenient Input keywords, print() as YAML, curated names, sweep steps, pipeline
components and @command_component."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from shoal import (
    AccountKeyConfiguration,
    BanditPolicy,
    Choice,
    Environment,
    Input,
    ManagedIdentityConfiguration,
    Output,
    PipelineJobSettings,
    RandomSamplingAlgorithm,
    SweepJob,
    Uniform,
    UserIdentityConfiguration,
    command,
    dsl,
    load_component,
    load_job,
)
from shoal.dsl.component_function import command_component
from shoal.entities import CommandJob, PipelineJob, parse_entity
from shoal.entities.refs import is_local_path, parse_path
from shoal.envs.curated import lookup
from shoal.errors import SpecError, UnsupportedError, UserError

ARM = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws/data/titanic/versions/1"
)
STEP = {"type": "command", "command": "echo", "environment": "azureml:env:1"}
TRAIN = """\
name: train
type: command
inputs:
  data: {type: uri_folder}
  lr: {type: number, default: 0.1}
  kernel: {type: string, default: linear}
outputs:
  model: {type: uri_folder}
command: python train.py ${{inputs.data}} ${{inputs.lr}} ${{inputs.kernel}} ${{outputs.model}}
environment: azureml:AzureML-sklearn-1.5@latest
"""


def test_studio_url_is_the_servers_job_page() -> None:
    url = "http://127.0.0.1:8080/api/v1/workspaces/default/jobs/j1"
    job = parse_entity("job", {**STEP, "name": "j1", "services": {"Studio": {"endpoint": url}}})
    assert job.studio_url == url
    assert CommandJob(**STEP).studio_url is None  # not submitted yet


def test_pipeline_settings_are_an_object_that_serializes_as_before(tmp_path: Path) -> None:
    job = PipelineJob(jobs={"a": STEP})
    job.settings.default_compute = "cpu-cluster"
    job.settings.continue_on_step_failure = False
    assert job.to_dict()["settings"] == {"default_compute": "cpu-cluster", "continue_on_step_failure": False}
    assert job.settings == {"default_compute": "cpu-cluster", "continue_on_step_failure": False}
    assert "settings" not in PipelineJob(jobs={"a": STEP}).to_dict()  # empty settings are left out
    given = PipelineJobSettings(default_datastore="azureml:workspaceblobstore", force_rerun=True, on_init="setup")
    job = PipelineJob(jobs={"a": STEP}, settings=given)
    job.settings.force_rerun = False
    assert given.force_rerun is True  # the job holds its own copy
    spec = {
        "type": "pipeline",
        "settings": {"default_compute": "azureml:cpu", "continue_on_step_failure": True, "my_setting": 3},
        "jobs": {"a": STEP},
    }
    (tmp_path / "p.yml").write_text(yaml.safe_dump(spec))
    loaded = load_job(tmp_path / "p.yml")
    assert loaded.to_dict()["settings"] == spec["settings"]  # unknown keys kept: the server warns
    assert parse_entity("job", loaded.to_dict()) == loaded
    with pytest.raises(SpecError, match="settings.force_rerun"):
        parse_entity("job", {**spec, "settings": {"force_rerun": "sometimes"}})


def test_sweep_job_setters_and_policy_assignment() -> None:
    job = command(command="python t.py ${{inputs.lr}}", inputs={"lr": 0.1}, environment="azureml:e:1")(
        lr=Uniform(0.01, 0.1)
    ).sweep(primary_metric="acc", goal="maximize")
    assert isinstance(job, SweepJob)
    job.set_limits(max_total_trials=8, max_concurrent_trials=2, timeout=600)
    job.set_objective(goal="minimize", primary_metric="loss")
    job.set_resources(instance_count=2)
    job.early_termination = BanditPolicy(slack_factor=0.2, evaluation_interval=2)
    job.sampling_algorithm = RandomSamplingAlgorithm(seed=7)
    body = job.to_dict()
    assert body["limits"] == {"max_total_trials": 8, "max_concurrent_trials": 2, "timeout": 600}
    assert body["objective"] == {"goal": "minimize", "primary_metric": "loss"}
    assert body["early_termination"]["type"] == "bandit" and body["early_termination"]["slack_factor"] == 0.2
    assert body["sampling_algorithm"]["seed"] == 7 and body["resources"] == {"instance_count": 2}
    assert parse_entity("job", body).to_dict() == body


def test_identity_configurations_are_the_yaml_identities() -> None:
    def identity(value):
        return CommandJob(**STEP, identity=value).to_dict()["identity"]

    assert identity(UserIdentityConfiguration()) == {"type": "user_identity"}
    assert identity(ManagedIdentityConfiguration(client_id="c", resource_id="/r")) == {
        "type": "managed",
        "client_id": "c",
        "msi_resource_id": "/r",
    }
    from shoal import AmlTokenConfiguration

    assert identity(AmlTokenConfiguration()) == {"type": "aml_token"}
    job = command(command="echo", environment="azureml:e:1", identity=UserIdentityConfiguration())
    assert job.identity.type == "user_identity"


def test_environment_reads_its_conda_file_when_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "conda.yaml").write_text("name: e\ndependencies:\n  - pip:\n    - six\n")
    monkeypatch.chdir(tmp_path)
    expected = {"name": "e", "dependencies": [{"pip": ["six"]}]}
    assert Environment(image="python:3.11", conda_file="./env/conda.yaml").conda_file == expected
    assert Environment(image="python:3.11", conda_file=tmp_path / "env" / "conda.yaml").conda_file == expected
    with pytest.raises(SpecError, match=r"conda_file 'missing.yml': no such file \(from "):
        Environment(image="python:3.11", conda_file="missing.yml")
    (tmp_path / "dup.yml").write_text("name: a\nname: b\n")
    with pytest.raises(SpecError, match="duplicate key 'name'"):  # read by the bounded YAML loader
        Environment(image="x", conda_file="dup.yml")


def test_an_assets_arm_id_is_that_asset() -> None:
    assert Input(type="uri_file", path=ARM).path == "azureml:titanic:1"
    assert not is_local_path(ARM) and parse_path(ARM).asset.name == "titanic"
    job = command(command="cat ${{inputs.d}}", inputs={"d": Input(type="uri_file", path=ARM)}, environment="e")
    assert job.to_dict()["inputs"]["d"]["path"] == "azureml:titanic:1"  # not made an absolute local path
    assert is_local_path("/subscriptions/just/a/folder")


def test_unknown_input_keywords_warn_in_python_and_fail_in_yaml(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Input\\(...\\) ignores the keyword 'name'"):
        made = Input(type="uri_file", path="a.csv", name="x")
    assert made.path == "a.csv"
    with pytest.warns(UserWarning, match="Output\\(...\\) ignores the keyword 'label'"):
        Output(type="uri_folder", label="x")
    with pytest.raises(SpecError, match="inputs.d.colour"):
        parse_entity("job", {**STEP, "inputs": {"d": {"type": "uri_file", "path": "a", "colour": "red"}}})


def test_print_shows_yaml_without_secrets() -> None:
    assert yaml.safe_load(str(Input(type="uri_file", path="a.csv"))) == {"type": "uri_file", "path": "a.csv"}
    assert yaml.safe_load(str(PipelineJobSettings(default_compute="c"))) == {"default_compute": "c"}
    assert yaml.safe_load(str(Uniform(0.1, 0.2))) == {"type": "uniform", "min_value": 0.1, "max_value": 0.2}
    assert "hunter2" not in str(AccountKeyConfiguration(account_key="hunter2"))
    assert yaml.safe_load(str(CommandJob(**STEP)))["command"] == "echo"


@pytest.mark.parametrize(
    ("name", "first", "python_note"),
    [
        ("AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu", "lightgbm==3.3.*", "3.7"),
        ("AzureML-lightgbm-4.1-ubuntu22.04-py310-cpu", "lightgbm==4.1.*", "3.10"),
        ("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", "scikit-learn>=1.0,<1.2", "3.8"),
        ("AzureML-sklearn-0.24-ubuntu18.04-py37-cpu", "scikit-learn>=1.0,<1.2", "3.7"),
        ("AzureML-sklearn-1.5", "scikit-learn==1.5.*", None),
        ("AzureML-Scikit-learn-0.20.3", "scikit-learn>=1.0,<1.2", None),
        ("AzureML-pytorch-1.10-ubuntu18.04-py38-cuda11-gpu", "torch>=1.10", "3.8"),
        ("AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu", "torch>=1.13", "3.8"),
        ("AzureML-tensorflow-2.4-ubuntu18.04-py37-cuda11-gpu", "tensorflow>=2.4", "3.7"),
        ("AzureML-minimal-ubuntu18.04-py37-cpu-inference", None, "3.7"),
    ],
)
def test_the_curated_family_maps_to_shoals_sets(name: str, first: str | None, python_note: str | None) -> None:
    env = lookup(name)
    assert env.name == name
    assert (env.requirements[0] if env.requirements else None) == first
    if python_note:
        assert f"Python {python_note} is not reproduced" in (env.note or "")


def test_an_unknown_curated_name_is_still_refused() -> None:
    with pytest.raises(UnsupportedError, match="AzureML-responsibleai-0.20"):
        lookup("AzureML-responsibleai-0.20-ubuntu20.04-py38-cpu")


def test_sweep_step_from_a_component_call(tmp_path: Path) -> None:
    (tmp_path / "train.yml").write_text(TRAIN)
    train = load_component(tmp_path / "train.yml")

    @dsl.pipeline(default_compute="cpu")
    def tune(data: Input):
        trial = train(data=data, lr=Uniform(0.01, 0.1), kernel=Choice(["linear", "rbf"]))
        sweep_step = trial.sweep(primary_metric="acc", goal="maximize", sampling_algorithm="bayesian")
        sweep_step.set_limits(max_total_trials=4, max_concurrent_trials=2)
        sweep_step.set_objective(primary_metric="f1")
        sweep_step.early_termination = BanditPolicy(slack_amount=0.1)
        return {"best": sweep_step.outputs.model}

    body = tune(Input(path="azureml:data:1")).to_dict()
    assert list(body["jobs"]) == ["sweep_step"]  # the swept step runs only as the sweep's trials
    step = body["jobs"]["sweep_step"]
    assert step["type"] == "sweep" and step["trial"]["name"] == "train"
    assert step["search_space"] == {
        "lr": {"type": "uniform", "min_value": 0.01, "max_value": 0.1},
        "kernel": {"type": "choice", "values": ["linear", "rbf"]},
    }
    assert step["objective"] == {"goal": "maximize", "primary_metric": "f1"}
    assert step["limits"] == {"max_total_trials": 4, "max_concurrent_trials": 2}
    assert step["early_termination"]["slack_amount"] == 0.1
    assert step["inputs"] == {"data": "${{parent.inputs.data}}"}
    assert step["outputs"] == {"model": "${{parent.outputs.best}}"}
    assert parse_entity("job", body).to_dict() == body


def test_sweep_step_mistakes_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "train.yml").write_text(TRAIN)
    train = load_component(tmp_path / "train.yml")

    @dsl.pipeline()
    def no_space(data: Input):
        train(data=data).sweep(primary_metric="acc", goal="maximize")

    with pytest.raises(UserError, match="a sweep needs a search space"):
        no_space(Input(path="azureml:d:1"))

    @dsl.pipeline()
    def limits_first(data: Input):
        train(data=data).set_limits(max_total_trials=3)

    with pytest.raises(UserError, match="max_total_trials are limits of a sweep step"):
        limits_first(Input(path="azureml:d:1"))

    @dsl.pipeline()
    def unknown(data: Input):
        train(data=data, momentum=Uniform(0, 1))

    with pytest.raises(UserError, match="no input 'momentum'"):
        unknown(Input(path="azureml:d:1"))


def test_a_pipeline_function_as_a_component(tmp_path: Path) -> None:
    (tmp_path / "train.yml").write_text(TRAIN)
    train = load_component(tmp_path / "train.yml")

    @dsl.pipeline(name="train_twice", version="2", description="two trainings")
    def train_twice(data: Input, lr: float = 0.05):
        first = train(data=data, lr=lr)
        train(data=first.outputs.model)
        return {"model": first.outputs.model}

    component = train_twice.to_component()
    body = component.to_dict()
    assert (body["name"], body["version"], body["type"]) == ("train_twice", "2", "pipeline")
    assert body["inputs"] == {"data": {"type": "uri_folder"}, "lr": {"type": "number", "default": 0.05}}
    assert body["outputs"] == {"model": {"type": "uri_folder"}}
    assert body["jobs"]["first"]["inputs"]["lr"] == "${{parent.inputs.lr}}"

    @dsl.pipeline(name="train-twice")
    def bad_name(data: Input):
        train(data=data)

    with pytest.raises(UserError, match="'train-twice' is not a valid component name"):
        bad_name.to_component()


COMPONENT = '''\
from shoal.mldesigner import Input, Output, command_component


@command_component(name="prep", version="3", display_name="Prep", environment="azureml:AzureML-minimal@latest")
def prep(raw: Input(type="uri_folder"), out: Output(type="uri_folder"), n: int = 2, tag: str = "x",
         note: Input(type="string", optional=True) = None, scale: float = 1.5, flag: bool = False):
    """Writes what it was given."""
    import os
    with open(os.path.join(out, "got.txt"), "w") as f:
        f.write(repr((sorted(os.listdir(raw)), n, tag, note, scale, flag)))
'''


def _component_module(tmp_path: Path):
    import importlib.util

    (tmp_path / "comp").mkdir(exist_ok=True)
    path = tmp_path / "comp" / "prep_comp.py"
    path.write_text(COMPONENT)
    spec = importlib.util.spec_from_file_location("prep_comp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_component_makes_the_component(tmp_path: Path) -> None:
    prep = _component_module(tmp_path).prep
    component = prep.component
    assert (component.name, component.version, component.display_name) == ("prep", "3", "Prep")
    assert component.description == "Writes what it was given."
    assert component.code == (tmp_path / "comp").as_posix()
    body = component.to_dict()
    assert body["inputs"]["raw"] == {"type": "uri_folder"}
    assert body["inputs"]["n"] == {"type": "integer", "default": 2}
    assert body["inputs"]["note"] == {"type": "string", "optional": True}
    assert body["outputs"] == {"out": {"type": "uri_folder"}}
    assert "$[[--input 'note=${{inputs.note}}']]" in component.command

    @dsl.pipeline()
    def flow(data: Input):
        step = prep(raw=data, n=5)
        return {"o": step.outputs.out}

    job = flow(Input(path="azureml:d:1")).to_dict()
    assert job["jobs"]["step"]["component"]["name"] == "prep" and job["jobs"]["step"]["inputs"]["n"] == 5


def test_command_component_refuses_an_unannotated_port() -> None:
    with pytest.raises(UserError, match="parameter 'data' needs an annotation"):

        @command_component
        def bad(data):  # noqa: ANN001
            pass


@pytest.mark.parametrize("bare", [True, False], ids=["python-without-shoal", "python-with-shoal"])
def test_the_job_command_runs_the_functions_body(tmp_path: Path, bare: bool) -> None:
    from shoal.entities.expressions import resolve_command

    prep = _component_module(tmp_path).prep
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_text("1")
    (tmp_path / "out").mkdir()
    values = {"raw": str(tmp_path / "raw"), "n": 7, "tag": "t t", "scale": 0.5, "flag": True}
    line = resolve_command(prep.component.command, values, {"out": str(tmp_path / "out")})
    # -S -I: a Python that cannot import Shoal (nor pydantic), as a job's fresh environment.
    python = f"{sys.executable} -S -I" if bare else sys.executable
    done = subprocess.run(
        ["bash", "-c", line.replace("python -c", f"{python} -c", 1)],
        cwd=tmp_path / "comp",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    got = (tmp_path / "out" / "got.txt").read_text()
    assert got == repr((["a.csv"], 7, "t t", None, 0.5, True))


def test_registering_functions_needs_no_server_to_build_the_body(tmp_path: Path) -> None:
    prep = _component_module(tmp_path).prep
    assert prep.to_component() is prep.component
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert PipelineJobSettings().to_dict() == {}


def test_command_component_reads_an_environment_file_and_declares_the_return_value(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "env.yaml").write_text(
        "image: python:3.11\nconda_file:\n  dependencies:\n    - pip\n    - pip:\n      - mldesigner==0.1.0b17\n"
        "      - six\n"
    )
    (tmp_path / "src" / "comps.py").write_text(
        "from shoal.mldesigner import command_component, Input, Output\n\n"
        "@command_component(environment='./env.yaml')\n"
        "def score(model: Input(type='uri_folder'), out: Output(type='uri_folder'), lr=0.02) -> str:\n"
        "    return 'x'\n"
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("comps", tmp_path / "src" / "comps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    component = module.score.component
    # The environment file is next to the function's file; mldesigner itself is not installed in the job.
    assert component.environment.conda_file["dependencies"] == ["pip", {"pip": ["six"]}]
    assert component.inputs["lr"].type == "number" and component.inputs["lr"].default == 0.02
    assert component.outputs["output"].type == "string"  # mldesigner's name for a returned value
    assert "--returns '${{outputs.output}}'" in component.command  # the return value goes to its file
    assert yaml.safe_load(str(module.score))["name"] == "score"


def test_pipeline_job_ports_are_attributes_too() -> None:
    job = PipelineJob(jobs={"a": STEP}, inputs={"lr": 0.1}, outputs={"model": {"type": "uri_folder"}})
    job.outputs.model = Output(type="uri_folder", mode="upload", path="azureml://datastores/ds/paths/m/")
    assert job.inputs.lr == 0.1 and job.outputs.model.mode == "upload"
    assert job.to_dict()["outputs"]["model"] == {
        "type": "uri_folder",
        "path": "azureml://datastores/ds/paths/m/",
        "mode": "upload",
    }
    with pytest.raises(AttributeError, match="no port 'nope'; the ports are: model"):
        _ = job.outputs.nope


def test_print_of_a_pipeline_step_is_its_yaml(tmp_path: Path) -> None:
    (tmp_path / "train.yml").write_text(TRAIN)
    train = load_component(tmp_path / "train.yml")
    shown: list[str] = []

    @dsl.pipeline()
    def flow(data: Input):
        step = train(data=data, lr=0.3)
        shown.append(str(step))
        return {"m": step.outputs.model}

    flow(Input(path="azureml:d:1"))
    step = yaml.safe_load(shown[0])
    assert step["type"] == "command" and step["inputs"] == {"data": "${{parent.inputs.data}}", "lr": 0.3}
