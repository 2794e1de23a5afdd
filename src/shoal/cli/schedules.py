"""``shoal schedule …`` and ``shoal connection …``: schedules that start jobs on time, and
workspace connections (credentials never shown)."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.common import MaxResultsOpt, OutputOpt, QueryOpt, RequiredName, WorkspaceOpt, begin_command, client, show
from shoal.cli.examples import epilog
from shoal.cli.kind_flags import create_command
from shoal.cli.output import OutputFormat

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
SCHEDULE_COLUMNS = ["name", "display_name", "is_enabled", "next_fire_time", "last_job_name"]
CONNECTION_COLUMNS = ["name", "type", "target"]


def _confirm(what: str, yes: bool) -> None:
    if not yes and not typer.confirm(f"Delete {what}?", default=False):
        raise typer.Abort()


# -- schedule -------------------------------------------------------------------------------

schedule_app = typer.Typer(help="Manage schedules: jobs started by the server on time.", no_args_is_help=True)

schedule_create = create_command(
    "schedule", lambda workspace, entity: client(workspace).schedules.begin_create_or_update(entity).result()
)
schedule_app.command(
    "create",
    epilog=epilog(
        [
            "shoal schedule create -f cron-job-schedule.yml",
            "shoal schedule create -f recurrence-job-schedule.yml --set trigger.time_zone=UTC",
        ]
    ),
)(schedule_create)
schedule_app.command(
    "update",
    help="Update a schedule from YAML (same as create); the next fire time is counted again.",
    epilog=epilog(["shoal schedule update -f cron-job-schedule.yml --set trigger.expression='15 * * * *'"]),
)(schedule_create)


@schedule_app.command(
    "show",
    epilog=epilog(
        ["shoal schedule show -n simple_cron_job_schedule", "shoal schedule show -n nightly --query next_fire_time"]
    ),
)
def schedule_show(
    name: RequiredName,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a schedule: its trigger, the job it creates, when it fires next and what it last did."""
    show(client(workspace_name).schedules.get(name), output, query)


@schedule_app.command(
    "list", epilog=epilog(["shoal schedule list -o table", "shoal schedule list --type all --query '[].name' -o tsv"])
)
def schedule_list(
    type: Annotated[
        str, typer.Option("--type", "-t", help="enabled_only (the default, as az), disabled_only or all.")
    ] = "enabled_only",
    max_results: MaxResultsOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """List schedules (enabled ones unless --type says otherwise)."""
    items = list(client(workspace_name).schedules.list(list_view_type=type))
    show(items[:max_results] if max_results else items, output, query, columns=SCHEDULE_COLUMNS)


def _toggle(verb: str, doc: str) -> None:
    begin_command(schedule_app, "schedules", verb, doc, epilog([f"shoal schedule {verb} -n simple_cron_job_schedule"]))


_toggle("enable", "Enable a schedule: it fires again from the next time after now (missed times are not made up).")
_toggle("disable", "Disable a schedule: it starts no more jobs until enabled.")


@schedule_app.command(
    "trigger", epilog=epilog(["shoal schedule trigger -n simple_cron_job_schedule --query job_name -o tsv"])
)
def schedule_trigger(
    name: RequiredName,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Start the schedule's job once, now (its next fire time stays as it was)."""
    result = client(workspace_name).schedules.trigger(name)
    show({"job_name": result.job_name, "schedule_action_type": result.schedule_action_type}, output, query)


@schedule_app.command("delete", epilog=epilog(["shoal schedule delete -n simple_cron_job_schedule --yes"]))
def schedule_delete(name: RequiredName, yes: YesOpt = False, workspace_name: WorkspaceOpt = None) -> None:
    """Delete a disabled schedule (the jobs it started stay)."""
    _confirm(f"schedule '{name}'", yes)
    client(workspace_name).schedules.begin_delete(name).result()
    typer.echo(f"Deleted schedule {name}", err=True)


# -- connection -----------------------------------------------------------------------------

connection_app = typer.Typer(help="Manage workspace connections (credentials are never shown).", no_args_is_help=True)

connection_create = create_command(
    "connection", lambda workspace, entity: client(workspace).connections.create_or_update(entity)
)
connection_app.command(
    "create",
    epilog=epilog(["shoal connection create -f git-pat.yml", "shoal connection create -f s3-access-key.yml -n my_s3"]),
)(connection_create)
connection_app.command(
    "update",
    help="Update a connection from YAML (same as create; stored secrets are kept when none are given).",
    epilog=epilog(["shoal connection update -f git-pat.yml --set target=https://github.com/org"]),
)(connection_create)


@connection_app.command(
    "show", epilog=epilog(["shoal connection show -n my_git", "shoal connection show -n my_git --query target -o tsv"])
)
def connection_show(
    name: RequiredName,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a connection (without its secrets)."""
    show(client(workspace_name).connections.get(name), output, query)


@connection_app.command("list", epilog=epilog(["shoal connection list -o table", "shoal connection list --type git"]))
def connection_list(
    type: Annotated[str | None, typer.Option("--type", "-t", help="Only this connection type (git, s3…).")] = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """List connections (without their secrets)."""
    items = list(client(workspace_name).connections.list(connection_type=type))
    show(items, output, query, columns=CONNECTION_COLUMNS)


@connection_app.command("delete", epilog=epilog(["shoal connection delete -n my_git --yes"]))
def connection_delete(name: RequiredName, yes: YesOpt = False, workspace_name: WorkspaceOpt = None) -> None:
    """Delete a connection."""
    _confirm(f"connection '{name}'", yes)
    client(workspace_name).connections.delete(name)
    typer.echo(f"Deleted connection {name}", err=True)
