"""Online and batch endpoints end to end on one real server. Online: the safe-rollout flow of azureml-examples'
``deploy-safe-rollout-online-endpoints.sh`` with ``az ml`` replaced by ``shoal``, on small files
written here (a model file holding a number, a score.py multiplying the input by it, and a plain
``python:3.11`` environment: a clean venv of the host Python, built once)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from shoal.client.ml_client import MLClient
from tests.e2e.conftest import Cli

SCORE = """\
import json, logging, os, time

def init():
    global factor
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init() was told to fail")
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "factor.txt")) as fh:
        factor = float(fh.read())
    logging.info("init complete, factor %s", factor)

def run(raw_data):
    body = json.loads(raw_data)
    if "probe" in body:  # what this instance can see of the machine
        return os.path.exists(body["probe"])
    time.sleep(body.get("sleep", 0))
    return [x * factor for x in body["data"]]
"""


def _model(root: Path, name: str, factor: int) -> Path:
    folder = root / name / "model"
    folder.mkdir(parents=True)
    (folder / "factor.txt").write_text(str(factor))
    return folder


def _deployment(root: Path, name: str, model: Path, extra: str = "") -> Path:
    path = root / f"{name}-deployment.yml"
    path.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n"
        f"name: {name}\nendpoint_name: my-ep\nmodel:\n  path: {model}\n"
        "code_configuration:\n  code: onlinescoring/\n  scoring_script: score.py\n"
        "environment:\n  image: python:3.11\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n" + extra
    )
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("endpoint-files")
    (root / "onlinescoring").mkdir()
    (root / "onlinescoring" / "score.py").write_text(SCORE)
    (root / "endpoint.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
        "name: my-endpoint\nauth_mode: key\n"
    )
    _deployment(root, "blue", _model(root, "m1", 2))
    _deployment(root, "green", _model(root, "m2", 3))
    (root / "sample-request.json").write_text(json.dumps({"data": [1, 2, 3]}))
    return root


def _server(cli: Cli) -> tuple[str, str]:
    info = json.loads((cli.home / "server.json").read_text())
    return str(info["url"]), (cli.home / "token").read_text().strip()


def _post(uri: str, key: str | None, body: dict, deployment: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if deployment:
        headers["azureml-model-deployment"] = deployment
    return httpx.post(uri, json=body, headers=headers, timeout=30)


def _ml(cli: Cli) -> MLClient:
    url, token = _server(cli)
    return MLClient(base_url=url, token=token)


def _show(cli: Cli, name: str) -> dict:
    """A deployment as `online-deployment show` prints it (through the SDK: no CLI start-up per look)."""
    return _ml(cli).online_deployments.get(name, "my-ep").to_dict()


def _pids(cli: Cli, name: str) -> list[int]:
    return [i["pid"] for i in _show(cli, name)["instances"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except OSError:
        return False


def test_safe_rollout_flow(cli: Cli, files: Path) -> None:
    cli("online-endpoint", "create", "--name", "my-ep", "-f", str(files / "endpoint.yml"))
    cli(
        "online-deployment", "create", "--name", "blue", "--endpoint-name", "my-ep",
        "-f", str(files / "blue-deployment.yml"), "--all-traffic", cwd=files,
    )  # fmt: skip
    out = cli("online-endpoint", "invoke", "--name", "my-ep", "--request-file", str(files / "sample-request.json"))
    assert json.loads(out.out) == [2.0, 4.0, 6.0]

    key = cli("online-endpoint", "get-credentials", "-n", "my-ep", "-o", "tsv", "--query", "primaryKey").out.strip()
    uri = cli("online-endpoint", "show", "-n", "my-ep", "-o", "tsv", "--query", "scoring_uri").out.strip()
    assert uri.endswith("/onlineEndpoints/my-ep/score")
    assert _post(uri, key, {"data": [5]}).json() == [10.0]
    assert _post(uri, None, {"data": [5]}).status_code == 401
    if shutil.which("bwrap"):  # job isolation (auto): the scoring script cannot see the server's home
        assert _post(uri, key, {"probe": str(cli.home / "token")}).json() is False
        assert _post(uri, key, {"probe": str(files / "m1" / "model" / "factor.txt")}).json() is False
    assert _post(uri, "not-the-key", {"data": [5]}).status_code == 401

    # Rollout under a steady stream of requests: instance_count 1 -> 2, no request may fail.
    failures: list[str] = []
    sent = Counter()
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.post(uri, json={"data": [1]}, headers={"Authorization": f"Bearer {key}"})
                sent[r.status_code] += 1
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")

    before = _pids(cli, "blue")
    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        cli("online-deployment", "update", "--name", "blue", "--endpoint-name", "my-ep", "--set", "instance_count=2")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [], failures[:3]
    assert sent[200] > 10
    after = _pids(cli, "blue")
    assert len(after) == 2 and not set(before) & set(after)
    assert not any(_alive(p) for p in before)

    # Green beside blue, 90/10, then pinned by the header.
    cli(
        "online-deployment", "create", "--name", "green", "--endpoint-name", "my-ep",
        "-f", str(files / "green-deployment.yml"),
    )  # fmt: skip
    cli("online-endpoint", "update", "--name", "my-ep", "--traffic", "blue=90 green=10")
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        seen = Counter(http.post(uri, json={"data": [1]}).headers["azureml-model-deployment"] for _ in range(100))
    assert 70 <= seen["blue"] <= 99 and seen["green"] >= 1, seen
    pinned = _post(uri, key, {"data": [1]}, deployment="green")
    assert pinned.json() == [3.0] and pinned.headers["azureml-model-deployment"] == "green"
    ml = _ml(cli)
    answer = ml.online_endpoints.invoke("my-ep", deployment_name="green", request_file=files / "sample-request.json")
    assert json.loads(answer) == [3.0, 6.0, 9.0]

    shown = json.loads(cli("online-deployment", "show", "-n", "blue", "-e", "my-ep").out)
    assert shown["provisioning_state"] == "Succeeded"
    assert shown["metrics"]["request_count"] > 50 and shown["metrics"]["latency_p50_ms"] > 0
    logs = cli("online-deployment", "get-logs", "--name", "blue", "--endpoint-name", "my-ep", "--lines", "50").out
    assert "init complete, factor 2.0" in logs

    # Keys: the regenerated primary replaces the old one; the secondary keeps working.
    secondary = ml.online_endpoints.get_keys("my-ep").secondary_key
    cli("online-endpoint", "regenerate-keys", "-n", "my-ep", "--key-type", "primary")
    assert _post(uri, key, {"data": [1]}).status_code == 401
    assert _post(uri, secondary, {"data": [1]}).status_code == 200

    # A deployment with traffic cannot be deleted; with 0 it can, and its instances stop.
    refused = cli("online-deployment", "delete", "--name", "green", "--endpoint-name", "my-ep", "--yes", check=False)
    assert refused.code != 0 and "traffic" in refused.err
    endpoint = ml.online_endpoints.get("my-ep")
    endpoint.traffic = {"blue": 100, "green": 0}
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    green = _pids(cli, "green")
    cli("online-deployment", "delete", "--name", "green", "--endpoint-name", "my-ep", "--yes")
    assert not any(_alive(p) for p in green)


def test_failed_init_shows_failed_with_log_tail(cli: Cli, files: Path) -> None:
    path = _deployment(files, "broken", files / "m1" / "model", "environment_variables:\n  FAIL_INIT: '1'\n")
    failed = cli("online-deployment", "create", "-n", "broken", "-e", "my-ep", "-f", str(path), check=False)
    assert failed.code != 0 and "init() was told to fail" in failed.err
    assert _show(cli, "broken")["provisioning_state"] == "Failed"
    _ml(cli).online_deployments.begin_delete("broken", "my-ep").result()


def test_mirror_and_limits(cli: Cli, files: Path) -> None:
    """Mirrored copies reach green and their answers are dropped; past request_timeout_ms a
    request is a 408; a second request while the one slot is busy, past max_queue_wait_ms, a 429."""
    # Made with azure-ai-ml's objects: Model, Environment with a conda file named by path, CodeConfiguration.
    from shoal import CodeConfiguration, Environment, ManagedOnlineDeployment, Model, OnlineRequestSettings

    (files / "conda.yml").write_text("name: slow\ndependencies:\n  - python=3.11\n")
    ml = _ml(cli)
    deployment = ManagedOnlineDeployment(
        name="slow",
        endpoint_name="my-ep",
        model=Model(path=str(files / "m2" / "model")),
        code_configuration=CodeConfiguration(code=str(files / "onlinescoring"), scoring_script="score.py"),
        environment=Environment(image="python:3.11", conda_file=str(files / "conda.yml")),
        request_settings=OnlineRequestSettings(request_timeout_ms=1000, max_queue_wait_ms=50),
        instance_type="Standard_DS3_v2",
    )
    assert ml.online_deployments.begin_create_or_update(deployment).result().provisioning_state == "Succeeded"
    endpoint = ml.online_endpoints.get("my-ep")
    endpoint.mirror_traffic = {"slow": 50}
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    key = ml.online_endpoints.get_keys("my-ep").secondary_key
    uri = endpoint.scoring_uri
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        answers = [http.post(uri, json={"data": [1]}) for _ in range(40)]
    assert {a.headers["azureml-model-deployment"] for a in answers} == {"blue"}
    assert all(a.json() == [2.0] for a in answers)
    time.sleep(0.3)
    metrics = _show(cli, "slow")["metrics"]
    assert metrics["mirrored_count"] >= 5 and metrics["request_count"] == 0, metrics

    assert _post(uri, key, {"data": [1], "sleep": 1.5}, deployment="slow").status_code == 408
    time.sleep(0.6)  # the instance finishes that request
    results: list[int] = []

    def slow_call() -> None:
        results.append(_post(uri, key, {"data": [1], "sleep": 0.5}, deployment="slow").status_code)

    first = threading.Thread(target=slow_call)
    first.start()
    time.sleep(0.1)
    second = _post(uri, key, {"data": [1]}, deployment="slow")
    first.join()
    assert second.status_code == 429 and "max_concurrent_requests_per_instance" in second.json()["message"]
    assert results == [200]
    assert _post(uri, key, {"data": [1]}, deployment="nope").status_code == 404
    endpoint.mirror_traffic = {}
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    ml.online_deployments.begin_delete("slow", "my-ep").result()


def test_sdk_and_bad_input(cli: Cli, files: Path) -> None:
    url, token = _server(cli)
    ml = MLClient(base_url=url, token=token)
    assert [e.name for e in ml.online_endpoints.list()] == ["my-ep"]
    assert [d.name for d in ml.online_deployments.list("my-ep")] == ["blue"]
    answer = ml.online_endpoints.invoke("my-ep", request_file=files / "sample-request.json")
    assert json.loads(answer) == [2.0, 4.0, 6.0]
    keys = ml.online_endpoints.get_keys("my-ep")
    assert keys.primary_key and keys.secondary_key
    assert "init complete" in ml.online_deployments.get_logs("blue", "my-ep", lines=20)
    from shoal.errors import NotFoundError, SpecError

    with pytest.raises(NotFoundError, match="does not have"):
        ml.online_endpoints.begin_create_or_update({"name": "my-ep", "traffic": {"nope": 100}})
    with pytest.raises(SpecError, match="add up to"):
        ml.online_endpoints.begin_create_or_update({"name": "my-ep", "traffic": {"blue": 50}})
    with pytest.raises(NotFoundError, match="model"):
        ml.online_deployments.begin_create_or_update(
            {"name": "ghost", "endpoint_name": "my-ep", "model": "azureml:nope:1",
             "code_configuration": {"code": str(files / "onlinescoring"), "scoring_script": "score.py"},
             "environment": {"image": "python:3.11"}}
        )  # fmt: skip
    assert [d.name for d in ml.online_deployments.list("my-ep")] == ["blue"]

    # aml_token: a Shoal token is the credential, an endpoint key is not.
    from shoal import ManagedOnlineEndpoint

    tok = ml.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name="tok-ep", auth_mode="aml_token")
    ).result()
    assert _post(tok.scoring_uri, "wrong", {"data": [1]}).status_code == 401
    assert _post(tok.scoring_uri, token, {"data": [1]}).status_code == 404  # authenticated; no deployment
    ml.online_endpoints.begin_delete("tok-ep").result()


BATCH_SCORE = """\
import os

def init():
    global factor
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "factor.txt")) as fh:
        factor = float(fh.read())

def run(mini_batch):
    return [(os.path.basename(p), float(open(p).read()) * factor) for p in mini_batch]
"""


def test_batch_endpoint_scores_files_in_mini_batches(cli: Cli, files: Path, tmp_path: Path) -> None:
    """deploy-and-run.sh of azureml-examples' batch endpoints with `shoal`: a model deployment's
    job splits the input folder into mini batches and writes predictions.csv to its output."""
    (files / "batchscoring").mkdir()
    (files / "batchscoring" / "score.py").write_text(BATCH_SCORE)
    (files / "batch-endpoint.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json\nname: hello-batch\n"
    )
    (files / "batch-deployment.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json\n"
        f"name: doubler\nendpoint_name: hello-batch\ntype: model\nmodel:\n  path: {files / 'm1' / 'model'}\n"
        "code_configuration:\n  code: batchscoring/\n  scoring_script: score.py\n"
        "environment:\n  image: python:3.11\nresources:\n  instance_count: 1\n"
        "settings:\n  mini_batch_size: 2\n  output_action: append_row\n  output_file_name: predictions.csv\n"
        "  error_threshold: -1\n"
    )
    data = files / "batch-data"
    data.mkdir()
    for i in range(5):
        (data / f"x{i}.txt").write_text(str(i))
    cli("batch-endpoint", "create", "--name", "hello-batch", "-f", str(files / "batch-endpoint.yml"))
    cli("batch-deployment", "create", "--endpoint", "hello-batch", "-f", str(files / "batch-deployment.yml"),
        "--set-default")  # fmt: skip
    shown = json.loads(cli("batch-endpoint", "show", "-n", "hello-batch").out)
    assert shown["defaults"]["deployment_name"] == "doubler"
    job = cli("batch-endpoint", "invoke", "-n", "hello-batch", "--input", str(data), "--query", "name", "-o", "tsv")
    name = job.out.strip()
    streamed = cli("job", "stream", "-n", name)
    assert "5 files in 3 mini batches" in streamed.out + streamed.err
    out = _ml(cli).jobs.download(name, output_name="score", download_path=tmp_path)
    predictions = next(Path(out).rglob("predictions.csv")) if Path(out).is_dir() else Path(out)
    rows = sorted(predictions.read_text().splitlines())
    assert rows == [f"x{i}.txt,{i * 2.0}" for i in range(5)], rows
    listed = json.loads(cli("batch-endpoint", "list-jobs", "-n", "hello-batch", "-o", "json").out)
    assert [j["name"] for j in listed] == [name]
    refused = cli("batch-deployment", "create", "--endpoint", "hello-batch", "-f", str(files / "batch-deployment.yml"),
                  "--set", "model=azureml:nope:1", check=False)  # fmt: skip
    assert refused.code != 0 and "nope" in refused.err

    # A pipeline-component deployment (hello-batch's): invoking runs the component as a pipeline job.
    (files / "hello.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json\n"
        "name: hello_batch\nversion: 1\ntype: pipeline\njobs:\n  main_job:\n    type: command\n"
        "    component:\n      environment:\n        image: python:3.11\n"
        "      command: python -c \"print('hello from the batch pipeline')\"\n"
    )
    (files / "pipeline-deployment.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponentBatchDeployment.schema.json\n"
        "name: hello-batch-dpl\nendpoint_name: hello-batch\ntype: pipeline\n"
        "component: azureml:hello_batch@latest\nsettings:\n  default_compute: local\n"
    )
    cli("component", "create", "-f", str(files / "hello.yml"))
    cli("batch-deployment", "create", "--endpoint", "hello-batch", "-f", str(files / "pipeline-deployment.yml"),
        "--set-default")  # fmt: skip
    pipeline = cli("batch-endpoint", "invoke", "-n", "hello-batch", "--query", "name", "-o", "tsv").out.strip()
    cli("job", "stream", "-n", pipeline)
    shown = _ml(cli).jobs.get(pipeline)
    assert (shown.type, shown.status) == ("pipeline", "Completed")
    # The SDK: a local input uploaded, the model deployment named, the job streamed.
    ml = _ml(cli)
    sdk_job = ml.batch_endpoints.invoke("hello-batch", deployment_name="doubler", input=str(data / "x3.txt"))
    assert ml.jobs.stream(sdk_job.name).status == "Completed"
    assert [j.name for j in ml.batch_endpoints.list_jobs("hello-batch")] == [sdk_job.name, pipeline, name]
    cli("batch-endpoint", "delete", "-n", "hello-batch", "--yes")


def test_crashed_instance_restarts_and_server_restart_serves(cli: Cli) -> None:
    url, token = _server(cli)
    key = _ml(cli).online_endpoints.get_keys("my-ep").secondary_key
    uri = f"{url}/api/v1/workspaces/default/onlineEndpoints/my-ep/score"
    victim = _pids(cli, "blue")[0]
    os.kill(victim, 9)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        shown = _show(cli, "blue")
        instances = shown["instances"]
        if all(i["state"] == "Ready" for i in instances) and victim not in [i["pid"] for i in instances]:
            break
        time.sleep(0.3)
    assert sum(i["restarts"] for i in shown["instances"]) == 1

    before = _pids(cli, "blue")
    cli("server", "stop")
    assert not any(_alive(p) for p in before)
    cli("server", "start", "--detach")
    url, _ = _server(cli)
    uri = f"{url}/api/v1/workspaces/default/onlineEndpoints/my-ep/score"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = _post(uri, key, {"data": [4]})
        if r.status_code == 200:
            break
        time.sleep(0.2)
    assert r.json() == [8.0]
    after = _pids(cli, "blue")
    cli("online-endpoint", "delete", "-n", "my-ep", "--yes")
    assert after and not any(_alive(p) for p in after)
    assert list(_ml(cli).online_endpoints.list()) == []
