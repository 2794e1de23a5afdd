"""The pipeline jobs of Azure/azureml-examples run unchanged through the real CLI.

``shoal job create --file <yml> --stream --set settings.force_rerun=True`` from the example's
folder, as the repository's cli/run-job.sh submits pipelines, with the computes they name
(``cpu-cluster``, ``gpu-cluster``) created first. Each test checks that the pipeline and every
step (nested pipelines' too) completed, downloads the pipeline and each step with
``shoal job download --all`` and checks the files the example writes.

Skipped unless SHOAL_AZUREML_EXAMPLES points at a checkout (or an exported tree) of that
repository: ``git archive HEAD cli/jobs cli/run-job.sh | tar -x -C /tmp/aml``. Nothing of it is
copied here: the YAML, code and data are read from there, and never edited. What an example
reads from the web is served from the workspace's datastore by overriding only that input's
path with ``--set``.

Costs: the ``slow`` tests need the curated sklearn-1.5 environment, built once per server home
with uv (its wheels go into uv's cache the first time; later builds link them in about a second).
Set SHOAL_ENV_CACHE to a folder to share built environments between runs of this module.
6a builds TensorFlow 2.16 (about 600 MB of wheels, 2 GB installed) and 6b PyTorch 2.8 from the
CPU wheel index (skipped where download.pytorch.org cannot be reached); both only echo the
variables Shoal's emulated distribution sets.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import SHOAL, Cli

ROOT = os.environ.get("SHOAL_AZUREML_EXAMPLES")
pytestmark = pytest.mark.skipif(not ROOT, reason="SHOAL_AZUREML_EXAMPLES is not set")

TIMEOUT = 900  # seconds for one pipeline, environment builds included
LOG = "artifacts/user_logs/std_log.txt"

Expect = dict[str, list[tuple[str, str]]]
"""Step path ("" for the pipeline itself) -> (glob under its download, text one match contains)."""


@dataclass
class Examples:
    cli: Cli
    root: Path  # the checkout's cli/
    downloads: Path

    def shoal(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SHOAL, *args], cwd=cwd or self.root, env=self.cli.env, capture_output=True, text=True, timeout=timeout
        )

    def json(self, *args: str) -> Any:
        result = self.shoal(*args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def run(self, folder: str, file: str = "pipeline.yml", *sets: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        """``job create --stream`` from the example's folder: the pipeline's name, and how it ended."""
        args = ["job", "create", "--file", file, "--stream", "--set", "settings.force_rerun=True"]
        for value in sets:
            args += ["--set", value]
        result = self.shoal(*args, cwd=self.root / folder, timeout=TIMEOUT)
        match = re.search(r"^RunId: (\S+)$", result.stdout, re.MULTILINE)
        assert match, f"no RunId:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return match.group(1), result

    def submit(self, folder: str, file: str = "pipeline.yml", *sets: str) -> str:
        """:meth:`run`, which must exit 0; the pipeline's name."""
        name, result = self.run(folder, file, *sets)
        assert result.returncode == 0, f"{folder}/{file}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return name

    def steps(self, parent: str) -> dict[str, dict[str, Any]]:
        """Every child job under ``parent`` (nested pipelines and their steps), by step path."""
        out: dict[str, dict[str, Any]] = {}
        for child in self.json("job", "list", "--parent-job-name", parent, "--all-results"):
            path = (child.get("properties") or {}).get("shoal.step") or child["display_name"]
            out[path] = child
            if child.get("type") == "pipeline":
                out.update(self.steps(child["name"]))
        return out

    def download(self, name: str) -> Path:
        dest = self.downloads / name
        result = self.shoal("job", "download", "-n", name, "--all", "--download-path", str(dest))
        assert result.returncode == 0, result.stderr
        return dest

    def check(self, pipeline: str, expect: Expect, steps: set[str] | None = None) -> dict[str, dict[str, Any]]:
        """The pipeline and all its steps completed, and each expected file holds its text."""
        job = self.json("job", "show", "-n", pipeline)
        assert job["type"] == "pipeline"
        children = self.steps(pipeline)
        assert job["status"] == "Completed", (job.get("error"), {p: c["status"] for p, c in children.items()})
        assert children and all(c["status"] == "Completed" for c in children.values()), {
            p: (c["status"], c.get("error")) for p, c in children.items()
        }
        if steps is not None:
            assert set(children) == steps
        for path, files in expect.items():
            root = self.download(children[path]["name"] if path else pipeline)
            for pattern, text in files:
                found = sorted(p for p in root.glob(pattern) if p.is_file())
                assert found, f"{path or 'pipeline'}: nothing matches {pattern} in {sorted(root.rglob('*'))}"
                contents = [p.read_text(errors="replace") for p in found]
                assert any(text in c for c in contents), f"{path or 'pipeline'}: {pattern} lacks {text!r}: {contents}"
        return children

    def put_file(self, path: str, data: bytes) -> str:
        """A file on workspaceblobstore; its datastore URI."""
        server = json.loads((self.cli.home / "server.json").read_text())["url"]
        token = (self.cli.home / "token").read_text().strip()
        httpx.put(
            f"{server}/api/v1/workspaces/default/datastores/workspaceblobstore/content",
            params={"path": path},
            content=data,
            headers={"Authorization": f"Bearer {token}", "content-type": "application/octet-stream"},
        ).raise_for_status()
        return f"azureml://datastores/workspaceblobstore/paths/{path}"


@pytest.fixture(scope="module")
def aml(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("aml-pipelines-home")
    runner = Cli(home)
    runner.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{runner.env.get('PATH', '')}"
    # 5c pins python=3.8 in its conda file: built on the host's Python, since downloading another
    # interpreter needs more than a package registry.
    runner.env["SHOAL_PYTHON_MISMATCH"] = "host"
    if os.environ.get("SHOAL_ENV_CACHE"):
        runner.env["SHOAL_ENV_CACHE"] = os.environ["SHOAL_ENV_CACHE"]
    runner("server", "start", "--detach")
    try:
        for compute in ("cpu-cluster", "gpu-cluster"):
            runner("compute", "create", "--name", compute, "--type", "amlcompute", "--max-instances", "4")
        yield Examples(runner, Path(ROOT or ".") / "cli", tmp_path_factory.mktemp("aml-downloads"))
    finally:
        runner("server", "stop", check=False)


# -- cli/jobs/basics/hello-pipeline*.yml -----------------------------------------------------

HELLO: dict[str, Expect] = {
    "hello-pipeline": {"hello_job": [(LOG, "hello")], "world_job": [(LOG, "world")]},
    "hello-pipeline-abc": {
        "a": [(LOG, "hello hello world")],
        "b": [("named-outputs/world_output/world.txt", "world")],
        "c": [(LOG, "/world.txt")],
    },
    "hello-pipeline-customize-output-file": {
        "": [("named-outputs/output/hello_world.txt", "world")],
        "hello_world": [(LOG, "hello")],
    },
    "hello-pipeline-customize-output-folder": {
        "hello_world": [("named-outputs/output/hello_world-folder.txt", "world"), (LOG, "hello")],
    },
    "hello-pipeline-default-artifacts": {
        "hello_job": [("artifacts/outputs/world.txt", "world")],
        "world_job": [(LOG, "world")],
    },
    "hello-pipeline-io": {
        "hello_job": [("named-outputs/world_output/world.txt", "world")],
        "world_job": [(LOG, "world")],
    },
    "hello-pipeline-settings": {"hello_job": [(LOG, "hello")], "world_job": [(LOG, "hello")]},
}
HELLO_FILES = [f"{name}{suffix}" for name in HELLO for suffix in ("", "-serverless")]


def test_every_hello_pipeline_example_is_covered(aml):
    present = {p.stem for p in (aml.root / "jobs/basics").glob("hello-pipeline*.yml")}
    assert present == set(HELLO_FILES)


@pytest.mark.slow
@pytest.mark.parametrize("example", HELLO_FILES)
def test_hello_pipelines(aml, example):
    name = aml.submit("jobs/basics", f"{example}.yml")
    expect = HELLO[example.removesuffix("-serverless")]
    steps = aml.check(name, expect, steps={p for p in expect if p})
    wanted = "serverless" if example.endswith("-serverless") else "cpu-cluster"
    assert {s["compute"] for s in steps.values()} == {wanted}


# -- cli/jobs/pipelines-with-components/basics -----------------------------------------------

BASICS = "jobs/pipelines-with-components/basics"
TRAIN_SCORE_EVAL: Expect = {
    "": [
        ("named-outputs/pipeline_job_trained_model/model.txt", ""),
        ("named-outputs/pipeline_job_evaluation_report/eval_result.txt", ""),
    ],
    "train_job": [(LOG, "")],
    "score_job": [("named-outputs/score_output/score.txt", "")],
}
HELLO_WORLD_OUTPUT = ("named-outputs/sample_output_data/file-*.txt", "Logging date time")


@pytest.mark.slow
def test_1a_local_components(aml):
    name = aml.submit(f"{BASICS}/1a_e2e_local_components")
    aml.check(name, TRAIN_SCORE_EVAL, steps={"train_job", "score_job", "evaluate_job"})


@pytest.mark.slow
@pytest.mark.parametrize("file", ["pipeline.yml", "pipeline-serverless.yml"])
def test_1b_registered_components(aml, file):
    folder = aml.root / BASICS / "1b_e2e_registered_components"
    for component in ("train", "score", "eval"):  # as its README does
        result = aml.shoal("component", "create", "--file", f"{component}.yml", cwd=folder)
        assert result.returncode == 0, result.stderr
    name = aml.submit(f"{BASICS}/1b_e2e_registered_components", file)
    expect = {**TRAIN_SCORE_EVAL, "": [*TRAIN_SCORE_EVAL[""], ("named-outputs/pipeline_job_scored_data/score.txt", "")]}
    steps = aml.check(name, expect, steps={"train_job", "score_job", "evaluate_job"})
    assert all(s["properties"]["shoal.component"].startswith("azureml:my_") for s in steps.values())


def test_2a_basic_component(aml):
    name = aml.submit(f"{BASICS}/2a_basic_component")
    aml.check(name, {"hello_python_world_job": [(LOG, "Hello Python World")]})


def test_2b_component_with_input_output(aml):
    name = aml.submit(f"{BASICS}/2b_component_with_input_output")
    aml.check(name, {"": [("named-outputs/pipeline_sample_output_data/file-*.txt", "Logging date time")]})


def test_3a_basic_pipeline(aml):
    name = aml.submit(f"{BASICS}/3a_basic_pipeline")
    expect = {
        step: [(LOG, f"I'm component {step[-1].upper()}")] for step in ("component_a", "component_b", "component_c")
    }
    aml.check(name, expect, steps=set(expect))


def test_3b_pipeline_with_data(aml):
    name = aml.submit(f"{BASICS}/3b_pipeline_with_data")
    expect: Expect = {step: [(LOG, "Hello Python World")] for step in ("component_a", "component_b", "component_c")}
    expect[""] = [("named-outputs/final_pipeline_output/*", "")]
    aml.check(name, expect, steps={"component_a", "component_b", "component_c"})


def test_4a_local_data_input(aml):
    name = aml.submit(f"{BASICS}/4a_local_data_input")
    aml.check(name, {"": [("named-outputs/pipeline_sample_output_data/file-*.txt", "Logging date time")]})


def test_4b_datastore_datapath_uri(aml):
    # Its first step mounts workspaceblobstore's azureml/ folder, where Azure ML keeps every job's
    # outputs; in a fresh workspace nothing may be there yet.
    aml.put_file("azureml/README.txt", b"job outputs live under this folder\n")
    name = aml.submit(f"{BASICS}/4b_datastore_datapath_uri")
    aml.check(
        name,
        {
            "": [("named-outputs/pipeline_sample_output_data/hello-world.txt", "hello world")],
            "component_file": [(LOG, "hello world"), HELLO_WORLD_OUTPUT],
        },
    )


def test_4c_web_url_input_served_from_a_datastore(aml):
    folder = aml.root / BASICS / "4c_web_url_input"
    # The example reads https://dprepdata.blob.core.windows.net/demo/Titanic.csv; only its path changes.
    uri = aml.put_file("example-data/Titanic.csv", (folder / "data/sample.csv").read_bytes())
    name = aml.submit(
        f"{BASICS}/4c_web_url_input", "pipeline.yml", f"jobs.hello_python_world_job.inputs.sample_input_data.path={uri}"
    )
    aml.check(
        name,
        {
            "": [("named-outputs/pipeline_sample_output_data/file-*.txt", "Logging date time")],
            "hello_python_world_job": [(LOG, '"Month", "Average"')],
        },
    )


def test_4d_data_asset_input(aml):
    folder = aml.root / BASICS / "4d_data_input"
    result = aml.shoal("data", "create", "--file", "data.yml", cwd=folder)  # as its README does
    assert result.returncode == 0, result.stderr
    name = aml.submit(f"{BASICS}/4d_data_input")
    aml.check(
        name,
        {
            "python_hello_step": [(LOG, "sample.csv"), HELLO_WORLD_OUTPUT],
            "python_world_step": [(LOG, "sample.csv"), HELLO_WORLD_OUTPUT],
        },
    )


def test_5a_env_public_docker_image(aml):
    name = aml.submit(f"{BASICS}/5a_env_public_docker_image")
    aml.check(name, {"hello_python_world_job": [(LOG, "Hello Python World")]})


@pytest.mark.slow
def test_5b_env_registered(aml):
    name = aml.submit(f"{BASICS}/5b_env_registered")
    aml.check(
        name,
        {
            "hello_python_world_job": [
                (LOG, "Hello Python World"),
                ("artifacts/system_logs/environment_build.txt", "AzureML-sklearn-1.5"),
            ]
        },
    )


def test_5c_env_conda_file(aml):
    name = aml.submit(f"{BASICS}/5c_env_conda_file")
    aml.check(
        name,
        {
            "hello_python_world_job": [
                (LOG, "Hello Python World"),
                ("artifacts/system_logs/environment_build.txt", "pyjokes"),
            ]
        },
    )


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
def test_6a_tf_hello_world(aml):
    name = aml.submit(f"{BASICS}/6a_tf_hello_world")
    logs = "artifacts/user_logs/std_log_process_{}.txt"
    aml.check(
        name,
        {"tf_job": [(logs.format(i), f'"task": {{"type": "worker", "index": {i}}}') for i in range(2)]},
        steps={"tf_job"},
    )


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
def test_6b_pytorch_hello_world(aml):
    name, result = aml.run(f"{BASICS}/6b_pytorch_hello_world")
    if result.returncode != 0 and "download.pytorch.org" in json.dumps(
        [s.get("error") for s in aml.steps(name).values()]
    ):
        pytest.skip("the CPU build of PyTorch comes from download.pytorch.org, which this machine cannot reach")
    logs = "artifacts/user_logs/std_log_process_{}.txt"
    aml.check(name, {"pytorch_job": [(logs.format(r), f"RANK: {r}") for r in range(4)]}, steps={"pytorch_job"})


# -- the NYC taxi regressions ------------------------------------------------------------------


def assert_sane_score(report: str) -> None:
    mse = float(re.search(r"Mean squared error: ([-\d.]+)", report).group(1))  # type: ignore[union-attr]
    r2 = float(re.search(r"Coefficient of determination: ([-\d.]+)", report).group(1))  # type: ignore[union-attr]
    assert 0 < mse < 100, report  # fares in dollars: about 12 on this sample
    assert 0.5 < r2 <= 1, report  # about 0.87


NYC_OUTPUTS = [
    ("named-outputs/pipeline_job_trained_model/MLmodel", "sklearn"),
    ("named-outputs/pipeline_job_predictions/*.csv", "predicted_cost"),
    ("named-outputs/pipeline_job_score_report/score.txt", "Coefficient of determination"),
]


def score_report(aml: Examples, name: str, output: str = "pipeline_job_score_report") -> str:
    return (aml.downloads / name / "named-outputs" / output / "score.txt").read_text()


@pytest.mark.slow
def test_nyc_taxi_data_regression(aml):
    name = aml.submit("jobs/pipelines-with-components/nyc_taxi_data_regression")
    steps = {"prep_job", "transform_job", "train_job", "predict_job", "score_job"}
    aml.check(name, {"": NYC_OUTPUTS}, steps=steps)
    assert_sane_score(score_report(aml, name))


@pytest.mark.slow
def test_nyc_taxi_pipeline_with_inline_steps(aml):
    name = aml.submit("jobs/pipelines/nyc-taxi")
    steps = aml.check(
        name,
        {"": [], "score_job": [("named-outputs/score_report/score.txt", "Mean squared error")]},
        steps={"prep_job", "transform_job", "train_job", "predict_job", "score_job"},
    )
    assert_sane_score(score_report(aml, steps["score_job"]["name"], "score_report"))


@pytest.mark.slow
def test_nyc_taxi_with_pipeline_components(aml):
    name = aml.submit(
        "jobs/pipelines-with-components/pipeline_with_pipeline_component/nyc_taxi_data_regression_with_pipeline_component"
    )
    steps = {
        "data_pipeline",
        "data_pipeline/prep_job",
        "data_pipeline/transform_job",
        "train_pipeline",
        "train_pipeline/train_job",
        "train_pipeline/predict_job",
        "train_pipeline/score_job",
    }
    aml.check(name, {"": NYC_OUTPUTS}, steps=steps)
    assert_sane_score(score_report(aml, name))


@pytest.mark.slow
def test_train_eval_pipeline_components(aml):
    name = aml.submit(
        "jobs/pipelines-with-components/pipeline_with_pipeline_component/pipeline_with_train_eval_pipeline_component"
    )
    inner = {"train_job", "score_job", "evaluate_job"}
    steps = {"compare"} | {f"train_and_evaluate_model{i}{s}" for i in (1, 2) for s in ["", *(f"/{j}" for j in inner)]}
    aml.check(
        name,
        {
            "": [
                ("named-outputs/pipeline_job_best_model/model", "Best model path"),
                ("named-outputs/pipeline_job_best_result/result", "Best model path"),
            ],
            "train_and_evaluate_model1/train_job": [(LOG, "")],
        },
        steps=steps,
    )
