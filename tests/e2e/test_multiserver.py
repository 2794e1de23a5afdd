"""Two real Shoal servers on one PostgreSQL database, behind a load balancer: every job, step and
trial starts exactly once, and killing one server (SIGKILL) hands its work to the other.

The servers share the database, the artifact root, the admin token and the job-signing key, as
docs/deployment.md describes; runners call back through the balancer (``SHOAL_PUBLIC_URL``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL, pg_problem

ENV = {"image": "python:3.11"}
TERMINAL = ("Completed", "Failed", "Canceled")
SHARED_FILES = ("token", "job-signing.key", "secret.key")


class Balancer:
    """A TCP load balancer: each connection goes to the next server that accepts it, round robin;
    a dead server refuses and is skipped (what a balancer's health check amounts to)."""

    def __init__(self) -> None:
        self.backends: list[int] = []
        self._next = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        start, self._next = self._next, self._next + 1
        for i in range(len(self.backends)):
            try:
                upstream = socket.create_connection(("127.0.0.1", self.backends[(start + i) % len(self.backends)]), 2)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


class Server:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        log = open(home / "server.out", "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoal.server.main", "--port", "0"],
            env={**env, "SHOAL_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not (home / "server.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {(home / 'server.out').read_text()[-3000:]}")
            time.sleep(0.1)
        self.url = json.loads((home / "server.json").read_text())["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.server_id = (home / "server.id").read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        self.balancer = Balancer()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        self.env.update(
            SHOAL_DATABASE_URL=database_url,
            SHOAL_ARTIFACT_ROOT=str(root / "artifacts"),
            SHOAL_ENV_CACHE=str(root / "envs"),
            SHOAL_PUBLIC_URL=f"http://127.0.0.1:{self.balancer.port}",
            SHOAL_HEARTBEAT_TIMEOUT="3",
            SHOAL_SERVER_LEASE_SECONDS="2",
            SHOAL_SYSTEM_METRICS_SECONDS="0",
        )
        self.a = Server(root / "home-a", self.env)
        # The second server shares the first one's token and keys (a deployment copies them).
        for name in SHARED_FILES:
            (root / "home-b").mkdir(exist_ok=True)
            shutil.copy2(self.a.home / name, root / "home-b" / name)
        self.b = Server(root / "home-b", self.env)
        self.balancer.backends = [self.a.port, self.b.port]
        self.token = (self.a.home / "token").read_text().strip()
        self.http = httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        self.engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))

    def submit(self, server: Server, body: dict[str, Any]) -> str:
        reply = self.http.post(f"{server.url}/api/v1/workspaces/default/jobs", json=body)
        assert reply.status_code < 300, reply.text
        return reply.json()["name"]

    def rows(self, names: list[str]) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            found = conn.execute(
                text("SELECT name, status, attempt, claimed_by FROM job WHERE name = ANY(:names)"), {"names": names}
            )
            return {r.name: dict(r._mapping) for r in found}

    def wait(self, names: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(names)
            if all(r["status"] in TERMINAL for r in rows.values()) and len(rows) == len(names):
                return rows
            if time.monotonic() > deadline:
                pending = {n: r["status"] for n, r in rows.items() if r["status"] not in TERMINAL}
                raise AssertionError(f"still running after {timeout} s: {pending}")
            time.sleep(0.3)

    def run_folders(self, job: str) -> list[Path]:
        """The attempts a runner was started for, on either server."""
        return [p for s in (self.a, self.b) for p in sorted((s.home / "runs" / "default" / job).glob("*"))]

    def close(self) -> None:
        for server in (self.a, self.b):
            server.stop()
        self.http.close()
        self.engine.dispose()
        self.balancer.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    problem = pg_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests, but {problem}")
        pytest.skip(problem)
    name = f"shoal_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    cluster = Cluster(tmp_path_factory.mktemp("multiserver"), PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield cluster
    finally:
        cluster.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def command(text_: str) -> dict[str, Any]:
    return {"type": "command", "command": text_, "environment": ENV, "experiment_name": "multiserver"}


def test_sixty_jobs_submitted_to_two_servers_run_sixty_times(cluster: Cluster) -> None:
    names = [cluster.submit(cluster.a if i % 2 else cluster.b, command(f"echo job {i}")) for i in range(60)]
    rows = cluster.wait(names)
    assert {r["status"] for r in rows.values()} == {"Completed"}
    # One attempt each, one runner each (its run folder), nothing started twice.
    assert {r["attempt"] for r in rows.values()} == {1}
    assert sum(len(cluster.run_folders(n)) for n in names) == 60
    assert all(len(cluster.run_folders(n)) == 1 for n in names)
    # Both dispatchers took part, each job claimed by exactly the server that ran it.
    owners = {r["claimed_by"] for r in rows.values()}
    assert owners == {cluster.a.server_id, cluster.b.server_id}
    for n, r in rows.items():
        home = cluster.a.home if r["claimed_by"] == cluster.a.server_id else cluster.b.home
        assert (home / "runs" / "default" / n / "1").is_dir()


def test_a_pipeline_across_two_servers_runs_each_step_once(cluster: Cluster) -> None:
    step = {"environment": ENV, "outputs": {"o": None}}
    jobs = {"s0": {**step, "command": "echo 0 > ${{outputs.o}}/v.txt"}}
    for i in range(1, 6):
        # A fan-out from s0, then a join: steps become ready together, on both servers' ticks.
        jobs[f"s{i}"] = {
            **step,
            "command": f"cat ${{{{inputs.x}}}}/v.txt > ${{{{outputs.o}}}}/v.txt; echo {i} >> ${{{{outputs.o}}}}/v.txt",
            "inputs": {"x": "${{parent.jobs.s0.outputs.o}}"},
        }
    jobs["join"] = {
        **step,
        "command": "ls ${{inputs.a}} ${{inputs.b}} > ${{outputs.o}}/v.txt",
        "inputs": {"a": "${{parent.jobs.s1.outputs.o}}", "b": "${{parent.jobs.s5.outputs.o}}"},
    }
    names = [
        # force_rerun: the two pipelines are alike, and a step reused from the other one never runs
        # (attempt 0); this test is about steps that do run, once each.
        cluster.submit(
            server,
            {"type": "pipeline", "experiment_name": "multiserver", "settings": {"force_rerun": True}, "jobs": jobs},
        )
        for server in (cluster.a, cluster.b)
    ]
    rows = cluster.wait(names)
    assert {r["status"] for r in rows.values()} == {"Completed"}
    for pipeline in names:
        page = cluster.http.get(
            f"{cluster.b.url}/api/v1/workspaces/default/jobs", params={"parent_job_name": pipeline}
        ).json()["value"]
        steps = [s["name"] for s in page]
        assert len(steps) == 7
        step_rows = cluster.rows(steps)
        assert {r["status"] for r in step_rows.values()} == {"Completed"}
        assert {r["attempt"] for r in step_rows.values()} == {1}
        assert all(len(cluster.run_folders(s)) == 1 for s in steps)


LOG_ACC = (
    'python -c "import json, os, urllib.request as u; '
    "body = {'run_id': os.environ['MLFLOW_RUN_ID'], 'key': 'acc', 'value': ${{search_space.x}}, "
    "'timestamp': 1, 'step': 0}; "
    "u.urlopen(u.Request(os.environ['MLFLOW_TRACKING_URI'] + '/api/2.0/mlflow/runs/log-metric', "
    "json.dumps(body).encode(), {'Authorization': 'Bearer ' + os.environ['MLFLOW_TRACKING_TOKEN'], "
    "'Content-Type': 'application/json'}))\""
)


def test_sweeps_across_two_servers_create_and_start_each_trial_once(cluster: Cluster) -> None:
    body = {
        "type": "sweep",
        "experiment_name": "multiserver",
        "trial": {"command": LOG_ACC, "environment": ENV},
        "search_space": {"x": {"type": "choice", "values": [1, 2, 3, 4, 5, 6]}},
        "sampling_algorithm": "grid",
        "objective": {"goal": "maximize", "primary_metric": "acc"},
        "limits": {"max_total_trials": 6, "max_concurrent_trials": 6},
        "compute": "local",
    }
    names = [cluster.submit(server, body) for server in (cluster.a, cluster.b)]
    rows = cluster.wait(names)
    assert {r["status"] for r in rows.values()} == {"Completed"}, rows
    for sweep in names:
        page = cluster.http.get(
            f"{cluster.a.url}/api/v1/workspaces/default/jobs", params={"parent_job_name": sweep}
        ).json()["value"]
        trials = sorted(t["name"] for t in page)
        assert trials == [f"{sweep}_{i}" for i in range(6)]
        trial_rows = cluster.rows(trials)
        assert {r["status"] for r in trial_rows.values()} == {"Completed"}
        assert {r["attempt"] for r in trial_rows.values()} == {1}
        assert all(len(cluster.run_folders(t)) == 1 for t in trials)
        best = cluster.http.get(f"{cluster.b.url}/api/v1/workspaces/default/jobs/{sweep}").json()
        assert best["properties"]["best_metric_value"] in (6, 6.0, "6", "6.0")


# Last: it kills the first server of the module's pair.
def test_killing_one_server_hands_its_jobs_to_the_other(cluster: Cluster) -> None:
    names = [cluster.submit(cluster.a if i % 2 else cluster.b, command(f"sleep 6; echo job {i}")) for i in range(30)]
    # Wait until the first server has runners going, then kill it without a chance to clean up.
    deadline = time.monotonic() + 30
    while True:
        rows = cluster.rows(names)
        running_on_a = [
            n for n, r in rows.items() if r["claimed_by"] == cluster.a.server_id and r["status"] == "Running"
        ]
        if len(running_on_a) >= 2:
            break
        assert time.monotonic() < deadline, f"nothing ran on the first server: {rows}"
        time.sleep(0.1)
    cluster.a.proc.kill()
    cluster.a.proc.wait()
    rows = cluster.wait(names, timeout=60)
    assert {r["status"] for r in rows.values()} == {"Completed"}, rows
    # The killed server's running jobs finished as the attempt it started (their runners reported
    # through the balancer to the survivor), and the survivor took over those still running when
    # the lease expired (2 s after the kill; the jobs sleep 6 s).
    assert all(rows[n]["attempt"] == 1 for n in running_on_a)
    assert any(rows[n]["claimed_by"] == cluster.b.server_id for n in running_on_a)
    for n, r in rows.items():
        folders = cluster.run_folders(n)
        # A job claimed but not launched when the server died runs again as attempt 2, once.
        assert len(folders) == 1 or (r["attempt"] == 2 and len(folders) <= 2), (n, r, folders)
