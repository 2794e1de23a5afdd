"""The server killed (SIGKILL) in the middle of writes, then restarted on the same store: every
write it acknowledged is there, a write it did not acknowledge is whole or absent (a metric
batch, an artifact, an asset version), and writing goes on after the restart. On SQLite, the
default store (one variant: its cost is two server starts; what is checked is Shoal's own
transaction and file boundaries, the same on PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ML = "/api/v1/workspaces/default/mlflow/api/2.0/mlflow"
ART = "/api/v1/workspaces/default/mlflow/api/2.0/mlflow-artifacts/artifacts"
BATCH = 200  # points a batch: one transaction
BLOB = 1024 * 1024  # bytes an artifact


def start(home: Path, database_url: str) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env.update(SHOAL_HOME=str(home), SHOAL_DATABASE_URL=database_url)
    (home / "server.json").unlink(missing_ok=True)  # a killed server leaves it behind
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.server.main", "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "server.err", "ab"),  # noqa: SIM115 - the child holds it
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (home / "server.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, (home / "server.err").read_text()[-3000:]
        time.sleep(0.05)
    return proc, json.loads((home / "server.json").read_text())["url"]


class Writers:
    """Three clients writing until the server goes away; each write is recorded as acknowledged
    (a 2xx came back) or in flight (the connection broke before an answer)."""

    def __init__(self, client: httpx.Client, run: str) -> None:
        self.client, self.run = client, run
        self.acked: dict[str, list[Any]] = {"batch": [], "artifact": [], "model": []}
        self.in_flight: dict[str, list[Any]] = {"batch": [], "artifact": [], "model": []}
        self.threads = [threading.Thread(target=self._loop, args=(k,), daemon=True) for k in self.acked]

    def _write(self, kind: str, i: int) -> httpx.Response:
        if kind == "batch":
            metrics = [
                {"key": "m", "value": float(i), "timestamp": 1000 + i, "step": i * BATCH + j} for j in range(BATCH)
            ]
            return self.client.post(f"{ML}/runs/log-batch", json={"run_id": self.run, "metrics": metrics})
        if kind == "artifact":
            blob = hashlib.sha256(str(i).encode()).digest() * (BLOB // 32)
            return self.client.put(f"{ART}/ExperimentRun/dcid.{self.run}/blob-{i}.bin", content=blob)
        body = {"path": f"https://example.com/models/{i}.pkl", "description": f"version {i}"}
        return self.client.post("/api/v1/workspaces/default/models/crash/versions", json=body)

    def _loop(self, kind: str) -> None:
        for i in range(100000):
            try:
                reply = self._write(kind, i)
            except httpx.HTTPError:
                self.in_flight[kind].append(i)
                return
            assert reply.status_code < 300, reply.text
            self.acked[kind].append(reply.json() if kind == "model" else i)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(30)


def test_a_server_killed_mid_write_keeps_every_acknowledged_write(shoal_home):
    database_url = f"sqlite:///{shoal_home / 'shoal.db'}"
    proc, url = start(shoal_home, database_url)
    token = (shoal_home / "token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        run = client.post(f"{ML}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
        writers = Writers(client, run)
        writers.start()
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        writers.join()
    assert all(writers.acked.values()), writers.acked  # each kind wrote something before the kill

    proc, url = start(shoal_home, database_url)
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            # Metric batches: every acknowledged one whole; one in flight whole or absent.
            points: list[dict[str, Any]] = []
            token_ = None
            while True:
                params = {"run_id": run, "metric_key": "m", "max_results": 25000, "page_token": token_}
                page = client.get(f"{ML}/metrics/get-history", params=params).json()
                points += page.get("metrics", [])
                token_ = page.get("next_page_token")
                if not token_:
                    break
            per_batch: dict[int, int] = {}
            for p in points:
                per_batch[int(p["value"])] = per_batch.get(int(p["value"]), 0) + 1
            for i in writers.acked["batch"]:
                assert per_batch.get(i) == BATCH, f"acknowledged batch {i} has {per_batch.get(i)} points"
            assert set(per_batch.values()) == {BATCH}, "a batch was half written"
            assert set(per_batch) - set(writers.acked["batch"]) <= set(writers.in_flight["batch"])

            # Artifacts: every acknowledged one reads back whole; none listed is partial.
            listed = client.get(ART, params={"path": f"ExperimentRun/dcid.{run}"}).json().get("files", [])
            sizes = {f["path"].rsplit("/", 1)[-1]: int(f.get("file_size") or 0) for f in listed}
            for i in writers.acked["artifact"]:
                got = client.get(f"{ART}/ExperimentRun/dcid.{run}/blob-{i}.bin")
                assert got.status_code == 200 and got.content == hashlib.sha256(str(i).encode()).digest() * (BLOB // 32)
            assert set(sizes.values()) <= {BLOB}, f"a partial artifact is visible: {sizes}"
            assert all(name.startswith("blob-") for name in sizes), f"a temporary file is visible: {sorted(sizes)}"

            # Asset versions: every acknowledged one there, numbered without gaps or doubles.
            numbers: list[int] = []
            page_token = None
            while True:
                params = {"name": "crash", "max_results": 100, "page_token": page_token}
                page = client.get("/api/v1/workspaces/default/models", params=params).json()
                numbers += [int(v["version"]) for v in page["value"]]
                if not (page_token := page.get("next_page_token")):
                    break
            numbers.sort()
            assert numbers == list(range(1, len(numbers) + 1))
            assert {str(a["version"]) for a in writers.acked["model"]} <= {str(n) for n in numbers}
            assert len(numbers) - len(writers.acked["model"]) <= len(writers.in_flight["model"])

            # And the restarted server takes writes again.
            more = [{"key": "m", "value": -1.0, "timestamp": 1, "step": 10**9}]
            assert client.post(f"{ML}/runs/log-batch", json={"run_id": run, "metrics": more}).status_code == 200
            body = {"path": "https://example.com/models/after.pkl"}
            after = client.post("/api/v1/workspaces/default/models/crash/versions", json=body)
            assert after.status_code < 300 and int(after.json()["version"]) == len(numbers) + 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
