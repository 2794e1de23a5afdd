"""The dispatcher: a server thread that starts queued jobs within compute capacity, stops the
ones asked to cancel, and notices runners that died or went quiet.

Capacity: an ``amlcompute`` runs at most ``max_instances`` nodes' worth of jobs at once (a job
takes ``resources.instance_count`` nodes); the rest wait in ``Queued``, first in, first out.
Local, instance and Kubernetes computes have no cap here. A job its backend can never place as
things stand (no Ray node offers one node of its compute's ``size``) stays ``Queued`` with that
reason in ``queue_reason`` (``properties["shoal.queue_reason"]``), and nobody overtakes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from shoal.compute import (
    RUNNER_NOT_STARTED,
    AttemptKey,
    CapacityHint,
    ComputeBackend,
    Handle,
    NodeResources,
    RunnerAttempt,
    cluster_engine,
    get_backend,
    resources_for,
    runner_environment,
    server_backend,
)
from shoal.entities.status import OCCUPYING, JobStatus
from shoal.jobtokens import JobTokenSigner
from shoal.services.context import ServiceContext
from shoal.services.jobs import pipeline_controller, runner_api, sweeps
from shoal.services.jobs import state as job_state
from shoal.services.jobs.cluster import NO_RUNNER, Membership, server_id_for
from shoal.store import jobs as job_rows
from shoal.store import resources as resource_rows
from shoal.store.tables import JobRow

logger = logging.getLogger(__name__)
S = JobStatus
# How often the computes' capacity wishes go to a cluster engine's autoscaler (Ray).
HINT_EVERY = 5.0


class Dispatcher:
    def __init__(
        self,
        ctx: ServiceContext,
        server_url: str,
        signer: JobTokenSigner,
        *,
        backend: ComputeBackend | None = None,
        backend_name: str | None = None,
        poll_seconds: float = 0.5,
        heartbeat_timeout: float = 30.0,
        cancel_grace: float = 15.0,
        server_id: str | None = None,
        lease_seconds: float = 15.0,
        own_url: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.server_url = server_url
        self.signer = signer
        home = ctx.settings.resolved_home()
        if backend is None:
            if backend_name is not None:
                backend = get_backend(backend_name, home=home)
            else:
                # Which engine runs a compute is the server's configuration (a Ray address).
                backend = server_backend(
                    home, ray_address=ctx.settings.ray_address, advertise_url=ctx.settings.advertise_url
                )
        self.backend = backend
        engine = cluster_engine(backend)
        if engine is not None and hasattr(engine, "wake"):
            engine.wake = ctx.notify_jobs  # an engine's news (a runner ended) starts a tick at once
        self.poll_seconds = poll_seconds
        self.heartbeat_timeout = heartbeat_timeout
        self.cancel_grace = cancel_grace
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cancel_sent: dict[tuple[int, int], float] = {}
        # Runners could not reach a server that was down: silence counts from its start only.
        self._started_at = job_state.now()
        # server_url is what runners call back on (a load balancer's URL when several servers
        # share the database); own_url is this server's, recorded with its lease.
        home = ctx.settings.resolved_home()
        self.cluster = Membership(ctx, server_id or server_id_for(home), own_url or server_url, lease_seconds)
        # Prepare the next job of a full compute on a busy node (backends that can: Ray's agents).
        self.prepare_ahead = os.environ.get("SHOAL_PREPARE_AHEAD", "1").lower() not in ("0", "false", "off", "no")
        self._hinted_at = -HINT_EVERY

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="shoal-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.ctx.jobs_changed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        close = getattr(self.backend, "close", None)  # the local backend's warm runner
        if close is not None:
            close()
        try:
            self.cluster.release()
        except Exception:  # noqa: BLE001 - a server stopping with its database gone still stops
            logger.exception("could not release this server's lease")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive any one bad tick
                logger.exception("dispatcher tick failed")
            self.ctx.jobs_changed.wait(self.poll_seconds)
            self.ctx.jobs_changed.clear()

    def tick(self) -> None:
        self.cluster.renew()
        # First: what the runners that just reported an outcome held goes back to their compute
        # (a Ray node's share), so the steps and jobs started below find it free.
        reported = getattr(self.backend, "outcome_reported", None)
        for handle in self.ctx.take_reported():
            if reported is not None:
                reported(handle)
        if self.cluster.runs_controllers:
            # One server at a time decides which steps and trials start; each start is then a
            # Queued job claimed like any other, at once (a step's runner starts before the
            # controller rolls its pipeline's state up).
            pipeline_controller.advance(self.ctx, on_queued=self._schedule)
            sweeps.advance(self.ctx)
        self._schedule()
        # After the starts: a tick woken by a job's end (a pipeline step's) starts what it let go
        # first. A dead server's jobs and cancel requests follow at once, in this same tick; what
        # they change wakes another (a job queued again is started there).
        if self.cluster.take_over_orphans():
            self._schedule()  # a job queued again (never launched) starts in this same tick
        self._handle_cancels()
        self._check_liveness()
        self.backend.reap()
        self._hint_capacity()

    # -- scheduling --------------------------------------------------------------------------

    def _schedule(self) -> None:
        with self.ctx.db.read() as session:
            queued = job_rows.with_status(session, [S.QUEUED], exclude_types=NO_RUNNER)
            if not queued:
                return
            occupying = _occupying_by_compute(session)
            busy = {key: slots_in_use(rows) for key, rows in occupying.items()}
            computes = {key: _compute(session, *key) for key in {(r.workspace_id, r.compute) for r in queued}}
        blocked: set[tuple[int, str]] = set()
        for row in queued:
            key = (row.workspace_id, row.compute)
            if key in blocked:
                continue  # first in, first out: nobody overtakes a job waiting for this compute
            cap, compute_type, size = computes[key]
            if cap is not None and busy.get(key, 0) + _nodes(row) > cap:
                ahead = self._to_follow(row, occupying.get(key, []))
                if ahead is None or self._claim_and_launch(row.id, cap, compute_type, size, follow=ahead) != "started":
                    blocked.add(key)
                else:
                    occupying.setdefault(key, []).append(_following(row, ahead))
                continue
            probe = RunnerAttempt(
                "",
                row.name,
                row.attempt + 1,
                server_url="",
                token="",
                nodes=_nodes(row),  # a multi-node job needs that many nodes that fit
                compute_type=compute_type,
                resources=size,
            )
            reason = self.backend.unplaceable(probe)
            if reason != row.queue_reason and self.cluster.watches(row.claimed_by):
                self._set_queue_reason(row.id, reason)
            if reason is not None:
                blocked.add(key)
                continue
            outcome = self._claim_and_launch(row.id, cap, compute_type, size)
            if outcome == "started":
                busy[key] = busy.get(key, 0) + _nodes(row)
            elif outcome == "full":
                blocked.add(key)

    def _to_follow(self, row: JobRow, occupying: list[JobRow]) -> str | None:
        """A running job of a full compute whose node ``row`` can be prepared on, to start the
        moment that job's command ends (its name), where the backend can (Ray's agents)."""
        if not self.prepare_ahead or _nodes(row) != 1:
            return None
        for ahead in followable(occupying):
            if self.cluster.watches(ahead.claimed_by) and self._backend_follows(ahead.runner_handle):
                return ahead.name
        return None

    def _backend_follows(self, handle: Handle | None) -> bool:
        followable_handle = getattr(self.backend, "followable", None)
        return bool(handle and followable_handle is not None and followable_handle(handle))

    def _hint_capacity(self) -> None:
        """Each ``amlcompute``'s ``min_instances``, ``idle_time_before_scale_down`` and nodes
        in use, for the cluster engine to pass to its autoscaler (``shoal.compute.ray_cluster``)."""
        engine = cluster_engine(self.backend)
        if engine is None or time.monotonic() - self._hinted_at < HINT_EVERY:
            return
        self._hinted_at = time.monotonic()
        hints = []
        with self.ctx.db.read() as session:
            occupying = _occupying_by_compute(session)
            busy = {key: slots_in_use(rows) for key, rows in occupying.items()}
            for workspace, row in resource_rows.of_type(session, "compute", "amlcompute"):
                hints.append(
                    CapacityHint(
                        compute=f"{workspace}/{row.name}",
                        resources=resources_for(row.spec.get("size")),
                        min_instances=int(row.spec.get("min_instances") or 0),
                        idle_seconds=float(row.spec.get("idle_time_before_scale_down") or 0),
                        busy=busy.get((row.workspace_id, row.name), 0),
                    )
                )
        engine.capacity_hints(hints)

    def _set_queue_reason(self, job_id: int, reason: str | None) -> None:
        with self.ctx.db.write() as session:
            row = job_rows.locked(session, job_id)
            if row is not None and row.status == S.QUEUED:
                row.queue_reason = reason

    def _claim_and_launch(
        self, job_id: int, cap: int | None, compute_type: str | None = None, size: Any = None, follow: str | None = None
    ) -> str:
        """Claim a queued job and start its runner: ``started``; ``taken`` when another server
        claimed or started it first; ``full`` when its compute has no room (counted under a lock
        on the compute, so servers starting jobs together never exceed ``max_instances``).
        ``follow``: a running job of the compute to prepare it behind, on that job's node."""
        before: Handle | None = None
        with self.ctx.db.write() as session:
            row = job_rows.claim_queued(session, job_id)
            if row is None:
                return "taken"
            if cap is not None:
                job_rows.lock_compute(session, row.workspace_id, row.compute)
                rows = [
                    r
                    for r in job_rows.on_compute(session, row.workspace_id, row.compute, OCCUPYING)
                    if r.type not in NO_RUNNER
                ]
                if follow is not None:
                    before = next((r.runner_handle for r in followable(rows) if r.name == follow), None)
                    if before is None:
                        return "full"  # it ended, or another job follows it already
                elif slots_in_use(rows) + _nodes(row) > cap:
                    return "full"
            row.attempt += 1
            row.follows = follow if before is not None else None
            row.queue_reason = None
            row.claimed_by = self.cluster.server_id
            row.heartbeat_at = job_state.now()
            job_state.transition(row, S.PREPARING)
            workspace = job_rows.workspace_name(session, row)
            name, attempt, nodes = row.name, row.attempt, _nodes(row)
        try:
            handle = self._launch(workspace, name, attempt, nodes, compute_type, size, before)
        except Exception as exc:  # noqa: BLE001 - a backend that cannot start it fails the attempt
            with self.ctx.db.write() as session:
                row = job_rows.locked(session, job_id)
                if row is not None and row.status == S.PREPARING:
                    job_state.transition(
                        row, S.FAILED, error={"code": "RUNNER_START_FAILED", "message": f"cannot start runner: {exc}"}
                    )
            return "taken"
        with self.ctx.db.write() as session:
            row = job_rows.locked(session, job_id)
            if row is not None and row.attempt == attempt:
                if handle is None and row.status == S.PREPARING:
                    # The backend could not follow that job after all: back in the queue.
                    job_state.transition(row, S.QUEUED)
                    row.follows = row.claimed_by = None
                    return "full"
                row.runner_handle = handle
        return "started"

    def _launch(
        self,
        workspace: str,
        name: str,
        attempt: int,
        nodes: int,
        compute_type: str | None,
        size: Any,
        before: Handle | None = None,
    ) -> Handle | None:
        runner = RunnerAttempt(
            workspace,
            name,
            attempt,
            server_url=self.server_url,
            token=self.signer.issue(workspace, name, attempt),
            env=self._runner_env(),
            nodes=nodes,
            compute_type=compute_type,
            resources=size,
            run_spec=self._run_spec(workspace, name, attempt),
        )
        if before is not None:
            return self.backend.follow(runner, before)  # type: ignore[attr-defined, no-any-return]
        return self.backend.submit(runner)

    def _run_spec(self, workspace: str, name: str, attempt: int) -> dict[str, Any] | None:
        """The run spec, handed to the runner with its start: its first request, a round trip
        on the path of every job and pipeline step, is not made. None if it cannot be read now:
        the runner then asks for it (and is told why)."""
        try:
            return runner_api.run_spec(self.ctx, workspace, name, attempt, None)
        except Exception:  # noqa: BLE001 - the runner's own request reports what is wrong
            logger.debug("run spec of %s attempt %s not handed over", name, attempt, exc_info=True)
            return None

    def _runner_env(self) -> dict[str, str]:
        env = runner_environment(max(0.5, min(5.0, self.heartbeat_timeout / 6)))
        if self.server_url != self.cluster.url:
            # A public URL (a load balancer): the runner keeps calling it whichever server
            # answers, instead of looking for this server's new port in its home after a failure.
            env["SHOAL_SERVER_URL_FIXED"] = "1"
        return env

    # -- cancel and liveness ---------------------------------------------------------------

    def _handle_cancels(self) -> None:
        with self.ctx.db.read() as session:
            rows = job_rows.with_status(session, [S.CANCEL_REQUESTED], exclude_types=NO_RUNNER)
        for row in rows:
            if not self.cluster.watches(row.claimed_by):
                continue  # another server's runner: that server signals it
            key = (row.id, row.attempt)
            pid = row.runner_handle
            if pid is None or not self.backend.poll(pid):
                self._finish(row.id, row.attempt, S.CANCELED, None)
                continue
            sent = self._cancel_sent.get(key)
            if sent is None:
                self.backend.cancel(pid, self._attempt_key(row))
                self._cancel_sent[key] = time.monotonic()
            elif time.monotonic() - sent > self.cancel_grace + 10:
                # The runner did not wind down: end it and its job's process groups.
                self.backend.cancel(pid, self._attempt_key(row), force=True)
                self._finish(row.id, row.attempt, S.CANCELED, None)

    def _check_liveness(self) -> None:
        timeout = timedelta(seconds=self.heartbeat_timeout)
        now = job_state.now()
        with self.ctx.db.read() as session:
            # Runs created through the MLflow API and pipelines have no runner to watch.
            watched = [S.PREPARING, S.RUNNING, S.FINALIZING, S.NOT_RESPONDING]
            rows = job_rows.with_status(session, watched, exclude_types=NO_RUNNER)
        for row in rows:
            if not self.cluster.watches(row.claimed_by):
                continue  # another live server watches its own runners
            last = row.heartbeat_at
            if last is not None and last.tzinfo is None:
                last = last.replace(tzinfo=now.tzinfo)
            raw_quiet = now - last if last else timeout * 3
            quiet = now - max(last, self._started_at) if last else now - self._started_at
            runner_gone = row.runner_handle is not None and not self.backend.poll(row.runner_handle)
            # The backend may know more (the Ray node or head that went away): then at once, even
            # while a runner cut off from its actor still sends heartbeats.
            known = self.backend.exit_reason(row.runner_handle) if runner_gone else None
            if known is not None and known.get("code") == RUNNER_NOT_STARTED and row.status == S.PREPARING:
                self._queue_again(row.id, row.attempt, known["message"])
            elif runner_gone and (known is not None or raw_quiet > timedelta(seconds=2)):
                error = known or {
                    "code": "RUNNER_LOST",
                    "message": "the job's runner exited without reporting an outcome",
                }
                self._finish(row.id, row.attempt, S.FAILED, error)
                self.backend.end_user_processes(self._attempt_key(row))
            elif row.status != S.NOT_RESPONDING and quiet > timeout:
                self._set(row.id, row.attempt, S.NOT_RESPONDING)
            elif row.status == S.NOT_RESPONDING and quiet > timeout * 2:
                error = {
                    "code": "NOT_RESPONDING",
                    "message": f"no heartbeat from the job's runner for {int(quiet.total_seconds())} s",
                }
                self._finish(row.id, row.attempt, S.FAILED, error)
                if row.runner_handle is not None and self.backend.poll(row.runner_handle):
                    # A runner that is alive but silent must not keep a freed slot busy: it stops
                    # its process groups on SIGTERM; SIGKILL follows if it does not.
                    attempt = self._attempt_key(row)
                    self.backend.cancel(row.runner_handle, attempt)
                    self._kill_later(row.runner_handle, attempt)

    def _queue_again(self, job_id: int, attempt: int, why: str) -> None:
        """An attempt whose runner never started (nothing of the job ran): the job waits in the
        queue again, and its next claim is a new attempt."""
        with self.ctx.db.write() as session:
            row = job_rows.locked(session, job_id)
            if row is None or row.attempt != attempt or row.status != S.PREPARING:
                return
            job_state.transition(row, S.QUEUED)
            row.claimed_by = row.runner_handle = row.follows = None
        logger.warning("job %s queued again: %s", row.name, why)
        self.ctx.notify_jobs()

    def _attempt_key(self, row: JobRow) -> AttemptKey:
        with self.ctx.db.read() as session:
            workspace = job_rows.workspace_name(session, row)
        return AttemptKey(workspace, row.name, row.attempt)

    def _kill_later(self, pid: Handle, attempt: AttemptKey) -> None:
        def kill() -> None:
            if self.backend.poll(pid):
                self.backend.cancel(pid, attempt, force=True)

        timer = threading.Timer(self.cancel_grace + 10, kill)
        timer.daemon = True
        timer.start()

    def _set(self, job_id: int, attempt: int, status: JobStatus) -> None:
        with self.ctx.db.write() as session:
            row = job_rows.locked(session, job_id)
            if row is not None and row.attempt == attempt and row.status != status:
                job_state.transition(row, status)

    def _finish(self, job_id: int, attempt: int, status: JobStatus, error: dict[str, Any] | None) -> None:
        with self.ctx.db.write() as session:
            row = job_rows.locked(session, job_id)
            if row is None or row.attempt != attempt or row.status in (S.COMPLETED, S.FAILED, S.CANCELED):
                return
            if row.status == S.NOT_RESPONDING and status == S.CANCELED:
                job_state.transition(row, S.CANCEL_REQUESTED)
            job_state.transition(row, status, error=error)
        self._cancel_sent.pop((job_id, attempt), None)


def _nodes(row: JobRow) -> int:
    resources = row.spec.get("resources") or {}
    return max(1, int(resources.get("instance_count") or 1))


def _occupying_by_compute(session: Any) -> dict[tuple[int, str], list[JobRow]]:
    """The jobs holding (or prepared on) a node, by (workspace id, compute)."""
    occupying: dict[tuple[int, str], list[JobRow]] = {}
    for row in job_rows.with_status(session, OCCUPYING, exclude_types=NO_RUNNER):
        occupying.setdefault((row.workspace_id, row.compute), []).append(row)
    return occupying


def slots_in_use(occupying: list[JobRow]) -> int:
    """Nodes' worth held by these occupying jobs of one compute. A follower shares the node of
    the job it follows for as long as that job occupies it (its command starts when the other's
    ends; the other is then only uploading its outputs)."""
    names = {r.name for r in occupying}
    return sum(_nodes(r) for r in occupying if not (r.follows and r.follows in names))


def followable(occupying: list[JobRow]) -> list[JobRow]:
    """The jobs of one compute a queued job may be prepared behind: one-node jobs running their
    command that no job follows yet, longest-running first (the likeliest to end soonest)."""
    followed = {r.follows for r in occupying if r.follows}
    found = [
        r for r in occupying if r.status == S.RUNNING and _nodes(r) == 1 and r.runner_handle and r.name not in followed
    ]
    return sorted(found, key=lambda r: (r.start_time is None, r.start_time or 0, r.id))


def _following(row: JobRow, ahead: str) -> JobRow:
    """A stand-in for ``row`` as just claimed behind ``ahead``, for the rest of one schedule pass."""
    return JobRow(
        name=row.name,
        compute=row.compute,
        spec=row.spec,
        status=S.PREPARING,
        follows=ahead,
        workspace_id=row.workspace_id,
    )


def _compute(session: Any, workspace_id: int, compute: str) -> tuple[int | None, str | None, NodeResources | None]:
    """A compute's cap (``max_instances`` of an ``amlcompute``; None: none), type and node size."""
    if compute == "local":
        return None, None, None
    row = resource_rows.find_row(session, workspace_id, "compute", compute)
    if row is None:
        return None, None, None
    size = resources_for(row.spec.get("size")) if row.spec.get("size") else None
    if row.type != "amlcompute":
        return None, row.type, size
    return max(1, int(row.spec.get("max_instances") or 1)), row.type, size
