"""``metrics/get-history-bulk-interval``: one metric of several runs, sampled, for charts.

MLflow's semantics (its SQL store): each run is sampled on its own, over its points of that
metric in ``(step, timestamp, value)`` order, restricted to ``[start_step, end_step]`` when both
are given. The ordered points are cut into ``max_results`` buckets as evenly as possible (SQL's
``NTILE``: the first ``n % max_results`` buckets hold one point more) and the first point of each
bucket is kept; the run's last point is always kept too, replacing the last sample when the
sample is already full. A run with at most ``max_results`` points is returned whole. Unknown runs
return nothing, as in MLflow.

The sampling happens in the database (window functions, on SQLite and PostgreSQL alike), so a run
with millions of points costs the server ``max_results`` rows.
"""

from __future__ import annotations

from typing import Any

from shoal.errors import UserError
from shoal.services.tracking.values import int_arg, json_float, list_arg, no_separator, str_arg
from shoal.services.workspaces import workspace_id
from shoal.store import metric_sampling
from shoal.store import runs as run_store

MAX_RUNS = 100
MAX_RESULTS_PER_RUN = 2500


def get_metric_history_bulk_interval(ctx: Any, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    run_ids = list_arg(data.get("run_ids"))
    if not run_ids:
        raise UserError("GetMetricHistoryBulkInterval request must specify at least one run_id.")
    if len(run_ids) > MAX_RUNS:
        raise UserError(
            f"GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS} run_ids. "
            f"Received {len(run_ids)} run_ids."
        )
    key = str_arg(data, "metric_key")
    limit = int_arg(data, "max_results", MAX_RESULTS_PER_RUN)
    assert limit is not None
    if not 1 <= limit <= MAX_RESULTS_PER_RUN:
        raise UserError(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}.")
    start, end = int_arg(data, "start_step"), int_arg(data, "end_step")
    if (start is None) != (end is None):
        raise UserError("If either start step or end step are specified, both must be specified.")
    steps = None
    if start is not None and end is not None:
        if start > end:
            raise UserError(f"end_step must be greater than start_step. Found start_step={start} and end_step={end}.")
        steps = (start, end)
    out: list[dict[str, Any]] = []
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        names = [no_separator(r, "run_id") for r in dict.fromkeys(run_ids)]
        ids = run_store.ids_by_name(session, ws_id, names)
        for name in names:
            if name not in ids:
                continue
            for p in metric_sampling.sampled_points(session, ids[name], key, limit, steps):
                value = float("nan") if p.is_nan else p.value
                out.append(
                    {
                        "key": key,
                        "value": json_float(value),
                        "timestamp": p.timestamp,
                        "step": p.step,
                        "run_id": name,
                    }
                )
    return {"metrics": out}
