"""What the supervisor and the router share about running deployments: each deployment's pool
of instances (this server's processes, or another server's addresses), its request metrics, and
the router's in-memory view of an endpoint."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from shoal.compute import serving
from shoal.entities.endpoint import ProbeSettings
from shoal.services.endpoints import instance_files

Key = tuple[str, str, str]  # workspace, endpoint, deployment


class Metrics:
    """The router's request counts and latencies of one deployment (in memory, since start)."""

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.mirrored = 0
        self.by_status: dict[int, int] = {}
        self.latencies: deque[float] = deque(maxlen=4096)

    def record(self, status: int, seconds: float, *, mirror: bool = False) -> None:
        if mirror:
            self.mirrored += 1
            return
        self.count += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status >= 400:
            self.errors += 1
        self.latencies.append(seconds)

    def snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3) if ordered else None

        return {
            "request_count": self.count,
            "error_count": self.errors,
            "mirrored_count": self.mirrored,
            "status_counts": {str(k): v for k, v in sorted(self.by_status.items())},
            "latency_p50_ms": pct(0.5),
            "latency_p99_ms": pct(0.99),
        }


@dataclass
class Instance:
    """A scoring process: this server's (``process``), or another server's, known by the address
    it published (``process`` None; ``remote_port``)."""

    process: serving.InstanceProcess | None
    ready: bool = False
    inflight: int = 0
    restarts: int = 0
    liveness_failures: int = 0
    next_probe: float = 0.0
    host: str = "127.0.0.1"
    remote_port: int | None = None
    remote_pid: int | None = None
    index: int = 0

    @property
    def port(self) -> int | None:
        return self.process.read_port() if self.process is not None else self.remote_port

    def alive(self) -> bool:
        return self.process.alive() if self.process is not None else True


@dataclass
class Pool:
    """One generation of a deployment: its files and its instances (``files`` None: the instances
    of another server, the endpoints duty's holder)."""

    generation: int
    files: instance_files.InstanceFiles | None
    instances: list[Instance]
    env: dict[str, str]
    request_settings: dict[str, Any]
    liveness: ProbeSettings
    served_by: str | None = None


@dataclass
class Deployment:
    key: Key
    pool: Pool | None = None
    wanted: int = 0  # the newest generation asked for; older rollouts give way
    metrics: Metrics = field(default_factory=Metrics)
    lock: threading.Lock = field(default_factory=threading.Lock)
    row_id: int | None = None  # the stored row it runs (a deployment deleted and made again is another)
    published: list[dict[str, Any]] | None = None  # the instance addresses last stored


@dataclass
class EndpointView:
    """What the router needs of an endpoint, without a database read per request."""

    auth_mode: str
    keys: dict[str, str]
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
