"""Pipeline jobs end to end: a real server, real runner processes, steps as child jobs.

Pipelines are posted as Azure ML's pipeline YAML shape (the body the SDK and CLI send), with
inline steps and registered components, so these tests exercise the server side on its own.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from shoal import MLClient
from shoal.config import ShoalSettings
from shoal.entities import load_component

ENV = {"image": "python:3.11"}
TERMINAL = ("Completed", "Failed", "Canceled")


@pytest.fixture(scope="module")
def ml(jobs_cli):
    client = MLClient(settings=ShoalSettings(home=jobs_cli.home))
    yield client
    client.close()


def post(ml: MLClient, spec: dict[str, Any]) -> dict[str, Any]:
    return ml.jobs._t.request("POST", ml.jobs._base, json={"type": "pipeline", **spec})


def get(ml: MLClient, name: str) -> dict[str, Any]:
    return ml.jobs._t.request("GET", f"{ml.jobs._base}/{name}")


def children(ml: MLClient, name: str) -> dict[str, dict[str, Any]]:
    page = ml.jobs._t.request("GET", ml.jobs._base, params={"parent_job_name": name, "max_results": 200})
    return {job["display_name"]: job for job in page["value"]}


def wait(ml: MLClient, name: str, timeout: float = 90.0, statuses: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = get(ml, name)
        if body["status"] in statuses:
            return body
        time.sleep(0.2)
    raise AssertionError(f"pipeline {name} still {body.get('status')} after {timeout} s: {children(ml, name)}")


def run(ml: MLClient, spec: dict[str, Any], timeout: float = 90.0) -> tuple[dict[str, Any], dict[str, dict]]:
    body = post(ml, spec)
    done = wait(ml, body["name"], timeout)
    return done, children(ml, body["name"])


def until_running(ml: MLClient, pipeline: str, step: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while children(ml, pipeline)[step]["status"] != "Running" and time.monotonic() < deadline:
        time.sleep(0.2)


def step_times(step: dict[str, Any], status: str) -> str:
    return step["properties"][f"shoal.status_time.{status}"]


def reuse_of(step: dict[str, Any]) -> dict[str, Any]:
    return step["properties"]["reuse"]


# -- a DAG runs ------------------------------------------------------------------------------


DIAMOND = {
    "experiment_name": "pipelines-e2e",
    "inputs": {"word": "hello", "n": 2},
    "outputs": {"report": {"type": "uri_folder"}},
    "jobs": {
        "a": {
            "command": "echo ${{inputs.word}} > ${{outputs.o}}/a.txt",
            "environment": ENV,
            "inputs": {"word": "${{parent.inputs.word}}"},
            "outputs": {"o": None},
        },
        "b": {
            "command": "sleep 0.5; cat ${{inputs.x}}/a.txt > ${{outputs.o}}/b.txt; echo b >> ${{outputs.o}}/b.txt",
            "environment": ENV,
            "inputs": {"x": "${{parent.jobs.a.outputs.o}}"},
            "outputs": {"o": None},
        },
        "c": {
            "command": "sleep 0.5; for i in $(seq ${{inputs.n}}); do echo c >> ${{outputs.o}}/c.txt; done",
            "environment": ENV,
            "inputs": {"x": "${{parent.jobs.a.outputs.o}}", "n": "${{parent.inputs.n}}"},
            "outputs": {"o": None},
        },
        "d": {
            "command": "cat ${{inputs.b}}/b.txt ${{inputs.c}}/c.txt > ${{outputs.report}}/report.txt",
            "environment": ENV,
            "inputs": {"b": "${{parent.jobs.b.outputs.o}}", "c": "${{parent.jobs.c.outputs.o}}"},
            "outputs": {"report": "${{parent.outputs.report}}"},
        },
    },
}


def _file(ml: MLClient, tmp_path: Path, uri: str) -> Path:
    from shoal.client.downloads import download_uri

    dest = tmp_path / f"dl-{time.monotonic_ns()}"
    return download_uri(ml.jobs._t, ml.jobs._ws, uri, dest)


def test_a_diamond_runs_in_dependency_order_and_fills_the_pipeline_output(ml, tmp_path):
    pipeline, steps = run(ml, DIAMOND)
    assert pipeline["status"] == "Completed", steps
    assert set(steps) == {"a", "b", "c", "d"}
    assert all(s["status"] == "Completed" for s in steps.values())
    assert all(s["properties"]["shoal.step"] == name for name, s in steps.items())
    # b and c start only once a has completed; d once both have.
    assert step_times(steps["b"], "Queued") >= step_times(steps["a"], "Completed")
    assert step_times(steps["c"], "Queued") >= step_times(steps["a"], "Completed")
    assert step_times(steps["d"], "Queued") >= max(
        step_times(steps["b"], "Completed"), step_times(steps["c"], "Completed")
    )
    # b and c ran side by side (local compute has no cap).
    assert step_times(steps["b"], "Running") < step_times(steps["c"], "Completed")
    report = pipeline["outputs"]["report"]["path"]
    assert steps["d"]["name"] in report
    folder = _file(ml, tmp_path, report)
    assert (folder / "report.txt").read_text() == "hello\nb\nc\nc\n"
    # A step's input shows where it came from.
    assert steps["b"]["inputs"]["x"]["path"] == f"azureml://jobs/{steps['a']['name']}/outputs/o"
    assert pipeline["type"] == "pipeline" and pipeline["experiment_name"] == "pipelines-e2e"
    # The workspace's job list shows the pipeline, not its steps (they list under their parent).
    top = {j.name for j in ml.jobs.list(max_results=200)}
    assert pipeline["name"] in top and not top & {s["name"] for s in steps.values()}


# -- reuse -----------------------------------------------------------------------------------


def _component_files(folder: Path, *, message: str = "v1", deterministic: bool = True, env: str = "3.11") -> Path:
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "prep.py").write_text(
        "import sys, pathlib\n"
        "data, scale, out = sys.argv[1], float(sys.argv[2]), pathlib.Path(sys.argv[3])\n"
        "rows = [float(x) * scale for x in pathlib.Path(data, 'rows.txt').read_text().split()]\n"
        f"(out / 'clean.txt').write_text(' '.join(map(str, rows)) + ' {message}')\n"
    )
    spec = folder / "prep.yml"
    spec.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json\n"
        "name: prep\n"
        "type: command\n"
        f"is_deterministic: {str(deterministic).lower()}\n"
        "inputs:\n"
        "  data: {type: uri_folder}\n"
        "  scale: {type: number, default: 1.0}\n"
        "outputs:\n"
        "  clean: {type: uri_folder}\n"
        "code: ./src\n"
        f"environment: {{image: 'python:{env}'}}\n"
        "command: python prep.py ${{inputs.data}} ${{inputs.scale}} ${{outputs.clean}}\n"
    )
    return spec


def _data(ml: MLClient, folder: Path, rows: str) -> str:
    from shoal.client.uploads import upload_path

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.txt").write_text(rows)
    return upload_path(ml.jobs._t, ml.jobs._ws, folder)


def _reuse_pipeline(component: str, data: str, scale: float = 2.0, **settings: Any) -> dict[str, Any]:
    return {
        "settings": settings,
        "inputs": {"raw": {"type": "uri_folder", "path": data}, "scale": scale},
        "jobs": {
            "prep": {
                "component": component,
                "inputs": {"data": "${{parent.inputs.raw}}", "scale": "${{parent.inputs.scale}}"},
            },
            "total": {
                "command": "python -c \"import sys; print(sum(map(float, open(sys.argv[1] + '/clean.txt')"
                '.read().split()[:-1])))" ${{inputs.clean}} > ${{outputs.sum}}/sum.txt',
                "environment": ENV,
                "inputs": {"clean": "${{parent.jobs.prep.outputs.clean}}"},
                "outputs": {"sum": None},
            },
        },
    }


def test_step_reuse_follows_component_code_environment_inputs_and_parameters(ml, tmp_path):
    first_spec = _component_files(tmp_path / "c1")
    ml.components.create_or_update(load_component(first_spec))
    data = _data(ml, tmp_path / "d1", "1 2 3")
    first, first_steps = run(ml, _reuse_pipeline("azureml:prep@latest", data))
    assert first["status"] == "Completed", first_steps
    assert not reuse_of(first_steps["prep"])["reused"] and not reuse_of(first_steps["total"])["reused"]
    key = reuse_of(first_steps["prep"])["key"]

    # Unchanged: every step comes from the first run, and says so.
    started = time.monotonic()
    again, steps = run(ml, _reuse_pipeline("azureml:prep@latest", data))
    assert again["status"] == "Completed" and time.monotonic() - started < 5
    for name in ("prep", "total"):
        info = reuse_of(steps[name])
        assert info["reused"] and info["from_job"] == first_steps[name]["name"], info
        assert first_steps[name]["name"] in info["reason"]
    assert reuse_of(steps["prep"])["key"] == key
    assert steps["total"]["outputs"]["sum"]["path"] == first_steps["total"]["outputs"]["sum"]["path"]

    # The same bytes uploaded elsewhere: inputs are hashed by content, not path.
    same_bytes = _data(ml, tmp_path / "elsewhere" / "d1copy", "1 2 3")
    _, steps = run(ml, _reuse_pipeline("azureml:prep@latest", same_bytes))
    assert reuse_of(steps["prep"])["reused"]

    # A parameter changes: prep reruns; total's input content changed too, so it reruns.
    _, steps = run(ml, _reuse_pipeline("azureml:prep@latest", data, scale=3.0))
    assert not reuse_of(steps["prep"])["reused"] and not reuse_of(steps["total"])["reused"]
    parts_before = reuse_of(first_steps["prep"])["parts"]
    parts_after = reuse_of(steps["prep"])["parts"]
    assert parts_before["inputs"]["scale"] != parts_after["inputs"]["scale"]
    assert parts_before["inputs"]["data"] == parts_after["inputs"]["data"]

    # The input data's content changes.
    changed = _data(ml, tmp_path / "d2", "1 2 4")
    _, steps = run(ml, _reuse_pipeline("azureml:prep@latest", changed))
    assert not reuse_of(steps["prep"])["reused"]

    # The code changes (a new component version whose script differs).
    ml.components.create_or_update(load_component(_component_files(tmp_path / "c2", message="v2")))
    _, steps = run(ml, _reuse_pipeline("azureml:prep@latest", data))
    assert not reuse_of(steps["prep"])["reused"]
    assert reuse_of(steps["prep"])["parts"]["code"] != parts_before["code"]

    # The environment changes.
    ml.components.create_or_update(load_component(_component_files(tmp_path / "c3", message="v2", env="3.11-slim")))
    _, steps = run(ml, _reuse_pipeline("azureml:prep@latest", data))
    assert not reuse_of(steps["prep"])["reused"]
    assert reuse_of(steps["prep"])["parts"]["environment"] != parts_before["environment"]

    # force_rerun and is_deterministic: false turn reuse off, and say so.
    _, steps = run(ml, _reuse_pipeline("azureml:prep:1", data, force_rerun=True))
    assert not reuse_of(steps["prep"])["reused"] and "force_rerun" in reuse_of(steps["prep"])["reason"]
    ml.components.create_or_update(load_component(_component_files(tmp_path / "c4", deterministic=False)))
    _, steps = run(ml, _reuse_pipeline("azureml:prep@latest", data))
    _, steps2 = run(ml, _reuse_pipeline("azureml:prep@latest", data))
    assert not reuse_of(steps2["prep"])["reused"] and "deterministic" in reuse_of(steps2["prep"])["reason"]


def test_a_step_whose_earlier_outputs_are_gone_runs_again(ml, jobs_cli, tmp_path):
    spec = {
        "jobs": {
            "only": {
                "command": "echo ${{inputs.tag}} > ${{outputs.o}}/x.txt",
                "environment": ENV,
                "inputs": {"tag": f"gone-{time.time_ns()}"},
                "outputs": {"o": None},
            }
        }
    }
    _, first = run(ml, spec)
    rel = first["only"]["outputs"]["o"]["path"].split("/paths/", 1)[1].rstrip("/")
    blob = jobs_cli.home / "artifacts" / "workspaces" / "default" / "datastores" / "workspaceblobstore"
    shutil.rmtree(blob / rel)
    _, again = run(ml, spec)
    info = reuse_of(again["only"])
    assert not info["reused"] and "gone" in info["reason"], info


# -- failure, cancel, restart ------------------------------------------------------------------


def _fail_spec(**settings: Any) -> dict[str, Any]:
    return {
        "settings": settings,
        "jobs": {
            "bad": {"command": "sleep 0.3; exit 3", "environment": ENV},
            "after_bad": {
                "command": "echo never",
                "environment": ENV,
                "inputs": {"x": "${{parent.jobs.bad.outputs.artifacts}}"},
            },
            "slow": {"command": "sleep 4; echo slow-done", "environment": ENV, "inputs": {"t": time.time_ns()}},
        },
    }


def test_a_failed_step_stops_its_dependents_and_cancels_the_running_ones(ml):
    pipeline, steps = run(ml, _fail_spec())
    assert pipeline["status"] == "Failed"
    assert "bad" in pipeline["error"]["message"]
    assert steps["bad"]["status"] == "Failed"
    assert steps["after_bad"]["status"] == "Canceled"
    assert steps["slow"]["status"] == "Canceled"  # it was running: the pipeline stopped it
    assert "Running" in "".join(steps["slow"]["properties"])  # it had started


def test_continue_on_step_failure_lets_independent_steps_finish(ml):
    pipeline, steps = run(ml, _fail_spec(continue_on_step_failure=True))
    assert pipeline["status"] == "Failed"
    assert steps["slow"]["status"] == "Completed"
    assert steps["after_bad"]["status"] == "Canceled"
    assert steps["after_bad"]["error"]["code"] == "UPSTREAM_NOT_COMPLETED"
    assert steps["bad"]["name"] in steps["after_bad"]["error"]["message"]


def test_cancel_of_a_pipeline_cancels_every_step(ml):
    body = post(
        ml,
        {
            "jobs": {
                "first": {"command": "sleep 30", "environment": ENV, "outputs": {"o": None}},
                "second": {
                    "command": "echo ${{inputs.x}}",
                    "environment": ENV,
                    "inputs": {"x": "${{parent.jobs.first.outputs.o}}"},
                },
            }
        },
    )
    name = body["name"]
    until_running(ml, name, "first")
    ml.jobs.begin_cancel(name)
    done = wait(ml, name, timeout=40)
    steps = children(ml, name)
    assert done["status"] == "Canceled"
    assert steps["first"]["status"] == "Canceled" and steps["second"]["status"] == "Canceled"


# -- nested pipelines and components -----------------------------------------------------------


INNER = {
    "type": "pipeline",
    "name": "inner_flow",
    "inputs": {"raw": {"type": "uri_folder"}, "suffix": {"type": "string", "default": "!"}},
    "outputs": {"done": {"type": "uri_folder"}},
    "jobs": {
        "shout": {
            "command": "tr a-z A-Z < ${{inputs.src}}/a.txt | sed 's/$/${{inputs.suffix}}/' > ${{outputs.out}}/loud.txt",
            "environment": ENV,
            "inputs": {"src": "${{parent.inputs.raw}}", "suffix": "${{parent.inputs.suffix}}"},
            "outputs": {"out": "${{parent.outputs.done}}"},
        }
    },
}


def test_a_nested_pipeline_component_runs_as_a_child_pipeline_and_its_output_flows_on(ml, tmp_path):
    spec = {
        "outputs": {"final": {"type": "uri_folder"}},
        "jobs": {
            "make": {
                "command": "echo quiet > ${{outputs.o}}/a.txt",
                "environment": ENV,
                "outputs": {"o": None},
                "inputs": {"t": time.time_ns()},
            },
            "inner": {
                "type": "pipeline",
                "component": INNER,
                "inputs": {"raw": "${{parent.jobs.make.outputs.o}}"},
            },
            "last": {
                "command": "cp ${{inputs.x}}/loud.txt ${{outputs.y}}/",
                "environment": ENV,
                "inputs": {"x": "${{parent.jobs.inner.outputs.done}}"},
                "outputs": {"y": "${{parent.outputs.final}}"},
            },
        },
    }
    pipeline, steps = run(ml, spec)
    assert pipeline["status"] == "Completed", steps
    assert steps["inner"]["type"] == "pipeline" and steps["inner"]["status"] == "Completed"
    inner_steps = children(ml, steps["inner"]["name"])
    assert set(inner_steps) == {"shout"}
    assert inner_steps["shout"]["properties"]["shoal.step"] == "inner/shout"
    folder = _file(ml, tmp_path, pipeline["outputs"]["final"]["path"])
    assert (folder / "loud.txt").read_text() == "QUIET!\n"


def test_a_bad_pipeline_is_refused_naming_the_step_and_field_and_leaves_nothing(ml):
    before = {j.name for j in ml.jobs.list(max_results=200)}
    cases = [
        (
            {
                "jobs": {
                    "a": {"command": "echo", "environment": ENV, "inputs": {"x": "${{parent.jobs.b.outputs.o}}"}},
                    "b": {
                        "command": "echo",
                        "environment": ENV,
                        "inputs": {"y": "${{parent.jobs.a.outputs.o}}"},
                        "outputs": {"o": None},
                    },
                }
            },
            "cycle",
        ),
        (
            {"jobs": {"a": {"command": "echo", "environment": ENV, "inputs": {"x": "${{parent.jobs.zz.outputs.o}}"}}}},
            "jobs.a.inputs.x",
        ),
        ({"jobs": {"a": {"component": "azureml:no_such_component:1"}}}, "no_such_component"),
        ({"jobs": {"a": {"command": "echo", "environment": "azureml:no-such-env:1"}}}, "jobs.a"),
        ({"jobs": {"a": {"command": "echo", "environment": ENV, "compute": "nowhere"}}}, "nowhere"),
    ]
    for spec, word in cases:
        with pytest.raises(Exception) as info:
            post(ml, spec)
        assert word in str(info.value), (spec, str(info.value))
    assert {j.name for j in ml.jobs.list(max_results=200)} == before


def test_steps_share_the_compute_capacity(ml):
    ml.compute.begin_create_or_update({"name": "pair", "type": "amlcompute", "max_instances": 2}).result()
    spec = {
        "settings": {"default_compute": "azureml:pair"},
        "jobs": {f"s{i}": {"command": f"sleep 1; echo {i} {time.time_ns()}", "environment": ENV} for i in range(5)},
    }
    body = post(ml, spec)
    most = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        steps = children(ml, body["name"])
        running = sum(s["status"] in ("Preparing", "Running", "Finalizing") for s in steps.values())
        most = max(most, running)
        if get(ml, body["name"])["status"] in TERMINAL:
            break
        time.sleep(0.1)
    assert get(ml, body["name"])["status"] == "Completed"
    assert 1 <= most <= 2
    assert all(s["compute"] == "pair" for s in children(ml, body["name"]).values())


# Last: it restarts the module's server, whose port then changes.
def test_the_server_restarts_mid_pipeline_and_the_pipeline_finishes(ml, jobs_cli):
    body = post(
        ml,
        {
            "jobs": {
                "first": {
                    "command": "sleep 2; echo one > ${{outputs.o}}/f",
                    "environment": ENV,
                    "outputs": {"o": None},
                },
                "second": {
                    "command": "cat ${{inputs.x}}/f",
                    "environment": ENV,
                    "inputs": {"x": "${{parent.jobs.first.outputs.o}}"},
                },
            }
        },
    )
    name = body["name"]
    until_running(ml, name, "first")
    jobs_cli("server", "stop")
    time.sleep(0.5)
    jobs_cli("server", "start", "--detach")
    client = MLClient(settings=ShoalSettings(home=jobs_cli.home))
    try:
        done = wait(client, name, timeout=60)
        steps = children(client, name)
    finally:
        client.close()
    assert done["status"] == "Completed", steps
    assert steps["second"]["status"] == "Completed"


def test_a_pipeline_passes_data_through_an_object_store_datastore(ml, tmp_path, cloud_backend):
    """settings.default_datastore on S3 (moto) or Azure Blob (Azurite): the pipeline's input is
    read from there and each step's output is written there and read by the next step. The
    second backend registers 'objstore' again, elsewhere: the same steps ran on the first one, but
    their outputs are not where the datastore now points, so they run again rather than reuse."""
    body = {"name": "objstore", **cloud_backend.datastore()}
    ml.jobs._t.request("PUT", ml.jobs._base.rsplit("/jobs", 1)[0] + "/datastores/objstore", json=body)
    files = cloud_backend.files()
    files.write_stream("raw/rows.txt", [b"1 2 3"])
    spec = {
        "settings": {"default_datastore": "azureml:objstore"},
        "inputs": {"raw": {"type": "uri_folder", "path": "azureml://datastores/objstore/paths/raw/"}},
        "jobs": {
            "double": {
                "command": "for x in $(cat ${{inputs.raw}}/rows.txt); do echo $((x * 2)); done > ${{outputs.o}}/d.txt",
                "environment": ENV,
                "inputs": {"raw": "${{parent.inputs.raw}}"},
                "outputs": {"o": None},
            },
            "total": {
                "command": "paste -sd+ ${{inputs.d}}/d.txt | bc > ${{outputs.o}}/sum.txt",
                "environment": ENV,
                "inputs": {"d": "${{parent.jobs.double.outputs.o}}"},
                "outputs": {"o": None},
            },
        },
    }
    pipeline, steps = run(ml, spec)
    assert pipeline["status"] == "Completed", steps
    stored = {f.path: f.size for f in files.list_files("")}
    doubled = [p for p in stored if p.endswith("/d.txt")]
    total = [p for p in stored if p.endswith("/sum.txt")]
    assert doubled and total, stored  # both steps' outputs live in the bucket / container
    with files.open_read(total[0]) as fh:
        assert fh.read().strip() == b"12"
