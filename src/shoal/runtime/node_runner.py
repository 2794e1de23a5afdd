"""``python -m shoal.runtime.node_runner … --node-rank K``: node K (> 0) of a job that spans several Ray nodes.

It prepares its node as the job's runner does (run spec, environment, code snapshot, inputs),
waits for the rendezvous (``shoal.runtime.node_group``), runs its node's ranks, ships their logs
(``user_logs/std_log_process_<global rank>.txt``), uploads what its ranks wrote into the job's
outputs and exits with their exit code. It never reports the job's state: node 0's runner does,
once it knows how every node did (its actor reads this runner's ``node_result.json``).

Outputs: as on Azure ML, where every node mounts the same output location, what any node's ranks
write into ``${{outputs.<name>}}`` ends up in that output. This runner uploads its node's files
(through the server, with the job token, as node 0 does) once its ranks succeeded and before it
exits; node 0 waits for every node's runner to have exited before it uploads its own and reports
the job, so the job is only ``Completed`` with every node's files in place (a file written on two
nodes is node 0's). A failed upload is this node's error, and so the job's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from shoal.runtime.client import RunnerClient, ServerGone, Stale
from shoal.runtime.logs import LogShipper
from shoal.runtime.materialize import materialize_inputs, planned_uploads, prepare_outputs, upload
from shoal.runtime.node_group import RESULT_FILE, GroupFailed, NodeGroup
from shoal.runtime.process import UserProcesses


def run_node(workspace: str, job: str, attempt: int, node_rank: int) -> int:
    # The job runner's steps, shared rather than copied (imported here: only this mode needs them).
    from shoal.entities.expressions import resolve_command
    from shoal.runtime.__main__ import fetch_code, job_environment, prepare_environment

    home = Path(os.environ["SHOAL_HOME"]) if os.environ.get("SHOAL_HOME") else None
    token = os.environ["SHOAL_JOB_TOKEN"]
    run_dir = Path(os.environ.get("SHOAL_RUN_DIR") or Path.cwd())
    os.environ["SHOAL_NODE_RANK"] = str(node_rank)
    group = NodeGroup.from_env(run_dir)
    if group is None:
        raise SystemExit("--node-rank needs SHOAL_NODE_COUNT > 1 (set by the Ray backend)")
    client = RunnerClient(os.environ["SHOAL_SERVER_URL"], token, workspace, job, None)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    result: dict[str, Any] = {"node_rank": node_rank, "exit_code": None, "rank": None, "error": None}
    shipper = LogShipper(client, run_dir)
    shipper.start()
    code = 1
    try:
        spec = client.run_spec()
        build_log = run_dir / "system_logs" / "environment_build.txt"
        build_log.parent.mkdir(parents=True, exist_ok=True)
        prepared = prepare_environment(spec["environment"], build_log, home or run_dir).layered(run_dir / "pyenv")
        workdir = run_dir / "wd"
        inline = spec.get("inline") or {}
        fetch_code(client, spec.get("code"), workdir, inline.get("code"))
        for sub in ("outputs", "logs"):
            (workdir / sub).mkdir(exist_ok=True)
        inputs = materialize_inputs(
            client, spec["inputs"], run_dir, (home / "cache" / "http") if home else None, inline.get("inputs")
        )
        outputs = prepare_outputs(spec["outputs"], run_dir)
        command = resolve_command(spec["command"], inputs, outputs)
        env = prepared.environ(job_environment(spec, token, inputs, outputs))
        ranks = group.plan(spec.get("distribution"), run_dir / "user_logs", cancel)
        for rank in ranks:
            shipper.watch(rank.log.relative_to(run_dir).as_posix())
        if cancel.is_set() or not ranks:
            code = 0
            return code
        procs = UserProcesses(command, workdir, env, ranks)
        procs.start()
        (run_dir / "user_pgids").write_text("\n".join(str(p.pid) for p in procs.procs))
        timeout = (spec.get("limits") or {}).get("timeout")
        code = procs.wait(timeout=float(timeout) if timeout else None, should_stop=cancel)
        if procs.stop_reason == "canceled":
            # The job's cancel reached every node: stopped ranks are no failure of this node's
            # (node 0 would otherwise report the job Failed instead of Canceled).
            code = 0
            result["canceled"] = True
        elif code != 0:
            result["rank"] = group.failed_rank(procs)
        elif not cancel.is_set():
            upload(client, planned_uploads(spec["outputs"], run_dir))  # before node 0 hears this node ended
    except (Stale, ServerGone):
        code = 3  # the attempt was replaced or the server is gone: nothing to report to
    except Exception as exc:  # noqa: BLE001 - node 0 reports it as the job's error
        from shoal.envs import EnvironmentBuildError

        building = isinstance(exc, EnvironmentBuildError)
        error_code = "ENVIRONMENT_BUILD_FAILED" if building else getattr(exc, "code", None) or "RUNNER_ERROR"
        if isinstance(exc, GroupFailed):
            error_code = exc.code
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        result["error"] = {"code": error_code, "message": message}
        traceback.print_exc()
        code = 1
    finally:
        shipper.close()  # every rank's log is on the server before node 0 hears this node ended
        result["exit_code"] = code
        with contextlib.suppress(OSError):
            (run_dir / RESULT_FILE).write_text(json.dumps(result))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shoal.runtime.node_runner")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--attempt", type=int, required=True)
    parser.add_argument("--node-rank", type=int, required=True)
    args = parser.parse_args(argv)
    if args.node_rank < 1:
        parser.error("--node-rank must be 1 or more: node 0 runs the job's runner (python -m shoal.runtime)")
    return run_node(args.workspace, args.job, args.attempt, args.node_rank)


if __name__ == "__main__":
    sys.exit(main())
