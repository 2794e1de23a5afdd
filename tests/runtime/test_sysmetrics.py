"""The runner's system-metrics sampler: psutil accounting of sessions, nvidia-smi parsing, never failing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shoal.runtime.sysmetrics import SystemMetrics, gpu_usage, session_usage


def test_session_usage_counts_the_sessions_processes_and_their_children():
    # A session whose leader (sh) started a child that holds 50 MB: both count, another session does not.
    script = "import time\nx = bytearray(50_000_000)\ntime.sleep(30)"
    leader = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "$0"; :', script], start_new_session=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and session_usage({leader.pid})[1] < 50_000_000:
            time.sleep(0.05)
        seconds, rss, count = session_usage({leader.pid})
        assert count == 2 and rss >= 50_000_000 and seconds >= 0
        assert session_usage({leader.pid, other.pid})[2] == 3
        assert session_usage({2**22 + 12345}) == (0.0, 0, 0)
    finally:
        for proc in (leader, other):
            os.killpg(proc.pid, 9)
            proc.wait()


def test_session_usage_of_a_real_busy_process():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<1.5: pass"], start_new_session=True
    )
    try:
        first = session_usage({child.pid})
        time.sleep(1.0)
        second = session_usage({child.pid})
    finally:
        child.wait()
    assert first[2] == 1 and second[2] == 1 and second[1] > 0
    # A busy loop gets some CPU even on a loaded machine (xdist workers share 2 cores); idle is 0.
    assert second[0] - first[0] > 0.05


def _fake_nvidia_smi(tmp_path: Path, body: str) -> str:
    exe = tmp_path / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_gpu_usage_parses_nvidia_smi(tmp_path):
    exe = _fake_nvidia_smi(tmp_path, 'printf "0, 87, 1024\\n1, [N/A], 5\\n2, 3, 2048\\n"\n')
    assert gpu_usage(exe) == [(0, 87.0, 1024.0), (2, 3.0, 2048.0)]
    assert gpu_usage(_fake_nvidia_smi(tmp_path, "exit 9\n")) is None
    assert gpu_usage(str(tmp_path / "missing")) is None


def test_sampler_logs_cpu_memory_and_gpus_and_survives_failures(tmp_path):
    exe = _fake_nvidia_smi(tmp_path, 'printf "0, 50, 100\\n"\n')
    batches: list[list[dict]] = []
    calls = {"n": 0}

    def log_batch(metrics):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("server down")  # dropped, the sampler goes on
        batches.append(metrics)

    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<1.6: pass"], start_new_session=True
    )
    sampler = SystemMetrics(log_batch, [child.pid], 0.3, nvidia_smi=exe, cpus=1)
    sampler.start()
    child.wait()
    sampler.join(timeout=5)
    assert not sampler.is_alive()  # it ends by itself once the job's processes are gone
    assert sampler.failures == 1 and len(batches) >= 2
    keys = {m["key"] for m in batches[0]}
    assert keys == {
        "system/cpu_utilization_percentage",
        "system/memory_usage_megabytes",
        "system/gpu_0_utilization_percentage",
        "system/gpu_0_memory_usage_megabytes",
    }
    cpu = [m["value"] for b in batches for m in b if m["key"] == "system/cpu_utilization_percentage"]
    assert max(cpu) > 5 and all(0 <= v <= 100 for v in cpu)  # busy, even sharing the cores
    gpu_mem = next(m["value"] for m in batches[0] if m["key"] == "system/gpu_0_memory_usage_megabytes")
    assert gpu_mem == pytest.approx(104.86)  # 100 MiB in MB
    steps = [b[0]["step"] for b in batches]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_sampler_stops_when_asked():
    sampler = SystemMetrics(lambda m: None, [os.getsid(0)], 0.05, nvidia_smi="")
    sampler.start()
    time.sleep(0.2)
    sampler.stop()
    sampler.join(timeout=2)
    assert not sampler.is_alive() and sampler.logged >= 1
