"""Pipeline jobs: submission.

Submission expands the pipeline (``entities.pipeline_graph``), checks and resolves every command
step as a command job (compute, environment, code, inputs, outputs), and stores in one
transaction: the pipeline job, one child pipeline job per nested pipeline, and one child command
job per step, in ``NotStarted``. A bad pipeline leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from shoal.constants import PROVENANCE_PROPERTY_PREFIXES
from shoal.entities.expressions import resolve_output_path
from shoal.entities.kinds import parse_entity
from shoal.entities.names import generate_job_name
from shoal.entities.pipeline_graph import parallel
from shoal.entities.pipeline_graph.expander import expand
from shoal.entities.pipeline_graph.model import Graph, Leaf, Value, field_of
from shoal.entities.status import JobStatus
from shoal.errors import ConflictError, ShoalError
from shoal.services.context import ServiceContext
from shoal.services.jobs import reuse, sweeps
from shoal.services.jobs import state as job_state
from shoal.services.jobs.command import prepare_command
from shoal.services.jobs.driver_file import driver_uri
from shoal.services.references import resolution as references
from shoal.services.storage.datastores import require_datastore
from shoal.services.workspaces import DEFAULT_DATASTORE, workspace_id

S = JobStatus
PIPELINE = "pipeline"
STEP_PROPERTY = "shoal.step"


def _strip(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value.split(":", 1)[1] if value.startswith("azureml:") else value


def _step_error(exc: ShoalError, where: str) -> ShoalError:
    """The same error, naming the step it came from."""
    if exc.message.startswith(where):
        return exc
    exc.message = f"{where}: {exc.message}"
    exc.args = (exc.message,)
    return exc


def validate(ctx: ServiceContext, workspace: str, spec: dict[str, Any]) -> Graph:
    """Expand and check a pipeline job against the workspace's registered components."""
    return expand(spec, lambda ref, where: references.resolve_component(ctx, workspace, ref, where))


def submit(ctx: ServiceContext, workspace: str, clean: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    name = clean.get("name") or generate_job_name()
    clean["name"] = name
    data = parse_entity("job", clean, source="pipeline job").to_dict()
    for key in ("status", "start_time", "end_time", "error", "exit_code", "archived"):
        data.pop(key, None)
    # A pipeline-level output path's ${{name}} is the pipeline's name.
    for out_name, out in (data.get("outputs") or {}).items():
        if isinstance(out, dict) and out.get("path"):
            out["path"] = resolve_output_path(
                str(out["path"]), name=name, output_name=out_name, default_datastore=DEFAULT_DATASTORE
            )
    graph = validate(ctx, workspace, data)
    settings = graph.settings
    default_ds = _strip(settings.get("default_datastore")) or DEFAULT_DATASTORE
    require_datastore(ctx, workspace, default_ds, "settings.default_datastore")
    continue_on_failure = bool(settings.get("continue_on_step_failure"))
    force_rerun = bool(settings.get("force_rerun"))
    experiment = data.pop("experiment_name", None) or "Default"
    data.setdefault("display_name", name)

    names = {"": name}
    for path in [*graph.nodes, *graph.leaves]:
        names.setdefault(path, generate_job_name())
    root_inputs = _resolve_values(ctx, workspace, graph.root.inputs, "inputs")
    # Every step ran the code the pipeline was submitted from: its git provenance goes to each.
    provenance = {k: v for k, v in (data.get("properties") or {}).items() if k.startswith(PROVENANCE_PROPERTY_PREFIXES)}
    steps: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for path in graph.order():
        steps[path] = _prepare_leaf(ctx, workspace, graph.leaves[path], names, default_ds, force_rerun, provenance)

    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            root_resolved = {
                "inputs": root_inputs,
                "outputs": _bound_outputs(graph.root.outputs, graph.root.bound_outputs, names),
                "continue_on_step_failure": continue_on_failure,
                "force_rerun": force_rerun,
                "warnings": graph.warnings,
                "steps": {path: names[path] for path in graph.root.steps},
            }
            root = job_state.new_row(session, ws_id, name, PIPELINE, data, root_resolved, experiment)
            for path, node in graph.nodes.items():
                if not path:
                    continue
                node_spec = {
                    "type": PIPELINE,
                    "display_name": node.spec.get("display_name") or node.name,
                    "description": node.spec.get("description"),
                    "properties": {**provenance, STEP_PROPERTY: path},
                    "component": node.spec.get("name"),
                }
                node_resolved = {
                    "inputs": {},
                    "outputs": _bound_outputs(node.outputs, node.bound_outputs, names),
                    "continue_on_step_failure": continue_on_failure,
                    "steps": {p: names[p] for p in node.steps},
                }
                row = job_state.new_row(
                    session,
                    ws_id,
                    names[path],
                    PIPELINE,
                    {k: v for k, v in node_spec.items() if v is not None},
                    node_resolved,
                    experiment,
                    parent=names[node.parent or ""],
                )
                job_state.transition(row, S.QUEUED)
            for path, (spec, resolved) in steps.items():
                leaf = graph.leaves[path]
                job_state.new_row(
                    session, ws_id, names[path], leaf.kind, spec, resolved, experiment, parent=names[leaf.parent]
                )
            session.flush()
            job_state.transition(root, S.QUEUED)
            body = job_state.to_body(workspace, root, base_url)
    except IntegrityError as exc:
        raise ConflictError(f"a job named '{name}' already exists in workspace '{workspace}'") from exc
    if graph.warnings:
        body["warnings"] = list(graph.warnings)
    ctx.notify_jobs()
    return body


def _resolve_values(ctx: ServiceContext, workspace: str, values: dict[str, Value], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value.kind == "literal":
            out[name] = {"type": references.literal_type(value.literal), "value": value.literal}
        elif value.kind == "data" and value.path:
            uri = references.resolve_input_uri(
                ctx, workspace, name, value.type or "uri_folder", value.path, where=f"{where}.{name}"
            )
            out[name] = {"type": value.type or "uri_folder", "uri": uri, "mode": value.mode or "ro_mount"}
    return out


def _bound_outputs(declared: dict[str, Any], bound: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    out = {}
    for name, settings in declared.items():
        entry = {"type": settings.get("type") or "uri_folder", "mode": settings.get("mode") or "rw_mount"}
        ref = bound.get(name)
        if ref is not None:
            entry["bound"] = {"job": names[ref.step], "output": ref.output}
        out[name] = entry
    return out


def _prepare_leaf(
    ctx: ServiceContext,
    workspace: str,
    leaf: Leaf,
    names: dict[str, str],
    default_ds: str,
    force_rerun: bool,
    provenance: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    where = field_of(leaf.path)
    job_name = names[leaf.path]
    spec = dict(leaf.job)
    spec.update(type="command", name=job_name)
    inputs: dict[str, Any] = {}
    pending: dict[str, dict[str, Any]] = {}
    for name, value in leaf.inputs.items():
        if value.kind == "literal":
            inputs[name] = value.literal
        elif value.kind == "data" and value.path == parallel.DRIVER_PLACEHOLDER:
            inputs[name] = {"type": "uri_file", "path": driver_uri(ctx, workspace)}  # a parallel step's
        elif value.kind == "data":
            inputs[name] = {"type": value.type or "uri_folder", "path": value.path}
            if value.mode:
                inputs[name]["mode"] = value.mode
        elif value.is_control and value.ref is not None:
            # Another step's control output: a value once that step has run (filled in then).
            inputs[name] = {"type": value.type}
            pending[name] = {
                "type": value.type,
                "control": True,
                "optional": bool(((leaf.component.get("inputs") or {}).get(name) or {}).get("optional")),
                "pending": {"job": names[value.ref.step], "output": value.ref.output},
            }
        elif value.kind == "output" and value.ref is not None:
            producer = names[value.ref.step]
            inputs[name] = {
                "type": value.type or "uri_folder",
                "path": f"azureml://jobs/{producer}/outputs/{value.ref.output}",
            }
            if value.mode:
                inputs[name]["mode"] = value.mode
            pending[name] = {
                "type": value.type or "uri_folder",
                "mode": value.mode or "ro_mount",
                "pending": {"job": names[value.ref.step], "output": value.ref.output},
            }
        else:
            inputs[name] = None
    spec["inputs"] = inputs
    spec["outputs"] = {
        name: {k: v for k, v in out.items() if k in ("type", "mode", "path", "name", "version", "description")}
        for name, out in leaf.outputs.items()
    }
    props = {**provenance, **(spec.get("properties") or {})}
    props[STEP_PROPERTY] = leaf.path
    spec["properties"] = props
    if leaf.kind == "sweep":
        return _prepare_sweep(ctx, workspace, leaf, job_name, spec, pending, default_ds)
    try:
        data, resolved = prepare_command(
            ctx, workspace, job_name, spec, pending=pending, default_datastore=default_ds, where=where
        )
    except ShoalError as exc:
        raise _step_error(exc, where) from None
    static = reuse.static_parts(resolved, leaf.component, ctx, workspace)
    # Registered components by reference; inline and local-file ones (anonymous) by content.
    label = leaf.component.get("name") or leaf.name
    data["properties"]["shoal.component"] = leaf.component_ref or f"anonymous:{label}:{static['component'][:16]}"
    for name, out in leaf.outputs.items():
        if out.get("path") and name in resolved["outputs"]:
            resolved["outputs"][name]["chosen_path"] = True
    resolved["depends_on"] = sorted({names[dep] for dep in leaf.depends_on})
    resolved["reuse"] = {
        "enabled": leaf.deterministic and not force_rerun,
        "reason": (
            "settings.force_rerun is true"
            if force_rerun
            else "the component is not deterministic (is_deterministic: false)"
            if not leaf.deterministic
            else None
        ),
        "static": static,
    }
    return data, resolved


def _prepare_sweep(
    ctx: ServiceContext,
    workspace: str,
    leaf: Leaf,
    job_name: str,
    spec: dict[str, Any],
    pending: dict[str, dict[str, Any]],
    default_ds: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    spec["type"] = "sweep"
    where = field_of(leaf.path)
    try:
        data, resolved = sweeps.prepare(
            ctx, workspace, job_name, spec, pending=pending, default_datastore=default_ds, where=where
        )
    except ShoalError as exc:
        raise _step_error(exc, where) from None
    resolved["depends_on"] = sorted(pending_job["pending"]["job"] for pending_job in pending.values())
    # Trials sample at random: what a sweep finds is not a function of its inputs.
    resolved["reuse"] = {"enabled": False, "reason": "sweep steps always run", "static": {}}
    return data, resolved
