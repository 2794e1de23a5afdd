"""Distributed jobs on Ray: ``resources.instance_count: N`` becomes N nodes (the server's side).

``RayBackend`` hands an attempt with ``nodes > 1`` to ``NodeGroups.start``, which makes:

- a **placement group** of N bundles, each one node's worth of the compute's ``size``, with the
  STRICT_SPREAD strategy (a different node per bundle), detached and named ``<actor name>#pg``;
- N **detached, named actors** (``shoal.compute.ray_group_node.GroupNodeHost``), actor K in
  bundle K: node 0's actor has the attempt's usual actor name (so everything ``RayBackend`` does
  with one actor, from polling and log copying to reattaching after a restart, works unchanged
  on it), node K's is ``<actor name>#K``.

The actors rendezvous among themselves through Ray (``ray_group_node``); the server only starts
them, stops them (``cancel``: every node's runner), and ends the group once node 0's runner has
ended or its actor is gone (``end``: the other nodes' runners and their processes, then the
placement group, which frees the nodes). Everything is found again by name, so a restarted
server ends the groups of the attempts it reattaches to.
"""

from __future__ import annotations

import threading
from typing import Any

from shoal.compute import ray_group_node
from shoal.compute.base import RunnerAttempt
from shoal.compute.sizes import NodeResources

# How long ``end`` lets the other nodes' runners stop before the placement group goes.
END_WAIT = 10.0


def pg_name(name: str) -> str:
    return name + "#pg"


def peer_name(name: str, node_rank: int) -> str:
    return name if node_rank == 0 else f"{name}#{node_rank}"


def ports_per_node(attempt: RunnerAttempt) -> int:
    """Free ports each node reserves: one (MASTER_PORT) plus one per TF task it may run."""
    return 2 + max(1, attempt.nodes)


class NodeGroups:
    def __init__(self, ray: Any, namespace: str) -> None:
        self.ray = ray
        self.namespace = namespace
        self._host = ray.remote(ray_group_node.GroupNodeHost)
        self._ending: set[str] = set()
        self._lock = threading.Lock()

    def start(
        self,
        name: str,
        attempt: RunnerAttempt,
        resources: NodeResources,
        options: dict[str, Any],
        env: dict[str, str],
        *,
        linger: float,
        scope: str,
    ) -> Any:
        """The placement group and one actor per node; returns node 0's actor."""
        ray = self.ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        nodes = attempt.nodes
        try:  # an attempt resubmitted after a failed start: never two groups of one name
            ray.util.remove_placement_group(ray.util.get_placement_group(pg_name(name)))
        except Exception:  # noqa: BLE001 - none: the usual case
            pass
        group = ray.util.placement_group(
            [resources.ray_bundle()] * nodes, strategy="STRICT_SPREAD", name=pg_name(name), lifetime="detached"
        )
        names = [peer_name(name, k) for k in range(nodes)]
        first = None
        for k in range(nodes):
            opts = {**options, "name": names[k]}
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=k
            )
            actor = self._host.options(**opts).remote(
                attempt.workspace,
                attempt.job,
                attempt.attempt,
                env,
                linger,
                scope,
                k,
                names,
                self.namespace,
                ports_per_node(attempt),
            )
            if k == 0:
                first = actor
        return first

    def size_of(self, name: str) -> int:
        """How many nodes the attempt's group has (0: no group, a one-node attempt)."""
        try:
            return int(self.ray.util.get_placement_group(pg_name(name)).bundle_count)
        except Exception:  # noqa: BLE001 - no such group
            return 0

    def peers(self, name: str) -> list[Any]:
        """The actors of nodes 1..N-1 that still exist (a lost node's is gone)."""
        found = []
        for k in range(1, self.size_of(name)):
            try:
                found.append(self.ray.get_actor(peer_name(name, k), namespace=self.namespace))
            except Exception:  # noqa: BLE001 - gone with its node, or already ended
                continue
        return found

    def cancel(self, name: str, force: bool) -> None:
        """Every other node's runner: SIGTERM (it stops its ranks), or SIGKILL and its ranks."""
        for actor in self.peers(name):
            try:
                actor.terminate.remote(force)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def end(self, name: str) -> None:
        """Node 0's runner ended (or its actor is gone): stop the other nodes and free them all.
        In a thread: the dispatcher's tick never waits on it."""
        with self._lock:
            if name in self._ending:
                return
            self._ending.add(name)
        threading.Thread(target=self._end, args=(name,), name="shoal-ray-group-end", daemon=True).start()

    def _end(self, name: str) -> None:
        ray = self.ray
        try:
            refs = []
            for actor in self.peers(name):
                try:
                    refs.append(actor.terminate.remote(True))
                except Exception:  # noqa: BLE001 - already gone
                    pass
            if refs:
                try:
                    ray.wait(refs, num_returns=len(refs), timeout=END_WAIT)
                except Exception:  # noqa: BLE001 - a lost node answers nothing
                    pass
            for actor in self.peers(name):
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            try:
                ray.util.remove_placement_group(ray.util.get_placement_group(pg_name(name)))
            except Exception:  # noqa: BLE001 - already removed
                pass
        finally:
            with self._lock:
                self._ending.discard(name)

    @staticmethod
    def unplaceable(nodes: int, need: NodeResources, live: list[dict[str, Any]]) -> str | None:
        """None when at least ``nodes`` live nodes can each hold one bundle, else why not."""
        fit = sum(1 for node in live if need.offered_by(node))
        if fit >= nodes:
            return None
        size = f" ({need.size})" if need.size else ""
        return f"no {nodes} Ray nodes each offer {need.describe()}{size}; the cluster has {fit}"
