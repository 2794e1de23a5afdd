"""50 concurrent clients against a real server on PostgreSQL: creating runs, logging metric batches
and registering model and data versions under shared names, with zero errors and every
acknowledged write stored (``tests/loadgen.py``; ``benchmarks/load.py`` runs the same load for 60 s
and reports latencies against MLflow's server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loadgen import CREATE_RUN, DATA_VERSION, LOG_BATCH, MODEL_VERSION, Target, run_load, verify

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CLIENTS = 50
SECONDS = float(os.environ.get("SHOAL_TEST_LOAD_SECONDS", "5"))


@pytest.fixture
def pg_server(pg_url: str, tmp_path: Path) -> Iterator[Target]:
    home = tmp_path / "load-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env.update(SHOAL_HOME=str(home), SHOAL_DATABASE_URL=pg_url)
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.server.main", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (home / "server.json").exists():
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start within 60 s"
            time.sleep(0.05)
        time.sleep(0.05)
        url = json.loads((home / "server.json").read_text())["url"]
        headers = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"}
        ws = f"{url}/api/v1/workspaces/default"
        yield Target("Shoal", f"{ws}/mlflow/api/2.0/mlflow", headers, ws)
        assert proc.poll() is None, "the server died under load:\n" + (tmp_path / "server.log").read_text()[-3000:]
        server_log = (tmp_path / "server.log").read_text()
        assert "Traceback" not in server_log, server_log[-3000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def test_fifty_clients_lose_nothing_and_see_no_error(pg_server: Target):
    load = run_load(pg_server, clients=CLIENTS, seconds=SECONDS)
    assert not load.errors, f"{len(load.errors)} errors, first ones:\n" + "\n".join(load.errors[:10])
    # Every kind of write happened, from every client.
    for op in (CREATE_RUN, LOG_BATCH, MODEL_VERSION, DATA_VERSION):
        assert len(load.latencies[op]) >= CLIENTS, (op, len(load.latencies[op]))
    stored = verify(load)
    assert not stored.lost, "\n".join(stored.lost[:20])
    assert stored.total == load.acknowledged
    # Versions of one name, numbered by many clients at once, are 1..n with no gap or repeat.
    for (_, _name), versions in load.versions.items():
        assert sorted(int(v) for v in versions) == list(range(1, len(versions) + 1))
