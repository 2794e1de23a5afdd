"""The instance supervisor: each deployment's scoring processes, started, watched and rolled.

One object per server (``app.state.endpoints``). A rollout (create, update, server start) runs
in its own thread: lay out the files and build the environment (``instance_files``), start
``instance_count`` instances, wait until each answers ``/ready`` (init() returned), then swap
them in as the deployment's pool in one assignment and stop the old pool once its requests have
drained. The old pool serves throughout, so an update loses no request; a rollout that fails
leaves the old pool serving and the deployment ``Failed`` with the log tail.

A monitor thread restarts an instance whose process ended and recycles one whose liveness probe
fails ``failure_threshold`` times in a row. Instance state lives in memory: the store holds what
should run, and a server start rolls every deployment out again (after ending the instances a
crashed server left behind)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from shoal.compute import sandbox as isolation
from shoal.compute import serving
from shoal.entities.endpoint import ProbeSettings
from shoal.services.context import ServiceContext
from shoal.services.endpoints import instance_files
from shoal.services.endpoints.pools import Deployment, EndpointView, Instance, Key, Metrics, Pool
from shoal.services.endpoints.sharing import PEER_GRACE, Sharing
from shoal.services.workspaces import workspace_id
from shoal.store import endpoints as rows

logger = logging.getLogger(__name__)

LOG_TAIL = 30
MONITOR_PERIOD = 0.5
DRAIN_GRACE = 0.2


class Supervisor:
    def __init__(
        self,
        ctx: ServiceContext,
        *,
        server_id: str = "local",
        lease_seconds: float = 15.0,
        instance_host: str = "127.0.0.1",
        shared: bool = False,
    ) -> None:
        self.ctx = ctx
        self.instance_host = instance_host
        # Several servers on one database (``shared``, a listening server): one holds the
        # endpoints duty and runs the instances.
        self.sharing = Sharing(self, server_id, lease_seconds, instance_host, shared=shared)
        self.deployments: dict[Key, Deployment] = {}
        self.endpoints: dict[tuple[str, str], EndpointView] = {}
        # When each endpoint's view was last set or removed by this server's own write: a refresh
        # that read the store before then (and applies what it read after) must not put back
        # what that write replaced.
        self._endpoint_written_at: dict[tuple[str, str], float] = {}
        self._views = threading.Lock()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._http = httpx.Client(timeout=2.0)
        # Scoring scripts are user code: the same sandbox as job code (SHOAL_JOB_ISOLATION), the
        # server's home hidden. None: unconfined (isolation off, or auto where bwrap cannot run).
        settings = ctx.settings
        # Every instance is started from this one long-lived thread: a sandboxed instance dies with
        # the thread that started it (bwrap --die-with-parent is the parent *thread*'s death
        # signal), and a rollout's thread ends when the rollout does.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-instances")
        self.sandbox = isolation.resolve(
            settings.job_isolation,
            user=settings.job_user,
            read_paths=settings.job_read_paths,
            hide=[settings.resolved_home()],
        )

    # -- life of the server ---------------------------------------------------------------------

    def start(self) -> None:
        """End what a previous server left running, then bring every deployment back: run its
        instances if this server holds the endpoints duty, else route to the holder's."""
        ended = serving.end_orphans(instance_files.endpoints_root(self.ctx))
        if ended:
            logger.info("ended %d scoring instances left by a previous server", ended)
        self.sharing.renew()
        self.sharing.refresh()
        self._monitor = threading.Thread(target=self._watch, name="shoal-endpoints", daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        self._stop.set()
        with self._mutex:
            deployments = list(self.deployments.values())
            self.deployments.clear()
        for dep in deployments:
            dep.wanted = -1
            if dep.pool is not None:
                _stop_pool(dep.pool)
        self._http.close()
        self._spawner.shutdown(wait=False)

    # -- endpoints -----------------------------------------------------------------------------

    def set_endpoint(
        self, workspace: str, name: str, spec: dict[str, Any], keys: dict[str, str], *, read_at: float | None = None
    ) -> None:
        """The router's view of an endpoint: after this server stored it (``read_at`` None), or as
        a refresh read it at ``read_at`` (``time.monotonic()``), unless this server has written
        the endpoint since: that read is older than what the router has."""
        key = (workspace, name)
        view = EndpointView(
            auth_mode=spec.get("auth_mode") or "key",
            keys=keys,
            traffic=dict(spec.get("traffic") or {}),
            mirror_traffic=dict(spec.get("mirror_traffic") or {}),
        )
        with self._views:
            if read_at is None:
                self._endpoint_written_at[key] = time.monotonic()
            elif self._endpoint_written_at.get(key, float("-inf")) >= read_at:
                return
            self.endpoints[key] = view

    def remove_endpoint(self, workspace: str, name: str) -> None:
        with self._views:
            self._endpoint_written_at[(workspace, name)] = time.monotonic()
            self.endpoints.pop((workspace, name), None)
        for key in [k for k in self.deployments if k[:2] == (workspace, name)]:
            self.remove(key)
        shutil.rmtree(instance_files.endpoints_root(self.ctx) / workspace / name, ignore_errors=True)

    # -- deployments ---------------------------------------------------------------------------

    def deployment(self, key: Key) -> Deployment:
        with self._mutex:
            dep = self.deployments.get(key)
            if dep is None:
                dep = self.deployments[key] = Deployment(key)
            return dep

    def stop_local(self) -> None:
        """Stop this server's instances (it no longer holds the endpoints duty); the routes to
        the new holder's come with the next refresh."""
        for dep in list(self.deployments.values()):
            with dep.lock:
                pool, dep.pool = dep.pool, None
                dep.wanted, dep.published = 0, None
            if pool is not None and pool.files is not None:
                _stop_pool(pool)

    def rollout(self, key: Key, generation: int, resolved: dict[str, Any], *, row_id: int | None = None) -> None:
        """Roll ``generation`` out, if this server runs the instances (else the holder will)."""
        if not self.sharing.holder:
            return
        dep = self.deployment(key)
        if row_id is not None:
            dep.row_id = row_id
        dep.wanted = generation
        thread = threading.Thread(
            target=self._rollout,
            args=(dep, generation, resolved),
            name=f"shoal-rollout-{key[2]}",
            daemon=True,
        )
        thread.start()

    def remove(self, key: Key) -> None:
        """Stop every instance of a deployment (deleted, or its endpoint deleted) and forget it."""
        with self._mutex:
            dep = self.deployments.pop(key, None)
        if dep is None:
            return
        dep.wanted = -1
        with dep.lock:  # a rollout in progress stops first
            pool, dep.pool = dep.pool, None
        if pool is not None and pool.files is not None:
            _stop_pool(pool)
            shutil.rmtree(instance_files.endpoints_root(self.ctx).joinpath(*key), ignore_errors=True)

    def describe(self, key: Key) -> dict[str, Any]:
        dep = self.deployments.get(key)
        if dep is None:
            return {"instances": [], "metrics": Metrics().snapshot()}
        pool = dep.pool
        instances = [
            {
                "index": inst.process.index if inst.process else inst.index,
                "pid": inst.process.pid if inst.process else inst.remote_pid,
                "host": inst.host,
                "port": inst.port,
                "state": "Ready" if inst.ready else ("Starting" if inst.alive() else "Stopped"),
                "restarts": inst.restarts,
                "generation": pool.generation,
                "server": (pool.served_by or "") if pool.files is None else self.sharing.server_id,
            }
            for inst in (pool.instances if pool else [])
        ]
        return {"instances": instances, "metrics": dep.metrics.snapshot()}

    def logs(self, key: Key, generation: int, lines: int) -> str:
        dep = self.deployments.get(key)
        pool = dep.pool if dep else None
        if pool is not None and pool.files is None:
            return (
                f"the instances of this deployment run on server {pool.served_by or '(none yet)'}, which holds "
                "the endpoints duty; their logs are on that server: ask it (its URL is in `shoal server status` "
                "there, or send get-logs to it directly)"
            )
        if pool is not None and pool.generation == generation:
            parts = [(f"instance {i.process.index}", i.process.log_path) for i in pool.instances if i.process]
        else:
            root = instance_files.generation_dir(self.ctx, *key, generation)
            parts = [(p.name, p / serving.LOG_FILE) for p in sorted(root.glob("instance-*"))]
            if not parts:
                parts = [("environment build", root / "build.log")]
        if len(parts) == 1:
            return serving.tail(parts[0][1], lines)
        return "\n".join(f"=== {name} ===\n{serving.tail(path, lines)}" for name, path in parts)

    # -- rolling out ---------------------------------------------------------------------------

    def _rollout(self, dep: Deployment, generation: int, resolved: dict[str, Any]) -> None:
        with dep.lock:
            if dep.wanted != generation:
                return  # a newer update (or a delete) came first
            try:
                pool = self._start_pool(dep, generation, resolved)
            except Exception as exc:  # noqa: BLE001 - any failure is the deployment's state, not the server's
                if dep.wanted != generation:
                    return  # stopped for a newer update, a delete or the server stopping: not a failure
                message = str(getattr(exc, "message", None) or exc)
                logger.info("deployment %s/%s generation %d failed: %s", dep.key[1], dep.key[2], generation, message)
                self._set_state(dep.key, generation, "Failed", message)
                return
            if dep.wanted != generation:
                _stop_pool(pool)
                return
            old, dep.pool = dep.pool, pool
            self.sharing.publish(dep)
            self._set_state(dep.key, generation, "Succeeded", None)
        if old is not None and old.files is not None:
            if self.sharing.peers:
                time.sleep(PEER_GRACE)  # the other servers' routers move to the new addresses first
            _drain(old)
            _stop_pool(old)
            if old.generation != generation:
                shutil.rmtree(old.files.root, ignore_errors=True)

    def _start_pool(self, dep: Deployment, generation: int, resolved: dict[str, Any]) -> Pool:
        ws, ep, name = dep.key
        files = instance_files.prepare(self.ctx, ws, ep, name, generation, resolved, self.sandbox)
        env = dict(files.env)
        env.update(resolved.get("environment_variables") or {})
        env.update(
            PYTHONUNBUFFERED="1",
            AZUREML_MODEL_DIR=str(files.model_dir or ""),
            AZUREML_ENTRY_SCRIPT=str(resolved.get("scoring_script") or ""),
            AZUREML_SOURCE_DIRECTORY=str(files.code_dir or ""),
            AZUREML_DEPLOYMENT_NAME=name,
            AZUREML_ENDPOINT_NAME=ep,
        )
        if files.script is None:
            raise ValueError("the deployment has no scoring script")
        settings = resolved.get("request_settings") or {}
        liveness = ProbeSettings(**(resolved.get("liveness_probe") or {}))
        readiness = ProbeSettings(**(resolved.get("readiness_probe") or {}))
        count = int(resolved.get("instance_count") or 1)
        pool = Pool(generation, files, [], env, settings, liveness)
        for index in range(count):
            pool.instances.append(Instance(self._spawn(pool, index), host=self.instance_host))
        deadline = time.monotonic() + readiness.initial_delay + readiness.period * readiness.failure_threshold
        try:
            for inst in pool.instances:
                self._wait_ready(inst, deadline, dep, generation)
        except Exception:
            _stop_pool(pool)
            raise
        return pool

    def _spawn(self, pool: Pool, index: int) -> serving.InstanceProcess:
        files = pool.files
        assert files is not None and files.script is not None and files.code_dir is not None
        folder = files.root / f"instance-{index}"
        readable = [files.root / "azureml-models", files.code_dir, files.env_cache]
        return self._spawner.submit(
            serving.start_instance,
            index,
            folder,
            files.python,
            files.script,
            files.code_dir,
            pool.env,
            sandbox=self.sandbox,
            readable=[p for p in readable if p is not None],
            host=self.instance_host,
        ).result()

    def _wait_ready(self, inst: Instance, deadline: float, dep: Deployment, generation: int) -> None:
        assert inst.process is not None
        while True:
            if dep.wanted != generation:
                raise RuntimeError("superseded by a newer update")
            if not inst.process.alive():
                tail = serving.tail(inst.process.log_path, LOG_TAIL)
                raise RuntimeError(
                    f"instance {inst.process.index} exited with code {inst.process.proc.returncode} "
                    f"before it was ready (init() failed?); the end of its log:\n{tail}"
                )
            if self._probe(inst, "/ready"):
                inst.ready = True
                return
            if time.monotonic() > deadline:
                tail = serving.tail(inst.process.log_path, LOG_TAIL)
                raise RuntimeError(f"instance {inst.process.index} was not ready in time; the end of its log:\n{tail}")
            time.sleep(0.05)

    def _probe(self, inst: Instance, path: str, timeout: float = 2.0) -> bool:
        port = inst.port
        if port is None:
            return False
        try:
            return self._http.get(f"http://{self.instance_host}:{port}{path}", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def _set_state(self, key: Key, generation: int, state: str, error: str | None) -> None:
        ws, ep, name = key
        try:
            with self.ctx.db.write() as session:
                endpoint = rows.find_endpoint(session, workspace_id(session, ws), ep)
                row = rows.find_deployment(session, endpoint, name) if endpoint is not None else None
                if row is None or row.generation != generation:
                    return
                row.state = state
                row.error = error
                rows.touch(row)
        except Exception:  # noqa: BLE001 - the workspace went away meanwhile
            logger.exception("could not record the state of deployment %s", name)

    # -- watching ------------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(MONITOR_PERIOD):
            try:
                self.sharing.tick()
            except Exception:  # noqa: BLE001 - the database may be away a moment: next tick
                logger.exception("refreshing the endpoints from the store")
            for dep in list(self.deployments.values()):
                pool = dep.pool
                if pool is None or pool.files is None:
                    continue
                for inst in pool.instances:
                    try:
                        self._check(dep, pool, inst)
                    except Exception:  # noqa: BLE001 - one instance's trouble must not stop the watch
                        logger.exception("checking an instance of %s", dep.key)

    def _check(self, dep: Deployment, pool: Pool, inst: Instance) -> None:
        assert inst.process is not None  # this server's own instances only
        now = time.monotonic()
        if inst.process.alive() and inst.ready and now >= inst.next_probe:
            inst.next_probe = now + pool.liveness.period
            if self._probe(inst, "/", timeout=pool.liveness.timeout):
                inst.liveness_failures = 0
            else:
                inst.liveness_failures += 1
                if inst.liveness_failures >= pool.liveness.failure_threshold:
                    logger.info("instance %d of %s failed its liveness probe: recycled", inst.process.index, dep.key)
                    inst.ready = False
                    inst.process.stop(grace=1.0)
        if not inst.process.alive():
            if dep.pool is not pool or self._stop.is_set():
                return
            if now - inst.process.started < 1.0:
                return  # at most one restart a second per instance
            inst.ready = False
            with open(inst.process.log_path, "a", encoding="utf-8") as log:
                log.write(f"--- shoal: instance exited with code {inst.process.proc.returncode}; restarting ---\n")
            inst.process = self._spawn(pool, inst.process.index)
            inst.restarts += 1
            inst.liveness_failures = 0
        elif not inst.ready and self._probe(inst, "/ready", timeout=0.5):
            inst.ready = True


def _drain(pool: Pool) -> None:
    """Wait until no request is in flight on ``pool`` (at most its request timeout)."""
    time.sleep(DRAIN_GRACE)  # a request that picked an instance just before the swap
    limit = time.monotonic() + float(pool.request_settings.get("request_timeout_ms") or 5000) / 1000
    while time.monotonic() < limit and any(i.inflight for i in pool.instances):
        time.sleep(0.02)


def _stop_pool(pool: Pool) -> None:
    for inst in pool.instances:
        inst.ready = False
    for inst in pool.instances:
        if inst.process is not None:
            inst.process.stop()
