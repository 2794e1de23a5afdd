"""What a job's studio page reads beyond the job itself: its live state (status, each metric's
last point, each log file's size, its children's states) under an ETag, its metric keys, its
code snapshot file by file, and its environment."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from shoal.entities.refs import parse_path
from shoal.entities.status import TERMINAL
from shoal.errors import NotFoundError, PayloadTooLargeError, UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs import state as job_state
from shoal.services.records import iso
from shoal.services.storage import files
from shoal.services.workspaces import workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import jobs as job_rows
from shoal.store import metric_rollup, studio_jobs

LOG_FOLDERS = ("user_logs", "system_logs")
MAX_LOG_FILES = 1000
MAX_CODE_FILES = 5000
MAX_CODE_FILE_BYTES = 2 * 1024 * 1024
ENVIRONMENT_BUILD_LOG = "system_logs/environment_build.txt"


def _number(value: float, is_nan: bool) -> float | None:
    return None if is_nan or not math.isfinite(value) else value


def log_files(ctx: ServiceContext, workspace: str, job: str) -> dict[str, int]:
    """Every log file of a job (each rank's ``user_logs/std_log*.txt``, the system logs) and its
    size, by its path as the logs route takes it."""
    store = files.store_for(ctx, workspace, job_state.ARTIFACTS_DATASTORE)
    prefix = job_state.artifacts_prefix(job)
    out: dict[str, int] = {}
    for folder in LOG_FOLDERS:
        try:
            found = store.list_files(f"{prefix}/{folder}")
        except NotFoundError:
            continue
        for f in found[:MAX_LOG_FILES]:
            out[f"{folder}/{f.path}"] = int(f.size)
    return out


def watch(ctx: ServiceContext, workspace: str, name: str) -> tuple[dict[str, Any], str]:
    """A job's live state and its ETag (a digest of the state: equal while nothing changed)."""
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        # Light reads only (no JSON columns): this is asked every 1.5 s by each open page.
        found = studio_jobs.live_row(session, ws_id, name)
        if found is None:
            raise job_rows.missing(session, ws_id, name)
        job_id, status, updated = found
        latest = metric_rollup.latest_of(session, job_id)
        children = studio_jobs.child_status_counts(session, ws_id, name)
        body: dict[str, Any] = {
            "status": status,
            "terminal": status in TERMINAL and not any(s not in TERMINAL for s in children),
            "updated": iso(updated),
            "metrics": {
                m.key: {"step": m.step, "time": m.timestamp, "value": _number(m.value, m.is_nan)}
                for m in sorted(latest, key=lambda m: m.key)
            },
            "children": dict(sorted(children.items())),
        }
    body["logs"] = log_files(ctx, workspace, name)
    etag = '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'
    return body, etag


def metric_keys(ctx: ServiceContext, workspace: str, name: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = job_state.get_row(session, workspace_id(session, workspace), name)
        latest = metric_rollup.latest_of(session, row.id)
        counts = metric_rollup.counts_by_key(session, row.id)
    return {
        "metrics": [
            {
                "key": m.key,
                "last": _number(m.value, m.is_nan),
                "step": m.step,
                "time": m.timestamp,
                "count": max(counts.get(m.key, 0), 1),
            }
            for m in sorted(latest, key=lambda m: m.key)
        ]
    }


def _code_location(ctx: ServiceContext, workspace: str, name: str) -> tuple[dict[str, Any], Any, str]:
    with ctx.db.read() as session:
        row = job_state.get_row(session, workspace_id(session, workspace), name)
        code = dict((row.resolved or {}).get("code") or {})
    if not code.get("uri"):
        raise NotFoundError(f"job '{name}' has no code snapshot")
    ref = parse_path(str(code["uri"]))
    if ref.scheme != "datastore" or not ref.datastore:
        raise NotFoundError(f"job '{name}' code is {code['uri']!r}, not stored in this workspace")
    store = files.store_for(ctx, workspace, ref.datastore)
    return code, store, (ref.path or "").strip("/")


def code_files(ctx: ServiceContext, workspace: str, name: str) -> dict[str, Any]:
    """The files of a job's code snapshot (at most ``MAX_CODE_FILES``)."""
    code, store, root = _code_location(ctx, workspace, name)
    found = store.list_files(root)
    return {
        "uri": code["uri"],
        "asset": code.get("asset"),
        "files": [{"path": f.path, "size": int(f.size)} for f in found[:MAX_CODE_FILES]],
        "truncated": len(found) > MAX_CODE_FILES,
    }


def code_file(ctx: ServiceContext, workspace: str, name: str, path: str) -> tuple[bytes, bool]:
    """One file of a job's code snapshot, and whether it reads as UTF-8 text."""
    if not path:
        raise UserError("path (a file of the snapshot) is required")
    rel = safe_relpath(path)
    _, store, root = _code_location(ctx, workspace, name)
    full = f"{root}/{rel}" if root else rel
    if not store.isfile(full):
        # A snapshot of one file lists it under its base name.
        if store.isfile(root) and rel == root.rsplit("/", 1)[-1]:
            full = root
        else:
            raise NotFoundError(f"the code snapshot of job '{name}' has no file {path!r}")
    with store.open_read(full) as fh:
        data = fh.read(MAX_CODE_FILE_BYTES + 1)
    if len(data) > MAX_CODE_FILE_BYTES:
        raise PayloadTooLargeError(f"{path!r} is over {MAX_CODE_FILE_BYTES} bytes: download it instead")
    try:
        data.decode("utf-8")
        return data, True
    except UnicodeDecodeError:
        return data, False


def environment(ctx: ServiceContext, workspace: str, name: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = job_state.get_row(session, workspace_id(session, workspace), name)
        resolved = (row.resolved or {}).get("environment")
        spec_env = (row.spec or {}).get("environment")
    logs = log_files(ctx, workspace, name)
    return {
        "environment": resolved if resolved is not None else spec_env,
        "build_log": ENVIRONMENT_BUILD_LOG if ENVIRONMENT_BUILD_LOG in logs else None,
    }
