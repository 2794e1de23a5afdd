"""``python -m shoal.runtime --workspace W --job J --attempt N``: run one attempt of one job.

The server starts this with SHOAL_SERVER_URL, SHOAL_JOB_TOKEN, SHOAL_RUN_DIR and SHOAL_HOME set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.runtime.client import RunnerClient, ServerGone, Stale
from shoal.runtime.handover import CommandsLock, wait_for_turn
from shoal.runtime.logs import LogShipper
from shoal.runtime.materialize import (
    inline_uploads,
    materialize_inputs,
    parse_datastore_uri,
    place_datastore,
    planned_uploads,
    prepare_outputs,
    read_control_outputs,
    upload,
)
from shoal.runtime.process import UserProcesses, plan_ranks
from shoal.runtime.sysmetrics import SystemMetrics, interval_from_env

if TYPE_CHECKING:
    from shoal.compute.sandbox import Sandbox

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


class Heartbeat(threading.Thread):
    """Tells the server the runner is alive; learns from the answer when a cancel was asked."""

    def __init__(self, client: RunnerClient, interval: float, cancel: threading.Event) -> None:
        super().__init__(name="shoal-heartbeat", daemon=True)
        self.client, self.interval, self.cancel = client, interval, cancel
        self.stopped = threading.Event()
        self.stale = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if self.client.heartbeat().get("cancel_requested"):
                    self.cancel.set()
            except Stale:
                self.stale.set()
                self.cancel.set()
                return
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
                continue


FINALIZING_AFTER = 0.2  # seconds of uploading before the runner says Finalizing on its own
HANDED_SPEC = "run_spec.json"  # shoal.compute.base.RUN_SPEC_FILE, not imported: start time
SANDBOX_ENV = "SHOAL_SANDBOX"  # shoal.compute.sandbox.RUNNER_ENV, not imported unless set
INHERITED_MLFLOW = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI", "MLFLOW_ACTIVE_MODEL_ID", "_MLFLOW_ACTIVE_MODEL_ID")
# The server's own storage settings and keys (the artifact root's, as docs/team-mode.md exports
# them) are the server's: job code gets a store's keys only through its datastore inputs and
# outputs, or from its own YAML's environment_variables.
SERVER_STORAGE_PREFIXES = ("AWS_", "AZURE_STORAGE_", "FSSPEC_")
SERVER_SECRETS = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                  "GOOGLE_APPLICATION_CREDENTIALS")  # fmt: skip


def job_environment(
    spec: dict[str, Any], token: str, inputs: dict[str, str | None], outputs: dict[str, str]
) -> dict[str, str]:
    """What the user command sees: Azure ML's variables, MLflow's, and its own."""
    from shoal.entities.expressions import resolve_command

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHOAL_", *SERVER_STORAGE_PREFIXES)) and k not in SERVER_SECRETS
    }
    # MLflow settings of the runner's own environment (the server's) must not point the job's
    # client at another experiment, registry or model than its own.
    for var in INHERITED_MLFLOW:
        env.pop(var, None)
    if spec.get("experiment_id"):
        env["MLFLOW_EXPERIMENT_ID"] = str(spec["experiment_id"])
    env.update(
        PYTHONUNBUFFERED="1",
        AZUREML_RUN_ID=spec["job"],
        AZUREML_ARM_WORKSPACE_NAME=spec["workspace"],
        AZUREML_ARM_PROJECT_NAME=spec["experiment_name"],
        AZUREML_ARM_SUBSCRIPTION=SUBSCRIPTION,
        AZUREML_ARM_RESOURCEGROUP="shoal",
        AZUREML_EXPERIMENT_NAME=spec["experiment_name"],
        MLFLOW_TRACKING_URI=spec["mlflow_tracking_uri"],
        MLFLOW_RUN_ID=spec["job"],
        MLFLOW_EXPERIMENT_NAME=spec["experiment_name"],
        MLFLOW_TRACKING_TOKEN=token,
    )
    for name, value in inputs.items():
        if value is None:
            continue
        if spec["inputs"][name].get("type") in ("string", "integer", "number", "boolean"):
            env[f"AZUREML_PARAMETER_{name}"] = value
        else:
            env[f"AZURE_ML_INPUT_{name}"] = value
    for name, path in outputs.items():
        env[f"AZURE_ML_OUTPUT_{name}"] = path
    for key, value in (spec.get("environment_variables") or {}).items():
        env[str(key)] = resolve_command(str(value), inputs, outputs)
    return env


def env_cache_dir(home: Path) -> Path:
    """Built environments: SHOAL_ENV_CACHE (one cache for several homes: test suites, CI), else the home's."""
    return Path(os.environ["SHOAL_ENV_CACHE"]) if os.environ.get("SHOAL_ENV_CACHE") else home / "envs"


def prepare_environment(resolved: dict[str, Any], build_log: Path, home: Path, sandbox: Sandbox | None = None) -> Any:
    """The job's interpreter: the host Python, or a uv environment built once and cached (what a
    requirement's build backend runs, it runs in ``sandbox``)."""
    from shoal.envs import EnvBuilder, normalize_environment

    source = resolved.get("curated") or resolved.get("inline") or resolved.get("spec")
    # SHOAL_PYTHON_MISMATCH=host: an environment pinning another Python than the host's (a conda
    # file's python=3.8) is built on the host's, with a warning in its build log, instead of on
    # one uv finds or downloads (the default, "error", fails the build when there is none).
    cache = env_cache_dir(home)
    mismatch = "host" if os.environ.get("SHOAL_PYTHON_MISMATCH") == "host" else "error"
    with open(build_log, "a", encoding="utf-8") as log:
        confine = sandbox.confine_build if sandbox is not None else None
        builder = EnvBuilder(cache, python_mismatch=mismatch, confine=confine)
        return builder.prepare(normalize_environment(source), log=log)


def fetch_code(
    client: RunnerClient, code: dict[str, Any] | None, workdir: Path, given: dict[str, Any] | None = None
) -> None:
    """A fresh copy of the snapshot for every run: never a folder shared with another job
    (``given``: the snapshot's files, sent with the run spec where it is small)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if not code:
        return
    uri = code["uri"]
    if parse_datastore_uri(uri) is None:
        raise ValueError(f"code {uri!r} cannot be fetched by the local runner")
    staging = workdir.parent / "code-download"
    if staging.exists():
        shutil.rmtree(staging)
    local = place_datastore(client, uri, staging, given)
    if local.is_dir():
        for item in local.iterdir():
            shutil.move(str(item), workdir / item.name)
        shutil.rmtree(staging, ignore_errors=True)
    else:
        shutil.move(str(local), workdir / local.name)


def handed_run_spec(run_dir: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    """The run spec the backend left in the run folder (``shoal.compute.base.RUN_SPEC_FILE``),
    removed once read; None when there is none (or it is another attempt's): the runner asks."""
    path = run_dir / HANDED_SPEC
    try:
        spec = json.loads(path.read_bytes())
        path.unlink()
    except (OSError, ValueError):
        return None
    if not isinstance(spec, dict) or (spec.get("job"), spec.get("attempt")) != (args.job, args.attempt):
        return None
    return spec


def run(args: argparse.Namespace) -> int:
    home = Path(os.environ["SHOAL_HOME"]) if os.environ.get("SHOAL_HOME") else None
    token = os.environ["SHOAL_JOB_TOKEN"]
    run_dir = Path(os.environ.get("SHOAL_RUN_DIR") or Path.cwd())
    # A fixed (public) URL is never swapped for the one in this home's server.json.
    rediscover = None if os.environ.get("SHOAL_SERVER_URL_FIXED") else home
    client = RunnerClient(os.environ["SHOAL_SERVER_URL"], token, args.workspace, args.job, rediscover)
    sandbox: Sandbox | None = None
    if os.environ.get(SANDBOX_ENV):
        # Imported only where job code is isolated: shoal.compute costs an unconfined start ~7 ms.
        from shoal.compute.sandbox import Sandbox as Isolation

        sandbox = Isolation.from_env()
    if sandbox is not None and sandbox.uid is not None:
        # Job code runs as another user: what this runner makes (environments, the job's layer,
        # inputs) must be readable by it; the server's home above stays 0700.
        os.umask(0o022)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    signal.signal(signal.SIGINT, lambda *_: cancel.set())

    spec = handed_run_spec(run_dir, args) or client.run_spec()
    # The URL this runner calls (a handed spec has none: the server cannot know which one that is).
    spec.setdefault("mlflow_tracking_uri", f"{client.url}/api/v1/workspaces/{args.workspace}/mlflow")
    client.offered(spec.get("direct"))
    beat = Heartbeat(client, float(os.environ.get("SHOAL_HEARTBEAT_SECONDS", "5")), cancel)
    beat.start()
    shipper = LogShipper(client, run_dir)
    user_log = shipper.watch("user_logs/std_log.txt")
    build_log = shipper.watch("system_logs/environment_build.txt")
    shipper.start()
    status, exit_code, error = "Failed", None, None
    network: Any = None  # the job's own network namespace (SHOAL_JOB_NETWORK=server)
    control: dict[str, str] = {}
    commands_lock: CommandsLock | None = None
    plan: list[Any] = []  # what goes up at the end (materialize.planned_uploads)
    with_report: list[dict[str, Any]] | None = None  # the part of it sent with the Completed report
    try:
        # The job's own layer over the shared environment: its `pip install` goes there.
        prepared = prepare_environment(spec["environment"], build_log, home or run_dir, sandbox).layered(
            run_dir / "pyenv"
        )
        shipper.ship_soon()  # the build log's lines go while the job starts, not at its end
        workdir = run_dir / "wd"
        inline = spec.get("inline") or {}
        fetch_code(client, spec.get("code"), workdir, inline.get("code"))
        for sub in ("outputs", "logs"):  # Azure ML gives every job these, kept as its artifacts
            (workdir / sub).mkdir(exist_ok=True)
        inputs = materialize_inputs(
            client, spec["inputs"], run_dir, (home / "cache" / "http") if home else None, inline.get("inputs")
        )
        outputs = prepare_outputs(spec["outputs"], run_dir)
        from shoal.entities.expressions import resolve_command

        command = resolve_command(spec["command"], inputs, outputs)
        env = prepared.environ(job_environment(spec, token, inputs, outputs))
        wrap = None
        if sandbox is not None:  # the server isolates job code: this run's folders only, see confine.py
            from shoal.runtime.confine import sandboxed, server_address

            if sandbox.network == "server":  # a network namespace of the job's own (job_network.py)
                from shoal.compute.job_network import JobNetwork

                port = server_address(spec["mlflow_tracking_uri"])[1]
                network = JobNetwork(sandbox.bwrap, run_dir / "net", port, lambda: server_address(client.url))
                network.start()

            wrap = sandboxed(
                sandbox,
                run_dir=run_dir,
                workdir=workdir,
                python=prepared.python,
                env_cache=env_cache_dir(home or run_dir),
                inputs_spec=spec["inputs"],
                inputs=inputs,
                env=env,
                network=network,
            )
        group = None  # node 0 of a job on several Ray nodes (imported only there: start time)
        if os.environ.get("SHOAL_NODE_COUNT"):
            from shoal.runtime.node_group import NodeGroup

            group = NodeGroup.from_env(run_dir)
        if group is not None:
            ranks = group.plan(spec.get("distribution"), run_dir / "user_logs", cancel)
        else:
            ranks = plan_ranks(spec.get("distribution"), spec.get("resources") or {}, run_dir / "user_logs")
        for rank in ranks:
            if rank.log != user_log:
                shipper.watch(rank.log.relative_to(run_dir).as_posix())
        # Prepared ahead on a node still running another job's command: start once it ends.
        if not wait_for_turn(cancel):
            raise _Canceled()
        commands_lock = CommandsLock(run_dir)
        # The Running report travels while the command starts (each takes milliseconds). Should
        # it fail (this attempt was replaced meanwhile, the server is gone), what was started stops.
        running = client.report_soon("Running")
        procs = UserProcesses(command, workdir, env, ranks, wrap)
        try:
            procs.start()
        finally:
            try:
                running()
            except BaseException:
                procs.stop("not running")
                raise
        if group is not None:
            group.watch(procs)  # another node failing stops this node's ranks
        # If this runner dies, the server ends these process groups (they would be orphans).
        (run_dir / "user_pgids").write_text("\n".join(str(p.pid) for p in procs.procs))
        sampler = _start_system_metrics(client, [p.pid for p in procs.procs])
        timeout = (spec.get("limits") or {}).get("timeout")
        try:
            exit_code = procs.wait(timeout=float(timeout) if timeout else None, should_stop=cancel)
        finally:
            commands_lock.release()  # the next job's command on this node may start now
            if sampler is not None:
                sampler.stop()
        if beat.stale.is_set():
            return 0
        if procs.stop_reason == "canceled":
            raise _Canceled()
        if group is not None:  # every node's ranks decide: waits for them, raises the first failure
            group.settle(exit_code, procs, cancel)
            if cancel.is_set():
                raise _Canceled()
        shipper.finish_soon()  # the last log lines go meanwhile
        plan = planned_uploads(spec["outputs"], run_dir, spec["artifacts"], workdir)
        if exit_code == 0 and procs.stop_reason is None:
            # Small outputs of a command that succeeded go with the Completed report, where the
            # run spec offers it (local stores): a pipeline step ends with one request, not two.
            with_report = inline_uploads(plan, inline.get("writes"))
        if with_report is None:
            # Finalizing is reported only if the outputs take a while to upload: a quick upload's
            # Finalizing is recorded with the outcome (one request fewer for each pipeline step).
            finalizing = client.report_soon("Finalizing", unless_done_within=FINALIZING_AFTER)
            try:
                # Outputs first: a job whose outputs did not reach their datastore has not completed.
                upload(client, plan)
            finally:
                finalizing()  # recorded before the outcome is
        if procs.stop_reason == "timeout":
            status = "Canceled"
            error = {"code": "JOB_TIMEOUT", "message": f"the job ran past limits.timeout ({timeout} s) and was stopped"}
        elif exit_code == 0:
            control = read_control_outputs(spec["outputs"], run_dir)
            status = "Completed"
        else:
            error = {"code": "USER_ERROR", "message": f"the command exited with code {exit_code}"}
    except _Canceled:
        status, error = "Canceled", None
    except Stale:
        return 0
    except ServerGone:
        return 3
    except Exception as exc:  # noqa: BLE001 - every failure becomes the job's error
        from shoal.envs import EnvironmentBuildError

        building = isinstance(exc, EnvironmentBuildError)
        code = "ENVIRONMENT_BUILD_FAILED" if building else getattr(exc, "code", None) or "RUNNER_ERROR"
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        error = {"code": code, "message": message}
        with open(build_log if building else user_log, "a", encoding="utf-8") as fh:
            fh.write(f"\n[shoal] {message}\n")
        traceback.print_exc()
    finally:
        if commands_lock is not None:
            commands_lock.release()
        if network is not None:
            network.close()
        beat.stopped.set()
        shipper.close()
    if with_report is not None and status != "Completed":
        try:  # it failed after all: its outputs go up as any failed job's do
            upload(client, plan)
        except Exception:  # noqa: BLE001 - the failure reported is the first one
            traceback.print_exc()
    completed = status == "Completed"
    try:
        reply = client.report(
            status,
            exit_code=exit_code,
            error=error,
            outputs=control if completed else None,
            files=with_report if completed else None,
        )
    except Stale:
        return 0
    if reply.get("status") == "Completed":
        # Everything was uploaded: drop the copies (code, inputs, outputs), keep the logs. A
        # failed run's folder stays for a look at what it left. Tidying up is background work:
        # the next job (a pipeline's next step) is starting on these cores right now.
        _lowest_priority()
        for sub in ("wd", "inputs", "outputs", "code-download", "pyenv", "home", "tmp"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
    return 0


def _lowest_priority() -> None:
    """This process at the lowest CPU priority, and its session too: a runner leads a session of
    its own, and Linux (autogroups) shares the CPU between sessions before it looks at niceness."""
    try:
        os.nice(19)
    except OSError:
        pass
    try:
        Path("/proc/self/autogroup").write_text("19")
    except OSError:
        pass


def _start_system_metrics(client: RunnerClient, sessions: list[int]) -> SystemMetrics | None:
    """CPU, memory and GPU of the job's sessions as ``system/…`` metrics (best effort)."""
    interval = interval_from_env()
    if interval <= 0:
        return None
    try:
        sampler = SystemMetrics(client.log_metrics, sessions, interval)
        sampler.start()
    except Exception:  # noqa: BLE001 - system metrics never fail the job
        return None
    return sampler


class _Canceled(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shoal.runtime")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--attempt", type=int, required=True)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
