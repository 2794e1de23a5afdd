"""What the server knows of its Ray cluster, learnt off the request and dispatcher paths: whether
the head (its GCS) answers, the nodes, whether the cluster has an autoscaler, and the capacity
hints (``min_instances``, ``idle_time_before_scale_down``) passed to it.

Why a watcher: Ray's calls that go through the GCS (``ray.nodes()``, ``ray.get_actor``, actor
deaths) block while the head is away, for as long as Ray keeps retrying. Two daemon threads
make those calls instead of a request or the dispatcher's tick: ``_probe`` opens a TCP
connection to the GCS port every ``PROBE_EVERY`` seconds (a dead head refuses it at once), and
``_refresh`` reads the node list and the autoscaler's status while the probe says the head is up.
Everyone else reads what they last found. A head that stays away ``grace`` seconds is *lost*:
the backend fails its running attempts (``RAY_HEAD_LOST``) and queued jobs wait, saying why.

Autoscaler: ``ray start --head`` always runs Ray's monitor, which without
``--autoscaling-config`` mirrors the nodes it sees as a *read-only* provider (each node its own
type, ``node_<node id>``) and never launches any. The cluster has an autoscaler when the
monitor's status (GCS key ``__autoscaling_status``) names a node type that is not such a mirror,
or when Ray's autoscaler v2 is enabled (KubeRay). Only then are hints sent, with
``ray.autoscaler.sdk.request_resources`` (one call holds the whole request: it replaces the last).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from shoal.compute.sizes import GIB, NodeResources

PROBE_EVERY = 0.5
REFRESH_EVERY = 1.0
AUTOSCALER_EVERY = 30.0
# How long the head may be unreachable before its jobs count as lost (SHOAL_RAY_HEAD_GRACE).
HEAD_GRACE = 10.0
_MIRROR_TYPE = re.compile(r"^node_[0-9a-f]{32,}$")
NO_AUTOSCALER = "none"


@dataclass(frozen=True)
class CapacityHint:
    """One ``amlcompute``'s wishes: ``min_instances`` nodes of ``resources`` always, and nodes
    it used kept ``idle_seconds`` after its jobs end (``idle_time_before_scale_down``)."""

    compute: str
    resources: NodeResources
    min_instances: int
    idle_seconds: float
    busy: int = 0


class Holds:
    """How many nodes each compute asks the autoscaler to keep: ``min_instances``, or more while
    its jobs hold more, and for ``idle_seconds`` after they stop (Azure's scale-down delay)."""

    def __init__(self) -> None:
        self._peak: dict[str, tuple[int, float]] = {}  # compute -> (nodes, held until)

    def wanted(self, hint: CapacityHint, now: float) -> int:
        peak, until = self._peak.get(hint.compute, (0, 0.0))
        if hint.busy >= peak or now >= until:
            # Busy as much as ever (or the hold ran out): hold this many from now on.
            peak, until = hint.busy, now + hint.idle_seconds
        self._peak[hint.compute] = (peak, until)
        return max(hint.min_instances, peak)

    def bundles(self, hints: list[CapacityHint], now: float | None = None) -> list[dict[str, float]]:
        """The bundles one ``request_resources`` call asks for, for every compute at once."""
        now = time.monotonic() if now is None else now
        out: list[dict[str, float]] = []
        for hint in sorted(hints, key=lambda h: h.compute):
            out += [hint.resources.ray_bundle()] * self.wanted(hint, now)
        return out


def has_autoscaler(status_json: bytes | str | None) -> bool:
    """Whether the monitor's status names a node type that is not a read-only mirror of a node."""
    if not status_json:
        return False
    try:
        report = json.loads(status_json).get("autoscaler_report") or {}
    except (ValueError, AttributeError):
        return False
    types = set(report.get("active_nodes") or {}) | set(report.get("idle_nodes") or {})
    types |= set(report.get("pending_launches") or {})
    types |= {str(t) for t in (report.get("node_type_mapping") or {}).values()}
    return any(not _MIRROR_TYPE.match(t) for t in types)


class ClusterWatch:
    def __init__(self, ray: Any, address: str, gcs_address: str, *, grace: float | None = None) -> None:
        self.ray = ray
        self.address = address
        host, _, port = gcs_address.rpartition(":")
        self._gcs = (host or "127.0.0.1", int(port))
        self.grace = float(os.environ.get("SHOAL_RAY_HEAD_GRACE") or HEAD_GRACE) if grace is None else grace
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.nodes: list[dict[str, Any]] = []
        self.nodes_at = 0.0
        self.autoscaler: str = NO_AUTOSCALER
        self._autoscaler_at = -AUTOSCALER_EVERY
        self._hints: list[CapacityHint] = []
        self._holds = Holds()
        self.requested: list[dict[str, float]] | None = None  # what request_resources last got
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._read_cluster()  # the first answers now: the dispatcher's first tick needs them
        for target, name in ((self._probe, "shoal-ray-probe"), (self._refresh, "shoal-ray-nodes")):
            threading.Thread(target=target, name=name, daemon=True).start()

    # -- what others read --------------------------------------------------------------------

    def reachable(self) -> bool:
        return self.down_since is None

    def head_lost(self) -> bool:
        since = self.down_since
        return since is not None and time.monotonic() - since >= self.grace

    def unreachable(self) -> str:
        since = self.down_since
        away = f" for {time.monotonic() - since:.0f} s" if since is not None else ""
        return f"cannot reach the Ray cluster at {self.address} (its head does not answer{away})"

    def live_nodes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [n for n in self.nodes if n.get("Alive")]

    def all_nodes(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.nodes)

    def hint(self, hints: list[CapacityHint]) -> None:
        """The computes' capacity wishes, sent to the autoscaler (if any) by the watcher thread."""
        with self._lock:
            self._hints = list(hints)
        self._wake.set()

    def autoscaler_note(self, min_instances: int) -> str:
        """What ``compute show`` says of a cluster's capacity hints."""
        if self.autoscaler == NO_AUTOSCALER:
            return "none (min_instances and idle_time_before_scale_down recorded)"
        return f"{self.autoscaler} (requested: min_instances {min_instances} of this size)"

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    # -- the threads -------------------------------------------------------------------------

    def _probe(self) -> None:
        while not self._stop.wait(PROBE_EVERY):
            try:
                with socket.create_connection(self._gcs, timeout=2.0):
                    pass
                up = True
            except OSError:
                up = False
            if up:
                self.down_since = None
            elif self.down_since is None:
                self.down_since = time.monotonic()

    def _refresh(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(REFRESH_EVERY)
            self._wake.clear()
            if self._stop.is_set() or not self.reachable():
                continue
            self._read_cluster()

    def _read_cluster(self) -> None:
        try:
            nodes = self.ray.nodes()
        except Exception:  # noqa: BLE001 - the probe says whether the head is away
            return
        with self._lock:
            self.nodes, self.nodes_at = nodes, time.monotonic()
        if time.monotonic() - self._autoscaler_at >= AUTOSCALER_EVERY:
            self._autoscaler_at = time.monotonic()
            self.autoscaler = self._find_autoscaler()
        self._send_hints()

    def _find_autoscaler(self) -> str:
        try:
            from ray.autoscaler.v2.utils import is_autoscaler_v2

            if is_autoscaler_v2(fetch_from_server=True):
                return "Ray autoscaler v2"
        except Exception:  # noqa: BLE001 - an older Ray, or no answer: look at v1's status
            pass
        try:
            from ray._private.ray_constants import DEBUG_AUTOSCALING_STATUS
            from ray.experimental.internal_kv import _internal_kv_get

            status = _internal_kv_get(DEBUG_AUTOSCALING_STATUS)
        except Exception:  # noqa: BLE001 - no status: no autoscaler we can talk to
            return NO_AUTOSCALER
        return "Ray autoscaler" if has_autoscaler(status) else NO_AUTOSCALER

    def _send_hints(self) -> None:
        with self._lock:
            hints = list(self._hints)
        bundles = self._holds.bundles(hints)
        if self.autoscaler == NO_AUTOSCALER or bundles == self.requested:
            return
        try:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=bundles)
            self.requested = bundles
        except Exception:  # noqa: BLE001 - tried again on the next refresh
            pass


def describe_resources(resources: dict[str, Any]) -> dict[str, float]:
    """A Ray node's resources as ``list-nodes`` shows them: CPUs, memory in GiB, GPUs."""
    return {
        "cpus": float(resources.get("CPU", 0)),
        "memory_gib": round(float(resources.get("memory", 0)) / GIB, 2),
        "gpus": float(resources.get("GPU", 0)),
    }
