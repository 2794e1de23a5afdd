"""The sweep jobs of Azure/azureml-examples run unchanged through the real CLI.

``shoal job create --file <yml> --stream`` from the example's folder, with ``cpu-cluster``
created first. Each test checks that the sweep completed, that ``job list --parent-job-name``
shows its trials, each completed with the primary metric logged, that
``properties.best_child_run_id`` names the trial with the best value for ``objective.goal``, and
that ``job download --all`` of the sweep gives that trial's files (the model MLflow autologging
saved, or the outputs a pipeline's next step reads).

Skipped unless SHOAL_AZUREML_EXAMPLES points at a checkout (or an exported tree) of that
repository: ``git archive HEAD cli/jobs | tar -x -C /tmp/aml``. Nothing of it is copied here: the
YAML, code and data are read from there, and never edited. The examples read iris.csv from the
web; it is served from workspaceblobstore (the checkout's own copy of the same file, uploaded)
by overriding only that input's path with ``--set``.

Costs: every test needs a curated environment (sklearn-1.5, lightgbm-3.3), built once per server
home with uv (its wheels go into uv's cache the first time), hence ``slow``. Set SHOAL_ENV_CACHE
to a folder to share built environments between runs. The pipeline example's trials run
``pip install 'mlflow<2.19'`` first, from PyPI, each into its own layer over the shared environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import SHOAL, Cli

ROOT = os.environ.get("SHOAL_AZUREML_EXAMPLES")
pytestmark = pytest.mark.skipif(not ROOT, reason="SHOAL_AZUREML_EXAMPLES is not set")

TIMEOUT = 900  # seconds for one sweep, environment builds included
IRIS_COPY = "jobs/pipelines/add-column-and-word-count-using-spark/data/iris.csv"  # the web file's columns
IRIS_COLUMNS = "sepal_length,sepal_width,petal_length,petal_width,species"
# The single-step examples ask for 20 trials, 10 at a time: 6, 3 at a time, keep the test short on
# small machines. Nothing else in them is changed.
FEWER_TRIALS = ("limits.max_total_trials=6", "limits.max_concurrent_trials=3")


class Examples:
    def __init__(self, cli: Cli, root: Path, downloads: Path) -> None:
        self.cli = cli
        self.root = root  # the checkout's cli/
        self.downloads = downloads
        self._iris: str | None = None

    def shoal(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SHOAL, *args], cwd=cwd or self.root, env=self.cli.env, capture_output=True, text=True, timeout=timeout
        )

    def json(self, *args: str) -> Any:
        result = self.shoal(*args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def submit(self, folder: str, file: str, *sets: str) -> str:
        """``job create --stream`` from the example's folder, which must exit 0; the job's name."""
        args = ["job", "create", "--file", file, "--stream"]
        for value in sets:
            args += ["--set", value]
        result = self.shoal(*args, cwd=self.root / folder, timeout=TIMEOUT)
        match = re.search(r"^RunId: (\S+)$", result.stdout, re.MULTILINE)
        assert match, f"no RunId:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert result.returncode == 0, f"{folder}/{file}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return match.group(1)

    def children(self, parent: str) -> list[dict[str, Any]]:
        return self.json("job", "list", "--parent-job-name", parent, "--all-results")

    def download(self, name: str) -> Path:
        dest = self.downloads / name
        result = self.shoal("job", "download", "-n", name, "--all", "--download-path", str(dest))
        assert result.returncode == 0, result.stderr
        return dest

    def iris(self) -> str:
        """iris.csv on workspaceblobstore, as the examples' web URL serves it; its datastore URI."""
        if self._iris is None:
            copy = self.root / IRIS_COPY
            if not copy.is_file() or copy.read_text().splitlines()[0].strip() != IRIS_COLUMNS:
                pytest.skip(f"the checkout has no {IRIS_COPY} with columns {IRIS_COLUMNS}")
            server = json.loads((self.cli.home / "server.json").read_text())["url"]
            token = (self.cli.home / "token").read_text().strip()
            path = "example-data/iris/iris.csv"
            httpx.put(
                f"{server}/api/v1/workspaces/default/datastores/workspaceblobstore/content",
                params={"path": path},
                content=copy.read_bytes(),
                headers={"Authorization": f"Bearer {token}", "content-type": "application/octet-stream"},
            ).raise_for_status()
            self._iris = f"azureml://datastores/workspaceblobstore/paths/{path}"
        return self._iris

    def check_sweep(self, name: str, spec: dict[str, Any], sets: tuple[str, ...] = ()) -> tuple[str, list[str]]:
        """The sweep and its trials as the module doc says; the best trial and every trial's name."""
        limits = dict(spec["limits"])
        for value in sets:
            key, _, number = value.partition("=")
            if key.startswith("limits."):
                limits[key.removeprefix("limits.")] = int(number)
        goal, metric = spec["objective"]["goal"], spec["objective"]["primary_metric"]
        sweep = self.json("job", "show", "-n", name)
        trials = sorted(self.children(name), key=lambda t: int(t["name"].rsplit("_", 1)[1]))
        assert sweep["type"] == "sweep"
        assert sweep["status"] == "Completed", (sweep.get("error"), {t["name"]: t["status"] for t in trials})
        # Continuous search spaces: never exhausted, so exactly max_total_trials.
        assert [t["name"] for t in trials] == [f"{name}_{i}" for i in range(limits["max_total_trials"])]
        for trial in trials:
            stopped = (trial.get("properties") or {}).get("shoal.sweep.early_termination")
            assert trial["status"] == "Completed" or (trial["status"] == "Canceled" and stopped), (
                trial["name"],
                trial["status"],
                trial.get("error"),
            )
        # Never more than max_concurrent_trials at once.
        spans = [
            (t["properties"]["shoal.status_time.Preparing"], t["properties"]["shoal.status_time.Completed"])
            for t in trials
        ]
        for start, _ in spans:
            assert sum(s <= start < e for s, e in spans) <= limits["max_concurrent_trials"]
        values: dict[str, float] = {}
        for trial in trials:
            metrics = self.json("job", "show", "-n", trial["name"]).get("metrics") or {}
            assert metric in metrics, (trial["name"], sorted(metrics))
            values[trial["name"]] = float(metrics[metric])
        result = self.shoal("job", "show", "-n", name, "--query", "properties.best_child_run_id", "-o", "tsv")
        assert result.returncode == 0, result.stderr
        best = result.stdout.strip()
        pick = max if goal == "maximize" else min
        assert values[best] == pick(values.values()), (best, values)
        assert float(sweep["properties"]["best_metric_value"]) == values[best]
        return best, list(values)


def load_spec(aml: Examples, folder: str, file: str) -> dict[str, Any]:
    return yaml.safe_load((aml.root / folder / file).read_text())


def autologged_model(root: Path) -> str:
    """The MLmodel MLflow autologging wrote under the run's artifacts."""
    found = sorted(root.glob("artifacts/**/MLmodel"))
    assert found, sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    return found[0].read_text()


@pytest.fixture(scope="module")
def aml(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("aml-sweeps-home")
    runner = Cli(home)
    if os.environ.get("SHOAL_ENV_CACHE"):
        runner.env["SHOAL_ENV_CACHE"] = os.environ["SHOAL_ENV_CACHE"]
    runner("server", "start", "--detach")
    try:
        runner("compute", "create", "--name", "cpu-cluster", "--type", "amlcompute", "--max-instances", "4")
        yield Examples(runner, Path(ROOT or ".") / "cli", tmp_path_factory.mktemp("aml-sweep-downloads"))
    finally:
        runner("server", "stop", check=False)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
def test_hello_sweep(aml):
    folder = "jobs/basics"
    name = aml.submit(folder, "hello-sweep.yml")
    best, trials = aml.check_sweep(name, load_spec(aml, folder, "hello-sweep.yml"))
    # Each trial got A as an input and B, C from the search space, and logged them as parameters.
    for trial in trials:
        params = aml.json("job", "show", "-n", trial)["properties"]["shoal.sweep.params"]
        assert params["B"] in ("hello", "world", "hello_world") and 0.1 <= params["C"] <= 1.0
    log = (aml.download(name) / "artifacts/user_logs/std_log.txt").read_text()
    params = aml.json("job", "show", "-n", best)["properties"]["shoal.sweep.params"]
    assert f"A: 0.5\nB: {params['B']}\nC: {params['C']}" in log, log


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
@pytest.mark.parametrize(
    ("folder", "flavor"),
    [("jobs/single-step/scikit-learn/iris", "sklearn"), ("jobs/single-step/lightgbm/iris", "lightgbm")],
)
def test_single_step_iris_sweeps(aml, folder, flavor):
    # The examples read iris.csv from the web (wasbs:// or https://); only that path changes.
    sets = (f"inputs.iris_csv.path={aml.iris()}", *FEWER_TRIALS)
    name = aml.submit(folder, "job-sweep.yml", *sets)
    best, _ = aml.check_sweep(name, load_spec(aml, folder, "job-sweep.yml"), sets)
    # Downloading the sweep gives the best trial's autologged model.
    mlmodel = autologged_model(aml.download(name))
    assert f"run_id: {best}\n" in mlmodel and f"loader_module: mlflow.{flavor}" in mlmodel, mlmodel


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
def test_pipeline_with_hyperparameter_sweep(aml):
    folder = "jobs/pipelines-with-components/pipeline_with_hyperparameter_sweep"
    # As cli/run-job.sh submits pipelines; the sweep step's iris.csv comes from the datastore.
    sets = ("settings.force_rerun=True", f"jobs.sweep_step.inputs.data.path={aml.iris()}")
    pipeline = aml.submit(folder, "pipeline.yml", *sets)
    job = aml.json("job", "show", "-n", pipeline)
    steps = {s["properties"]["shoal.step"]: s for s in aml.children(pipeline)}
    assert job["status"] == "Completed", (job.get("error"), {p: s["status"] for p, s in steps.items()})
    assert set(steps) == {"sweep_step", "predict_step"}
    assert all(s["status"] == "Completed" for s in steps.values()), {p: s.get("error") for p, s in steps.items()}
    sweep = steps["sweep_step"]
    assert sweep["type"] == "sweep"
    step_spec = load_spec(aml, folder, "pipeline.yml")["jobs"]["sweep_step"]
    best, _ = aml.check_sweep(sweep["name"], step_spec)
    # The sweep step's outputs are its best trial's, and they are what predict_step read.
    swept, trial = aml.download(sweep["name"]), aml.download(best)
    for output in ("model_output/MLmodel", "model_output/model.pkl", "test_data/X_test.csv", "test_data/y_test.csv"):
        assert (swept / "named-outputs" / output).read_bytes() == (trial / "named-outputs" / output).read_bytes()
    predict = steps["predict_step"]
    assert predict["inputs"]["model"]["path"] == f"azureml://jobs/{sweep['name']}/outputs/model_output"
    result = (aml.download(predict["name"]) / "named-outputs/predict_result/predict_result.csv").read_text()
    assert result.splitlines()[0] == ",species,predict" and len(result.splitlines()) == 31, result
