"""The compute backend contract: what the dispatcher may ask of a backend, and nothing more.

A backend starts one *runner* (``python -m shoal.runtime --workspace W --job J --attempt N``) per
job attempt, tells whether it is still alive, stops it, and cleans up after it. It never touches
the store or the services: the dispatcher owns job states and hands a backend only what it needs.

- ``submit(attempt)`` starts the runner of one attempt, detached (it must outlive a server
  restart where ``capabilities.survives_restart``), and returns its *handle*: a backend-defined
  string that the dispatcher stores in the job row (``JobRow.runner_handle``). For ``local`` the
  handle is the runner's pid (in decimal); other backends prefix theirs with ``<name>:``. The
  runner's environment carries ``SHOAL_SERVER_URL``, ``SHOAL_JOB_TOKEN``, ``SHOAL_RUN_DIR``
  (its run folder), ``SHOAL_HOME`` and ``attempt.env``; no other ``SHOAL_*`` setting of the
  server leaks into it.
- ``poll(handle)`` is True while that attempt's runner lives. A handle this backend instance did
  not issue (a runner from before a server restart) is alive only if it still names a runner:
  a recycled pid, or any other process, is reported dead.
- ``cancel(handle, attempt, force=False)`` asks the runner to stop (SIGTERM: it winds its job
  down); ``force=True`` ends it at once (SIGKILL) together with the user process groups it
  recorded. Neither waits, and neither fails on a runner that is already gone.
- ``end_user_processes(attempt)`` ends the process groups a runner left behind (the runner writes
  their ids to ``user_pgids`` in its run folder): the cleanup for a runner that died.
- ``reap()`` collects the exit status of finished runners this backend started (no zombies);
  the dispatcher calls it every tick.
- ``logs_location(attempt)`` is where the runner's own output goes (``runner.log``), on the
  server's machine (a backend whose runners run elsewhere copies it there as it grows).
- ``exit_reason(handle)`` is None, or for a runner that ``poll`` reports dead without its
  having ended normally, the job's error as the backend knows it: ``{"code", "message"}``
  (``NODE_LOST`` naming the node that went away). The dispatcher uses it for ``RUNNER_LOST``;
  ``RUNNER_NOT_STARTED`` says the runner never started (nothing of the job ran: a restarted
  server found the attempt still waiting for a node), and the dispatcher queues the job again.
- ``unplaceable(attempt)`` is None when the backend can start that attempt now or later, else
  why it never can as things stand (``no Ray node offers 4 CPUs and 14 GiB``): the dispatcher
  then leaves the job ``Queued`` with that reason instead of starting it.
- ``capabilities`` says what the backend can do (see ``Capabilities``).

Optional: ``followable(handle)`` and ``follow(attempt, handle)``. A backend that has them can
start the runner of the next job of a full compute on the node of a running attempt, ahead of
time: it prepares there (spec, code, inputs, environment) and starts its command the moment the
command of the attempt it follows has ended (``shoal.runtime.handover``). ``follow`` returns the
new attempt's handle, or None when it cannot (the dispatcher then leaves the job queued). Ray's
agents have them; the local backend does not.

Optional: ``outcome_reported(handle)``: the runner of ``handle`` has reported its job's outcome
and only tidies up now; what the backend holds for it that other jobs wait for (a Ray node's
share) may go back before the runner exits. The dispatcher calls it first thing in the tick
after the report.

Backends are constructed with keyword arguments only, through ``shoal.compute.get_backend``;
every backend accepts ``home`` (the Shoal home: run folders live under it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from shoal.compute.sizes import NodeResources

# Stored in the job row's ``runner_handle`` column: what it means is the backend's affair.
Handle = str
# ``exit_reason``'s code for an attempt whose runner never started: its job is queued again.
RUNNER_NOT_STARTED = "RUNNER_NOT_STARTED"

# The run spec a backend hands to the runner it starts, in the run folder (the runner reads and
# removes it: shoal.runtime.__main__.HANDED_SPEC).
RUN_SPEC_FILE = "run_spec.json"


def hand_over_run_spec(run_dir: Path, spec: Mapping[str, Any] | None) -> None:
    """Leave ``spec`` for the runner about to start in ``run_dir`` (whole or not at all: a runner
    that finds no file asks the server). Readable by the server's user only, as the run folder."""
    if spec is None:
        return
    tmp = run_dir / f".{RUN_SPEC_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(spec, fh, separators=(",", ":"))
    os.replace(tmp, run_dir / RUN_SPEC_FILE)


# Settings of the server that its runners share: the system-metrics interval and how runners
# build environments. ``runner_environment`` forwards them.
FORWARDED_SETTINGS = ("SHOAL_SYSTEM_METRICS_SECONDS", "SHOAL_ENV_CACHE", "SHOAL_PYTHON_MISMATCH")


@dataclass(frozen=True)
class AttemptKey:
    """One attempt of one job: enough to find its run folder, its log and its process groups."""

    workspace: str
    job: str
    attempt: int


@dataclass(frozen=True)
class RunnerAttempt(AttemptKey):
    """What a backend needs to start the runner of one attempt.

    ``env`` is added to the runner's environment (the heartbeat interval, forwarded settings).
    ``nodes`` is the job's ``resources.instance_count``. ``compute_type`` is the type of the
    compute the job targets (``amlcompute``…; None: this machine), ``resources`` what one node
    of it offers (from its ``size``; None: unknown), for backends that place runners on nodes.
    ``run_spec``, when given, is the attempt's run spec as the runner would ask for it (less its
    ``mlflow_tracking_uri``, which the runner makes from the URL it calls): a backend leaves it
    in the run folder as ``RUN_SPEC_FILE``, and the runner starts without its first request.
    ``argv``, when given, replaces the runner command (``python -m shoal.runtime …``) and nothing
    else: the environment, run folder and log are as for a real runner. It exists for the backend
    contract tests, which start a runner-like script without a server; the dispatcher never sets it.
    """

    server_url: str
    token: str
    env: Mapping[str, str] = field(default_factory=dict)
    nodes: int = 1
    argv: tuple[str, ...] | None = None
    compute_type: str | None = None
    resources: NodeResources | None = None
    run_spec: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def key(self) -> AttemptKey:
        return AttemptKey(self.workspace, self.job, self.attempt)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do.

    ``max_nodes``: the most nodes one job may take (None: no limit of the backend's own).
    ``multi_node``: whether a job with ``instance_count > 1`` gets separate nodes; False where
    ranks are emulated as processes on one host (``local``).
    ``survives_restart``: whether runners outlive the server, so that handles stored before a
    restart still ``poll`` and ``cancel``.
    """

    max_nodes: int | None
    multi_node: bool
    survives_restart: bool


@runtime_checkable
class ComputeBackend(Protocol):
    """The contract every backend meets (see the module docstring)."""

    name: str
    capabilities: Capabilities

    def submit(self, attempt: RunnerAttempt) -> Handle: ...

    def poll(self, handle: Handle) -> bool: ...

    def cancel(self, handle: Handle, attempt: AttemptKey, *, force: bool = False) -> None: ...

    def end_user_processes(self, attempt: AttemptKey) -> None: ...

    def reap(self) -> None: ...

    def logs_location(self, attempt: AttemptKey) -> Path: ...

    def unplaceable(self, attempt: RunnerAttempt) -> str | None: ...

    def exit_reason(self, handle: Handle) -> dict[str, str] | None: ...


def runner_environment(heartbeat_seconds: float, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings a runner takes from its server: the heartbeat interval and ``FORWARDED_SETTINGS``
    that are set (non-empty) in ``environ`` (the server's own environment by default)."""
    environ = os.environ if environ is None else environ
    env = {"SHOAL_HEARTBEAT_SECONDS": str(heartbeat_seconds)}
    for key in FORWARDED_SETTINGS:
        if environ.get(key):
            env[key] = environ[key]
    return env
