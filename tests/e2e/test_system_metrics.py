"""System metrics of a real job: the runner samples its processes and logs ``system/…`` metrics."""

from __future__ import annotations

import json

from tests.e2e.conftest import wait_for, write_job

SERVER_ENV = {"SHOAL_SYSTEM_METRICS_SECONDS": "0.5"}  # read by the jobs_cli fixture


def test_a_busy_job_gets_cpu_and_memory_metrics(jobs_cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "burn.py").write_text(
        "import time\n"
        "x = bytearray(60_000_000)  # resident: zero-filled pages are touched below\n"
        "for i in range(0, len(x), 4096):\n"
        "    x[i] = 1\n"
        "t = time.time()\n"
        "while time.time() - t < 2.5:\n"
        "    pass\n"
        "print('burned')\n"
    )
    path = write_job(
        tmp_path,
        """
        command: python burn.py
        code: ./src
        environment:
          image: python:3.11
        """,
    )
    name = jobs_cli("job", "create", "--file", str(path), "--query", "name", "-o", "tsv").out.strip()
    job = wait_for(jobs_cli, name)
    assert job["status"] == "Completed", job
    metrics = job.get("metrics") or {}
    assert {"system/cpu_utilization_percentage", "system/memory_usage_megabytes"} <= set(metrics)
    rows = json.loads(jobs_cli("job", "metrics", "-n", name, "-o", "json").out)
    cpu = [r["value"] for r in rows if r["name"] == "system/cpu_utilization_percentage"]
    mem = [r["value"] for r in rows if r["name"] == "system/memory_usage_megabytes"]
    assert len(cpu) >= 2 and len(mem) == len(cpu)
    assert max(cpu) > 5  # busy: clearly above idle, even with other test workers on the cores
    assert max(mem) > 60  # the 60 MB bytearray is resident
    assert [r["step"] for r in rows if r["name"] == "system/cpu_utilization_percentage"] == list(range(len(cpu)))
