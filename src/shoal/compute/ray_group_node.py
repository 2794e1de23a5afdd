"""What runs on each Ray node of a distributed job (``instance_count`` > 1): one ``GroupNodeHost``
actor per node, each in its own bundle of the job's STRICT_SPREAD placement group.

Every actor starts a runner on its node: node 0 the job's normal runner (it reports states and
uploads outputs and artifacts), node K > 0 ``python -m shoal.runtime.node_runner … --node-rank K``,
which runs that node's ranks, ships their logs and uploads what they wrote into the job's outputs
before it exits (node 0 waits for that). The runners know nothing of Ray; what they need
from the other nodes goes through files in their run folder, written by their actor:

- ``group.json`` (every node): the rendezvous, each node's address and the free ports it
  reserved, in node order. Each actor asks every peer actor for its ``address`` in a thread (the
  actors are named; the placement group places them all at once) and writes the table once it
  has all of it; the runner waits for it before it starts its ranks.
- ``peers.json`` (node 0): how the other nodes' runners do, as node 0's actor sees them every
  half second: their exit code and ``node_result.json`` once ended, or that the actor (the node)
  was lost. Node 0's runner stops its own ranks when a peer fails and waits for them all before
  it reports the job's outcome.
- ``node_result.json`` (node K > 0): written by node K's runner before it exits: its exit code,
  the rank that failed and why.

The file names are shared with ``shoal.runtime.node_group`` (the runner's side).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shoal.compute.ray_node import RunnerHost

GROUP_FILE = "group.json"
PEERS_FILE = "peers.json"
RESULT_FILE = "node_result.json"
# How long the rendezvous may take: every actor of a placement group starts together, so this
# only runs out when a node went away while the others were starting.
RENDEZVOUS_SECONDS = 300.0
WATCH_SECONDS = 0.5


def _write_json(path: Path, data: Any) -> None:
    """Atomically: a runner reading it never sees half a table."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _reserve_ports(ip: str, count: int) -> list[int]:
    """Free ports on this node for its ranks (node 0's first is MASTER_PORT; TF tasks one each)."""
    ports: list[int] = []
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            try:
                s.bind((ip, 0))
            except OSError:
                s.bind(("", 0))
            socks.append(s)
            ports.append(int(s.getsockname()[1]))
    finally:
        for s in socks:
            s.close()
    return ports


class GroupNodeHost(RunnerHost):
    """One node of a distributed job: holds its bundle, starts its runner, takes part in the
    rendezvous, and (node 0) watches the other nodes' runners."""

    def __init__(
        self,
        workspace: str,
        job: str,
        attempt: int,
        env: dict[str, str],
        linger: float,
        scope: str,
        node_rank: int,
        names: list[str],
        namespace: str,
        ports: int,
    ) -> None:
        import ray

        self.node_rank, self.names, self.namespace = node_rank, list(names), namespace
        self.ip = ray.util.get_node_ip_address()
        self.ports = _reserve_ports(self.ip, max(1, ports))
        env = {**env, "SHOAL_NODE_RANK": str(node_rank), "SHOAL_NODE_COUNT": str(len(names))}
        argv = None
        if node_rank:
            argv = [sys.executable, "-m", "shoal.runtime.node_runner", "--workspace", workspace, "--job", job]
            argv += ["--attempt", str(attempt), "--node-rank", str(node_rank)]
        super().__init__(workspace, job, attempt, env, argv, linger, scope)
        self._closing = threading.Event()
        threading.Thread(target=self._rendezvous, name="shoal-rendezvous", daemon=True).start()

    # -- asked by the peers and the server ----------------------------------------------------

    def address(self) -> dict[str, Any]:
        return {
            "node_rank": self.node_rank,
            "ip": self.ip,
            "ports": self.ports,
            "host": socket.gethostname(),
            "node_id": self.node_id,
        }

    def node_status(self) -> dict[str, Any]:
        """How this node's runner does: alive, its exit code, and what it wrote of its ranks."""
        code = self.proc.poll()
        result = None
        if code is not None:
            with contextlib.suppress(OSError, ValueError):
                result = json.loads((self.run_dir / RESULT_FILE).read_text())
        return {**self.address(), "alive": code is None, "exit_code": code, "result": result}

    # -- threads ------------------------------------------------------------------------------

    def _rendezvous(self) -> None:
        import ray

        table: list[dict[str, Any] | None] = [None] * len(self.names)
        table[self.node_rank] = self.address()
        deadline = time.monotonic() + RENDEZVOUS_SECONDS
        while any(entry is None for entry in table) and time.monotonic() < deadline:
            for k, name in enumerate(self.names):
                if table[k] is not None:
                    continue
                try:
                    peer = ray.get_actor(name, namespace=self.namespace)
                    table[k] = ray.get(peer.address.remote(), timeout=10)
                except Exception:  # noqa: BLE001 - not there yet (or going away): asked again
                    continue
            if any(entry is None for entry in table):
                time.sleep(0.2)
        if any(entry is None for entry in table):
            missing = [k for k, entry in enumerate(table) if entry is None]
            _write_json(self.run_dir / GROUP_FILE, {"error": f"nodes {missing} never answered the rendezvous"})
            return
        _write_json(self.run_dir / GROUP_FILE, {"nodes": table})
        if self.node_rank == 0:
            self._watch_peers()

    def _watch_peers(self) -> None:
        """Node 0: the other nodes' runners as ``peers.json``, until they have all ended."""
        import ray

        peers: dict[str, dict[str, Any]] = {}
        handles: dict[int, Any] = {}
        for k, name in enumerate(self.names):
            if k:
                with contextlib.suppress(Exception):
                    handles[k] = ray.get_actor(name, namespace=self.namespace)
        while not self._closing.is_set():
            for k in range(1, len(self.names)):
                entry = peers.get(str(k))
                if entry is not None and (entry.get("lost") or not entry.get("alive")):
                    continue  # it has ended: nothing more to learn
                handle = handles.get(k)
                if handle is None:
                    peers[str(k)] = {"node_rank": k, "alive": False, "lost": "its actor is gone"}
                    continue
                try:
                    peers[str(k)] = ray.get(handle.node_status.remote(), timeout=10)
                except ray.exceptions.ActorUnavailableError:
                    continue  # unreachable for now: Ray says ActorDiedError once it has decided
                except ray.exceptions.GetTimeoutError:
                    continue
                except Exception as exc:  # noqa: BLE001 - the actor died: its node, or killed
                    last = entry or {}
                    peers[str(k)] = {
                        "node_rank": k,
                        "alive": False,
                        "host": last.get("host"),
                        "node_id": last.get("node_id"),
                        "lost": _first_line(exc),
                        "node_dead": _node_dead(ray, last.get("node_id")),
                    }
            _write_json(self.run_dir / PEERS_FILE, peers)
            if all(not p.get("alive") or p.get("lost") for p in peers.values()) and len(peers) == len(self.names) - 1:
                return
            self._closing.wait(WATCH_SECONDS)

    def finish(self) -> None:
        self._closing.set()
        super().finish()


def _node_dead(ray: Any, node_id: str | None) -> bool:
    if not node_id:
        return False
    try:
        return not any(n.get("NodeID") == node_id for n in ray.nodes() if n.get("Alive"))
    except Exception:  # noqa: BLE001 - a cluster we cannot ask: do not claim the node died
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
