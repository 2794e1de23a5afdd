"""Compute instances as dev boxes: a real JupyterLab (the ``devbox`` extra) per instance.

One server and one instance for the module (JupyterLab takes seconds to start on a busy machine);
the tests run in order and each leaves the instance Running. Notebook code runs through Jupyter's
own kernel API (REST to start a kernel, its websocket channels to execute), as a browser does.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from shoal import MLClient
from shoal.entities import ComputeInstance
from tests.e2e.conftest import Cli, wait_for, write_job

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed: pip install 'shoal[devbox]'")
websocket = pytest.importorskip("websocket", reason="websocket-client comes with JupyterLab")

pytestmark = pytest.mark.e2e

CI_YAML = """\
$schema: https://azuremlschemas.azureedge.net/latest/computeInstance.schema.json
name: my-ci
type: computeinstance
size: STANDARD_DS3_v2
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("devbox-home")
    cli = Cli(home)
    cli.env["SHOAL_DEVBOX_TICK_SECONDS"] = "1"
    cli.env["SHOAL_HEARTBEAT_TIMEOUT"] = "5"
    (home / "ci.yml").write_text(CI_YAML)
    cli("server", "start", "--detach")
    try:
        yield cli
    finally:
        cli("compute", "stop", "-n", "my-ci", check=False)
        cli("server", "stop", check=False)
        for proc in jupyter_processes(home):  # whatever a failed test left
            proc.kill()


def show(cli: Cli) -> dict:
    return json.loads(cli("compute", "show", "-n", "my-ci").out)


def lab_url(body: dict) -> str:
    return next(s["endpoint_uri"] for s in body["services"] if s["display_name"] == "Jupyter Lab")


def jupyter_processes(home: Path) -> list[psutil.Process]:
    mark = str(home / "instances" / "default" / "my-ci")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(mark in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def base_and_token(body: dict) -> tuple[str, str]:
    url = httpx.URL(lab_url(body))
    return f"{url.scheme}://{url.host}:{url.port}", url.params["token"]


def run_in_kernel(body: dict, code: str, timeout: float = 180.0) -> str:
    """Execute ``code`` in a new kernel of the instance's JupyterLab; its output (stdout, errors)."""
    base, token = base_and_token(body)
    auth = {"Authorization": f"token {token}"}
    kernel = httpx.post(f"{base}/api/kernels", headers=auth, json={"name": "python3"}, timeout=60).json()
    ws = websocket.create_connection(
        f"ws://{base.split('://', 1)[1]}/api/kernels/{kernel['id']}/channels",
        header=[f"Authorization: token {token}"],
        timeout=timeout,
    )
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    message = {"header": {**header, "msg_type": "execute_request"}, "parent_header": {}, "metadata": {}}
    ws.send(json.dumps({**message, "content": content, "channel": "shell", "buffers": []}))
    out: list[str] = []
    replied = idle = False
    try:
        # The reply (shell) and the output (iopub) come on separate channels in no set order:
        # done once both the reply and the kernel's return to idle have come.
        while not (replied and idle):
            reply = json.loads(ws.recv())
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = reply["msg_type"]
            if kind == "stream":
                out.append(reply["content"]["text"])
            elif kind == "error":
                out.append("ERROR " + reply["content"]["ename"] + ": " + reply["content"]["evalue"])
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and reply["content"]["execution_state"] == "idle":
                idle = True
    finally:
        ws.close()
        httpx.delete(f"{base}/api/kernels/{kernel['id']}", headers=auth, timeout=30)
    return "".join(out)


def wait_state(cli: Cli, state: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    body = show(cli)
    while body["state"] != state and time.monotonic() < deadline:
        time.sleep(0.5)
        body = show(cli)
    assert body["state"] == state, body
    return body


def admin(cli: Cli) -> httpx.Client:
    server = json.loads((cli.home / "server.json").read_text())
    token = (cli.home / "token").read_text().strip()
    return httpx.Client(base_url=server["url"], headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_create_starts_jupyterlab(dev: Cli) -> None:
    # Created and started, as on Azure.
    created = json.loads(dev("compute", "create", "--file", str(dev.home / "ci.yml")).out)
    assert created["state"] == "Running"
    assert created["last_operation"]["operation_name"] == "Create"
    assert created["last_operation"]["operation_status"] == "Succeeded"
    url = lab_url(created)
    assert url.startswith("http://127.0.0.1:") and "/lab?token=" in url
    assert httpx.get(url, timeout=30).status_code == 200
    base, _ = base_and_token(created)
    assert httpx.get(f"{base}/api/status", timeout=30).status_code == 403  # no token: no entry
    assert jupyter_processes(dev.home)
    # `compute start` on it answers with it as it is.
    started = json.loads(dev("compute", "start", "-n", "my-ci").out)
    assert started["state"] == "Running" and started["services"] == created["services"]
    assert show(dev)["services"] == created["services"]


def test_login_link_only_for_its_starter(dev: Cli) -> None:
    dev("user", "create", "-n", "rita")
    dev("role", "assignment", "create", "--assignee", "rita", "--role", "Reader", "-w", "default")
    token = dev("user", "token", "create", "-u", "rita", "--query", "token", "-o", "tsv").out.strip()
    seen = json.loads(dev("compute", "show", "-n", "my-ci", env={"SHOAL_TOKEN": token}).out)
    assert seen["state"] == "Running"
    assert all("token=" not in s["endpoint_uri"] for s in seen["services"])
    assert lab_url(seen) == lab_url(show(dev)).split("?")[0]


def test_notebook_code_logs_into_the_workspace(dev: Cli) -> None:
    body = show(dev)
    code = """
import json, os, mlflow
from shoal import MLClient
token = os.environ["MLFLOW_TRACKING_TOKEN"]
print("TOKEN", token.split(".")[0], token == os.environ["SHOAL_TOKEN"])
print("CONFIG", json.load(open("config.json"))["workspace_name"])
mlflow.set_experiment("devbox-notebook")
with mlflow.start_run() as run:
    mlflow.log_metric("accuracy", 0.875)
print("RUN", run.info.run_id)
ml_client = MLClient.from_config()
print("COMPUTES", sorted(c.name for c in ml_client.compute.list()))
for attempt in ("secrets", "compute"):
    try:
        if attempt == "secrets":
            ml_client.datastores.get("workspaceblobstore", include_secrets=True)
        else:
            ml_client.compute.begin_stop("my-ci")
        print("ALLOWED", attempt)
    except Exception as exc:
        print("DENIED", attempt, type(exc).__name__)
"""
    out = run_in_kernel(body, code)
    assert "TOKEN shoalci True" in out, out
    assert "CONFIG default" in out and "COMPUTES ['local', 'my-ci']" in out, out
    assert "DENIED secrets" in out and "DENIED compute" in out, out
    run_id = out.split("RUN ", 1)[1].split()[0]
    # The metric is in the workspace: the run as a job, and MLflow's own API.
    job = json.loads(dev("job", "show", "-n", run_id).out)
    assert job["experiment_name"] == "devbox-notebook"
    with admin(dev) as api:
        got = api.get("/api/v1/workspaces/default/mlflow/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()
    assert {m["key"]: m["value"] for m in got["run"]["data"]["metrics"]} == {"accuracy": 0.875}
    assert show(dev)["state"] == "Running"


def test_jobs_run_on_the_instance(dev: Cli) -> None:
    job = write_job(
        dev.home / "on-ci", "command: echo on the dev box\ncompute: azureml:my-ci\nenvironment:\n  image: python\n"
    )
    name = json.loads(dev("job", "create", "--file", str(job)).out)["name"]
    done = wait_for(dev, name, timeout=180)
    assert done["status"] == "Completed" and done["compute"].endswith("my-ci")


def test_restart_gives_a_new_server_and_token(dev: Cli) -> None:
    before = show(dev)
    old_token = run_in_kernel(before, "import os; print(os.environ['SHOAL_TOKEN'])").strip()
    # Carol (a Contributor) restarts it through the SDK, as azure-ai-ml code does it.
    dev("user", "create", "-n", "carol")
    dev("role", "assignment", "create", "--assignee", "carol", "--role", "Contributor", "-w", "default")
    carol = dev("user", "token", "create", "-u", "carol", "--query", "token", "-o", "tsv").out.strip()
    server = json.loads((dev.home / "server.json").read_text())
    restarted = MLClient(base_url=server["url"], token=carol).compute.begin_restart("my-ci").result()
    assert isinstance(restarted, ComputeInstance) and restarted.state == "Running"
    assert restarted.last_operation["operation_name"] == "Restart"
    after = show(dev)
    assert restarted.services == after["services"] and lab_url(after) != lab_url(before)
    assert all("token=" in s["endpoint_uri"] for s in restarted.services)  # she started it: the login link
    assert httpx.get(lab_url(after), timeout=30).status_code == 200
    new_token = run_in_kernel(after, "import os; print(os.environ['SHOAL_TOKEN'])").strip()
    with admin(dev) as api:

        def as_token(token: str, method: str, path: str) -> int:
            return api.request(method, path, headers={"Authorization": f"Bearer {token}"}).status_code

        computes = "/api/v1/workspaces/default/computes"
        assert as_token(old_token, "GET", computes) == 401  # the last start's token ended with it
        assert as_token(new_token, "GET", computes) == 200
        # Carol's instance token is not Carol: it cannot mint her tokens.
        assert as_token(new_token, "POST", "/api/v1/users/carol/tokens") == 403
        # It never holds more than Carol does now.
        dev("role", "assignment", "delete", "--assignee", "carol", "-w", "default")
        assert as_token(new_token, "GET", computes) == 403


def test_state_is_true_after_a_server_restart(dev: Cli) -> None:
    url = lab_url(show(dev))
    dev("server", "stop")
    dev("server", "start", "--detach")
    body = show(dev)
    alive = bool(jupyter_processes(dev.home))
    # Unconfined, JupyterLab outlives the server and is taken back; sandboxed, it ends with it.
    if body["state"] == "Running":
        assert alive and lab_url(body) == url and httpx.get(url, timeout=30).status_code == 200
    else:
        assert body["state"] == "Stopped" and "services" not in body and not alive
        assert body["last_operation"]["operation_trigger"] == "System"
        dev("compute", "start", "-n", "my-ci")


def test_stop_ends_jupyterlab_and_its_token(dev: Cli) -> None:
    body = show(dev)
    token = run_in_kernel(body, "import os; print(os.environ['SHOAL_TOKEN'])").strip()
    stopped = json.loads(dev("compute", "stop", "-n", "my-ci").out)
    assert stopped["state"] == "Stopped" and "services" not in stopped
    assert not jupyter_processes(dev.home)
    # A stopped instance takes no jobs.
    job = write_job(dev.home / "refused", "command: echo hi\ncompute: azureml:my-ci\nenvironment:\n  image: python\n")
    refused = dev("job", "create", "--file", str(job), check=False)
    assert refused.code != 0 and "stopped" in refused.err
    with pytest.raises(httpx.HTTPError):
        httpx.get(lab_url(body), timeout=5)
    with admin(dev) as api:
        r = api.get("/api/v1/workspaces/default/computes", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    dev("compute", "start", "-n", "my-ci")


def test_idle_instance_stops_itself(dev: Cli) -> None:
    bad = dev("compute", "update", "-n", "my-ci", "--set", "idle_time_before_shutdown=soon", check=False)
    assert bad.code != 0 and "idle_time_before_shutdown" in bad.err
    dev("compute", "update", "-n", "my-ci", "--set", "idle_time_before_shutdown=PT4S")
    body = wait_state(dev, "Stopped", timeout=90)
    assert body["last_operation"]["operation_trigger"] == "IdleShutdown"
    assert not jupyter_processes(dev.home)
    assert os.path.exists(dev.home / "instances" / "default" / "my-ci" / "box" / "files" / "config.json")


def test_delete_ends_a_running_instance(dev: Cli) -> None:
    dev("compute", "start", "-n", "my-ci")
    assert jupyter_processes(dev.home)
    dev("compute", "delete", "-n", "my-ci", "--yes")
    assert not jupyter_processes(dev.home)
    assert dev("compute", "show", "-n", "my-ci", check=False).code != 0
