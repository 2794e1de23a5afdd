"""Demo jobs for the studio: finished runs with metrics, a running job on two ranks, a pipeline and a
sweep, submitted through the SDK to a running Shoal server. Used by the studio's browser tests
(tests/studio/) and by scripts/studio_screenshots.py.

Jobs run on the host Python with no packages: the script logs to the MLflow REST API with urllib, so
no environment has to be built.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from shoal import MLClient, load_job

TRAIN = """\
import json, math, os, sys, time, urllib.request

uri, run = os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_RUN_ID"]
token = os.environ.get("MLFLOW_TRACKING_TOKEN", "")
rank = int(os.environ.get("RANK", "0"))


def call(path, body):
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    urllib.request.urlopen(request).read()


lr, steps, pause = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 32
if rank == 0:
    call("runs/log-batch", {"run_id": run, "params": [
        {"key": "lr", "value": str(lr)}, {"key": "batch_size", "value": str(batch)}]})
for step in range(steps):
    loss = (1 + lr) / (step + 1) + 0.02 * (1 + math.sin(step))
    acc = 1 - loss / 2
    if rank == 0:
        now = int(time.time() * 1000)
        call("runs/log-batch", {"run_id": run, "metrics": [
            {"key": "loss", "value": loss, "timestamp": now, "step": step},
            {"key": "accuracy", "value": acc, "timestamp": now, "step": step}]})
    print(f"rank {rank} step {step} loss {loss:.4f}", flush=True)
    time.sleep(pause)
print(f"rank {rank} done", flush=True)
"""

FILES = {
    "run.yml": """\
command: python train.py ${{inputs.lr}} ${{inputs.steps}} 0.05 ${{inputs.batch}}
code: src
experiment_name: image-classifier
inputs: {lr: 0.1, steps: 40, batch: 32}
tags: {team: vision}
environment: {image: "python:3.11"}
""",
    "running.yml": """\
command: python train.py 0.2 ${{inputs.steps}} ${{inputs.pause}}
code: src
experiment_name: image-classifier
display_name: long-training
inputs: {steps: 400, pause: 0.4}
tags: {team: vision, stage: live}
distribution: {type: pytorch, process_count_per_instance: 2}
environment: {image: "python:3.11"}
""",
    "sleeper.yml": """\
command: python -c "import time; print('waiting', flush=True); time.sleep(600)"
experiment_name: housekeeping
display_name: to-cancel
environment: {image: "python:3.11"}
""",
    "pipeline.yml": """\
type: pipeline
experiment_name: data-prep
display_name: prepare-and-train
inputs: {epochs: 10}
jobs:
  prep:
    command: echo rows > ${{outputs.o}}/rows.txt
    environment: {image: "python:3.11"}
    outputs: {o: {type: uri_folder}}
  train:
    command: cat ${{inputs.x}}/rows.txt && python train.py 0.3 ${{inputs.epochs}} 0.02
    code: src
    environment: {image: "python:3.11"}
    inputs:
      x: ${{parent.jobs.prep.outputs.o}}
      epochs: ${{parent.inputs.epochs}}
  evaluate:
    command: ls ${{inputs.x}}
    environment: {image: "python:3.11"}
    inputs:
      x: ${{parent.jobs.prep.outputs.o}}
""",
    "sweep.yml": """\
type: sweep
experiment_name: tuning
display_name: lr-sweep
trial:
  command: python train.py ${{search_space.lr}} 8 0.01 ${{search_space.batch}}
  code: src
  environment: {image: "python:3.11"}
sampling_algorithm: grid
search_space:
  lr: {type: choice, values: [0.01, 0.1, 0.5]}
  batch: {type: choice, values: [16, 64]}
objective: {goal: minimize, primary_metric: loss}
limits: {max_total_trials: 6, max_concurrent_trials: 3}
""",
}


def write_project(root: Path) -> Path:
    """The demo's job files under ``root``; returns ``root``."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "train.py").write_text(TRAIN)
    for name, body in FILES.items():
        (root / name).write_text(body)
    return root


def submit(ml: MLClient, root: Path, name: str, **inputs: Any) -> str:
    job = load_job(root / name)
    for key, value in inputs.items():
        job.inputs[key] = value
    return ml.jobs.create_or_update(job).name


def wait(ml: MLClient, name: str, statuses=("Completed", "Failed", "Canceled"), timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = ml.jobs.get(name)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {name} still {job.status} after {timeout} s")
        time.sleep(0.3)


def make_demo_jobs(ml: MLClient, root: Path) -> dict[str, Any]:
    """Submits every demo job and waits for the finished ones; the long one and the sleeper keep running."""
    write_project(root)
    names: dict[str, Any] = {}
    names["runs"] = [submit(ml, root, "run.yml", lr=lr, batch=b) for lr, b in ((0.1, 32), (0.5, 32), (0.05, 64))]
    names["pipeline"] = submit(ml, root, "pipeline.yml")
    names["sweep"] = submit(ml, root, "sweep.yml")
    for name in [*names["runs"], names["pipeline"], names["sweep"]]:
        job = wait(ml, name)
        assert job.status == "Completed", f"demo job {name} ended {job.status}"
    # The same pipeline with more epochs: prep and evaluate are reused, train runs again.
    names["pipeline_again"] = submit(ml, root, "pipeline.yml", epochs=12)
    assert wait(ml, names["pipeline_again"]).status == "Completed"
    names["running"] = submit(ml, root, "running.yml")
    names["sleeper"] = submit(ml, root, "sleeper.yml")
    wait(ml, names["running"], statuses=("Running",), timeout=60)
    wait(ml, names["sleeper"], statuses=("Running",), timeout=60)
    return names
