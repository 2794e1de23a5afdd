"""Batch endpoints: records, and ``invoke``, which submits an ordinary job (so the rest of Shoal
shows, streams and downloads it like any other):

- a model deployment becomes a command job in the deployment's environment and code snapshot,
  running ``runtime/batch_driver.py`` over the input's files in mini batches, its
  ``predictions.csv`` in the job's ``score`` output (Azure's output name);
- a pipeline-component deployment becomes a pipeline job with the component as its one step.

The jobs an endpoint started are recorded on it, for ``list-jobs``."""

from __future__ import annotations

import shlex
from typing import Any

from shoal.entities.kinds import parse_entity
from shoal.entities.names import generate_job_name
from shoal.entities.refs import parse_path
from shoal.errors import InvalidStateError, NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.endpoints.records import resolve_model
from shoal.services.jobs import queries as job_queries
from shoal.services.jobs import submission
from shoal.services.jobs.driver_file import driver_uri
from shoal.services.references import resolution as references
from shoal.services.workspaces import workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import batch_endpoints as rows


def _endpoint_body(row: Any, workspace: str, base_url: str) -> dict[str, Any]:
    return {
        **row.spec,
        "name": row.name,
        "scoring_uri": f"{base_url}/api/v1/workspaces/{workspace}/batchEndpoints/{row.name}/jobs",
        "provisioning_state": "Succeeded",
    }


def put_endpoint(ctx: ServiceContext, workspace: str, name: str, body: dict[str, Any], base_url: str) -> dict[str, Any]:
    entity = parse_entity("batch_endpoint", {**body, "name": name}, source=f"batch endpoint '{name}'")
    spec = entity.without_read_only().to_dict()
    for key in ("name", "$schema"):
        spec.pop(key, None)
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        row = rows.find_endpoint(session, ws_id, name)
        default = (spec.get("defaults") or {}).get("deployment_name")
        if default:
            known = [d.name for d in rows.list_deployments(session, row)] if row is not None else []
            if default not in known:
                raise NotFoundError(
                    f"batch endpoint '{name}': defaults.deployment_name '{default}' is not one of its deployments"
                    + (f" ({', '.join(known)})" if known else " (it has none yet)")
                )
        if row is None:
            row = rows.add_endpoint(session, ws_id, name, spec)
        else:
            row.spec = spec
            rows.touch(row)
        return _endpoint_body(row, workspace, base_url)


def get_endpoint(ctx: ServiceContext, workspace: str, name: str, base_url: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        return _endpoint_body(rows.get_endpoint(session, workspace_id(session, workspace), name), workspace, base_url)


def list_endpoints(ctx: ServiceContext, workspace: str, base_url: str) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        found = rows.list_endpoints(session, workspace_id(session, workspace))
        return [_endpoint_body(r, workspace, base_url) for r in found]


def delete_endpoint(ctx: ServiceContext, workspace: str, name: str) -> None:
    with ctx.db.write() as session:
        row = rows.get_endpoint(session, workspace_id(session, workspace), name)
        for dep in rows.list_deployments(session, row):
            rows.delete(session, dep)
        rows.delete(session, row)


# -- deployments -------------------------------------------------------------------------------


def _check_references(ctx: ServiceContext, workspace: str, name: str, spec: dict[str, Any]) -> None:
    """Every reference resolves now, so a bad deployment is refused at create, not at invoke."""
    if spec.get("type") == "pipeline":
        component = spec["component"]
        if isinstance(component, str):
            references.resolve_component(ctx, workspace, component, f"batch deployment '{name}' component")
        return
    resolve_model(ctx, workspace, spec.get("model"), name)
    references.resolve_code(ctx, workspace, spec["code_configuration"]["code"])
    safe_relpath(spec["code_configuration"]["scoring_script"])
    references.resolve_environment(ctx, workspace, spec.get("environment"))
    if spec.get("compute"):
        references.resolve_compute(ctx, workspace, spec["compute"])


def _deployment_body(endpoint: str, row: Any) -> dict[str, Any]:
    return {**row.spec, "name": row.name, "endpoint_name": endpoint, "provisioning_state": "Succeeded"}


def put_deployment(
    ctx: ServiceContext, workspace: str, endpoint: str, name: str, body: dict[str, Any], *, set_default: bool = False
) -> dict[str, Any]:
    where = f"batch deployment '{name}'"
    entity = parse_entity("batch_deployment", {**body, "name": name, "endpoint_name": endpoint}, source=where)
    spec = entity.without_read_only().to_dict()
    for key in ("name", "$schema", "endpoint_name"):
        spec.pop(key, None)
    _check_references(ctx, workspace, name, spec)
    with ctx.db.write() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        row, _ = rows.put_deployment(session, ep, name, spec)
        if set_default or not (ep.spec.get("defaults") or {}).get("deployment_name"):
            # As on Azure, an endpoint's first deployment becomes its default.
            ep.spec = {**ep.spec, "defaults": {"deployment_name": name}}
            rows.touch(ep)
        return _deployment_body(endpoint, row)


def get_deployment(ctx: ServiceContext, workspace: str, endpoint: str, name: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        return _deployment_body(endpoint, rows.get_deployment(session, ep, name))


def list_deployments(ctx: ServiceContext, workspace: str, endpoint: str) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        return [_deployment_body(endpoint, r) for r in rows.list_deployments(session, ep)]


def delete_deployment(ctx: ServiceContext, workspace: str, endpoint: str, name: str) -> None:
    with ctx.db.write() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        row = rows.get_deployment(session, ep, name)
        if (ep.spec.get("defaults") or {}).get("deployment_name") == name and len(
            rows.list_deployments(session, ep)
        ) > 1:
            raise InvalidStateError(
                f"deployment '{name}' is endpoint '{endpoint}''s default; make another one the default first"
            )
        rows.delete(session, row)
        if (ep.spec.get("defaults") or {}).get("deployment_name") == name:
            ep.spec = {k: v for k, v in ep.spec.items() if k != "defaults"}


# -- invoke ------------------------------------------------------------------------------------


def _model_job(spec: dict[str, Any], model: dict[str, Any], inputs: dict[str, Any], driver: str) -> dict[str, Any]:
    settings = spec.get("settings") or {}
    retry = settings.get("retry_settings") or {}
    code = spec["code_configuration"]
    ref = parse_path(model["uri"])
    folder = ref.path.rstrip("/").rsplit("/", 1)[-1] if ref.scheme == "datastore" else None
    args = [
        "python", "${{inputs.batch_driver}}",
        "--script", code["scoring_script"],
        "--input", "${{inputs.input_data}}",
        "--output", "${{outputs.score}}",
        "--model", "${{inputs.model}}",
        "--model-name", model["name"],
        "--model-version", str(model["version"]),
        "--mini-batch-size", str(settings.get("mini_batch_size", 10)),
        "--output-action", settings.get("output_action", "append_row"),
        "--output-file-name", settings.get("output_file_name", "predictions.csv"),
        "--error-threshold", str(settings.get("error_threshold", -1)),
        "--max-retries", str(retry.get("max_retries", 3)),
        "--logging-level", settings.get("logging_level", "info"),
    ]  # fmt: skip
    if folder:
        args += ["--model-folder", folder]
    return {
        "type": "command",
        "command": " ".join(a if a.startswith("${{") else shlex.quote(a) for a in args),
        "code": code["code"],
        "environment": spec["environment"],
        "compute": spec.get("compute") or "local",
        "inputs": {
            **inputs,
            "model": {"type": "custom_model", "path": model.get("asset") or model["uri"]},
            "batch_driver": {"type": "uri_file", "path": driver},
        },
        "outputs": {"score": {"type": "uri_folder"}},
        "environment_variables": {
            **(settings.get("environment_variables") or {}),
            **spec.get("environment_variables", {}),
        },
    }


def invoke(
    ctx: ServiceContext, workspace: str, endpoint: str, body: dict[str, Any], base_url: str | None = None
) -> dict[str, Any]:
    """Start the job of one invocation; ``body``: ``input`` (one data input, as Azure's CLI
    ``--input``) or ``inputs``, ``deployment_name`` (default: the endpoint's), ``experiment_name``."""
    with ctx.db.read() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        name = body.get("deployment_name") or (ep.spec.get("defaults") or {}).get("deployment_name")
        if not name:
            raise InvalidStateError(f"batch endpoint '{endpoint}' has no deployment yet: create one first")
        spec = dict(rows.get_deployment(session, ep, name).spec)
    inputs = dict(body.get("inputs") or {})
    if body.get("input") is not None:
        given = body["input"]
        inputs["input_data"] = given if isinstance(given, dict) else {"type": "uri_folder", "path": str(given)}
    if spec.get("type") == "pipeline":
        step: dict[str, Any] = {"component": spec["component"]}
        if inputs:
            step["inputs"] = inputs
        job: dict[str, Any] = {"type": "pipeline", "jobs": {name: step}, "settings": dict(spec.get("settings") or {})}
    else:
        if "input_data" not in inputs:
            raise UserError(f"invoking batch endpoint '{endpoint}' needs an input (the files to score)")
        model = resolve_model(ctx, workspace, spec.get("model"), name)
        assert model is not None  # a model deployment has a model (entity rule)
        job = _model_job(spec, model, inputs, driver_uri(ctx, workspace))
    job.update(
        name=generate_job_name(),
        experiment_name=body.get("experiment_name") or endpoint,
        display_name=f"{endpoint}-{name}",
        tags={"azureml.batchEndpoint": endpoint, "azureml.batchDeployment": name},
    )
    created = submission.submit(ctx, workspace, job, base_url)
    with ctx.db.write() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        ep.jobs = [*(ep.jobs or []), created["name"]]
    return created


def list_jobs(ctx: ServiceContext, workspace: str, endpoint: str, base_url: str | None = None) -> list[dict[str, Any]]:
    """The jobs invoking the endpoint started, newest first (archived or deleted ones left out)."""
    with ctx.db.read() as session:
        names = list(rows.get_endpoint(session, workspace_id(session, workspace), endpoint).jobs or [])
    out = []
    for job in reversed(names):
        try:
            out.append(job_queries.get(ctx, workspace, job, base_url))
        except NotFoundError:
            continue
    return out
