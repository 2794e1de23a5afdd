"""Online endpoints and deployments as records: create, read, update, delete, keys, logs.

Each change is stored first, then handed to the supervisor (instances) and the router's view
(traffic, keys); a deployment's create or update answers at once with ``Creating``/``Updating``
and the supervisor sets ``Succeeded`` or ``Failed`` (the SDK and CLI wait for it, as az does)."""

from __future__ import annotations

import secrets
from typing import Any

from shoal.entities.kinds import parse_entity
from shoal.entities.refs import parse_asset_ref, parse_path
from shoal.errors import ConflictError, InvalidStateError, NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.endpoints import tokens as endpoint_tokens
from shoal.services.endpoints.supervisor import Supervisor
from shoal.services.references import assets as asset_lookup
from shoal.services.references import resolution as references
from shoal.services.storage.datastores import require_datastore
from shoal.services.workspaces import workspace_id
from shoal.storage.paths import safe_relpath
from shoal.store import endpoints as rows

KEY_TYPES = ("primary", "secondary")


def _new_key() -> str:
    return secrets.token_urlsafe(32)


def scoring_uri(base_url: str, workspace: str, name: str) -> str:
    return f"{base_url}/api/v1/workspaces/{workspace}/onlineEndpoints/{name}/score"


def openapi_uri(base_url: str, workspace: str, name: str) -> str:
    return f"{base_url}/api/v1/workspaces/{workspace}/onlineEndpoints/{name}/swagger.json"


def _endpoint_body(row: Any, workspace: str, base_url: str) -> dict[str, Any]:
    uri = scoring_uri(base_url, workspace, row.name)
    return {
        **row.spec,
        "name": row.name,
        "scoring_uri": uri,
        "openapi_uri": openapi_uri(base_url, workspace, row.name),
        "provisioning_state": row.state,
    }


# -- endpoints ---------------------------------------------------------------------------------


def put_endpoint(
    ctx: ServiceContext, sup: Supervisor, workspace: str, name: str, body: dict[str, Any], base_url: str
) -> dict[str, Any]:
    entity = parse_entity("online_endpoint", {**body, "name": name}, source=f"online endpoint '{name}'")
    spec = entity.without_read_only().to_dict()
    spec.pop("name", None)
    spec.pop("$schema", None)
    with ctx.db.write() as session:
        ws_id = workspace_id(session, workspace)
        row = rows.find_endpoint(session, ws_id, name)
        known = {d.name for d in rows.list_deployments(session, row)} if row is not None else set()
        for field in ("traffic", "mirror_traffic"):
            unknown = sorted(set(spec.get(field) or {}) - known)
            if unknown:
                raise NotFoundError(
                    f"online endpoint '{name}': {field} names deployment '{unknown[0]}', which it does not have"
                    + (f" (it has {', '.join(sorted(known))})" if known else " (it has no deployments yet)"),
                    details={"field": field, "deployment": unknown[0]},
                )
        if row is None:
            keys = {"primaryKey": _new_key(), "secondaryKey": _new_key()}
            row = rows.add_endpoint(session, ws_id, name, spec, ctx.secrets.encrypt(keys))
        else:
            if spec.get("auth_mode") != row.spec.get("auth_mode"):
                raise ConflictError(f"online endpoint '{name}': auth_mode cannot change after creation")
            row.spec = spec
            rows.touch(row)
            keys = ctx.secrets.decrypt(row.keys)
        out = _endpoint_body(row, workspace, base_url)
    sup.set_endpoint(workspace, name, spec, keys)
    return out


def get_endpoint(ctx: ServiceContext, workspace: str, name: str, base_url: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        return _endpoint_body(rows.get_endpoint(session, workspace_id(session, workspace), name), workspace, base_url)


def list_endpoints(ctx: ServiceContext, workspace: str, base_url: str) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        return [
            _endpoint_body(r, workspace, base_url)
            for r in rows.list_endpoints(session, workspace_id(session, workspace))
        ]


def delete_endpoint(ctx: ServiceContext, sup: Supervisor, workspace: str, name: str) -> None:
    """The endpoint, its deployments and every instance of them."""
    with ctx.db.write() as session:
        row = rows.get_endpoint(session, workspace_id(session, workspace), name)
        for dep in rows.list_deployments(session, row):
            rows.delete(session, dep)
        rows.delete(session, row)
    sup.remove_endpoint(workspace, name)


def get_keys(ctx: ServiceContext, workspace: str, name: str, *, holder: str | None = None) -> dict[str, Any]:
    """The keys of a key endpoint; for an aml_token endpoint (``holder`` given), an access token
    for it (accessToken, expiryTimeUtc, refreshAfterTimeUtc, tokenType), as Azure's
    get-credentials."""
    with ctx.db.read() as session:
        row = rows.get_endpoint(session, workspace_id(session, workspace), name)
        mode = row.spec.get("auth_mode", "key")
        if mode == "aml_token" and holder is not None:
            return endpoint_tokens.mint(ctx.secrets.decrypt(row.keys)["primaryKey"], workspace, name, holder)
        if mode != "key":
            raise InvalidStateError(
                f"online endpoint '{name}' uses auth_mode {mode}: call it with your Shoal token "
                "(Authorization: Bearer <token>, `shoal account get-access-token`); it has no keys"
            )
        return ctx.secrets.decrypt(row.keys)


def regenerate_keys(
    ctx: ServiceContext, sup: Supervisor, workspace: str, name: str, key_type: str, key_value: str | None
) -> dict[str, Any]:
    if key_type not in KEY_TYPES:
        raise UserError(f"key_type must be primary or secondary, got {key_type!r}")
    if key_value is not None and len(key_value) < 16:
        raise UserError("a key_value must be at least 16 characters")
    get_keys(ctx, workspace, name)  # refuses aml_token endpoints
    with ctx.db.write() as session:
        row = rows.get_endpoint(session, workspace_id(session, workspace), name)
        keys = ctx.secrets.decrypt(row.keys)
        keys[f"{key_type}Key"] = key_value or _new_key()
        row.keys = ctx.secrets.encrypt(keys)
        rows.touch(row)
        spec = dict(row.spec)
    sup.set_endpoint(workspace, name, spec, keys)
    return keys


# -- deployments -------------------------------------------------------------------------------


def resolve_model(ctx: ServiceContext, workspace: str, model: Any, deployment: str) -> dict[str, Any] | None:
    if model is None:
        return None
    if isinstance(model, dict):
        uri = str(model["path"])
        ref = parse_path(uri)
        if ref.scheme == "local":
            raise UserError(f"deployment '{deployment}': model path {uri!r} is local; the SDK and CLI upload it first")
        if ref.scheme != "datastore":
            raise UserError(f"deployment '{deployment}': model path {uri!r} must be in a datastore of the workspace")
        require_datastore(ctx, workspace, ref.datastore, f"deployment '{deployment}' model")
        name = str(model.get("name") or f"{deployment}-model")
        out = {"name": name, "version": str(model.get("version") or "1"), "uri": uri}
        return {**out, "type": str(model.get("type") or "custom_model")}
    text = str(model)
    parsed = parse_asset_ref(text, kind="model")
    label = None if parsed.version else (parsed.label or "latest")
    try:
        body = asset_lookup.resolve(ctx, workspace, "model", parsed.name, version=parsed.version, label=label)
    except NotFoundError as exc:
        raise NotFoundError(f"deployment '{deployment}' model {text!r}: {exc.message}", details=exc.details) from exc
    out = {"name": body["name"], "version": str(body["version"]), "uri": body["path"], "asset": text}
    return {**out, "type": str(body.get("type") or "custom_model")}


def _resolve(ctx: ServiceContext, workspace: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Every reference of a deployment resolved to what an instance reads (nothing stored)."""
    resolved: dict[str, Any] = {"model": resolve_model(ctx, workspace, data.get("model"), name)}
    code = data.get("code_configuration")
    if code is None:
        # A no-code MLflow deployment: Shoal's MLflow scoring script, in the environment the model
        # names (its conda.yaml / requirements.txt) unless the deployment gives one.
        model = resolved["model"]
        if model is None or model.get("type") != "mlflow_model":
            kind = model.get("type") if model else "none"
            raise UserError(
                f"deployment '{name}': without a code_configuration the model must be an MLflow model "
                f"(type: mlflow_model); it is {kind}. Give a code_configuration (a score.py) and an environment"
            )
        resolved["mlflow"] = True
        env = data.get("environment")
        resolved["environment"] = (
            references.resolve_environment(ctx, workspace, env) if env is not None else {"from_model": True}
        )
    else:
        resolved["code"] = references.resolve_code(ctx, workspace, code["code"])
        resolved["scoring_script"] = safe_relpath(code["scoring_script"])
        resolved["environment"] = references.resolve_environment(ctx, workspace, data.get("environment"))
    for key in ("instance_count", "request_settings", "liveness_probe", "readiness_probe", "environment_variables"):
        if data.get(key) is not None:
            resolved[key] = data[key]
    return resolved


def _deployment_body(sup: Supervisor, workspace: str, endpoint: str, row: Any) -> dict[str, Any]:
    live = sup.describe((workspace, endpoint, row.name))
    body = {**row.spec, "name": row.name, "endpoint_name": endpoint, "provisioning_state": row.state, **live}
    if row.error:
        body.setdefault("properties", {})
        body["properties"] = {**body["properties"], "error": row.error}
    return body


def put_deployment(
    ctx: ServiceContext, sup: Supervisor, workspace: str, endpoint: str, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    where = f"online deployment '{name}'"
    entity = parse_entity("online_deployment", {**body, "name": name, "endpoint_name": endpoint}, source=where)
    spec = entity.without_read_only().to_dict()
    for key in ("name", "$schema", "endpoint_name"):
        spec.pop(key, None)
    if "error" in (spec.get("properties") or {}):  # the last rollout's error, sent back by a get-modify-put
        spec["properties"] = {k: v for k, v in spec["properties"].items() if k != "error"}
    resolved = _resolve(ctx, workspace, name, spec)
    new_view: tuple[dict[str, Any], dict[str, str]] | None = None
    with ctx.db.write() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        row = rows.find_deployment(session, ep, name)
        if row is None:
            row = rows.add_deployment(session, ep, name, spec, resolved)
            # As on Azure, every deployment is listed in the endpoint's traffic (a new one with 0).
            ep.spec = {**ep.spec, "traffic": {**(ep.spec.get("traffic") or {}), name: 0}}
            rows.touch(ep)
            new_view = dict(ep.spec), ctx.secrets.decrypt(ep.keys)
        else:
            row.generation += 1
            row.spec, row.resolved, row.state, row.error = spec, resolved, "Updating", None
            rows.touch(row)
        generation, row_id = row.generation, row.id
        out = _deployment_body(sup, workspace, endpoint, row)
    if new_view is not None:  # once stored: the router's view is never ahead of the store
        sup.set_endpoint(workspace, endpoint, *new_view)
    sup.rollout((workspace, endpoint, name), generation, resolved, row_id=row_id)
    return out


def get_deployment(ctx: ServiceContext, sup: Supervisor, workspace: str, endpoint: str, name: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        return _deployment_body(sup, workspace, endpoint, rows.get_deployment(session, ep, name))


def list_deployments(ctx: ServiceContext, sup: Supervisor, workspace: str, endpoint: str) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        return [_deployment_body(sup, workspace, endpoint, r) for r in rows.list_deployments(session, ep)]


def delete_deployment(ctx: ServiceContext, sup: Supervisor, workspace: str, endpoint: str, name: str) -> None:
    with ctx.db.write() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        row = rows.get_deployment(session, ep, name)
        for field in ("traffic", "mirror_traffic"):
            if (ep.spec.get(field) or {}).get(name):
                raise InvalidStateError(
                    f"deployment '{name}' still takes {ep.spec[field][name]}% of endpoint '{endpoint}' {field}; "
                    f"set it to 0 first (shoal online-endpoint update -n {endpoint} --traffic …)"
                )
        rows.delete(session, row)
        spec = dict(ep.spec)
        for field in ("traffic", "mirror_traffic"):
            if name in (spec.get(field) or {}):
                spec[field] = {k: v for k, v in spec[field].items() if k != name}
                ep.spec = spec
        keys = ctx.secrets.decrypt(ep.keys)
    sup.set_endpoint(workspace, endpoint, spec, keys)
    sup.remove((workspace, endpoint, name))


def get_logs(
    ctx: ServiceContext, sup: Supervisor, workspace: str, endpoint: str, name: str, lines: int
) -> dict[str, Any]:
    if not 0 < lines <= 10000:
        raise UserError(f"lines must be from 1 to 10000, got {lines}")
    with ctx.db.read() as session:
        ep = rows.get_endpoint(session, workspace_id(session, workspace), endpoint)
        generation = rows.get_deployment(session, ep, name).generation
    return {"content": sup.logs((workspace, endpoint, name), generation, lines)}
