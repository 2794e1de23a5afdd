"""``shoal workspace|compute|datastore …``: named, unversioned resources."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.common import (
    DescriptionOpt,
    MaxResultsOpt,
    OutputOpt,
    QueryOpt,
    RequiredName,
    SetOpt,
    TagsOpt,
    WorkspaceOpt,
    begin_command,
    client,
    parse_tags,
    patch_from_sets,
    show,
)
from shoal.cli.kind_flags import create_command
from shoal.cli.output import OutputFormat
from shoal.errors import UserError

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _confirm(what: str, yes: bool) -> None:
    if not yes and not typer.confirm(f"Delete {what}?", default=False):
        raise typer.Abort()


# -- workspace ------------------------------------------------------------------------------

workspace_app = typer.Typer(help="Manage workspaces.", no_args_is_help=True)


workspace_app.command("create")(
    create_command("workspace", lambda _workspace, entity: client(None).workspaces.begin_create(entity).result())
)


@workspace_app.command("show")
def workspace_show(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Workspace name.")] = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a workspace (default: the current one)."""
    c = client(workspace_name)
    show(c.workspaces.get(name or c.workspace_name), output, query)


@workspace_app.command("list")
def workspace_list(output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """List workspaces."""
    show(
        list(client(None).workspaces.list()),
        output,
        query,
        columns=["name", "location", "display_name", "description"],
    )


@workspace_app.command("update")
def workspace_update(
    name: RequiredName,
    description: DescriptionOpt = None,
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    tags: TagsOpt = None,
    set: SetOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Update a workspace's description, display name, tags and settings."""
    patch = patch_from_sets(set)
    if description is not None:
        patch["description"] = description
    if display_name is not None:
        patch["display_name"] = display_name
    if tags:
        patch["tags"] = parse_tags(tags)
    if not patch:
        raise UserError("nothing to update: give --description, --display-name, --tags or --set")
    show(client(None).workspaces.update(name, patch), output, query)


@workspace_app.command("delete")
def workspace_delete(name: RequiredName, yes: YesOpt = False) -> None:
    """Delete a workspace and everything recorded in it."""
    _confirm(f"workspace '{name}' and everything recorded in it", yes)
    client(None).workspaces.begin_delete(name)
    typer.echo(f"Deleted workspace {name}", err=True)


# -- compute --------------------------------------------------------------------------------

compute_app = typer.Typer(help="Manage compute targets.", no_args_is_help=True)


compute_create = create_command(
    "compute", lambda workspace, entity: client(workspace).compute.begin_create_or_update(entity).result()
)
compute_app.command("create")(compute_create)
compute_app.command("attach", help="Attach Kubernetes or a virtual machine (same as create).")(compute_create)


@compute_app.command("show")
def compute_show(
    name: RequiredName,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a compute target."""
    show(client(workspace_name).compute.get(name), output, query)


@compute_app.command("list")
def compute_list(
    type: Annotated[str | None, typer.Option("--type", "-t", help="Only this type.")] = None,
    max_results: MaxResultsOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """List compute targets (local is always there)."""
    items = list(client(workspace_name).compute.list(compute_type=type, max_results=max_results))
    show(items, output, query, columns=["name", "type", "size", "provisioning_state", "state", "max_instances"])


@compute_app.command("update")
def compute_update(
    name: RequiredName,
    min_instances: Annotated[int | None, typer.Option("--min-instances")] = None,
    max_instances: Annotated[int | None, typer.Option("--max-instances")] = None,
    idle_time_before_scale_down: Annotated[int | None, typer.Option("--idle-time-before-scale-down")] = None,
    description: DescriptionOpt = None,
    tags: TagsOpt = None,
    set: SetOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Change a cluster's scale settings, an instance's idle_time_before_shutdown (--set), description or tags."""

    patch = patch_from_sets(set, typed=True)
    for key, value in dict(
        min_instances=min_instances,
        max_instances=max_instances,
        idle_time_before_scale_down=idle_time_before_scale_down,
        description=description,
        tags=parse_tags(tags),
    ).items():
        if value is not None:
            patch[key] = value
    if not patch:
        raise UserError("nothing to update")
    show(client(workspace_name).compute.update(name, patch), output, query)


@compute_app.command("delete")
def compute_delete(name: RequiredName, yes: YesOpt = False, workspace_name: WorkspaceOpt = None) -> None:
    """Delete a compute target."""
    _confirm(f"compute '{name}'", yes)
    client(workspace_name).compute.begin_delete(name)
    typer.echo(f"Deleted compute {name}", err=True)


compute_app.command("detach", help="Detach an attached compute (same as delete).")(compute_delete)


@compute_app.command("list-nodes")
def compute_list_nodes(
    name: RequiredName,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """What runs where: a cluster's nodes, their state and the job on each (on a server with a
    Ray cluster: the Ray nodes holding the cluster's jobs, with their resources)."""
    nodes = client(workspace_name).compute.list_nodes(name)
    columns = ["node_id", "node_state", "run_id", "private_ip_address"]
    if any("resources" in node for node in nodes):
        columns += ["port", "resources.cpus", "resources.memory_gib", "resources.gpus"]
    show(nodes, output, query, columns=columns)


_INSTANCE_ACTIONS = {
    "start": "Start a compute instance: its dev box (JupyterLab on 127.0.0.1) runs; `compute show` lists its services.",
    "stop": "Stop a compute instance: its JupyterLab ends, and so does the token its notebooks had.",
    "restart": "Restart a compute instance's JupyterLab (a new port, login token and workspace token).",
}
for _action, _doc in _INSTANCE_ACTIONS.items():
    begin_command(compute_app, "compute", _action, _doc)


# -- datastore ------------------------------------------------------------------------------

datastore_app = typer.Typer(help="Manage datastores (credentials are never shown).", no_args_is_help=True)


datastore_create = create_command(
    "datastore", lambda workspace, entity: client(workspace).datastores.create_or_update(entity)
)
datastore_app.command("create")(datastore_create)
datastore_app.command("update", help="Update a datastore from YAML (same as create).")(datastore_create)


@datastore_app.command("show")
def datastore_show(
    name: RequiredName,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a datastore (without credentials)."""
    show(client(workspace_name).datastores.get(name), output, query)


@datastore_app.command("list")
def datastore_list(
    workspace_name: WorkspaceOpt = None, output: OutputOpt = OutputFormat.json, query: QueryOpt = None
) -> None:
    """List datastores."""
    items = list(client(workspace_name).datastores.list())
    show(items, output, query, columns=["name", "type", "is_default", "description"])


@datastore_app.command("delete")
def datastore_delete(name: RequiredName, yes: YesOpt = False, workspace_name: WorkspaceOpt = None) -> None:
    """Delete a datastore record (its files stay where they are)."""
    _confirm(f"datastore '{name}'", yes)
    client(workspace_name).datastores.delete(name)
    typer.echo(f"Deleted datastore {name}", err=True)
