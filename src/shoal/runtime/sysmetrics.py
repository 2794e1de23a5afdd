"""System metrics of a running job, logged as MLflow metrics of its run (``system/…``).

Every ``SHOAL_SYSTEM_METRICS_SECONDS`` (default 5; 0 or less turns sampling off) the sampler
asks ``psutil`` (Linux, macOS, Windows) about the processes of the job's sessions (each rank starts
its own session, and its children stay in it; where there are no sessions, Windows, a rank and
its descendants) and, where ``nvidia-smi`` is on PATH, the GPUs. It logs:

- ``system/cpu_utilization_percentage``: CPU time the job's processes used over the interval, as
  a percentage of the machine's CPUs (0-100, as MLflow's and Azure ML's CPU metrics are);
- ``system/memory_usage_megabytes``: resident memory of those processes (MB, 10^6 bytes);
- ``system/gpu_<i>_utilization_percentage`` and ``system/gpu_<i>_memory_usage_megabytes`` for
  each GPU ``nvidia-smi`` lists (whole-GPU figures, as MLflow's are).

They go through the workspace's MLflow ``runs/log-batch`` route with the job token, one batch per
sample, step = the sample's number. A sample that cannot be taken or logged is dropped: system
metrics never fail, slow or block the job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

DEFAULT_SECONDS = 5.0
MB = 1_000_000
MIB = 1024 * 1024


def interval_from_env() -> float:
    try:
        return float(os.environ.get("SHOAL_SYSTEM_METRICS_SECONDS", DEFAULT_SECONDS))
    except ValueError:
        return DEFAULT_SECONDS


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _members(sessions: set[int]) -> list[psutil.Process]:
    """The processes of ``sessions``: by session id where the OS has them, else the leaders and their descendants."""
    import psutil  # here: the sampler's thread pays for it, not the runner's start-up

    getsid = getattr(os, "getsid", None)
    if getsid is None:  # Windows
        found: dict[int, psutil.Process] = {}
        for pid in sessions:
            try:
                leader = psutil.Process(pid)
                found[pid] = leader
                found.update((child.pid, child) for child in leader.children(recursive=True))
            except psutil.Error:
                continue
        return list(found.values())
    members = []
    for pid in psutil.pids():
        try:
            if getsid(pid) in sessions:
                members.append(psutil.Process(pid))
        except (OSError, psutil.Error):  # gone since the listing, or not ours to ask
            continue
    return members


def session_usage(sessions: set[int]) -> tuple[float, int, int]:
    """(CPU seconds, resident bytes, process count) of every process in ``sessions``.

    CPU seconds include the children's that were waited for (where the OS reports them, as Linux
    does), so the time of a child that ended between two samples is not lost: it moves into its
    parent's count.
    """
    import psutil

    seconds = 0.0
    rss = count = 0
    for proc in _members(sessions):
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                memory = proc.memory_info().rss
        except psutil.ZombieProcess:  # ended, not yet waited for: no time or memory of its own left
            count += 1
            continue
        except psutil.Error:
            continue
        seconds += times.user + times.system + getattr(times, "children_user", 0.0)
        seconds += getattr(times, "children_system", 0.0)
        rss += memory
        count += 1
    return seconds, rss, count


def gpu_usage(nvidia_smi: str, timeout: float = 10.0) -> list[tuple[int, float, float]] | None:
    """(index, utilisation %, memory used in MiB) of each GPU, or None when nvidia-smi fails."""
    try:
        out = subprocess.run(
            [nvidia_smi, "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            gpus.append((int(parts[0]), float(parts[1]), float(parts[2])))
        except ValueError:  # "[N/A]" on some boards: skip that GPU
            continue
    return gpus


class SystemMetrics(threading.Thread):
    """Samples the job's sessions every ``interval`` seconds and logs each sample."""

    def __init__(
        self,
        log_batch: Callable[[list[dict[str, Any]]], Any],
        sessions: Iterable[int],
        interval: float,
        *,
        nvidia_smi: str | None = None,
        cpus: int | None = None,
    ) -> None:
        super().__init__(name="shoal-system-metrics", daemon=True)
        self.log_batch = log_batch
        self.sessions = set(sessions)
        self.interval = interval
        self.nvidia_smi = nvidia_smi if nvidia_smi is not None else shutil.which("nvidia-smi")
        self.cpus = cpus or _cpu_count()
        self.stopped = threading.Event()
        self.step = 0
        self.logged = 0
        self.failures = 0
        self._gpu_failures = 0

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        try:
            prev_seconds, _, _ = session_usage(self.sessions)
        except Exception:  # noqa: BLE001 - psutil cannot see processes here: nothing to sample
            return
        prev_time = time.monotonic()
        while not self.stopped.wait(self.interval):
            try:
                seconds, rss, count = session_usage(self.sessions)
                now = time.monotonic()
                if count == 0:  # the job's processes are gone: the run is ending
                    return
                elapsed = max(now - prev_time, 1e-6)
                used = max(seconds - prev_seconds, 0.0)
                prev_seconds, prev_time = seconds, now
                values = {
                    "system/cpu_utilization_percentage": round(min(100.0, 100.0 * used / elapsed / self.cpus), 2),
                    "system/memory_usage_megabytes": round(rss / MB, 2),
                }
                values.update(self._gpus())
                self._log(values)
            except Exception:  # noqa: BLE001 - a sample that fails is dropped, never the job
                self.failures += 1

    def _gpus(self) -> dict[str, float]:
        if not self.nvidia_smi or self._gpu_failures >= 3:
            return {}
        gpus = gpu_usage(self.nvidia_smi, timeout=max(2.0, self.interval))
        if gpus is None:
            self._gpu_failures += 1  # three failures in a row: stop asking
            return {}
        self._gpu_failures = 0
        out: dict[str, float] = {}
        for index, util, mem_mib in gpus:
            out[f"system/gpu_{index}_utilization_percentage"] = util
            out[f"system/gpu_{index}_memory_usage_megabytes"] = round(mem_mib * MIB / MB, 2)
        return out

    def _log(self, values: dict[str, float]) -> None:
        stamp = int(time.time() * 1000)
        metrics = [{"key": k, "value": v, "timestamp": stamp, "step": self.step} for k, v in values.items()]
        self.step += 1
        try:
            self.log_batch(metrics)
            self.logged += 1
        except Exception:  # noqa: BLE001 - never fail the job for a metric
            self.failures += 1
