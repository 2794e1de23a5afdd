"""``runs/search``: MLflow's run filter and order over a workspace's runs. The SQL is the store's
(``store/runs.py``: one query of ids, tuned); here the request is checked and MLflow's run
statuses are named as job states."""

from __future__ import annotations

from typing import Any

from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.tracking.run_rows import RUN_STATUS, runs_body
from shoal.services.tracking.search_grammar import parse_filter, parse_order_by
from shoal.services.tracking.values import MAX_RESULTS, int_arg, list_arg, page_offset, view_stages
from shoal.services.workspaces import workspace_id
from shoal.store import runs as run_store
from shoal.store import tracking as rows
from shoal.store.paging import encode_token

# Each MLflow run status a filter may name, as the job states it stands for.
JOB_STATES = {m: [str(s) for s, n in RUN_STATUS.items() if n == m] for m in set(RUN_STATUS.values())}


def search_runs(ctx: ServiceContext, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    limit = int_arg(data, "max_results", 1000) or 1000
    if not 1 <= limit <= MAX_RESULTS:
        raise UserError(f"Invalid value {limit} for parameter 'max_results' supplied: it must be at most {MAX_RESULTS}")
    stages = view_stages(data.get("run_view_type"))
    clauses = parse_filter(data.get("filter"))
    orders = parse_order_by(list_arg(data.get("order_by")))
    offset = page_offset(data.get("page_token"))
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        exp_ids: list[int | None] = []
        for exp_id in list_arg(data.get("experiment_ids")):
            exp = rows.find_experiment(session, ws_id, exp_id)
            if exp is not None:
                exp_ids.append(exp.id)
        ids = run_store.search_ids(session, ws_id, stages, exp_ids, clauses, orders, offset, limit + 1, JOB_STATES)
        by_id = run_store.by_ids(session, ids[:limit])
        found = [by_id[i] for i in ids[:limit]]
        body: dict[str, Any] = {"runs": runs_body(session, found)}
    if len(ids) > limit:
        body["next_page_token"] = encode_token([offset + limit])
    return body
