"""The studio's data calls (``/api/v1/workspaces/{ws}/studio/...``): what its pages read beyond
the REST API. All reads; shapes in docs/studio.md."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from shoal.server.auth import Permission
from shoal.server.routes.common import ctx, guarded
from shoal.services.studio import job_pages, job_search, lineage, series

router = APIRouter(tags=["studio"])
PREFIX = "/workspaces/{workspace}/studio"


@guarded(router, "GET", PREFIX + "/jobs", Permission.READ)
def search_jobs(
    request: Request,
    workspace: str,
    experiment: str | None = None,
    status: str | None = None,
    tag: list[str] = Query(default=[]),
    filter: str | None = None,  # noqa: A002 - the query parameter's name
    parent: str | None = None,
    archived: str | None = None,
    order_by: str | None = None,
    columns: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> Response:
    """The jobs page: filtered, ordered, keyset-paged rows with the chosen metric/param columns."""
    return _json(
        job_search.search(
            ctx(request),
            workspace,
            experiment=experiment,
            status=status,
            tags=tag,
            filter_text=filter,
            parent=parent,
            archived=archived,
            order_by=order_by,
            columns=columns,
            max_results=max_results,
            page_token=page_token,
        )
    )


@guarded(router, "GET", PREFIX + "/jobs-columns", Permission.READ)
def job_columns(request: Request, workspace: str, experiment: str | None = None) -> dict[str, Any]:
    return job_search.column_keys(ctx(request), workspace, experiment)


@guarded(router, "GET", PREFIX + "/experiments", Permission.READ)
def experiments(request: Request, workspace: str) -> dict[str, Any]:
    return job_search.experiments(ctx(request), workspace)


@guarded(router, "GET", PREFIX + "/jobs/{name}/metrics", Permission.READ)
def job_metrics(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return job_pages.metric_keys(ctx(request), workspace, name)


@guarded(router, "GET", PREFIX + "/jobs/{name}/series", Permission.READ)
def job_series(
    request: Request,
    workspace: str,
    name: str,
    key: str = "",
    points: str | None = None,
    step_from: str | None = None,
    step_to: str | None = None,
) -> Response:
    """One metric, down-sampled past ``points`` (min, max and mean per bucket), in a step range."""
    n, steps = series.parse_args(points, step_from, step_to)
    return _json(series.series(ctx(request), workspace, name, key, n, steps))


@guarded(router, "GET", PREFIX + "/series", Permission.READ)
def runs_series(
    request: Request,
    workspace: str,
    runs: str = "",
    key: str = "",
    points: str | None = None,
    step_from: str | None = None,
    step_to: str | None = None,
) -> Response:
    """The same metric of several jobs, for compare."""
    n, steps = series.parse_args(points, step_from, step_to)
    return _json(series.series_of_runs(ctx(request), workspace, runs.split(","), key, n, steps))


@guarded(router, "GET", PREFIX + "/jobs/{name}/watch", Permission.READ)
def watch_job(request: Request, workspace: str, name: str) -> Response:
    """A job's live state under an ETag: ``If-None-Match`` with it answers 304 until it changes."""
    body, etag = job_pages.watch(ctx(request), workspace, name)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


@guarded(router, "GET", PREFIX + "/jobs/{name}/code", Permission.READ)
def code_files(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return job_pages.code_files(ctx(request), workspace, name)


@guarded(router, "GET", PREFIX + "/jobs/{name}/code/file", Permission.READ)
def code_file(request: Request, workspace: str, name: str, path: str = "") -> Response:
    data, text = job_pages.code_file(ctx(request), workspace, name, path)
    media = "text/plain; charset=utf-8" if text else "application/octet-stream"
    # Never rendered as a page of this origin, whatever the file holds.
    return Response(
        data, media_type=media, headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
    )


@guarded(router, "GET", PREFIX + "/jobs/{name}/environment", Permission.READ)
def job_environment(request: Request, workspace: str, name: str) -> dict[str, Any]:
    return job_pages.environment(ctx(request), workspace, name)


@guarded(router, "GET", PREFIX + "/lineage", Permission.READ)
def asset_lineage(
    request: Request, workspace: str, kind: str = "", name: str = "", version: str = ""
) -> dict[str, Any]:
    return lineage.lineage(ctx(request), workspace, kind, name, version)


def _json(body: Any) -> Response:
    """orjson: a jobs page or a 5,000-point series encodes several times faster than through
    FastAPI's encoder."""
    return Response(orjson.dumps(body), media_type="application/json")
