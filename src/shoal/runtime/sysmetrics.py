"""System metrics of a running job, logged as MLflow metrics of its run (``system/…``).

Every ``SHOAL_SYSTEM_METRICS_SECONDS`` (default 5; 0 or less turns sampling off) the sampler
reads ``/proc`` for the processes of the job's sessions (each rank starts its own session, and
its children stay in it) and, where ``nvidia-smi`` is on PATH, the GPUs. It logs:

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
from pathlib import Path
from typing import Any

PROC = Path("/proc")
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


def _ticks_per_second() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def _page_size() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4096


def session_usage(sessions: set[int], proc: Path = PROC) -> tuple[int, int, int]:
    """(CPU ticks, resident pages, process count) of every process in ``sessions``.

    CPU ticks include the children's that were waited for (``cutime``, ``cstime``), so the time of
    a child that ended between two samples is not lost: it moves into its parent's count.
    """
    ticks = pages = count = 0
    try:
        entries = os.listdir(proc)
    except OSError:
        return 0, 0, 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            raw = (proc / entry / "stat").read_bytes()
        except OSError:  # gone since the listing, or not ours to read
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) < 22:
            continue
        try:
            if int(fields[3]) not in sessions:  # field 6: session id
                continue
            ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])  # fields 14-17
            pages += int(fields[21])  # field 24: rss
        except ValueError:
            continue
        count += 1
    return ticks, pages, count


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
        proc: Path = PROC,
        cpus: int | None = None,
    ) -> None:
        super().__init__(name="shoal-system-metrics", daemon=True)
        self.log_batch = log_batch
        self.sessions = set(sessions)
        self.interval = interval
        self.nvidia_smi = nvidia_smi if nvidia_smi is not None else shutil.which("nvidia-smi")
        self.proc = proc
        self.cpus = cpus or _cpu_count()
        self.stopped = threading.Event()
        self.step = 0
        self.logged = 0
        self.failures = 0
        self._gpu_failures = 0
        self._hz = _ticks_per_second()
        self._page = _page_size()

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        try:
            prev_ticks, _, _ = session_usage(self.sessions, self.proc)
        except Exception:  # noqa: BLE001 - no /proc: nothing to sample
            return
        prev_time = time.monotonic()
        while not self.stopped.wait(self.interval):
            try:
                ticks, pages, count = session_usage(self.sessions, self.proc)
                now = time.monotonic()
                if count == 0:  # the job's processes are gone: the run is ending
                    return
                elapsed = max(now - prev_time, 1e-6)
                used = max(ticks - prev_ticks, 0) / self._hz
                prev_ticks, prev_time = ticks, now
                values = {
                    "system/cpu_utilization_percentage": round(min(100.0, 100.0 * used / elapsed / self.cpus), 2),
                    "system/memory_usage_megabytes": round(pages * self._page / MB, 2),
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
