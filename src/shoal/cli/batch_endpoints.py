"""``shoal batch-endpoint …`` and ``shoal batch-deployment …``, as ``az ml``'s."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli.common import FileOpt, OutputOpt, QueryOpt, SetOpt, WorkspaceOpt, client, show
from shoal.cli.endpoint_commands import (
    EndpointOpt,
    NameOpt,
    NoWaitOpt,
    YesOpt,
    confirm_or_abort,
    load,
    need,
    patched_deployment,
    patched_endpoint,
)
from shoal.cli.output import OutputFormat

JOB_COLUMNS = ["name", "display_name", "status", "experiment_name", "creation_context.created_at"]

batch_endpoint_app = typer.Typer(help="Manage batch endpoints: score files with a job.", no_args_is_help=True)
batch_deployment_app = typer.Typer(help="Manage deployments of batch endpoints.", no_args_is_help=True)


@batch_endpoint_app.command("create")
def endpoint_create(
    name: NameOpt = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    no_wait: NoWaitOpt = False,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Create a batch endpoint from a YAML file (--name overrides the file's).

    Example: shoal batch-endpoint create --name hello-batch -f endpoint.yml"""
    entity = load("batch_endpoint", file, set_, name=name or None)
    show(client(workspace_name).batch_endpoints.begin_create_or_update(entity).result(), output, query)


@batch_endpoint_app.command("show")
def endpoint_show(
    name: NameOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a batch endpoint (its default deployment is defaults.deployment_name)."""
    show(client(workspace_name).batch_endpoints.get(need(name)), output, query)


@batch_endpoint_app.command("list")
def endpoint_list(
    workspace_name: WorkspaceOpt = None, output: OutputOpt = OutputFormat.table, query: QueryOpt = None
) -> None:
    """List the batch endpoints of the workspace."""
    endpoints = list(client(workspace_name).batch_endpoints.list())
    show(endpoints, output, query, columns=["name", "auth_mode", "defaults.deployment_name", "scoring_uri"])


@batch_endpoint_app.command("update")
def endpoint_update(
    name: NameOpt = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Update a batch endpoint: --set defaults.deployment_name=<deployment>, description, tags."""
    c = client(workspace_name)
    if file is not None:
        body = load("batch_endpoint", file, set_, name=name or None).to_dict()
    else:
        body = patched_endpoint(c.batch_endpoints, name, set_)
    show(c.batch_endpoints.begin_create_or_update(body).result(), output, query)


@batch_endpoint_app.command("delete")
def endpoint_delete(
    name: NameOpt = None, yes: YesOpt = False, no_wait: NoWaitOpt = False, workspace_name: WorkspaceOpt = None
) -> None:
    """Delete a batch endpoint and its deployments (the jobs it started stay)."""
    name = need(name)
    confirm_or_abort(yes, f"Delete batch endpoint {name!r}?")
    client(workspace_name).batch_endpoints.begin_delete(name).result()


@batch_endpoint_app.command("invoke")
def endpoint_invoke(
    name: NameOpt = None,
    input_: Annotated[
        str | None,
        typer.Option("--input", "-i", help="The files to score: a local path, a datastore URI or azureml:<data>."),
    ] = None,
    input_type: Annotated[str | None, typer.Option("--input-type", help="uri_folder (default) or uri_file.")] = None,
    deployment_name: Annotated[
        str | None, typer.Option("--deployment-name", "-d", help="Not the endpoint's default deployment.")
    ] = None,
    experiment_name: Annotated[
        str | None, typer.Option("--experiment-name", help="Default: the endpoint's name.")
    ] = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Start a scoring job and show it.

    Example: JOB=$(shoal batch-endpoint invoke -n hello-batch --input ./data --query name -o tsv)
    then: shoal job stream -n $JOB"""
    given = None if input_ is None else {"type": input_type or "uri_folder", "path": input_}
    job = client(workspace_name).batch_endpoints.invoke(
        need(name), input=given, deployment_name=deployment_name, experiment_name=experiment_name
    )
    show(job, output, query)


@batch_endpoint_app.command("list-jobs")
def endpoint_list_jobs(
    name: NameOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.table,
    query: QueryOpt = None,
) -> None:
    """List the jobs invoking the endpoint started, newest first."""
    show(client(workspace_name).batch_endpoints.list_jobs(need(name)), output, query, columns=JOB_COLUMNS)


@batch_deployment_app.command("create")
def deployment_create(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    file: FileOpt = None,
    set_default: Annotated[bool, typer.Option("--set-default", help="Make it the endpoint's default.")] = False,
    set_: SetOpt = None,
    no_wait: NoWaitOpt = False,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Create a batch deployment (a model with a scoring script, or a pipeline component).

    Example: shoal batch-deployment create --endpoint hello-batch -f deployment.yml --set-default"""
    entity = load("batch_deployment", file, set_, name=name, endpoint_name=endpoint_name)
    deployments = client(workspace_name).batch_deployments
    show(deployments.begin_create_or_update(entity, set_default=set_default).result(), output, query)


@batch_deployment_app.command("update")
def deployment_update(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Update a batch deployment: --set settings.mini_batch_size=20, or a new --file."""
    c = client(workspace_name)
    if file is not None:
        entity: Any = load("batch_deployment", file, set_, name=name, endpoint_name=endpoint_name)
    else:
        entity = patched_deployment(c.batch_deployments, name, endpoint_name, set_)
    show(c.batch_deployments.begin_create_or_update(entity).result(), output, query)


@batch_deployment_app.command("show")
def deployment_show(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a batch deployment."""
    deployments = client(workspace_name).batch_deployments
    show(deployments.get(need(name), need(endpoint_name, "--endpoint-name")), output, query)


@batch_deployment_app.command("list")
def deployment_list(
    endpoint_name: EndpointOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.table,
    query: QueryOpt = None,
) -> None:
    """List the deployments of a batch endpoint."""
    found = list(client(workspace_name).batch_deployments.list(need(endpoint_name, "--endpoint-name")))
    show(found, output, query, columns=["name", "endpoint_name", "type", "provisioning_state"])


@batch_deployment_app.command("delete")
def deployment_delete(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    yes: YesOpt = False,
    no_wait: NoWaitOpt = False,
    workspace_name: WorkspaceOpt = None,
) -> None:
    """Delete a batch deployment (not the endpoint's default while it has others)."""
    name, endpoint = need(name), need(endpoint_name, "--endpoint-name")
    confirm_or_abort(yes, f"Delete batch deployment {name!r} of {endpoint!r}?")
    client(workspace_name).batch_deployments.begin_delete(name, endpoint).result()
