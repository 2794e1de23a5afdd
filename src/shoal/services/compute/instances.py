"""Compute instances as dev boxes: start, stop, restart, idle shutdown, and their tokens.

``compute start`` starts a JupyterLab server (``compute/devbox.py``) for the instance on this
server's machine, with what notebook code needs to log into the workspace: ``MLFLOW_TRACKING_URI``
and ``MLFLOW_TRACKING_TOKEN``, ``SHOAL_SERVER_URL``/``SHOAL_TOKEN``/``SHOAL_WORKSPACE`` and a
``config.json`` beside the notebooks for ``MLClient.from_config()``.

The token is an *instance token* (``jobtokens.py``): never the admin token. It is signed for this
workspace, this instance and this start (a random session id kept in the instance's record), so
stopping or restarting the instance ends it; it carries the rights its starter holds in the
workspace now (all of them for the admin token, a user's current roles otherwise), less secrets,
compute and workspace management (``INSTANCE_PERMISSIONS``); jobs it submits are the starter's.

The record (``targets.DEVBOX`` in the compute's spec: session, pid, port, the Jupyter login token
encrypted, who started it and which server) is the truth across restarts: a server that starts
again reattaches to a JupyterLab still running, and shows an instance whose JupyterLab is gone as
``Stopped``. A monitor thread stops an instance whose JupyterLab died, and one idle (Jupyter's
``last_activity``: API calls, kernel activity, terminals) for ``idle_time_before_shutdown`` with
no job of it running.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.compute import devbox
from shoal.compute import sandbox as isolation
from shoal.entities.compute import ComputeInstance
from shoal.entities.status import OCCUPYING
from shoal.errors import InfraError, InvalidStateError, NotFoundError, ShoalError, UnsupportedError
from shoal.jobtokens import JobTokenSigner
from shoal.services.access.roles import ALL_PERMISSIONS, BOOTSTRAP_ADMIN, Permission, permissions_of
from shoal.services.compute.targets import DEVBOX, INSTANCE, KIND, LOCAL, Viewer, present
from shoal.services.context import ServiceContext
from shoal.services.records import iso
from shoal.services.workspaces import workspace_id
from shoal.store import access as access_rows
from shoal.store import jobs as job_rows
from shoal.store import resources as rows
from shoal.store.tables import ResourceRow, utcnow

logger = logging.getLogger(__name__)

# What an instance token may hold (and never more than its starter holds in the workspace): the
# notebook reads the workspace, tracks runs, and registers models, data and jobs; it never reads
# datastore secrets, changes computes or the workspace, or assigns roles.
INSTANCE_PERMISSIONS = frozenset({Permission.READ, Permission.WRITE, Permission.TRACK, Permission.COMPUTE_READ})
# States in which the instance's token is good and its JupyterLab is (about to be) up.
LIVE = ("Starting", "Running")
ACTIONS = ("start", "stop", "restart")


@dataclass(frozen=True)
class InstanceGrant:
    starter: str | None  # the user who started it; None: the server's admin token
    permissions: frozenset[Permission]


def instance_grant(ctx: ServiceContext, workspace: str, name: str, session_id: str) -> InstanceGrant | None:
    """What a token of this start of the instance may do now; None when that start has ended."""
    with ctx.db.read() as session:
        try:
            ws_id = workspace_id(session, workspace)
        except NotFoundError:  # the workspace is gone: so is the token's worth
            return None
        row = rows.find_row(session, ws_id, KIND, name)
        if row is None or row.type != INSTANCE or row.spec.get("state") not in LIVE:
            return None
        box = row.spec.get(DEVBOX) or {}
        if not box.get("session") or not secrets.compare_digest(str(box["session"]), session_id):
            return None
        starter = box.get("started_by")
        held = ALL_PERMISSIONS
        if starter is not None and starter != BOOTSTRAP_ADMIN:
            user = access_rows.find_user(session, starter)
            if user is None:
                held = frozenset()
            elif not user.admin:
                held = permissions_of(access_rows.roles_by_workspace(session, user.id).get(workspace, []))
    return InstanceGrant(starter, held & INSTANCE_PERMISSIONS)


def _last(name: str, status: str, trigger: str = "User", reason: str | None = None) -> dict[str, Any]:
    last: dict[str, Any] = {
        "operation_name": name,
        "operation_time": iso(utcnow()),
        "operation_status": status,
        "operation_trigger": trigger,
    }
    if reason:
        last["shoal_reason"] = reason
    return last


def _idle_limit(spec: dict[str, Any]) -> float | None:
    """The instance's ``idle_time_before_shutdown`` in seconds, read at every check, so that an
    update applies to a running instance."""
    fields = {k: v for k, v in spec.items() if k in ("idle_time_before_shutdown", "idle_time_before_shutdown_minutes")}
    return ComputeInstance.model_validate({"name": "ci", **fields}).idle_seconds()


class DevBoxes:
    """The dev boxes this server runs: their actions, the monitor, reattaching after a restart."""

    def __init__(
        self,
        ctx: ServiceContext,
        server_url: str | None,
        signer: JobTokenSigner,
        server_id: str,
        *,
        tick_seconds: float = 5.0,
        start_timeout: float = 120.0,
    ) -> None:
        self.ctx = ctx
        # None in an app without a listening server (tests in-process): nothing to call back on.
        self.server_url = server_url.rstrip("/") if server_url else None
        self.signer = signer
        self.server_id = server_id
        self.tick_seconds = tick_seconds
        self.start_timeout = start_timeout
        self.root = ctx.settings.resolved_home() / "instances"
        self._procs: dict[tuple[str, str], devbox.JupyterProcess] = {}
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        # Notebook code is user code: the same sandbox as job code (SHOAL_JOB_ISOLATION). A
        # sandboxed process dies with the thread that started it (bwrap --die-with-parent), so
        # every JupyterLab is started from this one long-lived thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-devboxes")
        settings = ctx.settings
        self.sandbox = isolation.resolve(
            settings.job_isolation, user=settings.job_user, read_paths=settings.job_read_paths,
            hide=[settings.resolved_home()],
        )  # fmt: skip

    # -- life of the server ---------------------------------------------------------------------

    def start(self) -> None:
        self.reconcile()
        self._monitor = threading.Thread(target=self._watch, name="shoal-devboxes", daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        """The server stops: JupyterLab servers keep running (a sandboxed one ends with the server)
        and the next start reattaches to those that still run."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=10)
        self._spawner.shutdown(wait=False)

    def reconcile(self) -> None:
        """At start: every instance this server ran is Running only if its JupyterLab still runs."""
        with self.ctx.db.write() as session:
            for ws, row in rows.of_type(session, KIND, INSTANCE):
                box = row.spec.get(DEVBOX) or {}
                if row.spec.get("state", "Stopped") == "Stopped" or box.get("server", self.server_id) != self.server_id:
                    continue
                folder = self.folder(ws, row.name)
                pid = box.get("pid")
                if row.spec.get("state") == "Running" and pid and devbox.is_running(int(pid), folder):
                    logger.info("compute instance %s/%s: reattached to JupyterLab (pid %s)", ws, row.name, pid)
                    continue
                if pid:
                    devbox.stop(int(pid), folder)
                reason = "its JupyterLab was not running when the server started"
                self._set_stopped(row, _last("Stop", "Succeeded", "System", reason))

    # -- actions ----------------------------------------------------------------------------------

    def folder(self, workspace: str, name: str) -> Path:
        return self.root / workspace / name

    def action(
        self, workspace: str, name: str, action: str, *, started_by: str | None, viewer: Viewer
    ) -> dict[str, Any]:
        if action not in ACTIONS:
            raise UnsupportedError(f"compute action '{action}' is not one of {', '.join(ACTIONS)}")
        if action == "stop":
            self._stop_box(workspace, name, _last("Stop", "Succeeded"))
        elif action == "start" and self._state(workspace, name, action) == "Running":
            pass  # already running: answered as it is, with its services (a script may start it twice)
        else:
            if action == "restart":
                self._stop_box(workspace, name, _last("Restart", "InProgress"), expect_running=True)
            self._start_box(workspace, name, started_by, "Restart" if action == "restart" else "Start")
        return self.get(workspace, name, viewer)

    def after_create(self, workspace: str, name: str, *, started_by: str | None, viewer: Viewer) -> dict[str, Any]:
        """A new instance starts, as on Azure. If it cannot (no JupyterLab, JupyterLab failing) it
        is still created, Stopped, its ``last_operation`` a failed Create saying why."""
        try:
            self._start_box(workspace, name, started_by, "Create")
        except ShoalError as exc:
            with self.ctx.db.write() as session:
                row = self._locked(session, workspace, name, "create")
                if row.spec.get("state") == "Stopped":
                    self._set_stopped(row, _last("Create", "Failed", reason=exc.message))
            logger.warning("compute instance %s/%s created but not started: %s", workspace, name, exc.message)
        return self.get(workspace, name, viewer)

    def _state(self, workspace: str, name: str, action: str) -> str:
        with self.ctx.db.read() as session:
            row = self._locked(session, workspace, name, action, lock=False)
            return str(row.spec.get("state", "Stopped"))

    def get(self, workspace: str, name: str, viewer: Viewer) -> dict[str, Any]:
        with self.ctx.db.read() as session:
            row = rows.get_row(session, workspace_id(session, workspace), KIND, name)
            return present(self.ctx, workspace, row, viewer)

    def before_delete(self, workspace: str, name: str) -> None:
        """Deleting a running instance ends its JupyterLab first."""
        with self.ctx.db.read() as session:
            row = rows.find_row(session, workspace_id(session, workspace), KIND, name)
            running = row is not None and row.type == INSTANCE and row.spec.get("state") in LIVE
        if running:
            self._stop_box(workspace, name, _last("Stop", "Succeeded"))

    def _locked(self, session: Any, workspace: str, name: str, action: str, *, lock: bool = True) -> ResourceRow:
        if name == LOCAL:
            raise UnsupportedError(f"compute 'local' cannot {action}: only compute instances can")
        row = rows.get_row(session, workspace_id(session, workspace), KIND, name, lock=lock)
        if row.type != INSTANCE:
            raise UnsupportedError(f"compute '{name}' is of type '{row.type}': only compute instances can {action}")
        return row

    def _start_box(self, workspace: str, name: str, started_by: str | None, operation: str) -> None:
        session_id = secrets.token_hex(12)
        with self.ctx.db.write() as session:
            row = self._locked(session, workspace, name, operation.lower())
            state = row.spec.get("state", "Stopped")
            if state != "Stopped":
                raise InvalidStateError(f"compute instance '{name}' is already {state.lower()}")
            problem = devbox.jupyter_missing()
            if self.server_url is None:
                problem = "this server has no URL its notebooks could call back on (it is not listening)"
            if problem:
                raise UnsupportedError(f"compute instance '{name}' cannot start: {problem}")
            box = {"session": session_id, "server": self.server_id, "started_by": started_by}
            row.spec = {**row.spec, "state": "Starting", DEVBOX: box, "last_operation": _last(operation, "InProgress")}
            row.updated_at = utcnow()
        folder = self.folder(workspace, name)
        try:
            env = self._environment(workspace, name, session_id, folder)
            proc = self._spawner.submit(
                devbox.start, folder, env, sandbox=self.sandbox, readable=self._readable()
            ).result()
            problem = devbox.wait_ready(proc, self.start_timeout)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the instance Stopped, saying why
            proc, problem = None, str(exc)
        if problem is not None:
            if proc is not None:
                devbox.stop(proc.pid, folder, proc.proc)
            with self.ctx.db.write() as session:
                row = self._locked(session, workspace, name, operation.lower())
                self._set_stopped(row, _last(operation, "Failed", reason=problem[-2000:]))
            raise InfraError(f"compute instance '{name}' could not start its JupyterLab: {problem}")
        assert proc is not None
        with self.ctx.db.write() as session:
            row = self._locked(session, workspace, name, operation.lower())
            current = row.spec.get(DEVBOX) or {}
            if current.get("session") != session_id:  # stopped meanwhile
                devbox.stop(proc.pid, folder, proc.proc)
                return
            token = self.ctx.secrets.encrypt({"jupyter": proc.token})
            box = {**current, "pid": proc.pid, "port": proc.port, "token": token, "started_at": iso(utcnow())}
            row.spec = {**row.spec, "state": "Running", DEVBOX: box, "last_operation": _last(operation, "Succeeded")}
            row.updated_at = utcnow()
        self._procs[(workspace, name)] = proc
        logger.info("compute instance %s/%s: JupyterLab on port %d (pid %d)", workspace, name, proc.port, proc.pid)

    def _stop_box(
        self, workspace: str, name: str, last: dict[str, Any], *, expect_running: bool = False, only: str | None = None
    ) -> bool:
        """Stop the instance's JupyterLab. ``only``: stop it only if that start (session) still runs."""
        with self.ctx.db.write() as session:
            row = self._locked(session, workspace, name, str(last["operation_name"]).lower())
            state = row.spec.get("state", "Stopped")
            box = dict(row.spec.get(DEVBOX) or {})
            if only is not None and (state != "Running" or box.get("session") != only):
                return False
            if state == "Stopped" or (expect_running and state != "Running"):
                what = "start it instead" if expect_running and state == "Stopped" else "nothing to do"
                raise InvalidStateError(f"compute instance '{name}' is already {state.lower()}: {what}")
            if state == "Starting":
                raise InvalidStateError(f"compute instance '{name}' is starting: stop it once it runs")
            if box.get("server", self.server_id) != self.server_id:
                raise InvalidStateError(
                    f"compute instance '{name}' runs on server '{box.get('server')}': stop it through that server"
                )
            # The token dies with the session, before the process does.
            row.spec = {**row.spec, "state": "Stopping", DEVBOX: {**box, "session": None}}
            row.updated_at = utcnow()
        held = self._procs.pop((workspace, name), None)
        if box.get("pid"):
            devbox.stop(int(box["pid"]), self.folder(workspace, name), held.proc if held is not None else None)
        with self.ctx.db.write() as session:
            row = rows.get_row(session, workspace_id(session, workspace), KIND, name, lock=True)
            self._set_stopped(row, last)
        return True

    @staticmethod
    def _set_stopped(row: ResourceRow, last: dict[str, Any]) -> None:
        keep = {k: v for k, v in (row.spec.get(DEVBOX) or {}).items() if k in ("started_by", "server")}
        if last.get("operation_status") == "InProgress":
            last = {**last, "operation_status": "Succeeded"}
        row.spec = {**row.spec, "state": "Stopped", DEVBOX: keep, "last_operation": last}
        row.updated_at = utcnow()

    # -- what the notebook gets -------------------------------------------------------------------

    def _environment(self, workspace: str, name: str, session_id: str, folder: Path) -> dict[str, str]:
        assert self.server_url is not None
        token = self.signer.issue_instance(workspace, name, session_id)
        tracking = f"{self.server_url}/api/v1/workspaces/{workspace}/mlflow"
        # Nothing of the server's own settings (SHOAL_HOME, the database URL…) reaches notebooks.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOAL_", "MLFLOW_", "JUPYTER"))}
        env.update(
            {
                "MLFLOW_TRACKING_URI": tracking,
                "MLFLOW_TRACKING_TOKEN": token,
                "SHOAL_SERVER_URL": self.server_url,
                "SHOAL_TOKEN": token,
                "SHOAL_WORKSPACE": workspace,
                "AZUREML_ARM_WORKSPACE_NAME": workspace,
                "CI_NAME": name,  # as on an Azure compute instance
            }
        )
        config = {
            "subscription_id": "00000000-0000-0000-0000-000000000000",
            "resource_group": "shoal",
            "workspace_name": workspace,
            "shoal_url": self.server_url,
        }
        devbox.write_config(folder, config)
        return env

    def _readable(self) -> list[str]:
        """What a sandboxed JupyterLab must read besides the system: the server's interpreter
        (where the devbox extra installed it) and the folders on its PYTHONPATH."""
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if os.path.isabs(p)]
        return [*paths, os.path.realpath(sys.prefix)]

    # -- the monitor ------------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the monitor outlives a bad tick
                logger.exception("compute instance monitor")

    def tick(self) -> None:
        """Stop this server's instances whose JupyterLab is gone, or idle past their limit."""
        with self.ctx.db.read() as session:
            mine = []
            for ws, row in rows.of_type(session, KIND, INSTANCE):
                box = row.spec.get(DEVBOX) or {}
                if row.spec.get("state") == "Running" and box.get("server") == self.server_id and box.get("pid"):
                    busy = bool(job_rows.on_compute(session, row.workspace_id, row.name, OCCUPYING))
                    mine.append((ws, row.name, dict(box), busy, _idle_limit(row.spec)))
        for ws, name, box, busy, limit in mine:
            folder = self.folder(ws, name)
            held = self._procs.get((ws, name))
            alive = held.proc.poll() is None if held is not None and held.proc is not None else None
            if alive is None:
                alive = devbox.is_running(int(box["pid"]), folder)
            if not alive:
                self._stop_box(ws, name, _last("Stop", "Succeeded", "System", "JupyterLab exited"), only=box["session"])
                continue
            if not limit or busy:
                continue
            token = str(self.ctx.secrets.decrypt(box["token"]).get("jupyter", ""))
            state = devbox.status(int(box["port"]), token)
            idle = devbox.idle_seconds(state) if state is not None else None
            if idle is not None and idle >= float(limit):
                logger.info("compute instance %s/%s: idle for %.0f s, stopping it", ws, name, idle)
                self._stop_box(ws, name, _last("Stop", "Succeeded", "IdleShutdown"), only=box["session"])
