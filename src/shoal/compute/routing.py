"""Several backends behind the one contract: which engine runs a job is the server's choice.

A server started with a Ray address (``shoal server start --ray-address …``) runs the jobs of
compute clusters (``amlcompute``, ``kubernetes``) on Ray and everything else (``local``,
``serverless``, compute instances) on this machine. ``RoutedBackend`` picks the backend by the
attempt's ``compute_type`` when it starts a runner, and by the handle's ``<name>:`` prefix
afterwards (a bare pid is the default backend's, as handles were before prefixes), so a job keeps
the backend that started it even if the server's configuration changes between restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shoal.compute.base import AttemptKey, Capabilities, ComputeBackend, Handle, RunnerAttempt

# The compute types a cluster engine runs when the server has one.
CLUSTER_COMPUTE_TYPES = ("amlcompute", "kubernetes")


class RoutedBackend:
    name = "routed"

    def __init__(self, *, default: ComputeBackend, by_type: Mapping[str, ComputeBackend]) -> None:
        self.default = default
        self.by_type = dict(by_type)
        self.by_name = {b.name: b for b in (default, *self.by_type.values())}
        caps = [b.capabilities for b in self.by_name.values()]
        maxes = [c.max_nodes for c in caps]
        self.capabilities = Capabilities(
            max_nodes=None if None in maxes else max(m for m in maxes if m is not None),
            multi_node=any(c.multi_node for c in caps),
            survives_restart=all(c.survives_restart for c in caps),
        )

    def backend_for(self, attempt: RunnerAttempt) -> ComputeBackend:
        return self.by_type.get(attempt.compute_type or "", self.default)

    def _by_handle(self, handle: Handle) -> ComputeBackend:
        prefix, sep, _ = str(handle).partition(":")
        return self.by_name.get(prefix, self.default) if sep else self.default

    def submit(self, attempt: RunnerAttempt) -> Handle:
        return self.backend_for(attempt).submit(attempt)

    def followable(self, handle: Handle) -> bool:
        followable = getattr(self._by_handle(handle), "followable", None)
        return bool(followable(handle)) if followable is not None else False

    def follow(self, attempt: RunnerAttempt, before: Handle) -> Handle | None:
        """``before``'s backend starts ``attempt`` on its node (see ``RayBackend.follow``)."""
        backend = self._by_handle(before)
        follow = getattr(backend, "follow", None)
        if follow is None or backend is not self.backend_for(attempt):
            return None
        return follow(attempt, before)  # type: ignore[no-any-return]

    def outcome_reported(self, handle: Handle) -> None:
        reported = getattr(self._by_handle(handle), "outcome_reported", None)
        if reported is not None:
            reported(handle)

    def poll(self, handle: Handle) -> bool:
        return self._by_handle(handle).poll(handle)

    def cancel(self, handle: Handle, attempt: AttemptKey, *, force: bool = False) -> None:
        self._by_handle(handle).cancel(handle, attempt, force=force)

    def end_user_processes(self, attempt: AttemptKey) -> None:
        # The key does not say which backend ran it: each ends what it finds of that attempt.
        for backend in self.by_name.values():
            backend.end_user_processes(attempt)

    def reap(self) -> None:
        for backend in self.by_name.values():
            backend.reap()

    def logs_location(self, attempt: AttemptKey) -> Path:
        # Every backend keeps the runner's log at the same place under the server's home.
        return self.default.logs_location(attempt)

    def exit_reason(self, handle: Handle) -> dict[str, str] | None:
        return self._by_handle(handle).exit_reason(handle)

    def unplaceable(self, attempt: RunnerAttempt) -> str | None:
        return self.backend_for(attempt).unplaceable(attempt)

    def warm_up(self, timeout: float = 0.0) -> bool:
        """The default backend's warm runner (``LocalBackend.warm_up``), where it has one."""
        warm_up = getattr(self.default, "warm_up", None)
        return bool(warm_up(timeout)) if warm_up is not None else False

    def close(self) -> None:
        """Each backend's ``close``, where it has one (the local backend's warm runner, Ray's threads)."""
        for backend in self.by_name.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()


def cluster_engine(backend: Any) -> Any | None:
    """The backend that runs compute clusters on a cluster engine (Ray), where the server has
    one: what ``list-nodes``, ``compute show`` and the capacity hints talk to (its
    ``cluster_nodes``, ``autoscaler_note``, ``capacity_hints``)."""
    if hasattr(backend, "cluster_nodes"):
        return backend
    for member in getattr(backend, "by_name", {}).values():
        if hasattr(member, "cluster_nodes"):
            return member
    return None
