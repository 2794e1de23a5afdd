"""``shoal job …``: submit, follow, inspect and manage jobs, as ``az ml job`` does."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.common import (
    ArchivedOnlyOpt,
    IncludeArchivedOpt,
    MaxResultsOpt,
    NameOpt,
    OutputOpt,
    QueryOpt,
    RequiredName,
    SetOpt,
    WorkspaceOpt,
    client,
    list_view,
    open_in_browser,
    patch_from_sets,
    set_overrides,
    show,
)
from shoal.cli.global_args import warn
from shoal.cli.output import OutputFormat
from shoal.errors import UserError

job_app = typer.Typer(help="Submit and manage jobs.", no_args_is_help=True)
METRIC_COLUMNS = ["name", "step", "value", "timestamp"]
METRIC_SUMMARY_COLUMNS = ["name", "count", "last", "min", "min_step", "max", "max_step", "goal", "best_step"]
COLUMNS = ["name", "display_name", "status", "type", "compute", "experiment_name", "creation_context.created_at"]
# `job list --parent-job-name <pipeline>`: a pipeline's steps, and whether each one ran or was reused.
STEP_COLUMNS = ["name", "display_name", "status", "type", "reuse", "compute", "creation_context.created_at"]
# `job list --parent-job-name <sweep>`: its trials.
TRIAL_COLUMNS = ["name", "status", "params", "primary_metric", "best", "stopped"]


def _stream(ops: Any, name: str) -> None:
    """Follow the log; Ctrl-C stops following, not the job. Exit 1 unless it completed."""
    from shoal.client.jobs import JobFailedError

    try:
        ops.stream(name)
    except KeyboardInterrupt:
        typer.echo(f"\nStopped streaming; job {name} goes on. `shoal job stream -n {name}` resumes.", err=True)
        raise typer.Exit(130) from None
    except JobFailedError as exc:
        typer.echo(f"Error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(1) from None


def studio_url(job: Any) -> str | None:
    """The job's ``services.Studio.endpoint``, as az's ``--web`` opens it."""
    services = job.to_dict().get("services") if hasattr(job, "to_dict") else None
    studio = (services or {}).get("Studio") or {}
    return studio.get("endpoint") if isinstance(studio, dict) else None


def _open_studio(job: Any) -> None:
    """Print the studio URL on stderr (stdout stays the job's JSON) and open it where a browser is."""
    url = studio_url(job)
    if not url:
        warn(f"job {job.name} has no studio URL")
        return
    typer.echo(f"Studio: {url}", err=True)
    open_in_browser(url)


@job_app.command("create")
def create(
    file: Annotated[Path, typer.Option("--file", "-f", help="Job YAML.")],
    name: NameOpt = None,
    set: SetOpt = None,
    stream: Annotated[bool, typer.Option("--stream", "-s", help="Follow the logs until the job ends.")] = False,
    save_as: Annotated[Path | None, typer.Option("--save-as", "-a", help="Write the job as YAML.")] = None,
    skip_validation: Annotated[
        bool,
        typer.Option(
            "--skip-validation",
            help="Accepted for compatibility (az skips its client-side checks): the server always validates.",
        ),
    ] = False,
    web: Annotated[
        bool, typer.Option("--web", "-e", help="Print the job's studio URL and open it in a browser when one is there.")
    ] = False,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Submit a job from its YAML (uploads the code folder and local inputs)."""
    from shoal.entities.loader import load_entity

    if skip_validation:
        warn("--skip-validation is accepted for compatibility and ignored: the server always validates the job")
    overrides: list[Any] = list(set_overrides(set))
    if name:
        overrides.append({"name": name})
    job = load_entity("job", file, params_override=overrides)
    ops = client(workspace_name).jobs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        created = ops.create_or_update(job)
    for warning in caught:
        warn(str(warning.message))
    if save_as is not None:
        import yaml

        save_as.write_text(yaml.safe_dump(created.to_dict(), sort_keys=False))
    if web:
        _open_studio(created)
    if stream:
        _stream(ops, created.name)
        return
    show(created, output, query)


@job_app.command("show")
def show_job(
    name: RequiredName,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a job: status, times, inputs, outputs, error."""
    show(client(workspace_name).jobs.get(name), output, query)


@job_app.command("list")
def list_jobs(
    parent_job_name: Annotated[str | None, typer.Option("--parent-job-name", "-p")] = None,
    max_results: MaxResultsOpt = 50,
    all_results: Annotated[bool, typer.Option("--all-results", help="No limit.")] = False,
    include_archived: IncludeArchivedOpt = False,
    archived_only: ArchivedOnlyOpt = False,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """List jobs, newest first (50 unless --max-results or --all-results). Pipeline steps and sweep
    trials are listed with --parent-job-name (with -o table: reuse, or params and primary metric)."""
    ops = client(workspace_name).jobs
    items = list(
        ops.list(
            parent_job_name=parent_job_name,
            list_view_type=list_view(include_archived, archived_only),
            max_results=None if all_results else max_results,
        )
    )
    if output == OutputFormat.table and parent_job_name:
        from shoal.client.pipelines import reuse_text
        from shoal.errors import NotFoundError

        try:
            parent = ops.get(parent_job_name)
        except NotFoundError:
            parent = None
        if parent is not None and parent.type == "sweep":
            show(_trial_rows(ops, parent, items), output, query, columns=TRIAL_COLUMNS)
            return

        rows = [job.to_dict() for job in items]
        show([{**row, "reuse": reuse_text(row)} for row in rows], output, query, columns=STEP_COLUMNS)
        return
    show(items, output, query, columns=COLUMNS)


def _trial_rows(ops: Any, sweep: Any, trials: list[Any]) -> list[dict[str, Any]]:
    """A sweep's trials with their parameters, the primary metric's last value and early stops."""
    metric = (sweep.objective or {}).get("primary_metric")
    rows = []
    for trial in trials:
        full = ops.get(trial.name)
        props = full.properties or {}
        params = props.get("shoal.sweep.params") or {}
        value = (full.metrics or {}).get(metric) if metric else None
        rows.append(
            {
                "name": full.name,
                "status": full.status,
                "params": ", ".join(f"{k}={v}" for k, v in sorted(params.items())) if isinstance(params, dict) else "",
                "primary_metric": "" if value is None else f"{metric}={value}",
                "best": "best" if props and sweep.properties.get("best_child_run_id") == full.name else "",
                "stopped": "early" if props.get("shoal.sweep.early_termination") else "",
            }
        )
    return rows


@job_app.command("metrics")
def job_metrics(
    name: RequiredName,
    metric: Annotated[
        str | None, typer.Option("--metric-name", "--metric", help="Only this metric (default: every metric).")
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("--summary", help="One row per metric: count, last, min, max (with steps) and the best step."),
    ] = False,
    goal: Annotated[
        str | None,
        typer.Option(
            "--goal",
            help="Which end is best with --summary: maximize or minimize "
            "(default: minimize for names containing 'loss' or 'error', else maximize).",
        ),
    ] = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """The history of each metric the job logged (name, step, value, timestamp), every point; or,
    with --summary, one row per metric. JSON keeps timestamps in epoch ms; the table shows ISO-8601."""
    from shoal.client.metric_summary import iso_time, summarize

    if goal is not None and not summary:
        raise UserError("--goal applies with --summary only")
    rows = client(workspace_name).jobs.get_metrics(name, metric)
    if summary:
        rows = summarize(rows, goal)
    for row in rows:
        for key in ("value", "last", "min", "max", "best"):
            if key in row:
                row[key] = _json_number(row[key])
        if output == OutputFormat.table and "timestamp" in row:
            row["timestamp"] = iso_time(row["timestamp"])
    show(rows, output, query, columns=METRIC_SUMMARY_COLUMNS if summary else METRIC_COLUMNS)


def _json_number(value: Any) -> Any:
    """JSON has no NaN or infinity: spelt as MLflow spells them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


@job_app.command("stream")
def stream_job(name: RequiredName, workspace_name: WorkspaceOpt = None) -> None:
    """Follow a job's log until it ends (Ctrl-C stops following, not the job)."""
    _stream(client(workspace_name).jobs, name)


@job_app.command("cancel")
def cancel_job(name: RequiredName, workspace_name: WorkspaceOpt = None) -> None:
    """Cancel a job: queued jobs end at once, running ones are stopped (SIGTERM, then SIGKILL)."""
    job = client(workspace_name).jobs.begin_cancel(name).result()
    typer.echo(f"Job {name}: {job.status}", err=True)


@job_app.command("download")
def download_job(
    name: RequiredName,
    download_path: Annotated[Path, typer.Option("--download-path", "-p")] = Path("."),
    output_name: Annotated[str | None, typer.Option("--output-name")] = None,
    all: Annotated[bool, typer.Option("--all", help="Artifacts and every named output.")] = False,
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Also the code that ran, to snapshot/.")] = False,
    workspace_name: WorkspaceOpt = None,
) -> None:
    """Download artifacts/ (logs, ./outputs) and named-outputs/<name>/."""
    root = client(workspace_name).jobs.download(
        name, download_path=download_path, output_name=output_name, all=all, snapshot=snapshot
    )
    typer.echo(f"Downloaded job {name} to {root}", err=True)


@job_app.command("update")
def update_job(
    name: RequiredName,
    set: SetOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Change display_name, description, tags, properties or experiment_name."""
    ops = client(workspace_name).jobs
    current = ops.get(name)
    patch = patch_from_sets(set, current)
    if not patch:
        raise UserError("nothing to update: give --set field=value")
    show(ops.update(name, **patch), output, query)


@job_app.command("archive")
def archive_job(name: RequiredName, workspace_name: WorkspaceOpt = None) -> None:
    """Archive a finished job (hidden from list unless --include-archived)."""
    client(workspace_name).jobs.archive(name)
    typer.echo(f"Archived job {name}", err=True)


@job_app.command("restore")
def restore_job(name: RequiredName, workspace_name: WorkspaceOpt = None) -> None:
    """Restore an archived job."""
    client(workspace_name).jobs.restore(name)
    typer.echo(f"Restored job {name}", err=True)


@job_app.command("validate")
def validate_job(
    file: Annotated[Path, typer.Option("--file", "-f")], set: SetOpt = None, workspace_name: WorkspaceOpt = None
) -> None:
    """Load and check a job YAML without submitting it (a pipeline: its whole graph; a sweep: its
    search space, sampling, policy and Azure's rules across them)."""
    from shoal.entities.loader import load_entity

    job = load_entity("job", file, params_override=list(set_overrides(set)))
    if job.type in ("pipeline", "sweep"):
        problems, warnings = client(workspace_name).jobs.validate_with_warnings(job)
        for warning in warnings:
            typer.echo(f"Warning: {warning}", err=True)
        if problems:
            for problem in problems:
                typer.echo(f"Error: {problem}", err=True)
            raise typer.Exit(1)
    typer.echo(f"{file}: valid", err=sys.stderr.isatty())
