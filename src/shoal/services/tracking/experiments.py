"""MLflow experiments (``experiments/…``): a workspace's experiments, its Default one ("0")
created on first sight. Renaming, deleting or restoring an experiment carries to its runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shoal.errors import ConflictError, NotFoundError, UserError, not_found_hint
from shoal.services.context import ServiceContext
from shoal.services.tracking.search_grammar import parse_filter, parse_order_by
from shoal.services.tracking.values import (
    MAX_EXPERIMENT_NAME,
    MAX_RESULTS,
    check_key,
    check_value,
    int_arg,
    kv_list,
    list_arg,
    match_text,
    no_separator,
    page_offset,
    str_arg,
    view_stages,
)
from shoal.services.workspaces import workspace_id
from shoal.store import runs as run_store
from shoal.store import tracking as rows
from shoal.store.paging import encode_token
from shoal.store.tables import ExperimentRow

SEARCH_EXPERIMENTS = "mlflow.search_experiments()"


def _exp_body(row: ExperimentRow) -> dict[str, Any]:
    exp_id = rows.experiment_id(row)
    return {
        "experiment_id": exp_id,
        "name": row.name,
        # Always the server's own location: a client-chosen one (file:///etc, http://h/p?../..) was
        # how MLflow's artifact-location CVEs began, so it is never stored or shown.
        "artifact_location": f"mlflow-artifacts:/experiments/{exp_id}",
        "lifecycle_stage": row.lifecycle_stage,
        "last_update_time": row.last_update_time,
        "creation_time": row.creation_time,
        "tags": [{"key": k, "value": v} for k, v in (row.tags or {}).items()],
    }


def experiment(session: Session, ws_id: int, exp_id: str) -> ExperimentRow:
    """An experiment by MLflow id (the Default one created if need be), else NotFoundError."""
    no_separator(str(exp_id), "experiment_id")
    row = rows.find_experiment(session, ws_id, str(exp_id))
    if row is None and str(exp_id) == rows.DEFAULT_EXPERIMENT_ID:
        row = rows.ensure_default_experiment(session, ws_id)
    if row is None:
        raise NotFoundError(f"No Experiment with id={exp_id} exists")
    return row


def create_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = str_arg(data, "name")
    if len(name) > MAX_EXPERIMENT_NAME:
        raise UserError(f"Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME}")
    tags = {str(t["key"]): str(t.get("value", "")) for t in kv_list(data.get("tags"))}
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            old = rows.find_experiment_by_name(session, ws_id, name)
            if old is not None:
                state = " (deleted)" if old.lifecycle_stage == "deleted" else ""
                raise ConflictError(f"Experiment(name={name}) already exists{state}.")
            stamp = rows.now_ms()
            row = ExperimentRow(
                workspace_id=ws_id,
                name=name,
                is_default=False,
                artifact_location="",  # a client's artifact_location is ignored (see _exp_body)
                lifecycle_stage="active",
                tags=tags,
                creation_time=stamp,
                last_update_time=stamp,
            )
            session.add(row)
            session.flush()
            return {"experiment_id": rows.experiment_id(row)}
    except IntegrityError as exc:
        raise ConflictError(f"Experiment(name={name}) already exists.") from exc


def get_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    exp_id = no_separator(str_arg(data, "experiment_id"), "experiment_id")
    with ctx.db.read() as session:
        row = rows.find_experiment(session, workspace_id(session, workspace), exp_id)
    if row is None and exp_id == rows.DEFAULT_EXPERIMENT_ID:
        with ctx.db.write() as session:
            row = experiment(session, workspace_id(session, workspace), exp_id)
    if row is None:
        raise NotFoundError(f"No Experiment with id={exp_id} exists")
    return {"experiment": _exp_body(row)}


def get_experiment_by_name(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    name = str_arg(data, "experiment_name")
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        row = rows.find_experiment_by_name(session, ws_id, name)
        # MLflow's message, then close names (a typo is the usual cause).
        hint = (
            ""
            if row
            else not_found_hint(
                "experiment", name, known=rows.experiment_names(session, ws_id), list_hint=SEARCH_EXPERIMENTS
            )
        )
    if row is None and name == rows.DEFAULT_EXPERIMENT:
        with ctx.db.write() as session:
            row = rows.ensure_default_experiment(session, workspace_id(session, workspace))
    if row is None:
        raise NotFoundError(f"Could not find experiment with name '{name}'{hint}")
    return {"experiment": _exp_body(row)}


def search_experiments(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = int_arg(data, "max_results", 1000) or 1000
    if not 1 <= limit <= MAX_RESULTS:
        raise UserError(f"Invalid value {limit} for parameter 'max_results' supplied: it must be 1..{MAX_RESULTS}")
    stages = view_stages(data.get("view_type"))
    clauses = parse_filter(data.get("filter"))
    orders = parse_order_by(list_arg(data.get("order_by")))
    offset = page_offset(data.get("page_token"))
    for c in clauses:
        if not (c.kind == "tag" or (c.kind == "attribute" and c.key in rows.EXPERIMENT_COLUMNS)):
            raise UserError(f"Invalid attribute key '{c.key}' specified for experiment search")
    if any(o.key not in rows.EXPERIMENT_COLUMNS for o in orders):
        raise UserError(f"Invalid order_by for experiments: {data.get('order_by')}")
    with ctx.db.write() as session:  # write: the Default experiment is created on first sight
        ws_id = workspace_id(session, workspace)
        rows.ensure_default_experiment(session, ws_id)
        found = rows.search_experiments(session, ws_id, stages, clauses, orders)
    # Experiment tags are a JSON map: filter those in Python over the candidates.
    tag_clauses = [c for c in clauses if c.kind == "tag"]
    found = [r for r in found if all(match_text((r.tags or {}).get(c.key), c) for c in tag_clauses)]
    page = found[offset : offset + limit]
    body: dict[str, Any] = {"experiments": [_exp_body(r) for r in page]}
    if offset + limit < len(found):
        body["next_page_token"] = encode_token([offset + limit])
    return body


def update_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    new_name = str_arg(data, "new_name")
    try:
        with ctx.db.write() as session:
            ws_id = workspace_id(session, workspace)
            row = experiment(session, ws_id, str_arg(data, "experiment_id"))
            if row.lifecycle_stage != "active":
                raise UserError("Cannot rename a non-active experiment.")
            if new_name != row.name and rows.find_experiment_by_name(session, ws_id, new_name) is not None:
                raise ConflictError(f"Experiment(name={new_name}) already exists.")
            row.name = new_name
            row.last_update_time = rows.now_ms()
            run_store.rename_experiment(session, row.id, new_name)
    except IntegrityError as exc:
        raise ConflictError(f"Experiment(name={new_name}) already exists.") from exc
    return {}


def _set_experiment_stage(ctx: ServiceContext, workspace: str, data: dict[str, Any], stage: str) -> dict[str, Any]:
    with ctx.db.write() as session:
        row = experiment(session, workspace_id(session, workspace), str_arg(data, "experiment_id"))
        if row.is_default and stage == "deleted":
            raise UserError("Cannot delete the default experiment '0'. This is an internally reserved experiment.")
        row.lifecycle_stage = stage
        row.last_update_time = rows.now_ms()
        # As MLflow does: the runs of a deleted experiment are deleted with it, and come back with it.
        run_store.set_experiment_stage(session, row.id, stage)
    return {}


def delete_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _set_experiment_stage(ctx, workspace, data, "deleted")


def restore_experiment(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return _set_experiment_stage(ctx, workspace, data, "active")


def set_experiment_tag(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    key = check_key(data.get("key"), "tag")
    value = check_value(data.get("value"), 20000, "tag", key)
    with ctx.db.write() as session:
        row = experiment(session, workspace_id(session, workspace), str_arg(data, "experiment_id"))
        row.tags = {**(row.tags or {}), key: value}
        row.last_update_time = rows.now_ms()
    return {}
