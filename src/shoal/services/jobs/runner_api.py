"""What runners call: the run spec of their attempt, status reports, heartbeats and log chunks.

Every call carries the attempt of the runner's token; a runner whose attempt was replaced is
refused (409), so a stale runner can never overwrite the state of the job's current attempt.
"""

from __future__ import annotations

import logging
from typing import Any

from shoal.compute import is_local_compute
from shoal.entities.pipeline_graph.type_rules import coerce_literal
from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.entities.refs import datastore_path
from shoal.entities.status import TERMINAL, JobStatus, can_move
from shoal.errors import ConflictError, InvalidStateError, NotFoundError, ShoalError, UserError
from shoal.services.assets import versions as assets
from shoal.services.context import ServiceContext
from shoal.services.jobs import inline_files
from shoal.services.jobs import state as job_state
from shoal.services.storage import files
from shoal.services.workspaces import workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import tracking as tracking_rows
from shoal.store.tables import JobRow

logger = logging.getLogger(__name__)
S = JobStatus
RUNNER_REPORTS = {S.RUNNING, S.FINALIZING, S.COMPLETED, S.FAILED, S.CANCELED}
MODEL_TYPES = {"mlflow_model", "custom_model", "triton_model"}
MAX_LOG_CHUNK = 8 * 1024 * 1024


def _current(session: Any, workspace: str, name: str, attempt: int, *, for_update: bool = False) -> JobRow:
    row = job_state.get_row(session, workspace_id(session, workspace), name, for_update=for_update)
    if attempt != row.attempt:
        raise ConflictError(
            f"job '{name}': attempt {attempt} was replaced by attempt {row.attempt}; this runner must stop",
            details={"attempt": row.attempt},
        )
    return row


def _experiment_id(session: Any, row: JobRow) -> str:
    """The MLflow id of the job's experiment ("0" for the workspace's Default)."""
    exp = tracking_rows.experiment_by_row_id(session, row.experiment_id)
    return tracking_rows.experiment_id(exp) if exp is not None else tracking_rows.DEFAULT_EXPERIMENT_ID


def run_spec(ctx: ServiceContext, workspace: str, name: str, attempt: int, server_url: str | None) -> dict[str, Any]:
    """What the runner of ``attempt`` needs to run it. ``server_url``: the URL the runner called,
    for its MLflow tracking URI; None when the dispatcher hands the spec over at launch (the
    runner then adds the URL it calls)."""
    stores = inline_files.Stores(ctx, workspace)
    with ctx.db.read() as session:
        row = _current(session, workspace, name, attempt)
        spec, resolved = row.spec, row.resolved
        body = {
            "workspace": workspace,
            "job": name,
            "attempt": attempt,
            "status": row.status,
            "display_name": spec.get("display_name"),
            "experiment_name": row.experiment_name,
            "experiment_id": _experiment_id(session, row),
            "command": spec["command"],
            "environment_variables": spec.get("environment_variables") or {},
            "distribution": spec.get("distribution"),
            "resources": spec.get("resources") or {},
            "limits": spec.get("limits") or {},
            "inputs": resolved.get("inputs") or {},
            "outputs": resolved.get("outputs") or {},
            "code": resolved.get("code"),
            "environment": resolved.get("environment"),
            "artifacts": resolved.get("artifacts"),
            "direct": _direct_offers(stores, resolved),
        }
        if server_url is not None:
            body["mlflow_tracking_uri"] = f"{server_url.rstrip('/')}/api/v1/workspaces/{workspace}/mlflow"
    # Small inputs and code come along: a pipeline step then starts without fetching its input.
    written = _datastores(resolved, written_only=True)
    body["inline"] = inline_files.inline_files(stores, body["inputs"], body["code"], written)
    return body


def _datastores(resolved: dict[str, Any], *, written_only: bool = False) -> list[str]:
    """The datastores of the job's outputs and artifacts, and, unless ``written_only``, its inputs."""
    entries = list((resolved.get("outputs") or {}).values())
    if not written_only:
        entries += list((resolved.get("inputs") or {}).values())
    names = set()
    for entry in entries:
        uri = str(entry.get("uri") or entry.get("path") or "") if isinstance(entry, dict) else ""
        ref = datastore_path(uri)
        if ref is not None:
            names.add(ref.datastore)
    if (resolved.get("artifacts") or {}).get("datastore"):
        names.add(resolved["artifacts"]["datastore"])
    return sorted(names)


def _direct_offers(stores: inline_files.Stores, resolved: dict[str, Any]) -> dict[str, list[str]]:
    """The datastores of the job's inputs, outputs and artifacts on which its runner may move
    files itself (``small``: reads of small files through signed URLs, Azure Blob; ``large``:
    uploads in parts, S3 and Azure Blob): a runner asks the others nothing, where each ask would
    cost it a round trip. Small files are written through the server: 10,000 of them took Azurite
    1.89x as long one at a time from the runner as from the native client (docs/benchmarks.md),
    where the server's batches had been faster than native."""
    small, large = [], []
    for name in _datastores(resolved):
        store = stores.get(name)
        try:
            offers = store.direct_offers() if store is not None else (False, False)
        except Exception:  # noqa: BLE001 - gone, unreachable, a bad key: the transfers say so themselves
            continue
        if offers[0]:
            small.append(name)
        if offers[1]:
            large.append(name)
    return {"small": small, "large": large, "small_writes": []}


def heartbeat(ctx: ServiceContext, workspace: str, name: str, attempt: int) -> dict[str, Any]:
    with ctx.db.write() as session:
        # Locked: any server's dispatcher may be changing this job at the same moment.
        row = _current(session, workspace, name, attempt, for_update=True)
        row.heartbeat_at = job_state.now()
        if row.status == S.NOT_RESPONDING:
            # The runner is back: return to the state it had before it went quiet.
            previous = _last_state_before(row, S.NOT_RESPONDING)
            job_state.transition(row, previous)
        # A job that ended without this runner (failed for silence, say) must stop it too.
        stop = row.status == S.CANCEL_REQUESTED or row.status in TERMINAL
        return {"status": row.status, "cancel_requested": stop}


def _last_state_before(row: JobRow, skip: JobStatus) -> JobStatus:
    times = sorted((t, s) for s, t in (row.status_times or {}).items() if s != skip)
    for _, state in reversed(times):
        if state in (S.PREPARING, S.RUNNING, S.FINALIZING):
            return JobStatus(state)
    return S.RUNNING


def _check_report(exit_code: Any, error: Any) -> None:
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
        raise UserError(f"exit_code must be an integer, got {exit_code!r}")
    if error is not None and not (
        isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
    ):
        raise UserError("error must be an object with string 'code' and 'message'")


def _effective_path(current: JobStatus, target: JobStatus) -> list[JobStatus]:
    """The moves a runner's report makes from ``current``; empty when it changes nothing."""
    if current == target:
        return []  # a retried report
    if current == S.CANCEL_REQUESTED and target in (S.RUNNING, S.FINALIZING):
        return []  # the runner has not seen the cancel yet: it will
    path = []
    if current == S.NOT_RESPONDING and not can_move(current, target):
        path.append(S.RUNNING)
    last = path[-1] if path else current
    if target == S.CANCELED and last != S.CANCEL_REQUESTED:
        path.append(S.CANCEL_REQUESTED)  # the runner stopped it (limits.timeout)
    if target == S.COMPLETED and last == S.RUNNING:
        # A runner whose outputs uploaded in a moment reports no Finalizing of its own: the
        # history still shows the state every completed job goes through, as Azure's does.
        path.append(S.FINALIZING)
    path.append(target)
    walk = current
    for step in path:
        if not can_move(walk, step):
            raise InvalidStateError(
                f"job cannot go from {current} to {target}", details={"from": str(current), "to": str(target)}
            )
        walk = step
    return path


def report(
    ctx: ServiceContext,
    workspace: str,
    name: str,
    attempt: int,
    status: str,
    *,
    exit_code: int | None = None,
    error: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    writes: list[tuple[str, str, list[tuple[str, bytes]]]] | None = None,
) -> dict[str, Any]:
    """Record what a runner reports. ``writes``: the job's small outputs and artifacts that came
    with its ``Completed`` report (``inline_files.parse_writes``), stored before the outcome is."""
    try:
        target = JobStatus(status)
    except ValueError as exc:
        raise UserError(f"unknown job status {status!r}") from exc
    if target not in RUNNER_REPORTS:
        raise UserError(f"a runner cannot report {status}")
    _check_report(exit_code, error)
    if writes and target != S.COMPLETED:
        raise UserError(f"files come with a Completed report only, not with {target}")
    with ctx.db.read() as session:
        row = _current(session, workspace, name, attempt)
        current = JobStatus(row.status)
        declared_outputs = dict(row.resolved.get("outputs") or {})
    if current in TERMINAL:
        if current == target:  # a retried report: already recorded, nothing registered twice
            return {"status": str(current), "cancel_requested": False}
        raise InvalidStateError(f"job '{name}' already finished ({current})")
    _effective_path(current, target)  # refuse an impossible move before registering anything
    values: dict[str, Any] = {}
    if target == S.COMPLETED and outputs:
        try:
            values = control_values(declared_outputs, outputs)
        except UserError as exc:
            target = S.FAILED
            error = {"code": "CONTROL_OUTPUT_INVALID", "message": exc.message}
    if target == S.COMPLETED and writes:
        try:
            inline_files.write(ctx, workspace, writes)
        except ShoalError as exc:
            target = S.FAILED
            error = {"code": "OUTPUT_UPLOAD_FAILED", "message": f"storing the job's outputs failed: {exc.message}"}
    if target == S.COMPLETED:
        try:
            _register_outputs(ctx, workspace, name, attempt)
        except ShoalError as exc:
            target = S.FAILED
            error = {"code": "OUTPUT_REGISTRATION_FAILED", "message": f"registering outputs failed: {exc.message}"}
    with ctx.db.write() as session:
        row = _current(session, workspace, name, attempt, for_update=True)
        row.heartbeat_at = job_state.now()
        if row.status in TERMINAL:
            if row.status == target:
                return {"status": row.status, "cancel_requested": False}
            raise InvalidStateError(f"job '{name}' already finished ({row.status})")
        steps = _effective_path(JobStatus(row.status), target)
        handle = row.runner_handle  # (a terminal state clears it)
        if values:
            row.resolved = with_control_values(row.resolved, values)
        for step in steps:
            final = step == steps[-1]
            job_state.transition(row, step, error=error if final else None, exit_code=exit_code if final else None)
        body = {"status": row.status, "cancel_requested": row.status == S.CANCEL_REQUESTED}
        on_cluster = not is_local_compute(row.compute)
    # Terminal: a slot of its compute is free, the next queued job need not wait a poll. Running,
    # on a compute cluster: the next job of a full compute can be prepared on its node (the
    # dispatcher's followers); not on the local compute, where a tick would only cost CPU.
    if target in TERMINAL:
        ctx.runner_reported(handle)
    if target in TERMINAL or (target == S.RUNNING and on_cluster):
        ctx.notify_jobs()
    return body


CONTROL_TEXT_LIMIT = 64 * 1024


def control_values(declared: dict[str, Any], given: Any) -> dict[str, Any]:
    """The control outputs' values a runner reported, checked against the job's outputs and read
    as their types (a number written as text becomes a number)."""
    if not isinstance(given, dict):
        raise UserError("outputs must be an object of control output values")
    values: dict[str, Any] = {}
    for name, text in given.items():
        out = declared.get(name)
        if out is None or out.get("type") not in PRIMITIVE_TYPES:
            raise UserError(f"'{name}' is not a control output of this job (a primitive output)")
        if not isinstance(text, str) or len(text) > CONTROL_TEXT_LIMIT:
            raise UserError(f"control output '{name}': the value must be text of at most {CONTROL_TEXT_LIMIT} bytes")
        value = text[:-1] if text.endswith("\n") else text  # `echo value > ${{outputs.x}}` adds one
        try:
            values[name] = coerce_literal(out["type"], value if out["type"] == "string" else value.strip())
        except ValueError as exc:
            raise UserError(f"control output '{name}' is declared {out['type']}: {exc}") from None
    return values


def with_control_values(resolved: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    outputs = {k: dict(v) for k, v in (resolved.get("outputs") or {}).items()}
    for name, value in values.items():
        outputs[name]["value"] = value
    return {**resolved, "outputs": outputs}


def _register_outputs(ctx: ServiceContext, workspace: str, name: str, attempt: int) -> None:
    """Outputs with a ``name`` become data or model assets when the job completes."""
    with ctx.db.read() as session:
        row = _current(session, workspace, name, attempt)
        outputs = dict(row.resolved.get("outputs") or {})
    for out_name, out in outputs.items():
        if not out.get("name"):
            continue
        kind = "model" if out["type"] in MODEL_TYPES else "data"
        body = {"type": out["type"], "path": out["path"], "description": f"Output '{out_name}' of job {name}"}
        if kind == "model":
            body["job_name"] = name
        assets.create(ctx, workspace, kind, out["name"], body, out.get("version"))


# -- logs -----------------------------------------------------------------------------------


def _log_rel(name: str, path: str) -> str:
    rel = safe_relpath(path)
    return f"{job_state.artifacts_prefix(name)}/{rel}"


def append_log(
    ctx: ServiceContext, workspace: str, name: str, attempt: int, path: str, offset: int, data: bytes
) -> dict[str, Any]:
    """Append ``data`` at ``offset``; a replayed chunk is accepted once, a gap is refused."""
    if len(data) > MAX_LOG_CHUNK:
        raise UserError(f"log chunk over {MAX_LOG_CHUNK} bytes")
    if offset < 0:
        raise UserError(f"offset must be >= 0, got {offset}")
    with ctx.db.read() as session:
        _current(session, workspace, name, attempt)
    store = files.store_for(ctx, workspace, job_state.ARTIFACTS_DATASTORE)
    rel = _log_rel(name, path)
    size = _size(store, rel)
    if offset > size:
        raise ConflictError(f"log {path}: chunk at offset {offset} leaves a gap (size {size})", details={"size": size})
    if offset + len(data) <= size:
        return {"size": size}  # already have it: the runner retried
    data = data[size - offset :]
    local = store.local_path(rel)
    if local is not None:
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            with open(local, "ab") as fh:
                fh.write(data)
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            raise UserError(f"log path '{path}' cannot be written: {exc.strerror}") from exc
    else:  # remote stores have no append: rewrite (logs there are a later concern)
        old = b""
        if store.exists(rel):
            with store.open_read(rel) as fh:
                old = fh.read()
        store.write_stream(rel, [old, data])
    return {"size": size + len(data)}


def _size(store: Any, rel: str) -> int:
    local = store.local_path(rel)
    if local is not None:
        try:
            if local.is_dir():
                raise UserError(f"log path '{rel}' is a folder, not a file")
            return local.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            if any(p.is_file() for p in local.parents):
                raise UserError(f"log path '{rel}' lies below a file") from None
            return 0
    if not store.exists(rel):
        return 0
    return sum(f.size for f in store.list_files(rel))


def read_log(ctx: ServiceContext, workspace: str, name: str, path: str, offset: int, limit: int) -> tuple[bytes, int]:
    """Bytes of a job log from ``offset``; returns (data, total size)."""
    with ctx.db.read() as session:
        job_state.get_row(session, workspace_id(session, workspace), name)
    store = files.store_for(ctx, workspace, job_state.ARTIFACTS_DATASTORE)
    rel = _log_rel(name, path)
    size = _size(store, rel)
    if offset >= size:
        return b"", size
    try:
        with store.open_read(rel) as fh:
            fh.seek(offset)
            return fh.read(min(limit, size - offset)), size
    except NotFoundError:
        return b"", 0
