"""Reading jobs: one job with its params and last metric values, and the newest-first list."""

from __future__ import annotations

from typing import Any

from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.jobs.state import get_row, json_float, to_body
from shoal.services.workspaces import workspace_id
from shoal.store import jobs as job_rows
from shoal.store import tracking as tracking_rows
from shoal.store.paging import Page, clamp_page_size, decode_token, encode_token


def get(ctx: ServiceContext, workspace: str, name: str, base_url: str | None = None) -> dict[str, Any]:
    """One job, with the params it logged and the last value of each of its metrics."""
    with ctx.db.read() as session:
        row = get_row(session, workspace_id(session, workspace), name)
        body = to_body(workspace, row, base_url)
        params, metrics = tracking_rows.run_summary(session, row.id)
    if params:
        body["params"] = params
    if metrics:
        body["metrics"] = {k: json_float(v) for k, v in metrics.items()}
    return body


def list_page(
    ctx: ServiceContext,
    workspace: str,
    *,
    parent_job_name: str | None = None,
    list_view_type: str = "ActiveOnly",
    status: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Page[dict[str, Any]]:
    """Newest first, keyset-paged on the row id."""
    size = clamp_page_size(max_results)
    with ctx.db.read() as session:
        ws_id = workspace_id(session, workspace)
        if list_view_type not in ("ActiveOnly", "ArchivedOnly", "All"):
            raise UserError(f"list_view_type must be ActiveOnly, ArchivedOnly or All, got {list_view_type!r}")
        after = decode_token(page_token)
        # As in Azure ML: the workspace's jobs; pipeline steps and nested runs are listed under
        # their parent (--parent-job-name).
        rows = job_rows.list_page_rows(
            session,
            ws_id,
            parent_job_name=parent_job_name,
            archived={"ActiveOnly": False, "ArchivedOnly": True}.get(list_view_type),
            status=status,
            before_id=int(after[0]) if after else None,
            limit=size + 1,
        )
        token = encode_token([rows[size - 1].id]) if len(rows) > size else None
        return Page([to_body(workspace, r) for r in rows[:size]], token)
