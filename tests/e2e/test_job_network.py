"""``SHOAL_JOB_NETWORK=server``: job code reaches the Shoal server and nothing else on the host
(issue 14: "job code can reach services on 127.0.0.1", a PostgreSQL with trust authentication
among them). A real server, real jobs: one tries the host's loopback ports and logs a metric
through the MLflow REST API with its token; two ranks of one job still rendezvous on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
import threading
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Cli, wait_for, write_job

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        (shutil.which("bwrap") is None or shutil.which("nsenter") is None) and not os.environ.get("CI"),
        reason="bubblewrap and nsenter are needed (apt-get install bubblewrap util-linux); CI installs them",
    ),
]

SERVER_ENV = {"SHOAL_JOB_ISOLATION": "required", "SHOAL_JOB_NETWORK": "server"}

PROBE = r"""
import json, os, socket, sys, time, urllib.request

found = {}
for port in [int(p) for p in sys.argv[1:]]:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        found[str(port)] = "REACHED"
    except OSError as exc:
        found[str(port)] = "refused:" + type(exc).__name__
uri, token = os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_TRACKING_TOKEN"]
body = json.dumps({"run_id": os.environ["MLFLOW_RUN_ID"], "key": "through_relay", "value": 7,
                   "timestamp": int(time.time() * 1000), "step": 0}).encode()
request = urllib.request.Request(f"{uri}/api/2.0/mlflow/runs/log-metric", data=body, method="POST",
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
found["mlflow"] = urllib.request.urlopen(request, timeout=30).status
print("RESULT " + json.dumps(found), flush=True)
"""

RENDEZVOUS = r"""
import os, socket, time
rank, port = int(os.environ["RANK"]), int(os.environ["MASTER_PORT"])
# Both ranks start in sandboxes of their own: on a loaded machine either may be seconds late.
if rank == 0:
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(90)
    conn, _ = server.accept()
    print("rank 0 got", conn.recv(100).decode(), flush=True)
else:
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).sendall(b"hello from rank 1")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    print("rank 1 sent", flush=True)
"""


class Canary:
    """A TCP listener on the host's loopback that counts who connects."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_job_code_reaches_the_server_and_no_other_port_of_the_host(jobs_cli: Cli, tmp_path):
    canary = Canary()
    server_port = urlsplit(json.loads((jobs_cli.home / "server.json").read_text())["url"]).port
    ports = [canary.port, 5432, 22]
    src = tmp_path / "src"
    src.mkdir()
    (src / "probe.py").write_text(PROBE)
    job = write_job(
        tmp_path,
        f"""
        command: python probe.py {" ".join(map(str, ports))}
        code: ./src
        environment:
          image: python:3.11
        """,
    )
    name = jobs_cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    done = wait_for(jobs_cli, name, timeout=120)
    log = jobs_cli("job", "stream", "-n", name, check=False).out
    assert done["status"] == "Completed", log
    found = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])
    for port in ports:
        assert found[str(port)].startswith("refused:"), (port, found)
    assert canary.hits == 0
    assert _reachable(canary.port)  # it was there all along, for the host
    # The server, through the relay, with the job's own token.
    assert found["mlflow"] == 200 and done["metrics"]["through_relay"] == 7
    assert server_port not in ports


def test_the_ranks_of_one_job_share_its_network(jobs_cli: Cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "rdv.py").write_text(textwrap.dedent(RENDEZVOUS))
    job = write_job(
        tmp_path,
        """
        command: python rdv.py
        code: ./src
        environment:
          image: python:3.11
        distribution:
          type: pytorch
          process_count_per_instance: 2
        resources:
          instance_count: 1
        """,
    )
    name = jobs_cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    done = wait_for(jobs_cli, name, timeout=240)
    out = tmp_path / "dl"
    jobs_cli("job", "download", "-n", name, "--download-path", str(out))
    logs = {p.name: p.read_text() for p in (out / "artifacts" / "user_logs").glob("std_log_process_*.txt")}
    assert done["status"] == "Completed", logs
    assert any("rank 0 got hello from rank 1" in text for text in logs.values()), logs
