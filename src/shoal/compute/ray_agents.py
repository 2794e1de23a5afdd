"""One-node job attempts on Ray without a new Ray worker per job (the server's side).

Ray starts a new worker process for every new actor, seconds each, and the per-attempt actor
path (``ray_node.RunnerHost``) paid that for every job. Here instead:

- every Ray node that offers CPUs or GPUs gets an **agent** (``ray_agent.NodeAgent``): one
  detached, named, zero-CPU, threaded actor per node and server, pinned to its node, made once
  (when this server connects, and when a node joins), so its worker start is paid once. Its name
  is ``<server tag>/agent/<code>/<node id>``: a restarted server finds it again by name, and one
  whose Shoal code changed (``<code>``, a fingerprint of the shipped package) makes new agents and
  retires the old ones once their runners are done;
- every attempt reserves its node's share (the compute's ``size``) with a detached **one-bundle
  placement group** named ``<attempt's name>#slot`` (reserving a bundle starts no worker); once Ray
  has placed it, the agent of the node it landed on starts the runner (``NodeAgents.agent``), and
  removing the group when the attempt ends frees the share for the next job;
- a **follower** (``AgentPath.follow``: the dispatcher's next job of a full compute) is started
  at once on the agent of a running attempt's node, told to wait for that runner's commands
  (``shoal.runtime.handover``), and asks for its own share there (placed once the other's is
  given back).

``RunnerOnAgent`` makes an attempt on an agent look like the attempt's own actor to
``RayBackend`` (``state``, ``terminate``, ``finish``), so the rest of the backend (log copying,
long polls, losses, reattaching) is the same for both paths.
"""

from __future__ import annotations

import functools
import hashlib
import queue
import threading
from pathlib import Path
from typing import Any

from shoal.compute import ray_agent
from shoal.compute.base import RUNNER_NOT_STARTED, Handle, RunnerAttempt
from shoal.compute.sizes import NodeResources

SLOT_SUFFIX = "#slot"
PREFIX = "ray:"  # of the Ray backend's handles: ``ray:<attempt name>``
NODE_FILE = "ray_node"  # beside an attempt's log on the server: the id of the node that runs it
# How often the server looks for nodes without an agent (nodes that joined).
KEEP_EVERY = 2.0


def slot_name(name: str) -> str:
    return name + SLOT_SUFFIX


def runner_env(attempt: RunnerAttempt, advertise_url: str | None) -> dict[str, str]:
    """What a runner on a node gets from the server: the attempt's settings and token, and the
    URL it calls back on (never looked up again: a node has no server.json)."""
    env = dict(attempt.env)
    env.update(
        SHOAL_SERVER_URL=advertise_url or attempt.server_url,
        SHOAL_JOB_TOKEN=attempt.token,
        SHOAL_SERVER_URL_FIXED="1",
    )
    # Ray gives an actor's worker OMP_NUM_THREADS = its CPUs; a runner an agent starts, too.
    resources = attempt.resources or NodeResources(size="", cpus=1, known=False)
    env.setdefault("OMP_NUM_THREADS", str(max(1, int(resources.cpus))))
    return env


@functools.cache
def code_fingerprint(package: Path | None = None) -> str:
    """A short fingerprint of the Shoal code this server ships (names, sizes, change times of its
    modules, read once per process: the code it runs): agents run the code they were started
    with, so another fingerprint, another agent."""
    root = package or Path(ray_agent.__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:10]


class _Call:
    def __init__(self, agent: Any, method: str, run: str) -> None:
        self.agent, self.method, self.run = agent, method, run

    def remote(self, *args: Any) -> Any:
        return getattr(self.agent, self.method).remote(self.run, *args)


class RunnerOnAgent:
    """One attempt's runner as its node's agent holds it, with the calls ``RayBackend`` makes
    on an attempt's actor: ``state.remote(offset, wait)``, ``terminate.remote(force)``,
    ``finish.remote()``."""

    def __init__(self, agent: Any, run: str, node_id: str) -> None:
        self.agent, self.run, self.node_id = agent, run, node_id
        self.state = _Call(agent, "state", run)
        self.terminate = _Call(agent, "terminate", run)
        self.finish = _Call(agent, "finish", run)


class NodeAgents:
    def __init__(self, ray: Any, namespace: str, scope: str, watch: Any, *, linger: float) -> None:
        self.ray = ray
        self.namespace = namespace
        self.scope = scope
        self.watch = watch
        self.linger = linger
        self.prefix = f"{scope}/agent/"
        self.code = code_fingerprint()
        self._class = ray.remote(ray_agent.NodeAgent)
        self._agents: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._keep, name="shoal-ray-agents", daemon=True).start()

    def name(self, node_id: str) -> str:
        return f"{self.prefix}{self.code}/{node_id}"

    def agent(self, node_id: str) -> Any:
        """The agent of a node: the one this server knows, the one of that name (a restart), or
        a new one (its worker starts now; calls made meanwhile wait for it)."""
        with self._lock:
            found = self._agents.get(node_id)
        if found is not None:
            return found
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        made = self._class.options(
            name=self.name(node_id),
            namespace=self.namespace,
            get_if_exists=True,
            lifetime="detached",
            max_restarts=0,
            num_cpus=0,
            max_concurrency=ray_agent.AGENT_CONCURRENCY,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(self.scope, self.linger)
        with self._lock:
            return self._agents.setdefault(node_id, made)

    def forget(self, node_id: str | None) -> None:
        """An agent that died (its node, or itself): the next attempt there makes another."""
        if node_id:
            with self._lock:
                self._agents.pop(node_id, None)

    def known(self, node_id: str) -> Any | None:
        with self._lock:
            return self._agents.get(node_id)

    def close(self) -> None:
        self._stop.set()

    def _keep(self) -> None:
        """Agents for every node that can run a job, made ahead of the jobs; old code's retired."""
        retired = False
        while not self._stop.is_set():
            if self.watch.reachable():
                try:
                    if not retired:
                        self._retire_others()
                        retired = True
                    for node in self.watch.live_nodes():
                        resources = node.get("Resources") or {}
                        node_id = str(node.get("NodeID") or "")
                        if node_id and (resources.get("CPU", 0) > 0 or resources.get("GPU", 0) > 0):
                            self.agent(node_id)
                except Exception:  # noqa: BLE001 - tried again on the next pass; jobs make their own
                    pass
            self._stop.wait(KEEP_EVERY)

    def _retire_others(self) -> None:
        mine = self.prefix + self.code + "/"
        for name in self.ray.util.list_named_actors(all_namespaces=False):
            if name.startswith(self.prefix) and not name.startswith(mine):
                try:
                    self.ray.get_actor(name, namespace=self.namespace).retire.remote()
                except Exception:  # noqa: BLE001 - gone meanwhile
                    continue

    # -- the attempts' shares ------------------------------------------------------------------------

    def reserve(self, name: str, resources: NodeResources, near: str | None = None) -> Any:
        """The attempt's share of one node: a detached one-bundle placement group (Ray places it
        when a node has room; ``ready()`` says when). ``near``: the node it should land on when
        that node has room (a follower's: its runner already runs there)."""
        self.release(name)  # an attempt submitted again after a failed start: never two of one name
        if near is not None:
            # Ray's hint works with STRICT_PACK only (one bundle: the same as PACK).
            return self.ray.util.placement_group(
                [resources.ray_bundle()],
                strategy="STRICT_PACK",
                name=slot_name(name),
                lifetime="detached",
                _soft_target_node_id=near,
            )
        return self.ray.util.placement_group(
            [resources.ray_bundle()], strategy="PACK", name=slot_name(name), lifetime="detached"
        )

    def find_slot(self, name: str) -> Any | None:
        try:
            return self.ray.util.get_placement_group(slot_name(name))
        except Exception:  # noqa: BLE001 - no such group
            return None

    def slot_node(self, slot: Any) -> str | None:
        """The node a placed share is on (None while Ray has not placed it)."""
        table = self.ray.util.placement_group_table(slot)
        if table.get("state") != "CREATED":
            return None
        node = (table.get("bundles_to_node_id") or {}).get(0)
        return str(node) if node else None

    def release(self, name: str, slot: Any | None = None) -> None:
        """Frees the attempt's share (its placement group), if it has one."""
        slot = slot if slot is not None else self.find_slot(name)
        if slot is None:
            return
        try:
            self.ray.util.remove_placement_group(slot)
        except Exception:  # noqa: BLE001 - already removed
            pass

    def slot_names(self) -> list[str]:
        """The attempts of this server that hold (or wait for) a share: found again after a restart."""
        try:
            table = self.ray.util.placement_group_table()
        except Exception:  # noqa: BLE001 - a cluster that cannot list them: poll finds each one
            return []
        return [
            str(pg["name"])[: -len(SLOT_SUFFIX)]
            for pg in table.values()
            if str(pg.get("name") or "").endswith(SLOT_SUFFIX)
            and str(pg["name"]).startswith(self.scope + "/")
            and pg.get("state") != "REMOVED"
        ]


class AgentPath:
    """``RayBackend``'s side of the agent path: an attempt's share placed, its runner started on
    the node's agent (``_place``), waiting shares asked for anew when one is given back, and
    attempts lost on the way. Uses the backend's ``ray``, ``agents``, ``watch``, ``_lock``,
    ``_tracked``, ``_ended``, ``_placed`` and ``_wake_on``."""

    ray: Any
    agents: NodeAgents
    watch: Any
    _lock: Any
    _tracked: dict[str, Any]
    _ended: dict[str, dict[str, str]]
    _placed: queue.Queue[str]

    def _wake_on(self, ref: Any) -> None:
        raise NotImplementedError

    advertise_url: str | None

    def _node_of(self, key: Any) -> str | None:
        raise NotImplementedError

    def _find(self, handle: str) -> Any | None:
        raise NotImplementedError

    def _name(self, attempt: Any) -> str:
        raise NotImplementedError

    def _new_tracked(self, name: str, key: Any, actor: Any, offset: int) -> Any:
        raise NotImplementedError

    def logs_location(self, attempt: Any) -> Path:
        raise NotImplementedError

    def followable(self, handle: Handle) -> bool:
        """Whether a next attempt can be prepared on this attempt's node while it runs
        (``follow``): a one-node attempt whose runner an agent started, on a node seen alive."""
        tracked = self._find(handle)
        return bool(
            tracked is not None
            and tracked.on_agent
            and tracked.alive
            and tracked.answered
            and tracked.node_id
            and not (tracked.bundle is not None and tracked.bundle.gpus)
            and self.watch.reachable()
        )

    def follow(self, attempt: RunnerAttempt, before: Handle) -> Handle | None:
        """Start ``attempt``'s runner now on the node of ``before``'s, to prepare there and run
        its command the moment ``before``'s command ends (``shoal.runtime.handover``); its own
        share of the node is asked for at once, on that node (placed once ``before``'s share is
        given back). None: ``before`` cannot be followed (the dispatcher then waits as before)."""
        ahead = self._find(before)
        resources = attempt.resources or NodeResources(size="", cpus=1, known=False)
        if ahead is None or not self.followable(before) or attempt.nodes > 1 or resources.gpus:
            return None
        name = self._name(attempt)
        node_id = str(ahead.node_id)
        log = self.logs_location(attempt)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        # Where it runs, known before its agent answers: a server restarting meanwhile finds it.
        (log.parent / NODE_FILE).write_text(node_id)
        agent = self.agents.agent(node_id)
        tracked = self._new_tracked(name, attempt.key(), RunnerOnAgent(agent, name, node_id), log.stat().st_size)
        tracked.on_agent, tracked.bundle, tracked.near = True, resources, node_id
        tracked.slot = self.agents.reserve(name, resources, near=node_id)
        tracked.placed = tracked.slot.ready()
        argv = list(attempt.argv) if attempt.argv is not None else None
        with self._lock:
            self._tracked[name] = tracked
            tracked.pending = agent.start.remote(
                name,
                attempt.workspace,
                attempt.job,
                attempt.attempt,
                runner_env(attempt, self.advertise_url),
                argv,
                tracked.offset,
                slot_name(name),
                ahead.name,
                spec=dict(attempt.run_spec) if attempt.run_spec is not None else None,
            )
            self._wake_on(tracked.pending)
        return PREFIX + name

    def _when_placed(self, tracked: Any) -> None:
        """Start the runner as soon as Ray places the attempt's share."""
        try:
            tracked.placed.future().add_done_callback(lambda _done: self._placed.put(tracked.name))
        except Exception:  # noqa: BLE001 - then the dispatcher's polls start it
            pass

    def _starter(self) -> None:
        while True:
            name = self._placed.get()
            with self._lock:
                tracked = self._tracked.get(name)
            if tracked is None or not self.watch.reachable():
                continue  # ended meanwhile, or the head is away (the polls start it later)
            try:
                with self._lock:
                    self._place(tracked, wait=0.0)
            except Exception:  # noqa: BLE001 - the dispatcher's next poll tries again
                pass

    def _place(self, tracked: Any, wait: float) -> bool:
        """(under ``_lock``) Whether the attempt's runner is on an agent: started there once Ray
        has placed its share, or, for an attempt found by name after a restart, looked up on the
        agent of the node its share is on."""
        if tracked.actor is not None:
            return True
        if not tracked.alive:
            return False
        if tracked.start is None:  # found by name (a restart): started by the server before
            # A follower's runner started before its share was placed: its node is noted beside its log.
            node_id = self.agents.slot_node(tracked.slot) or self._node_of(tracked.key)
            if node_id is None:
                self._lose_unstarted(tracked)  # it never started, and what it needed is gone
                return False
            tracked.actor = RunnerOnAgent(self.agents.agent(node_id), tracked.name, node_id)
            return True
        ready, _ = self.ray.wait([tracked.placed], timeout=wait)
        if not ready:
            return False
        node_id = self.agents.slot_node(tracked.slot)
        if node_id is None:
            return False  # placed and moved (a node lost meanwhile): asked again later
        agent = self.agents.agent(node_id)
        workspace, job, attempt, env, argv, spec = tracked.start
        tracked.actor = RunnerOnAgent(agent, tracked.name, node_id)
        tracked.start = None
        tracked.pending = agent.start.remote(
            tracked.name, workspace, job, attempt, env, argv, tracked.offset, slot_name(tracked.name), spec=spec
        )
        self._wake_on(tracked.pending)
        return True

    def outcome_reported(self, handle: Handle) -> None:
        """The runner reported its outcome and only tidies up (at the lowest CPU priority, so
        it may exit long after): its node's share goes to the next job now. A chain of pipeline
        steps otherwise found both nodes held, by the runner before last still tidying, and
        waited out Ray's retry backoff (up to 1 s)."""
        tracked = self._find(handle)
        if tracked is None or not tracked.on_agent or tracked.actor is None:
            return  # not an agent's runner, or never started (cancel and reap deal with those)
        with self._lock:
            if tracked.finishing or tracked.share_back:
                return
            tracked.share_back = True
            if self.watch.reachable():
                self.agents.release(tracked.name, tracked.slot)
                self._ask_again()
            else:
                self._unreleased.add(tracked.name)

    def _ask_again(self) -> None:
        """(under ``_lock``) This server just gave a share back: its shares still waiting for a
        node are asked for anew. Ray tries a waiting placement group again only after a backoff
        (up to 1 s by default) even once room is free, while a new one is placed at once."""
        for tracked in list(self._tracked.values()):
            # A follower's runner runs already; its share, once placed, keeps the books.
            waiting = tracked.actor is None and tracked.start is not None
            if not (tracked.on_agent and tracked.alive and (waiting or tracked.near is not None)):
                continue
            if tracked.bundle is None or self.ray.wait([tracked.placed], timeout=0)[0]:
                continue  # placed already: its start is under way
            self.agents.release(tracked.name, tracked.slot)
            tracked.slot = self.agents.reserve(tracked.name, tracked.bundle, near=tracked.near)
            tracked.placed = tracked.slot.ready()
            self._when_placed(tracked)

    def _lose_unstarted(self, tracked: Any) -> None:
        # Nothing of the job ran: the dispatcher queues it again (``RUNNER_NOT_STARTED``).
        tracked.alive, tracked.lost = False, RUNNER_NOT_STARTED
        self._ended[tracked.name] = {
            "code": tracked.lost,
            "message": "the server restarted before a Ray node started this attempt's runner",
        }
        self.agents.release(tracked.name, tracked.slot)

    def _lose_runner(self, tracked: Any) -> None:
        tracked.alive, tracked.lost = False, "RUNNER_LOST"
        self._ended[tracked.name] = {"code": tracked.lost, "message": "the job's runner is unknown to its Ray node"}
        self.agents.release(tracked.name, tracked.slot)
