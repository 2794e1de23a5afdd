"""Lineage of an asset version: the job that produced it (its ``job_name``, set when a job's
output was registered or MLflow registered a run's model) and the jobs that used it (as an
input, environment, code or component), among a workspace's newest ``SCAN`` jobs."""

from __future__ import annotations

from typing import Any

from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.records import iso
from shoal.services.references import assets as asset_lookup
from shoal.services.workspaces import workspace_id
from shoal.store import studio_jobs
from shoal.store.tables import JobRow

SCAN = 20_000
MAX_USERS = 500
KINDS = ("model", "data", "environment", "component", "code")


def lineage(ctx: ServiceContext, workspace: str, kind: str, name: str, version: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise UserError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not name or not version:
        raise UserError("name and version are required")
    body = asset_lookup.resolve(ctx, workspace, kind, name, version=version)
    ref = f"{name}:{version}"
    path = str(body.get("path") or "").rstrip("/")
    produced = None
    if body.get("job_name"):
        produced = {"job": body["job_name"], "output": None}
    used: list[dict[str, Any]] = []
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        # A cheap text match first (the reference, or the stored path inputs resolve to), then
        # what each mention is.
        rows, truncated = studio_jobs.jobs_mentioning(session, ws_id, ref, SCAN)
        if path:
            more, _ = studio_jobs.jobs_mentioning(session, ws_id, path, SCAN)
            seen = {r.id for r in rows}
            rows += [r for r in more if r.id not in seen]
        rows.sort(key=lambda r: r.id, reverse=True)
        for row in rows:
            if produced is None or produced["output"] is None:
                output = _output_at(row, path)
                if output is not None and (produced is None or produced["job"] == row.name):
                    produced = {"job": row.name, "output": output}
            for use in _uses(row, kind, ref, path):
                used.append({"job": row.name, "input": use, "status": row.status, "created": iso(row.created_at)})
    return {
        "produced_by": produced,
        "used_by": used[:MAX_USERS],
        "used_by_truncated": truncated or len(used) > MAX_USERS,
    }


def _names_ref(value: Any, ref: str) -> bool:
    if not isinstance(value, str):
        return False
    text = value.removeprefix("azureml:")
    return text == ref or text.rsplit("/", 1)[-1].replace("/versions/", ":") == ref


def _uses(row: JobRow, kind: str, ref: str, path: str) -> list[str]:
    spec, resolved = row.spec or {}, row.resolved or {}
    out: list[str] = []
    if kind in ("model", "data"):
        resolved_inputs = resolved.get("inputs") or {}
        for key, inp in (spec.get("inputs") or {}).items():
            given = inp.get("path") if isinstance(inp, dict) else inp
            stored = resolved_inputs.get(key)
            stored_path = stored.get("path") if isinstance(stored, dict) else stored
            if _names_ref(given, ref) or (path and isinstance(stored_path, str) and stored_path.rstrip("/") == path):
                out.append(f"inputs.{key}")
    elif kind == "environment":
        env = resolved.get("environment") or {}
        if (isinstance(env, dict) and env.get("asset") == ref) or _names_ref(spec.get("environment"), ref):
            out.append("environment")
    elif kind == "code":
        code = resolved.get("code") or {}
        if isinstance(code, dict) and code.get("asset") == ref:
            out.append("code")
    elif kind == "component" and _names_ref(spec.get("component"), ref):
        out.append("component")
    return out


def _output_at(row: JobRow, path: str) -> str | None:
    """The name of the job's output stored at ``path`` (the asset registered from it)."""
    if not path:
        return None
    for key, out in ((row.resolved or {}).get("outputs") or {}).items():
        if isinstance(out, dict) and str(out.get("path") or "").rstrip("/") == path:
            return str(key)
    return None
