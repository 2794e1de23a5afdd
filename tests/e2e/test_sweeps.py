"""Sweep jobs end to end: a real server, trials as real runner processes logging with MLflow."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from shoal import MLClient, Uniform, command
from shoal.config import ShoalSettings
from tests.e2e.conftest import Cli, wait_for

TRIAL = """\
import argparse, os, pathlib, time
import mlflow

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
p.add_argument("--kind", default="a")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--log", default="yes")
p.add_argument("--out", default=None)
a = p.parse_args()
print("env x", os.environ.get("AZUREML_SWEEP_x"), "kind", a.kind, flush=True)
for step in range(a.steps):
    loss = (a.x - 0.3) ** 2 + 1.0 / (step + 1)
    if a.log == "yes":
        mlflow.log_metric("loss", loss, step=step)
    time.sleep(a.sleep)
if a.out:
    pathlib.Path(a.out, "x.txt").write_text(str(a.x))
"""

ENV_DICT = {
    "image": "python:3.11",
    "conda_file": {"dependencies": ["python=3.11", {"pip": ["mlflow-skinny"]}]},
}
TERMINAL = ("Completed", "Failed", "Canceled")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep-project")
    (root / "src").mkdir()
    (root / "src" / "trial.py").write_text(TRIAL)
    return root


@pytest.fixture(scope="module")
def ml(jobs_cli):
    client = MLClient(settings=ShoalSettings(home=jobs_cli.home))
    yield client
    client.close()


def trials(ml: MLClient, sweep: str) -> list[dict[str, Any]]:
    page = ml.jobs._t.request("GET", ml.jobs._base, params={"parent_job_name": sweep, "max_results": 200})
    return sorted(page["value"], key=lambda j: int(j["name"].rsplit("_", 1)[1]))


def full(ml: MLClient, name: str) -> dict[str, Any]:
    return ml.jobs._t.request("GET", f"{ml.jobs._base}/{name}")


def until_a_trial_runs(ml: MLClient, sweep: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(r["status"] == "Running" for r in trials(ml, sweep)) and time.monotonic() < deadline:
        time.sleep(0.3)


def wait(ml: MLClient, name: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = full(ml, name)
        if body["status"] in TERMINAL:
            return body
        time.sleep(0.3)
    raise AssertionError(f"sweep {name} did not end: {full(ml, name)['status']}")


def test_random_sweep_through_the_cli(jobs_cli: Cli, ml, project: Path, tmp_path: Path) -> None:
    spec = project / "sweep.yml"
    spec.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"
        + yaml.safe_dump(
            {
                "type": "sweep",
                "experiment_name": "sweeps-e2e",
                "trial": {
                    "code": "src",
                    "command": "python trial.py --x ${{search_space.x}} --kind ${{search_space.kind}} "
                    "--steps ${{inputs.steps}} --sleep 0.3 --out ${{outputs.model}}",
                    "environment": ENV_DICT,
                },
                "inputs": {"steps": 3},
                "outputs": {"model": None},
                "sampling_algorithm": "random",
                "search_space": {
                    "x": {"type": "uniform", "min_value": 0.0, "max_value": 1.0},
                    "kind": {"type": "choice", "values": ["a", "b"]},
                },
                "objective": {"goal": "minimize", "primary_metric": "loss"},
                "limits": {"max_total_trials": 4, "max_concurrent_trials": 2, "timeout": 600},
            },
            sort_keys=False,
        )
    )
    result = jobs_cli("job", "create", "--file", str(spec), "--stream")
    out = result.out
    assert "Status: Completed" in out and "Best trial:" in out, out
    name = out.split("RunId: ", 1)[1].split()[0]
    # Trials show their parameters as they start, their metric as they end.
    assert out.count("x=") >= 4 and "loss=" in out, out
    rows = trials(ml, name)
    assert [r["name"] for r in rows] == [f"{name}_{i}" for i in range(4)]
    assert all(r["status"] == "Completed" for r in rows)
    # Never more than two at once.
    spans = [
        (r["properties"]["shoal.status_time.Preparing"], r["properties"]["shoal.status_time.Completed"]) for r in rows
    ]
    for start, _ in spans:
        assert sum(s <= start < e for s, e in spans) <= 2
    best = jobs_cli("job", "show", "-n", name, "--query", "properties.best_child_run_id", "-o", "tsv").out.strip()
    values = {r["name"]: full(ml, r["name"])["metrics"]["loss"] for r in rows}
    assert best == min(values, key=values.get)
    # Each trial got its parameters as ${{search_space.x}} and AZUREML_SWEEP_x.
    params = {r["name"]: r["properties"]["shoal.sweep.params"] for r in rows}
    assert all(0.0 <= p["x"] <= 1.0 and p["kind"] in ("a", "b") for p in params.values())
    log = ml.jobs.read_log(best, "user_logs/std_log.txt")[0].decode()
    assert f"env x {params[best]['x']}" in log and f"kind {params[best]['kind']}" in log, log
    # Downloading the sweep gives the best trial's outputs and artifacts.
    jobs_cli("job", "download", "-n", name, "--all", "--download-path", str(tmp_path / "dl"))
    assert float((tmp_path / "dl" / "named-outputs" / "model" / "x.txt").read_text()) == params[best]["x"]
    table = jobs_cli("job", "list", "--parent-job-name", name, "-o", "table").out
    assert all(r["name"] in table for r in rows)
    for header in ("Params", "Primary Metric", "Best"):
        assert header in table, table
    assert table.count("loss=") == 4 and table.count("kind=") == 4 and "best" in table, table


def test_grid_tries_every_combination_once(ml, project: Path) -> None:
    job = ml.jobs.create_or_update(
        {
            "type": "sweep",
            "trial": {
                "code": str(project / "src"),
                "command": "python trial.py --x ${{search_space.x}} --kind ${{search_space.kind}} --steps 1",
                "environment": ENV_DICT,
            },
            "sampling_algorithm": "grid",
            "search_space": {
                "x": {"type": "choice", "values": [0.1, 0.3]},
                "kind": {"type": "choice", "values": ["a", "b"]},
            },
            "objective": {"goal": "minimize", "primary_metric": "loss"},
            "limits": {"max_total_trials": 10, "max_concurrent_trials": 2},
        }
    )
    done = wait(ml, job.name)
    rows = trials(ml, job.name)
    combos = sorted(
        (r["properties"]["shoal.sweep.params"]["x"], r["properties"]["shoal.sweep.params"]["kind"]) for r in rows
    )
    assert combos == sorted((x, k) for x in (0.1, 0.3) for k in ("a", "b"))
    assert done["status"] == "Completed"
    assert full(ml, done["properties"]["best_child_run_id"])["properties"]["shoal.sweep.params"]["x"] == 0.3


def test_bayesian_sweep_from_the_sdk(ml, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    base = command(
        code="./src",
        command="python trial.py --x ${{inputs.x}} --steps 1",
        inputs={"x": 0.5},
        environment=ENV_DICT,
    )
    sweep = base(x=Uniform(0.0, 1.0)).sweep(
        primary_metric="loss",
        goal="minimize",
        sampling_algorithm="bayesian",
        max_total_trials=4,
        max_concurrent_trials=2,
    )
    job = ml.jobs.create_or_update(sweep)
    buffer = io.StringIO()
    ml.jobs.stream(job.name, out=buffer)
    rows = trials(ml, job.name)
    assert len(rows) == 4 and all(0.0 <= r["properties"]["shoal.sweep.params"]["x"] <= 1.0 for r in rows)
    assert "Best trial" in buffer.getvalue()


def test_bandit_stops_poor_trials_and_says_why(ml, project: Path) -> None:
    job = ml.jobs.create_or_update(
        {
            "type": "sweep",
            "trial": {
                "code": str(project / "src"),
                # 9 s a trial: long enough that, on a loaded machine, the poor trials are still
                # running when the bandit first compares them (10 steps were sometimes not).
                "command": "python trial.py --x ${{search_space.x}} --steps 30 --sleep 0.3",
                "environment": ENV_DICT,
            },
            "sampling_algorithm": "grid",
            "search_space": {"x": {"type": "choice", "values": [0.3, 0.31, 3.0, 4.0]}},
            "objective": {"goal": "minimize", "primary_metric": "loss"},
            "early_termination": {
                "type": "bandit",
                "slack_factor": 0.1,
                "evaluation_interval": 2,
                "delay_evaluation": 2,
            },
            "limits": {"max_total_trials": 4, "max_concurrent_trials": 4},
        }
    )
    done = wait(ml, job.name, timeout=240)
    rows = {r["properties"]["shoal.sweep.params"]["x"]: full(ml, r["name"]) for r in trials(ml, job.name)}
    stopped = [x for x, r in rows.items() if r["status"] == "Canceled"]
    assert set(stopped) == {3.0, 4.0}, {x: (r["status"], r.get("error")) for x, r in rows.items()}
    for x in stopped:
        reason = rows[x]["properties"]["shoal.sweep.early_termination"]
        assert reason.startswith("bandit") and rows[x]["error"]["code"] == "EARLY_TERMINATED"
    assert rows[0.3]["status"] == "Completed"
    assert done["status"] == "Completed" and done["properties"]["best_child_run_id"] == rows[0.3]["name"]


def test_a_trial_that_never_logs_the_metric_is_not_ranked(ml, project: Path) -> None:
    job = ml.jobs.create_or_update(
        {
            "type": "sweep",
            "trial": {
                "code": str(project / "src"),
                "command": "python trial.py --x 0.5 --steps 1 --log ${{search_space.log}}",
                "environment": ENV_DICT,
            },
            "sampling_algorithm": "grid",
            "search_space": {"log": {"type": "choice", "values": ["no"]}},
            "objective": {"goal": "minimize", "primary_metric": "loss"},
        }
    )
    done = wait(ml, job.name)
    assert done["status"] == "Failed"
    assert "never" in done["error"]["message"] or "loss" in done["error"]["message"]
    assert done["properties"]["shoal.sweep.trials_without_metric"] == f"{job.name}_0"


def test_cancel_of_a_sweep_cancels_its_trials(ml, project: Path) -> None:
    job = ml.jobs.create_or_update(
        {
            "type": "sweep",
            "trial": {
                "code": str(project / "src"),
                "command": "python trial.py --x ${{search_space.x}} --steps 100 --sleep 0.3",
                "environment": ENV_DICT,
            },
            "search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
            "sampling_algorithm": "random",
            "objective": {"goal": "minimize", "primary_metric": "loss"},
            "limits": {"max_total_trials": 6, "max_concurrent_trials": 2},
        }
    )
    until_a_trial_runs(ml, job.name)
    ml.jobs.begin_cancel(job.name)
    done = wait(ml, job.name, timeout=60)
    assert done["status"] == "Canceled"
    rows = trials(ml, job.name)
    assert len(rows) == 2 and all(r["status"] == "Canceled" for r in rows)


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        ({"sampling_algorithm": "grid"}, "grid sampling needs every parameter to be a choice"),
        (
            {"sampling_algorithm": "bayesian", "early_termination": {"type": "median_stopping"}},
            "bayesian sampling does not support early termination",
        ),
        ({"search_space": {"x": {"type": "uniform", "min_value": 2, "max_value": 1}}}, "search_space.x"),
        ({"trial": {"command": "echo ${{search_space.y}}", "environment": {"image": "python:3.11"}}}, "search_space.y"),
        ({"objective": {"goal": "sideways", "primary_metric": "loss"}}, "goal"),
    ],
)
def test_bad_sweeps_are_refused_naming_the_rule(ml, extra: dict[str, Any], word: str) -> None:
    before = {j.name for j in ml.jobs.list(max_results=200)}
    spec = {
        "type": "sweep",
        "trial": {"command": "echo ${{search_space.x}}", "environment": {"image": "python:3.11"}},
        "search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
        "sampling_algorithm": "random",
        "objective": {"goal": "minimize", "primary_metric": "loss"},
        **extra,
    }
    with pytest.raises(Exception) as info:
        ml.jobs.create_or_update(spec)
    assert word in str(info.value), str(info.value)
    assert {j.name for j in ml.jobs.list(max_results=200)} == before


def test_a_sweep_step_in_a_pipeline_feeds_its_best_trial_to_the_next_step(ml, project: Path) -> None:
    trial = {
        "type": "command",
        "name": "trial_component",
        "inputs": {"x": {"type": "number", "default": 0.5}, "steps": {"type": "integer", "default": 2}},
        "outputs": {"model": {"type": "uri_folder"}},
        "code": str(project / "src"),
        "environment": ENV_DICT,
        "command": "python trial.py --x ${{inputs.x}} --steps ${{inputs.steps}} --out ${{outputs.model}}",
    }
    job = ml.jobs.create_or_update(
        {
            "type": "pipeline",
            "jobs": {
                "tune": {
                    "type": "sweep",
                    "trial": trial,
                    "inputs": {"steps": 2},
                    "outputs": {"model": None},
                    "sampling_algorithm": "grid",
                    "search_space": {"x": {"type": "choice", "values": [0.9, 0.3, 0.6]}},
                    "objective": {"goal": "minimize", "primary_metric": "loss"},
                    "limits": {"max_total_trials": 3, "max_concurrent_trials": 3},
                },
                "use": {
                    "command": "cat ${{inputs.model}}/x.txt > ${{outputs.o}}/best.txt",
                    "environment": {"image": "python:3.11"},
                    "inputs": {"model": "${{parent.jobs.tune.outputs.model}}"},
                    "outputs": {"o": None},
                },
            },
        }
    )
    done = wait(ml, job.name, timeout=240)
    steps = {
        s["display_name"]: s
        for s in ml.jobs._t.request("GET", ml.jobs._base, params={"parent_job_name": job.name})["value"]
    }
    assert done["status"] == "Completed", {k: (v["status"], v.get("error")) for k, v in steps.items()}
    assert steps["tune"]["type"] == "sweep" and len(trials(ml, steps["tune"]["name"])) == 3
    best = full(ml, steps["tune"]["name"])["properties"]["best_child_run_id"]
    assert full(ml, best)["properties"]["shoal.sweep.params"] == {"x": 0.3}
    from shoal.client.downloads import download_uri

    folder = download_uri(ml.jobs._t, ml.jobs._ws, steps["use"]["outputs"]["o"]["path"], project / "best-dl")
    assert (folder / "best.txt").read_text() == "0.3"


def test_timeouts_of_the_sweep_and_of_each_trial(ml, project: Path) -> None:
    slow = {
        "type": "sweep",
        "trial": {
            "code": str(project / "src"),
            "command": "python trial.py --x ${{search_space.x}} --steps 1 --sleep ${{search_space.sleep}}",
            "environment": ENV_DICT,
        },
        "sampling_algorithm": "grid",
        "search_space": {"x": {"type": "choice", "values": [0.3]}, "sleep": {"type": "choice", "values": [0, 120]}},
        "objective": {"goal": "minimize", "primary_metric": "loss"},
        "limits": {"max_concurrent_trials": 2, "trial_timeout": 15},
    }
    # trial_timeout: the sleeping trial is ended; the quick one wins.
    job = ml.jobs.create_or_update(slow)
    done = wait(ml, job.name, timeout=120)
    rows = {r["properties"]["shoal.sweep.params"]["sleep"]: full(ml, r["name"]) for r in trials(ml, job.name)}
    assert rows[120]["status"] in ("Failed", "Canceled") and rows[0]["status"] == "Completed", {
        k: (v["status"], v.get("error")) for k, v in rows.items()
    }
    assert done["status"] == "Completed" and done["properties"]["best_child_run_id"] == rows[0]["name"]
    # The sweep's own timeout cancels whatever still runs, then the sweep.
    job = ml.jobs.create_or_update({**slow, "limits": {"max_concurrent_trials": 2, "timeout": 8}})
    done = wait(ml, job.name, timeout=120)
    assert done["status"] == "Canceled" and done["error"]["code"] == "SWEEP_TIMEOUT", done.get("error")
    assert all(r["status"] in ("Completed", "Canceled") for r in trials(ml, job.name))


def test_validate_a_sweep_file_names_the_broken_rule(jobs_cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad-sweep.yml"
    bad.write_text(
        yaml.safe_dump(
            {
                "type": "sweep",
                "trial": {"command": "echo ${{search_space.x}}", "environment": {"image": "python:3.11"}},
                "sampling_algorithm": "grid",
                "search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
                "objective": {"goal": "minimize", "primary_metric": "loss"},
            }
        )
    )
    result = jobs_cli("job", "validate", "--file", str(bad), check=False)
    assert result.code == 1 and "search_space.x" in result.err and "grid sampling" in result.err, result.err


# Last: it restarts the module's server.
def test_the_server_restarts_mid_sweep_and_no_trial_runs_twice(jobs_cli: Cli, ml, project: Path) -> None:
    job = ml.jobs.create_or_update(
        {
            "type": "sweep",
            "trial": {
                "code": str(project / "src"),
                "command": "python trial.py --x ${{search_space.x}} --steps 3 --sleep 0.5",
                "environment": ENV_DICT,
            },
            "search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
            "sampling_algorithm": "random",
            "objective": {"goal": "minimize", "primary_metric": "loss"},
            "limits": {"max_total_trials": 4, "max_concurrent_trials": 2},
        }
    )
    until_a_trial_runs(ml, job.name)
    jobs_cli("server", "stop")
    time.sleep(0.5)
    jobs_cli("server", "start", "--detach")
    done = wait_for(jobs_cli, job.name, timeout=120)
    assert done["status"] == "Completed"
    client = MLClient(settings=ShoalSettings(home=jobs_cli.home))
    try:
        rows = trials(client, job.name)
    finally:
        client.close()
    assert [r["name"] for r in rows] == [f"{job.name}_{i}" for i in range(4)]
    assert all(r["status"] == "Completed" for r in rows)
    assert json.loads(json.dumps(done["properties"]))["best_child_run_id"] in {r["name"] for r in rows}
