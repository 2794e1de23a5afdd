"""One node of a distributed job that spans several Ray nodes (the runner's side).

The Ray backend starts a runner on each of the job's N nodes with ``SHOAL_NODE_RANK`` and
``SHOAL_NODE_COUNT`` set (``shoal.compute.ray_group_node``); the runner never talks to Ray. Its
node's actor writes, in the run folder:

- ``group.json``: every node's address and reserved ports, in node order (the rendezvous). The
  runner waits for it, then plans the ranks of its own node with Azure ML's variables:
  ``MASTER_ADDR`` = node 0's address, ``MASTER_PORT`` = its first port, global ``RANK``,
  ``NODE_RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` (pytorch); the
  ``OMPI_COMM_WORLD_*`` set (mpi); ``TF_CONFIG`` with every task's real ``host:port``
  (tensorflow: task ``t`` of ``T`` runs on node ``t * N // T``).
- ``peers.json`` (node 0 only): the other nodes' runners as node 0's actor sees them. Node 0's
  runner stops its ranks when a peer fails and, once its own ranks have ended, waits for every
  peer before the job's outcome is reported (``settle``), so a job completes only when all its
  ranks did and fails naming the node and rank that failed first.

Node K > 0's runner (``shoal.runtime.node_runner``) writes ``node_result.json`` before it exits.
The file names are ``shoal.compute.ray_group_node``'s.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from shoal.runtime.process import Rank, UserProcesses, rank_environment

GROUP_FILE = "group.json"
PEERS_FILE = "peers.json"
RESULT_FILE = "node_result.json"
RENDEZVOUS_SECONDS = 600.0
# After a rank of this node failed: how long to look for an earlier failure on another node
# (a rank whose peer died fails too, but the peer's is the job's error).
PEER_GRACE = 3.0


class GroupFailed(Exception):
    """The job's error, from whichever node failed: ``code`` and ``message`` as the job shows them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class NodeGroup:
    def __init__(self, run_dir: Path, node_rank: int, nodes: int) -> None:
        self.run_dir, self.node_rank, self.nodes = run_dir, node_rank, nodes
        self.table: list[dict[str, Any]] = []
        self.local: list[int] = []  # the global rank of each of this node's processes

    @classmethod
    def from_env(cls, run_dir: Path) -> NodeGroup | None:
        """This runner's node of a group, or None for a job on one node."""
        nodes = int(os.environ.get("SHOAL_NODE_COUNT") or 1)
        if nodes <= 1:
            return None
        return cls(run_dir, int(os.environ.get("SHOAL_NODE_RANK") or 0), nodes)

    def describe(self, node_rank: int, entry: dict[str, Any] | None = None) -> str:
        entry = entry or (self.table[node_rank] if node_rank < len(self.table) else {})
        where = [f"host {entry['host']}"] if entry.get("host") else []
        if entry.get("node_id"):
            where.append(f"Ray node id {entry['node_id']}")
        return f"node {node_rank}" + (f" ({', '.join(where)})" if where else "")

    # -- rendezvous and ranks -----------------------------------------------------------------

    def wait_table(self, cancel: threading.Event) -> bool:
        """Waits for the rendezvous; False when canceled meanwhile."""
        deadline = time.monotonic() + RENDEZVOUS_SECONDS
        while not cancel.is_set():
            data = _read_json(self.run_dir / GROUP_FILE)
            if data is not None:
                if data.get("error"):
                    raise GroupFailed("RENDEZVOUS_FAILED", f"the job's nodes could not meet: {data['error']}")
                self.table = data["nodes"]
                return True
            if time.monotonic() > deadline:
                raise GroupFailed("RENDEZVOUS_FAILED", f"the job's nodes did not meet within {RENDEZVOUS_SECONDS:g} s")
            cancel.wait(0.1)
        return False

    def plan(self, distribution: dict[str, Any] | None, logs: Path, cancel: threading.Event) -> list[Rank]:
        """This node's processes (none when canceled while waiting for the other nodes)."""
        if not self.wait_table(cancel):
            return []
        kind = (distribution or {}).get("type")
        ranks: list[Rank] = []
        if not kind:
            # No distribution: the command runs once, on node 0 (as on one host).
            return [Rank({}, logs / "std_log.txt")] if self.node_rank == 0 else []
        if kind in ("pytorch", "mpi"):
            per_node = max(1, int(distribution.get("process_count_per_instance") or 1))  # type: ignore[union-attr]
            world = self.nodes * per_node
            master = self.table[0]
            address = (str(master["ip"]), str(master["ports"][0]))
            for local in range(per_node):
                rank = self.node_rank * per_node + local
                env = rank_environment(kind, rank, per_node, world, address)
                self.local.append(rank)
                ranks.append(Rank(env, logs / f"std_log_process_{rank}.txt"))
            return ranks
        if kind == "tensorflow":
            return self._plan_tensorflow(distribution or {}, logs)
        raise ValueError(f"distribution type {kind!r} is not supported on several nodes")

    def _plan_tensorflow(self, distribution: dict[str, Any], logs: Path) -> list[Rank]:
        workers = int(distribution.get("worker_count") or self.nodes)
        servers = int(distribution.get("parameter_server_count") or 0)
        tasks = [("worker", i) for i in range(workers)] + [("ps", i) for i in range(servers)]
        used = [0] * self.nodes
        cluster: dict[str, list[str]] = {"worker": []}
        if servers:
            cluster["ps"] = []
        placed = []
        for t, (role, _) in enumerate(tasks):
            node = t * self.nodes // len(tasks)
            entry = self.table[node]
            used[node] += 1
            if used[node] >= len(entry["ports"]):
                raise ValueError(f"too many tensorflow tasks on one node ({used[node]}): use more instances")
            cluster[role].append(f"{entry['ip']}:{entry['ports'][used[node]]}")
            placed.append(node)
        ranks = []
        for t, (role, index) in enumerate(tasks):
            if placed[t] != self.node_rank:
                continue
            config = {"cluster": cluster, "task": {"type": role, "index": index}, "environment": "cloud"}
            self.local.append(t)
            ranks.append(Rank({"TF_CONFIG": json.dumps(config)}, logs / f"std_log_process_{t}.txt"))
        return ranks

    def failed_rank(self, procs: UserProcesses) -> int | None:
        """The global rank of this node's first process that failed by itself (not stopped)."""
        codes = [p.returncode for p in procs.procs]
        for index, code in enumerate(codes):
            if code not in (None, 0, -15, -9):
                return self.local[index]
        return next((self.local[i] for i, c in enumerate(codes) if c not in (None, 0)), None)

    # -- node 0: the other nodes ----------------------------------------------------------------

    def peers(self) -> dict[str, dict[str, Any]]:
        return _read_json(self.run_dir / PEERS_FILE) or {}

    def peer_failure(self) -> GroupFailed | None:
        """The first failure among the other nodes, as the job's error."""
        for key in sorted(self.peers(), key=int):
            entry = self.peers()[key]
            error = self._peer_error(int(key), entry)
            if error is not None:
                return error
        return None

    def _peer_error(self, k: int, entry: dict[str, Any]) -> GroupFailed | None:
        where = self.describe(k, entry)
        if entry.get("lost"):
            if entry.get("node_dead"):
                return GroupFailed("NODE_LOST", f"{where} of the job was lost: {entry['lost']}")
            return GroupFailed("RUNNER_LOST", f"the Ray actor of {where} ended: {entry['lost']}")
        if entry.get("alive") or entry.get("exit_code") in (None, 0):
            return None
        result = entry.get("result") or {}
        if result.get("error"):
            error = result["error"]
            return GroupFailed(error.get("code") or "RUNNER_ERROR", f"{where}: {error.get('message')}")
        if result.get("rank") is not None:
            code = result.get("exit_code", entry["exit_code"])
            return GroupFailed("USER_ERROR", f"rank {result['rank']} on {where} exited with code {code}")
        return GroupFailed("RUNNER_ERROR", f"the runner of {where} exited with code {entry['exit_code']}")

    def watch(self, procs: UserProcesses) -> None:
        """Stops this node's ranks as soon as another node fails (its peers would hang)."""

        def loop() -> None:
            while any(p.poll() is None for p in procs.procs):
                failure = self.peer_failure()
                if failure is not None:
                    procs.stop("another node failed")
                    return
                time.sleep(0.2)

        threading.Thread(target=loop, name="shoal-peer-watch", daemon=True).start()

    def settle(self, exit_code: int, procs: UserProcesses, cancel: threading.Event) -> None:
        """After this node's ranks ended: raises the job's error when any node failed; returns
        when every node's ranks succeeded, or when canceled meanwhile."""
        if exit_code != 0 and procs.stop_reason != "another node failed":
            deadline = time.monotonic() + PEER_GRACE
            while time.monotonic() < deadline and not cancel.is_set():
                failure = self.peer_failure()
                if failure is not None:
                    raise failure
                time.sleep(0.2)
            rank = self.failed_rank(procs)
            what = f"rank {rank} on {self.describe(0)}" if rank is not None else self.describe(0)
            raise GroupFailed("USER_ERROR", f"{what} exited with code {exit_code}")
        while not cancel.is_set():
            failure = self.peer_failure()
            if failure is not None:
                raise failure
            peers = self.peers()
            if len(peers) == self.nodes - 1 and not any(p.get("alive") for p in peers.values()):
                return
            time.sleep(0.2)
