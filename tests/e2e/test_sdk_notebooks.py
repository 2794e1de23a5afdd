"""What azure-ai-ml notebooks do, through a real server: ``job.studio_url``, settings as an object,
``Environment(conda_file=<path>)``, an asset's ARM id as an input, ``@command_component``
functions as pipeline steps, a ``@dsl.pipeline`` registered as a component, and a sweep step
built from a component call with distributions (issue #16)."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest

from shoal import Choice, Data, Environment, Input, MLClient, Output, Uniform, command, dsl, load_component
from shoal.config import ShoalSettings
from shoal.entities import UserIdentityConfiguration

COMPONENT_FILE = '''\
from pathlib import Path

from shoal.mldesigner import Input, Output, command_component


@command_component(name="prep_data", version="1", display_name="Prep Data")
def prepare_data_component(
    input_data: Input(type="uri_folder"),
    training_data: Output(type="uri_folder"),
    ratio: float = 0.5,
    note: Input(type="string", optional=True) = None,
):
    """Lists its input folder into training_data/out.txt."""
    import os

    files = sorted(os.listdir(input_data))
    Path(training_data, "out.txt").write_text(f"{files} {ratio!r} {note!r}")
'''

# Logs the primary metric through MLflow's REST API (no mlflow package in the job's environment).
TRIAL = """\
import json, os, sys, urllib.request
lr = float(sys.argv[1])
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "acc", "value": lr, "timestamp": 0, "step": 0}
request = urllib.request.Request(
    os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
    data=json.dumps(body).encode(),
    headers={"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"], "Content-Type": "application/json"},
)
urllib.request.urlopen(request).read()
open(os.path.join(sys.argv[2], "lr.txt"), "w").write(str(lr))
"""

TRIAL_COMPONENT = """\
name: trial_lr
type: command
inputs:
  lr: {type: number, default: 0.1}
  kernel: {type: string, default: linear}
outputs:
  model: {type: uri_folder}
code: ./src
command: python trial.py ${{inputs.lr}} ${{outputs.model}} && echo ${{inputs.kernel}}
environment: azureml:AzureML-minimal@latest
"""


@pytest.fixture(scope="module")
def ml(jobs_cli):
    client = MLClient(settings=ShoalSettings(home=jobs_cli.home))
    yield client
    client.close()


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_notebook_job_habits(ml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "conda.yaml").write_text("name: tiny\ndependencies:\n  - pip\n")
    (tmp_path / "titanic.csv").write_text("survived,age\n1,22\n")
    data = ml.data.create_or_update(Data(name="titanic", type="uri_file", path="./titanic.csv"))
    assert data.id.startswith("/subscriptions/") and "/data/titanic/versions/" in data.id
    env = Environment(image="python:3.11", conda_file="./env/conda.yaml")  # read now, from the cwd
    assert env.conda_file == {"name": "tiny", "dependencies": ["pip"]}
    job = ml.jobs.create_or_update(
        command(
            command="cat ${{inputs.titanic}}",
            inputs={"titanic": Input(type="uri_file", path=data.id)},
            environment=env,
            identity=UserIdentityConfiguration(),
        )
    )
    assert job.studio_url and job.studio_url.endswith(f"/jobs/{job.name}")
    assert job.studio_url == job.services["Studio"]["endpoint"]
    assert job.identity.type == "user_identity"
    out = io.StringIO()
    done = ml.jobs.stream(job.name, out=out)
    assert done.status == "Completed" and "survived,age" in out.getvalue()
    assert f"Web View: {job.studio_url}" in out.getvalue()  # the URL `shoal job create` prints
    assert done.inputs["titanic"].path == f"azureml:titanic:{data.version}"


def test_command_component_and_registered_pipeline_component(ml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prep").mkdir()
    (tmp_path / "prep" / "prep_component.py").write_text(COMPONENT_FILE)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x")
    prep = _import(tmp_path / "prep" / "prep_component.py").prepare_data_component

    @dsl.pipeline(name="prep_twice", version="1")
    def prep_twice(raw: Input, ratio: float = 0.25):
        first = prep(input_data=raw, ratio=ratio)
        second = prep(input_data=first.outputs.training_data, note="again")
        return {"listing": second.outputs.training_data}

    registered = ml.components.create_or_update(prep_twice)
    assert registered.type == "pipeline" and registered.version == "1" and registered.id

    @dsl.pipeline()
    def outer(raw: Input):
        step = registered(raw=raw, ratio=0.75)
        return {"listing": step.outputs.listing}

    pipeline_job = outer(Input(type="uri_folder", path="./data"))
    pipeline_job.settings.continue_on_step_failure = False
    pipeline_job.settings.force_rerun = True
    assert pipeline_job.to_dict()["settings"] == {"continue_on_step_failure": False, "force_rerun": True}
    submitted = ml.jobs.create_or_update(pipeline_job, experiment_name="notebooks")
    done = ml.jobs.stream(submitted.name, out=io.StringIO())
    assert done.status == "Completed"
    assert done.settings.force_rerun is True
    ml.jobs.download(submitted.name, download_path=tmp_path / "dl", output_name="listing")
    # The second step listed the first one's output folder: the function bodies ran in the jobs.
    assert (tmp_path / "dl" / "named-outputs" / "listing" / "out.txt").read_text() == "['out.txt'] 0.5 'again'"


def test_sweep_step_from_a_component_call(ml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "trial.py").write_text(TRIAL)
    (tmp_path / "trial.yml").write_text(TRIAL_COMPONENT)
    trial = load_component("trial.yml")

    @dsl.pipeline()
    def tune():
        train = trial(lr=Uniform(0.1, 0.9), kernel=Choice(["linear", "rbf"]))
        sweep_step = train.sweep(primary_metric="acc", goal="maximize", sampling_algorithm="random")
        sweep_step.set_limits(max_total_trials=2, max_concurrent_trials=2, timeout=300)
        return {"best": sweep_step.outputs.model}

    job = ml.jobs.create_or_update(tune())
    step = job.jobs["sweep_step"]
    assert step["type"] == "sweep" and set(step["search_space"]) == {"lr", "kernel"}
    done = ml.jobs.stream(job.name, out=io.StringIO())
    assert done.status == "Completed"
    ml.jobs.download(job.name, download_path=tmp_path / "dl", output_name="best")
    assert 0.1 <= float((tmp_path / "dl" / "named-outputs" / "best" / "lr.txt").read_text()) <= 0.9


RETURNS_FILE = """\
from pathlib import Path

from shoal.mldesigner import Input, Output, command_component


@command_component()
def count_files(folder: Input(type="uri_folder")) -> int:
    import os

    return len(os.listdir(folder))


@command_component()
def describe(n: int, note: str, listing: Output(type="uri_folder"), maybe: Input(type="string", optional=True) = None):
    Path(listing, "n.txt").write_text(f"{n + 1} {note} {maybe!r}")


@command_component()
def nothing_returned(folder: Input(type="uri_folder")) -> Output(type="boolean", is_control=True):
    return None
"""

WRITES_CONTROL = """\
name: writes_flag
type: command
outputs:
  flag: {type: boolean, is_control: true}
  count: {type: integer}
command: echo True > ${{outputs.flag}} && printf 'not a number' > ${{outputs.count}}
environment: azureml:AzureML-minimal@latest
"""


def test_return_values_and_control_outputs_feed_later_steps(ml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "returns_component.py").write_text(RETURNS_FILE)
    (tmp_path / "data").mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (tmp_path / "data" / name).write_text("x")
    fns = _import(tmp_path / "fns" / "returns_component.py")
    assert fns.count_files.component.outputs["output"].type == "integer"
    assert fns.nothing_returned.component.outputs["output"].is_control is True

    @dsl.pipeline()
    def chain(raw: Input):
        counted = fns.count_files(folder=raw)
        described = fns.describe(n=counted.outputs.output, note=counted.outputs.output)
        return {"listing": described.outputs.listing, "count": counted.outputs.output}

    job = ml.jobs.create_or_update(chain(Input(type="uri_folder", path="./data")))
    done = ml.jobs.stream(job.name, out=io.StringIO())
    assert done.status == "Completed"
    ml.jobs.download(job.name, download_path=tmp_path / "dl", output_name="listing")
    assert (tmp_path / "dl" / "named-outputs" / "listing" / "n.txt").read_text() == "4 3 None"
    steps = {j.display_name: j for j in ml.jobs.list(parent_job_name=job.name)}
    assert steps["counted"].outputs["output"].value == 3  # recorded as its type
    assert steps["described"].inputs["n"] == 3
    assert ml.jobs.get(job.name).outputs["count"]["value"] == 3  # the pipeline output bound to it

    # A required input bound to a control output the job did not write: the step fails, naming it.
    @dsl.pipeline()
    def unwritten(raw: Input):
        flag = fns.nothing_returned(folder=raw)
        fns.describe(n=1, note=flag.outputs.output)

    job = ml.jobs.create_or_update(unwritten(Input(type="uri_folder", path="./data")))
    with pytest.raises(Exception, match="did not write"):
        ml.jobs.stream(job.name, out=io.StringIO())
    steps = {j.display_name: j for j in ml.jobs.list(parent_job_name=job.name)}
    assert steps["describe"].error["code"] == "CONTROL_OUTPUT_MISSING"

    # A YAML component writes its control outputs to ${{outputs.<name>}}; a value that is not its
    # type fails the job, naming the output.
    (tmp_path / "writes.yml").write_text(WRITES_CONTROL)
    writes = load_component("writes.yml")

    @dsl.pipeline()
    def bad_value():
        writes()

    failed = ml.jobs.create_or_update(bad_value())
    with pytest.raises(Exception, match="control output 'count' is declared integer"):
        ml.jobs.stream(failed.name, out=io.StringIO())
    (step,) = ml.jobs.list(parent_job_name=failed.name)
    assert step.error["code"] == "CONTROL_OUTPUT_INVALID" and step.outputs["flag"].value is None


def test_sweep_step_from_an_inline_command(ml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "trial.py").write_text(TRIAL)
    train = command(
        code="./src",
        command="python trial.py ${{inputs.lr}} ${{outputs.model}} && echo ${{inputs.kernel}}",
        inputs={"lr": 0.1, "kernel": "linear"},
        outputs={"model": Output(type="uri_folder")},
        environment="azureml:AzureML-minimal@latest",
    )

    @dsl.pipeline()
    def tune():
        trial = train(lr=Uniform(0.2, 0.8))
        sweep_step = trial.sweep(primary_metric="acc", goal="maximize", max_total_trials=2, max_concurrent_trials=2)
        return {"best": sweep_step.outputs.model}

    job = ml.jobs.create_or_update(tune())
    step = job.jobs["sweep_step"]
    assert step["type"] == "sweep" and set(step["search_space"]) == {"lr"}
    assert step["trial"]["inputs"] == {"kernel": {"type": "string"}}
    done = ml.jobs.stream(job.name, out=io.StringIO())
    assert done.status == "Completed"
    ml.jobs.download(job.name, download_path=tmp_path / "dl", output_name="best")
    assert 0.2 <= float((tmp_path / "dl" / "named-outputs" / "best" / "lr.txt").read_text()) <= 0.8


ENTRY_SCRIPT = """\
import argparse, os
from pathlib import Path

def init():
    global OUT
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=str)
    OUT = parser.parse_known_args()[0].copies

def run(mini_batch):
    if any("bad" in os.path.basename(p) for p in mini_batch):  # a file's name: job names may hold "badger"
        raise ValueError("a bad file")
    for p in mini_batch:
        (Path(OUT) / os.path.basename(p)).write_text(Path(p).read_text().upper())
    return [f"{os.path.basename(p)},{len(mini_batch)}" for p in mini_batch]
"""


def test_parallel_step_runs_its_entry_script_over_mini_batches(ml, tmp_path, monkeypatch):
    from shoal.parallel import RunFunction, parallel_run_function

    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text(ENTRY_SCRIPT)
    (tmp_path / "files").mkdir()
    for i in range(5):
        (tmp_path / "files" / f"f{i}.txt").write_text(f"file {i}")
    (tmp_path / "files" / "MLTable").write_text("paths:\n" + "".join(f"  - file: ./f{i}.txt\n" for i in range(5)))
    score = parallel_run_function(
        name="score_files",
        inputs={"data": Input(type="mltable")},
        outputs={"copies": Output(type="uri_folder"), "rows": Output(type="uri_folder")},
        input_data="${{inputs.data}}",
        instance_count=2,
        mini_batch_size="2",
        mini_batch_error_threshold=0,
        retry_settings={"max_retries": 1, "timeout": 60},
        task=RunFunction(
            code="./src",
            entry_script="score.py",
            program_arguments="--copies ${{outputs.copies}}",
            append_row_to="${{outputs.rows}}",
            environment="azureml:AzureML-minimal@latest",
        ),
    )

    @dsl.pipeline()
    def batch(files: Input):
        step = score(data=files)
        step.inputs.data.mode = "direct"  # read as a download: the driver reads files
        return {"copies": step.outputs.copies, "rows": step.outputs.rows}

    with pytest.warns(UserWarning, match="mode direct is read as ro_mount"):
        job = ml.jobs.create_or_update(batch(Input(type="mltable", path="./files")))
    done = ml.jobs.stream(job.name, out=io.StringIO())
    assert done.status == "Completed"
    ml.jobs.download(job.name, download_path=tmp_path / "dl", all=True)
    copies = tmp_path / "dl" / "named-outputs" / "copies"
    assert sorted(p.name for p in copies.iterdir()) == [f"f{i}.txt" for i in range(5)]
    assert (copies / "f3.txt").read_text() == "FILE 3"
    rows = (tmp_path / "dl" / "named-outputs" / "rows" / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["f0.txt,2", "f1.txt,2", "f2.txt,2", "f3.txt,2", "f4.txt,1"]  # mini batches of 2

    # A mini batch that fails past mini_batch_error_threshold fails the step, its log saying so.
    (tmp_path / "files" / "bad.txt").write_text("x")
    (tmp_path / "files" / "MLTable").write_text("paths:\n  - folder: ./\n")
    with pytest.warns(UserWarning):
        job = ml.jobs.create_or_update(batch(Input(type="mltable", path="./files")))
    with pytest.raises(Exception, match="score_files|step"):
        ml.jobs.stream(job.name, out=io.StringIO())
    (step,) = ml.jobs.list(parent_job_name=job.name)
    assert step.status == "Failed"
    ml.jobs.download(step.name, download_path=tmp_path / "failed", all=True)
    log = (tmp_path / "failed" / "artifacts" / "user_logs" / "std_log.txt").read_text()
    assert "ValueError: a bad file" in log
    assert "1 mini batches failed, over mini_batch_error_threshold 0" in log
