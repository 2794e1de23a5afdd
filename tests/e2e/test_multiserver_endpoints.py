"""Online endpoints on two real Shoal servers sharing one PostgreSQL database: a deployment's
instances run once (on the server holding the endpoints duty), both servers' routers reach them,
a change made through either server reaches both, and killing the holder hands the instances to
the other server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from shoal.client.ml_client import MLClient
from tests.e2e.test_multiserver import Cluster, Server, cluster  # noqa: F401 - the fixture

SCORE = """\
import json, uuid

def init():
    global ME
    ME = uuid.uuid4().hex  # which process answered (a sandboxed one has its own pid namespace)

def run(raw_data):
    return {"instance": ME, "doubled": [x * 2 for x in json.loads(raw_data)["data"]]}
"""


def _instances_on_machine(homes: list[Path]) -> list[int]:
    """Scoring processes started from either server's home (by command line), one per instance:
    a sandboxed instance is a bwrap process and the python inside it, counted once (the outer)."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            fields = Path(f"/proc/{entry}/stat").read_text().split(")")[1].split()
        except OSError:
            continue
        if b"scoring_server.py" in cmdline and fields[0] != "Z" and any(str(h).encode() in cmdline for h in homes):
            found[int(entry)] = int(fields[1])
    return sorted(pid for pid, parent in found.items() if parent not in found)


def _score(server: Server, uri_path: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}{uri_path}", json={"data": [1, 2]}, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _wait_scoring(server: Server, uri_path: str, key: str, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = _score(server, uri_path, key)
        if answer.status_code == 200:
            return answer
        assert time.monotonic() < deadline, f"{server.url} still answers {answer.status_code}: {answer.text}"
        time.sleep(0.3)


def test_instances_run_once_and_move_when_the_holder_dies(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    from shoal import CodeConfiguration, Environment, ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text(SCORE)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.txt").write_text("1")
    a = MLClient(base_url=cluster.a.url, token=cluster.token)
    b = MLClient(base_url=cluster.b.url, token=cluster.token)
    homes = [cluster.a.home, cluster.b.home]

    # The endpoint through one server, its deployment (two instances) through the other.
    a.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="shared-ep")).result()
    deployment = ManagedOnlineDeployment(
        name="blue",
        endpoint_name="shared-ep",
        model=Model(path=str(tmp_path / "model")),
        code_configuration=CodeConfiguration(code=str(tmp_path / "code"), scoring_script="score.py"),
        environment=Environment(image="python:3.11"),
        instance_type="Standard_DS3_v2",
        instance_count=2,
    )
    assert b.online_deployments.begin_create_or_update(deployment).result().provisioning_state == "Succeeded"
    endpoint = b.online_endpoints.get("shared-ep")
    endpoint.traffic = {"blue": 100}
    b.online_endpoints.begin_create_or_update(endpoint).result()
    key = a.online_endpoints.get_keys("shared-ep").primary_key
    path = "/api/v1/workspaces/default/onlineEndpoints/shared-ep/score"

    # Both routers answer, from the same two processes: the instances run once, not per server.
    answered = set()
    for server in (cluster.a, cluster.b):
        answer = _wait_scoring(server, path, key)
        assert answer.json()["doubled"] == [2, 4]
        for _ in range(20):
            answered.add(_score(server, path, key).json()["instance"])
    running = _instances_on_machine(homes)
    assert len(running) == 2 and len(answered) == 2, (answered, running)
    shown = [
        {(i["pid"], i["port"]) for i in client.online_deployments.get("blue", "shared-ep").to_dict()["instances"]}
        for client in (a, b)
    ]
    deadline = time.monotonic() + 10
    while shown[0] != shown[1] and time.monotonic() < deadline:  # the other server's view: within a refresh
        time.sleep(0.3)
        shown[1] = {(i["pid"], i["port"]) for i in b.online_deployments.get("blue", "shared-ep").to_dict()["instances"]}
    assert shown[0] == shown[1] and {pid for pid, _ in shown[0]} == set(running)

    # Keys regenerated through one server are the keys of both (within a refresh).
    new_key = b.online_endpoints.regenerate_keys("shared-ep", key_type="primary").primary_key
    deadline = time.monotonic() + 10
    while _score(cluster.a, path, new_key).status_code != 200:
        assert time.monotonic() < deadline, "the first server never took the new key"
        time.sleep(0.3)
    assert _score(cluster.a, path, key).status_code == 401

    # Kill the holder outright: its instances end with it, the other server takes the duty
    # (the lease is 2 s), starts the instances itself and answers again.
    holder = next(s for s in (cluster.a, cluster.b) if all(_started_from(s, p) for p in running))
    survivor = cluster.b if holder is cluster.a else cluster.a
    holder.proc.kill()
    holder.proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in running):
        assert time.monotonic() < deadline, "the killed server's instances outlived it"
        time.sleep(0.1)
    answer = _wait_scoring(survivor, path, new_key, timeout=120)
    assert answer.json()["doubled"] == [2, 4]
    moved = _instances_on_machine(homes)
    assert len(moved) == 2 and not set(moved) & set(running)
    assert all(_started_from(survivor, p) for p in moved)


def _started_from(server: Server, pid: int) -> bool:
    return str(server.home).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()


def _alive(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except OSError:
        return False
