"""Command jobs: a spec checked and every reference in it resolved, then stored Queued. Pipeline
steps and sweep trials are prepared by the same :func:`prepare_command`."""

from __future__ import annotations

from typing import Any

from shoal.entities.expressions import check_command
from shoal.entities.kinds import parse_entity
from shoal.entities.names import generate_job_name
from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs.state import ARTIFACTS_DATASTORE, artifacts_prefix, store_queued
from shoal.services.references import resolution as references
from shoal.services.workspaces import DEFAULT_DATASTORE


def prepare_command(
    ctx: ServiceContext,
    workspace: str,
    name: str,
    clean: dict[str, Any],
    *,
    pending: dict[str, dict[str, Any]] | None = None,
    default_datastore: str = DEFAULT_DATASTORE,
    where: str = "job",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A command job's spec checked and every reference in it resolved (nothing stored).

    ``pending`` inputs (pipeline steps) are bound to outputs of steps that have not run yet:
    they are filled in when the step is started and count as given here."""
    pending = pending or {}
    job = parse_entity("job", clean, source=where)
    data = job.to_dict()
    for key in ("status", "start_time", "end_time", "error", "exit_code", "archived"):
        data.pop(key, None)

    compute = references.resolve_compute(ctx, workspace, data.get("compute"))
    nodes = max(1, int((data.get("resources") or {}).get("instance_count") or 1))
    if compute.get("capacity") is not None and nodes > compute["capacity"]:
        raise UserError(
            f"{where}: the job asks for {nodes} nodes (resources.instance_count); compute '{compute['name']}' "
            f"has max_instances {compute['capacity']}"
        )
    data["compute"] = compute["name"] if compute["name"] != "local" else data.get("compute") or "local"
    resolved: dict[str, Any] = {"compute": compute}
    resolved["environment"] = references.resolve_environment(ctx, workspace, data.get("environment"))
    resolved["code"] = references.resolve_code(ctx, workspace, data.get("code"))
    given_inputs = {k: v for k, v in (data.get("inputs") or {}).items() if k not in pending}
    resolved["inputs"] = references.resolve_inputs(ctx, workspace, given_inputs)
    resolved["inputs"].update(pending)
    resolved["outputs"] = references.resolve_outputs(ctx, workspace, name, data.get("outputs") or {}, default_datastore)
    data["outputs"] = {
        k: {kk: vv for kk, vv in v.items() if kk in ("type", "mode", "path", "name", "version")}
        for k, v in resolved["outputs"].items()
    } or data.get("outputs")
    if not data["outputs"]:
        data.pop("outputs", None)
    given = {k for k, v in resolved["inputs"].items() if v.get("value") is not None or v.get("uri") or k in pending}
    texts = {f"{where} command": data["command"]}
    texts.update(
        {f"{where} environment variable {k}": str(v) for k, v in (data.get("environment_variables") or {}).items()}
    )
    for label, text in texts.items():
        check_command(text, inputs=set(resolved["inputs"]), outputs=set(resolved["outputs"]), given=given, where=label)
    resolved["artifacts"] = {"datastore": ARTIFACTS_DATASTORE, "path": artifacts_prefix(name)}
    data.setdefault("display_name", name)
    return data, resolved


def submit(ctx: ServiceContext, workspace: str, clean: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    """Check and resolve a command job, then store it Queued."""
    name = clean.get("name") or generate_job_name()
    clean["name"] = name
    data, resolved = prepare_command(ctx, workspace, name, clean)
    return store_queued(ctx, workspace, name, "command", data, resolved, base_url)
