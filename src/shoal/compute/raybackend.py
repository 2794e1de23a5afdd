"""The ``ray`` backend: each job attempt's runner runs on a node of a Ray cluster.

A one-node attempt reserves one node's worth of the compute's ``size`` (vCPUs, memory and GPUs,
from ``shoal.compute.sizes``) as a detached one-bundle placement group named after it, and the
*agent* of the node Ray places it on starts the same runner as the local backend there
(``shoal.compute.ray_agents``: one long-lived actor per node, so no Ray worker process is started
per job). A GPU size's attempt is instead a *detached, named* Ray actor of its own
(``shoal.compute.ray_node.RunnerHost``), which holds the GPUs and starts the runner: Ray gives GPU
ids to actors only. Either way the runner talks to the server over HTTP only, at
``advertise_url``, with its job token: it fetches its run spec, code snapshot and inputs, builds
its environment with uv on the node, and ships its logs and outputs, so no filesystem is shared
with the server.

The handle is ``ray:<attempt name>``; the name is made from this server's home and the attempt, so
a restarted server finds its placement groups, agents and actors again by name (they are detached:
they outlive their driver) and every backend call works from a handle alone. The runner's own
output (``runner.log`` on the node) is copied into ``logs_location`` on the server as ``poll`` and
``reap`` see it grow. Once a runner has exited and its log is copied, its share (placement group)
is removed or its actor finished at once, which frees the node's share; ``end_user_processes``
asks the agent of the node that ran it (its id is kept beside the log, ``ray_node``) to end what
the runner left behind.

A job with ``instance_count`` > 1 takes that many nodes: ``shoal.compute.ray_groups`` makes a
placement group and one actor per node, node 0's under the attempt's usual name, so the code here
treats it as the attempt's one actor; the group hooks below are marked ``# node group``.

Ray is imported when the backend is built (the ``shoal[ray]`` extra), never before: a server
without a Ray address never loads it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.compute import ray_node
from shoal.compute.base import AttemptKey, Capabilities, Handle, RunnerAttempt
from shoal.compute.ray_agents import NODE_FILE, PREFIX, AgentPath, NodeAgents, runner_env
from shoal.compute.ray_cluster import CapacityHint, ClusterWatch, describe_resources
from shoal.compute.ray_groups import NodeGroups
from shoal.compute.sizes import NodeResources
from shoal.errors import UnsupportedError

NAMESPACE = "shoal"
RUNNER_LOG = "runner.log"
# How long Ray's clients inside the server retry an unreachable head before Ray ends the whole
# process (Ray's default is 60 s): the server must outlive its cluster's head, so its driver
# retries for as long as the server runs; ``ClusterWatch`` decides when the head is lost.
GCS_RECONNECT_S = str(10 * 365 * 24 * 3600)
HEAD_LOST = "RAY_HEAD_LOST"
# How long a question to a running actor may wait for its runner to exit (see ``wake``).
LONG_POLL = 2.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UnsupportedError(
            "the ray compute backend needs Ray: pip install 'shoal[ray]'",
            details={"kind": "compute_backend", "name": "ray"},
        ) from exc
    return ray


@dataclass
class _Tracked:
    """What this server knows of one actor: where its log stands and whether its runner lives."""

    name: str
    key: AttemptKey
    actor: Any
    offset: int = 0
    pending: Any = None
    answered: bool = False
    alive: bool = True
    lost: str | None = None
    finishing: bool = False
    host: str | None = None
    node_id: str | None = None
    # The agent path (one-node attempts without GPUs): the attempt's share (a placement group),
    # Ray's answer to "is it placed?", and what the agent needs to start the runner once it is
    # (dropped then: it holds the job's token). ``actor`` is None until the runner is started.
    on_agent: bool = False
    bundle: NodeResources | None = None
    slot: Any = None
    placed: Any = None
    start: tuple[Any, ...] | None = None
    # A follower's (``follow``): the node its runner was started on, where its share should go.
    near: str | None = None
    # Its share went back when the runner reported its outcome (``outcome_reported``).
    share_back: bool = False


class RayBackend(AgentPath):
    name = "ray"
    # instance_count > 1: one runner per node, on separate nodes (ray_groups).
    capabilities = Capabilities(max_nodes=None, multi_node=True, survives_restart=True)

    def __init__(
        self,
        *,
        home: str | Path,
        address: str | None = None,
        advertise_url: str | None = None,
        ship_runtime: bool = True,
        linger: float = 600.0,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.address = address or os.environ.get("RAY_ADDRESS")
        self.advertise_url = advertise_url
        self.linger = linger
        self.ray = import_ray()
        # Actor names carry this home's tag: servers sharing a cluster never see each other's.
        self.tag = "shoal-" + hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        self._lock = threading.RLock()
        self._tracked: dict[str, _Tracked] = {}
        # Set by a server's dispatcher (its notify): then each running actor is asked a question
        # that it answers when its runner exits (or every LONG_POLL s), and an answer wakes the
        # dispatcher, so a finished runner's node is freed and the next job placed within
        # milliseconds instead of the next poll or two. Without it (the contract tests, a
        # backend of its own) ``poll`` asks and waits, as before.
        self.wake: Callable[[], None] | None = None
        # Why actors ended without their runner saying so (a lost node), by actor name.
        self._ended: dict[str, dict[str, str]] = {}
        # Shares of attempts canceled while the head was away: removed once it answers again.
        self._unreleased: set[str] = set()
        self._connect(ship_runtime)
        try:
            gcs = self.ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001 - Ray Client (ray://): the address given is what answers
            gcs = str(self.address).removeprefix("ray://")
        self.watch = ClusterWatch(self.ray, str(self.address or gcs), gcs)
        self._host_class = self.ray.remote(ray_node.RunnerHost)
        self._end_groups = self.ray.remote(num_cpus=0, max_retries=0)(ray_node.end_user_processes_at)
        self._node_groups = NodeGroups(self.ray, NAMESPACE)  # node group
        self.agents = NodeAgents(self.ray, NAMESPACE, self.tag, self.watch, linger=self.linger)
        # Attempts whose share Ray has just placed: started by this thread at once (Ray's own
        # callback threads must not make blocking calls), not at the dispatcher's next poll.
        self._placed: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._starter, name="shoal-ray-starter", daemon=True).start()
        self._adopt_existing()

    def _connect(self, ship_runtime: bool) -> None:
        if self.ray.is_initialized():
            return
        if not self.address:
            raise UnsupportedError(
                "the ray compute backend needs the cluster's address: shoal server start --ray-address …",
                details={"kind": "compute_backend", "name": "ray"},
            )
        # Read by Ray's core worker when ray.init starts it (see GCS_RECONNECT_S).
        os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", GCS_RECONNECT_S)
        runtime_env: dict[str, Any] = {}
        if ship_runtime:
            # The server's own Shoal code goes to every node with the actors (Ray caches it by
            # hash): runners run the server's version. Its dependencies must be on the nodes.
            runtime_env["py_modules"] = [str(Path(ray_node.__file__).resolve().parents[1])]
        self.ray.init(
            address=self.address,
            namespace=NAMESPACE,
            runtime_env=runtime_env or None,
            log_to_driver=False,
            logging_level="WARNING",
            configure_logging=False,
        )

    def _adopt_existing(self) -> None:
        """Actors of this home from before a restart: tracked, so their logs are copied and
        their actors finished once their runners end."""
        try:
            names = self.ray.util.list_named_actors(all_namespaces=False)
        except Exception:  # noqa: BLE001 - a cluster that cannot list them: poll finds each one
            return
        for name in [*names, *self.agents.slot_names()]:
            key = self._key_of(name)
            if key is not None:
                self._attach(name, key)

    # -- the contract ------------------------------------------------------------------------

    def submit(self, attempt: RunnerAttempt) -> Handle:
        if not self.watch.reachable():
            raise RuntimeError(self.watch.unreachable())
        name = self._name(attempt)
        resources = attempt.resources or NodeResources(size="", cpus=1, known=False)
        env = runner_env(attempt, self.advertise_url)
        options: dict[str, Any] = {
            "name": name,
            "namespace": NAMESPACE,
            "lifetime": "detached",
            "max_restarts": 0,
            "num_cpus": resources.cpus,
            "num_gpus": resources.gpus,
        }
        if resources.memory_gib:
            options["memory"] = resources.memory_bytes
        actor = None
        if attempt.nodes > 1 and attempt.argv is None:  # node group: one actor per node
            # (``argv``, the contract tests' stand-in for a runner, keeps one node: it is no runner.)
            actor = self._node_groups.start(name, attempt, resources, options, env, linger=self.linger, scope=self.tag)
        elif resources.gpus:
            # An actor of its own: Ray tells a GPU's ids (CUDA_VISIBLE_DEVICES) only to the actor
            # or task that holds it, never to a process an agent starts in a placement group.
            actor = self._host_class.options(**options).remote(
                attempt.workspace,
                attempt.job,
                attempt.attempt,
                env,
                list(attempt.argv) if attempt.argv is not None else None,
                self.linger,
                self.tag,
            )
        log = self.logs_location(attempt)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        tracked = _Tracked(name, attempt.key(), actor, offset=log.stat().st_size)
        if actor is None:
            # The agent path: reserve the node's share; the node's agent starts the runner once
            # Ray has placed it (``_place``).
            argv = list(attempt.argv) if attempt.argv is not None else None
            tracked.on_agent, tracked.bundle = True, resources
            spec = dict(attempt.run_spec) if attempt.run_spec is not None else None
            tracked.start = (attempt.workspace, attempt.job, attempt.attempt, env, argv, spec)
            tracked.slot = self.agents.reserve(name, resources)
            tracked.placed = tracked.slot.ready()
            with self._lock:
                self._tracked[name] = tracked
            self._when_placed(tracked)
            return PREFIX + name
        # The first question, answered once the actor runs: a poll meanwhile never waits on it.
        tracked.pending = actor.state.remote(tracked.offset)
        self._wake_on(tracked.pending)
        with self._lock:
            self._tracked[name] = tracked
        return PREFIX + name

    def _new_tracked(self, name: str, key: AttemptKey, actor: Any, offset: int) -> _Tracked:
        return _Tracked(name, key, actor, offset=offset)

    def poll(self, handle: Handle) -> bool:
        if not self.watch.reachable():
            return self._poll_headless(handle)
        tracked = self._find(handle)
        if tracked is None:
            return False
        # A running actor answers in milliseconds: wait for it (its runner may have just ended);
        # one still waiting for a node would not answer, so a tick never waits on it. A handle
        # from before a restart (never asked) gets a moment for the truth.
        if tracked.actor is None and tracked.start is not None:
            self._refresh(tracked, wait=0.0)  # still waiting for a node: never wait on it
        elif tracked.pending is None and not tracked.answered:
            self._refresh(tracked, wait=2.0)
        elif self.wake is not None:
            self._refresh(tracked, wait=0.0)  # an answer wakes the dispatcher: never wait for it
        else:
            self._refresh(tracked, wait=1.0 if tracked.answered else 0.0)
        return tracked.alive

    def cancel(self, handle: Handle, attempt: AttemptKey, *, force: bool = False) -> None:
        tracked = self._find(handle)
        if tracked is None or not tracked.alive:
            return
        if (not tracked.answered and force) or (tracked.on_agent and tracked.actor is None):
            self._kill(tracked)  # never started (still waiting for a node), or gone
            return
        try:
            # Node 0 first: its runner must know of the cancel before it hears the others stopped.
            tracked.actor.terminate.remote(force)
        except Exception:  # noqa: BLE001 - an actor already gone has nothing left to stop
            pass
        if self.watch.reachable():  # a lookup by name at the head: never while it is away
            self._node_groups.cancel(tracked.name, force)  # node group: every other node's runner too

    def end_user_processes(self, attempt: AttemptKey) -> None:
        """A task on the node that ran the attempt ends the process groups its runner recorded."""
        node_id = self._node_of(attempt)
        if node_id is None or not self.watch.reachable():
            return  # it never started on a node, or no task can be placed without the head
        if not any(n.get("NodeID") == node_id for n in self.watch.live_nodes()):
            return  # the node is gone, and its processes with it
        agent = self.agents.agent(node_id)
        try:
            self.ray.get(agent.end_user_processes.remote(attempt.workspace, attempt.job, attempt.attempt), timeout=30)
            return
        except Exception:  # noqa: BLE001 - the agent died: a task of its own does it
            self.agents.forget(node_id)
        strategy = self.ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id, soft=False)
        task = self._end_groups.options(scheduling_strategy=strategy)
        try:
            self.ray.get(task.remote(self.tag, attempt.workspace, attempt.job, attempt.attempt), timeout=30)
        except Exception:  # noqa: BLE001 - a lost node took its processes with it
            pass

    def reap(self) -> None:
        """Copies the logs of every runner this server knows of and finishes the actors of the
        runners that ended (``_refresh``), whether or not the dispatcher still polls them."""
        if not self.watch.reachable():
            if self.watch.head_lost():
                self._lose_all()
            return
        with self._lock:
            tracked = list(self._tracked.values())
            unreleased, self._unreleased = self._unreleased, set()
        for name in unreleased:
            self.agents.release(name)
        for entry in tracked:
            self._refresh(entry, wait=0.0)
            if not entry.alive and entry.pending is None:
                with self._lock:
                    self._tracked.pop(entry.name, None)

    def exit_reason(self, handle: Handle) -> dict[str, str] | None:
        if not str(handle).startswith(PREFIX):
            return None
        return self._ended.get(str(handle)[len(PREFIX) :])

    def logs_location(self, attempt: AttemptKey) -> Path:
        return self.home / "runs" / attempt.workspace / attempt.job / str(attempt.attempt) / RUNNER_LOG

    def unplaceable(self, attempt: RunnerAttempt) -> str | None:
        need = attempt.resources or NodeResources(size="", cpus=1, known=False)
        if not self.watch.reachable():
            return self.watch.unreachable()
        nodes = self.watch.live_nodes()
        if not nodes:
            return "the Ray cluster has no live nodes"
        if attempt.nodes > 1:  # node group: that many nodes, each holding one node's worth
            return NodeGroups.unplaceable(attempt.nodes, need, nodes)
        if any(need.offered_by(node) for node in nodes):
            return None
        return f"no Ray node offers {need.describe()}" + (f" ({need.size})" if need.size else "")

    # -- Ray specifics -----------------------------------------------------------------------

    def host_of(self, handle: Handle) -> str | None:
        """The host a handle's runner runs on, once it has answered."""
        tracked = self._find(handle)
        return tracked.host if tracked else None

    def _poll_headless(self, handle: Handle) -> bool:
        """``poll`` while the head does not answer: no Ray call (they would block). A runner
        counts as alive for the head's grace period, then as lost with its cluster's head."""
        if not str(handle).startswith(PREFIX):
            return False
        if not self.watch.head_lost():
            tracked = self._tracked.get(str(handle)[len(PREFIX) :])
            return tracked.alive if tracked is not None else True
        self._lose_all()
        name = str(handle)[len(PREFIX) :]
        if name not in self._ended:
            self._ended[name] = self._head_lost_error(None)
        return False

    def _lose_all(self) -> None:
        """The head is lost: every runner this server tracks is lost with it. Each actor is
        still asked to end its runner (a call straight to the actor's worker, not through the
        head), so a node that outlives its head does not keep running the job."""
        with self._lock:
            tracked, self._tracked = list(self._tracked.values()), {}
        for entry in tracked:
            if entry.alive:
                entry.alive, entry.lost = False, HEAD_LOST
                self._ended[entry.name] = self._head_lost_error(entry)
                try:
                    entry.actor.terminate.remote(True)
                except Exception:  # noqa: BLE001 - the actor went with its node
                    pass

    def _head_lost_error(self, tracked: _Tracked | None) -> dict[str, str]:
        where = f" (the runner ran on {tracked.host})" if tracked is not None and tracked.host else ""
        message = f"the Ray cluster's head at {self.watch.address} stopped answering for {self.watch.grace:g} s{where}"
        return {"code": HEAD_LOST, "message": message}

    def cluster_nodes(self) -> list[dict[str, Any]]:
        """The Ray nodes as last seen, each with the attempts of this server's runners on it
        (``shoal compute list-nodes``); read from the watcher's copy, never from the head."""
        reachable = self.watch.reachable()
        with self._lock:
            tracked = list(self._tracked.values())
        by_node: dict[str, list[AttemptKey]] = {}
        for entry in tracked:
            if entry.node_id and entry.alive:
                by_node.setdefault(entry.node_id, []).append(entry.key)
        nodes = []
        for node in self.watch.all_nodes():
            node_id = str(node.get("NodeID") or "")
            state = "running" if node.get("Alive") else "unusable"
            nodes.append(
                {
                    "node_id": node_id,
                    "private_ip_address": node.get("NodeManagerAddress"),
                    "port": node.get("NodeManagerPort"),
                    "host": node.get("NodeManagerHostname"),
                    "node_state": state if reachable else "unknown",
                    "resources": describe_resources(node.get("Resources") or {}),
                    "attempts": by_node.get(node_id, []),
                }
            )
        return nodes

    def close(self) -> None:
        """This server stops: its threads end. Agents, shares and runners live on (a restarted
        server finds them by name)."""
        self.agents.close()
        self.watch.close()

    def capacity_hints(self, hints: list[CapacityHint]) -> None:
        self.watch.hint(hints)

    def autoscaler_note(self, min_instances: int) -> str:
        return self.watch.autoscaler_note(min_instances)

    def _name(self, attempt: AttemptKey) -> str:
        return f"{self.tag}/{attempt.workspace}/{attempt.job}/{attempt.attempt}"

    def _key_of(self, name: str) -> AttemptKey | None:
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != self.tag or not parts[3].isdigit():
            return None
        return AttemptKey(parts[1], parts[2], int(parts[3]))

    def _find(self, handle: Handle) -> _Tracked | None:
        if not str(handle).startswith(PREFIX):
            return None
        name = str(handle)[len(PREFIX) :]
        with self._lock:
            tracked = self._tracked.get(name)
        if tracked is not None:
            return tracked
        key = self._key_of(name)
        if key is None or not self.watch.reachable():
            return None  # finding an actor by name asks the head: not while it is away
        return self._attach(name, key)

    def _attach(self, name: str, key: AttemptKey) -> _Tracked | None:
        slot = None
        try:
            actor = self.ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            # The agent path: the attempt's share, found by name (``_place`` finds its runner).
            actor, slot = None, self.agents.find_slot(name)
            if slot is None:
                return None  # no such actor or share (any more)
        log = self.logs_location(key)
        offset = log.stat().st_size if log.exists() else 0
        found = _Tracked(name, key, actor, offset=offset, on_agent=slot is not None, slot=slot)
        with self._lock:
            return self._tracked.setdefault(name, found)

    def _refresh(self, tracked: _Tracked, wait: float) -> None:
        """Ask the actor how its runner does (one question in flight at a time) and take in
        the answer where there is one: the runner's state and the next piece of its log."""
        ray = self.ray
        with self._lock:
            if not tracked.alive and tracked.pending is None:
                return
            if tracked.actor is None and not self._place(tracked, wait):
                return  # the agent path: its share not placed yet (or lost)
            if tracked.pending is None:
                long_poll = LONG_POLL if self.wake is not None and tracked.answered else 0.0
                tracked.pending = tracked.actor.state.remote(tracked.offset, long_poll)
                self._wake_on(tracked.pending)
            ready, _ = ray.wait([tracked.pending], timeout=wait)
            if not ready:
                return
            ref, tracked.pending = tracked.pending, None
            try:
                state = ray.get(ref)
            except ray.exceptions.ActorUnavailableError:
                # Unreachable for now (its node may be going away): ask again next time; Ray
                # says ActorDiedError once it has decided.
                return
            except Exception as exc:  # noqa: BLE001 - the actor is gone (its node, or killed)
                tracked.alive = False
                self._record_loss(tracked, exc)
                if tracked.on_agent:  # its node's agent died: free the share, a new agent next time
                    self.agents.forget(getattr(tracked.actor, "node_id", None))
                    self.agents.release(tracked.name, tracked.slot)
                else:
                    self._node_groups.end(tracked.name)  # node group: free the other nodes
                return
            if state.get("unknown"):
                # Its agent never heard of it: the agent died and was made anew, or a restart
                # found a share whose runner was never started.
                if tracked.answered:
                    self._lose_runner(tracked)
                else:
                    self._lose_unstarted(tracked)
                return
            if not tracked.answered:
                tracked.answered = True
                tracked.host = state["host"]
                tracked.node_id = state["node_id"]
                node_file = self.logs_location(tracked.key).parent / NODE_FILE
                node_file.parent.mkdir(parents=True, exist_ok=True)
                node_file.write_text(state["node_id"])
            if state["log"]:
                log = self.logs_location(tracked.key)
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "ab") as out:
                    out.write(state["log"])
                tracked.offset += len(state["log"])
            if state["more"]:
                return  # the next question fetches the rest before the runner counts as ended
            tracked.alive = state["alive"]
            if not tracked.alive:
                # Its log is all here: free the node's share now (the actor exits).
                self._finish(tracked)

    def _wake_on(self, ref: Any) -> None:
        wake = self.wake
        if wake is None:
            return
        try:
            ref.future().add_done_callback(lambda _done: wake())
        except Exception:  # noqa: BLE001 - then the next poll sees the answer
            pass

    def _record_loss(self, tracked: _Tracked, exc: BaseException) -> None:
        """Why an actor whose runner never said it ended is gone: its node, when that node is no
        longer alive (kept for ``exit_reason``, also after ``reap`` forgets the actor)."""
        node_id = self._node_of(tracked.key)
        dead_node = False
        if node_id and self.watch.reachable():
            try:
                dead_node = not any(n.get("NodeID") == node_id for n in self.ray.nodes() if n.get("Alive"))
            except Exception:  # noqa: BLE001 - a cluster we cannot ask: say what Ray said
                dead_node = False
        if dead_node:
            where = f"{tracked.host or 'unknown host'}, node id {node_id}"
            tracked.lost = "NODE_LOST"
            message = f"the Ray node running the job was lost ({where}): {_first_line(exc)}"
        else:
            tracked.lost = "RUNNER_LOST"
            message = f"the job's Ray actor ended: {_first_line(exc)}"
        self._ended[tracked.name] = {"code": tracked.lost, "message": message}
        while len(self._ended) > 1000:
            self._ended.pop(next(iter(self._ended)))

    def _node_of(self, key: AttemptKey) -> str | None:
        try:
            return (self.logs_location(key).parent / NODE_FILE).read_text().strip() or None
        except OSError:
            return None

    def _finish(self, tracked: _Tracked) -> None:
        if tracked.finishing:
            return
        tracked.finishing = True
        try:
            tracked.actor.finish.remote()
        except Exception:  # noqa: BLE001 - already gone
            pass
        if tracked.on_agent:
            if not tracked.share_back:
                self.agents.release(tracked.name, tracked.slot)  # the node's share, for the next job
            self._ask_again()
        else:
            self._node_groups.end(tracked.name)  # node group: the other nodes, then the placement group

    def _kill(self, tracked: _Tracked) -> None:
        if tracked.on_agent:
            with self._lock:
                tracked.alive = False
                self._tracked.pop(tracked.name, None)
            if self.watch.reachable():
                if tracked.actor is not None:
                    try:
                        tracked.actor.terminate.remote(True)
                    except Exception:  # noqa: BLE001 - already gone
                        pass
                self.agents.release(tracked.name, tracked.slot)
            else:
                self._unreleased.add(tracked.name)
            return
        try:
            if self.watch.reachable():
                self.ray.kill(tracked.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._node_groups.end(tracked.name)  # node group: never placed, or gone
        tracked.alive = False
        with self._lock:
            self._tracked.pop(tracked.name, None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
