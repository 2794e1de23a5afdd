"""``shoal online-endpoint …`` and ``shoal online-deployment …``, as ``az ml``'s."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from shoal.errors import UserError

ENDPOINT_COLUMNS = ["name", "auth_mode", "provisioning_state", "traffic", "scoring_uri"]
DEPLOYMENT_COLUMNS = ["name", "endpoint_name", "instance_count", "provisioning_state"]

online_endpoint_app = typer.Typer(help="Manage online endpoints: stable scoring URLs.", no_args_is_help=True)
online_deployment_app = typer.Typer(help="Manage deployments of online endpoints.", no_args_is_help=True)


def parse_traffic(text: str, flag: str) -> dict[str, int]:
    """``"blue=90 green=10"`` (az's form; commas also accepted) → {"blue": 90, "green": 10}."""
    out: dict[str, int] = {}
    for item in text.replace(",", " ").split():
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise UserError(f'{flag} takes name=percent pairs like "blue=90 green=10", got {item!r}')
        out[name] = int(value)
    return out


# -- online-endpoint -------------------------------------------------------------------------------


@online_endpoint_app.command("create")
def endpoint_create(
    name: NameOpt = None,
    file: FileOpt = None,
    auth_mode: Annotated[str | None, typer.Option("--auth-mode", help="key or aml_token.")] = None,
    set_: SetOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Create an online endpoint from a YAML file (--name overrides the file's).

    Example: shoal online-endpoint create --name my-ep -f endpoint.yml"""
    entity = load("online_endpoint", file, set_, name=name, auth_mode=auth_mode)
    show(client(workspace_name).online_endpoints.begin_create_or_update(entity).result(), output, query)


@online_endpoint_app.command("show")
def endpoint_show(
    name: NameOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show an online endpoint: traffic, scoring_uri, provisioning_state.

    Example: shoal online-endpoint show -n my-ep -o tsv --query scoring_uri"""
    show(client(workspace_name).online_endpoints.get(need(name)), output, query)


@online_endpoint_app.command("list")
def endpoint_list(
    workspace_name: WorkspaceOpt = None, output: OutputOpt = OutputFormat.table, query: QueryOpt = None
) -> None:
    """List the online endpoints of the workspace."""
    show(list(client(workspace_name).online_endpoints.list()), output, query, columns=ENDPOINT_COLUMNS)


@online_endpoint_app.command("update")
def endpoint_update(
    name: NameOpt = None,
    file: FileOpt = None,
    traffic: Annotated[str | None, typer.Option("--traffic", "-r", help='Live traffic: "blue=90 green=10".')] = None,
    mirror_traffic: Annotated[
        str | None, typer.Option("--mirror-traffic", help='Traffic copied to a deployment: "green=10".')
    ] = None,
    set_: SetOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Update an online endpoint: its traffic split, mirrored traffic, description or tags.

    Example: shoal online-endpoint update -n my-ep --traffic "blue=90 green=10\""""
    c = client(workspace_name)
    if file is not None:
        body = load("online_endpoint", file, set_, name=name or None).to_dict()
    else:
        body = patched_endpoint(c.online_endpoints, name, set_)
    if traffic is not None:
        body["traffic"] = parse_traffic(traffic, "--traffic")
    if mirror_traffic is not None:
        body["mirror_traffic"] = parse_traffic(mirror_traffic, "--mirror-traffic")
    show(c.online_endpoints.begin_create_or_update(body).result(), output, query)


@online_endpoint_app.command("delete")
def endpoint_delete(
    name: NameOpt = None, yes: YesOpt = False, no_wait: NoWaitOpt = False, workspace_name: WorkspaceOpt = None
) -> None:
    """Delete an online endpoint, its deployments and every instance of them."""
    name = need(name)
    confirm_or_abort(yes, f"Delete online endpoint {name!r} and all its deployments?")
    client(workspace_name).online_endpoints.begin_delete(name).result()


@online_endpoint_app.command("invoke")
def endpoint_invoke(
    name: NameOpt = None,
    request_file: Annotated[Path | None, typer.Option("--request-file", "-r", help="The request body (JSON).")] = None,
    deployment_name: Annotated[
        str | None, typer.Option("--deployment-name", "-d", help="Send to this deployment, whatever the traffic.")
    ] = None,
    workspace_name: WorkspaceOpt = None,
) -> None:
    """Send a scoring request and print the answer.

    Example: shoal online-endpoint invoke -n my-ep --request-file sample-request.json"""
    if request_file is None:
        raise UserError("give --request-file")
    answer = client(workspace_name).online_endpoints.invoke(
        need(name), request_file=str(request_file), deployment_name=deployment_name
    )
    typer.echo(answer)


@online_endpoint_app.command("get-credentials")
def endpoint_credentials(
    name: NameOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show the endpoint's keys (primaryKey, secondaryKey); for an aml_token endpoint, an access
    token (accessToken, expiryTimeUtc, refreshAfterTimeUtc, tokenType), as az ml does.

    Example: KEY=$(shoal online-endpoint get-credentials -n my-ep -o tsv --query primaryKey)"""
    show(client(workspace_name).online_endpoints.get_keys(need(name)), output, query)


@online_endpoint_app.command("regenerate-keys")
def endpoint_regenerate(
    name: NameOpt = None,
    key_type: Annotated[str, typer.Option("--key-type", help="primary or secondary.")] = "primary",
    key_value: Annotated[str | None, typer.Option("--key-value", help="The new key (default: a random one).")] = None,
    workspace_name: WorkspaceOpt = None,
) -> None:
    """Replace one of the endpoint's keys; the other keeps working.

    Example: shoal online-endpoint regenerate-keys -n my-ep --key-type primary"""
    client(workspace_name).online_endpoints.regenerate_keys(need(name), key_type=key_type, key_value=key_value)


# -- online-deployment -----------------------------------------------------------------------------


@online_deployment_app.command("create")
def deployment_create(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    file: FileOpt = None,
    all_traffic: Annotated[bool, typer.Option("--all-traffic", help="Send all the endpoint's traffic to it.")] = False,
    set_: SetOpt = None,
    no_wait: NoWaitOpt = False,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Create a deployment of an online endpoint from a YAML file; waits until it serves.

    Example: shoal online-deployment create --name blue --endpoint-name my-ep -f blue-deployment.yml --all-traffic"""
    entity = load("online_deployment", file, set_, name=name, endpoint_name=endpoint_name)
    c = client(workspace_name)
    poller = c.online_deployments.begin_create_or_update(entity)
    result = None if no_wait and not all_traffic else poller.result()
    if all_traffic:
        endpoint = c.online_endpoints.get(entity.endpoint_name)
        endpoint.traffic = {**dict.fromkeys(endpoint.traffic, 0), entity.name: 100}
        endpoint.mirror_traffic = {k: v for k, v in endpoint.mirror_traffic.items() if k != entity.name}
        c.online_endpoints.begin_create_or_update(endpoint).result()
    if result is not None:
        show(result, output, query)


@online_deployment_app.command("update")
def deployment_update(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    no_wait: NoWaitOpt = False,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Update a deployment (new instances start and are ready before the old ones stop).

    Example: shoal online-deployment update --name blue --endpoint-name my-ep --set instance_count=2"""
    c = client(workspace_name)
    if file is not None:
        entity = load("online_deployment", file, set_, name=name, endpoint_name=endpoint_name)
    else:
        entity = patched_deployment(c.online_deployments, name, endpoint_name, set_)
    poller = c.online_deployments.begin_create_or_update(entity)
    if not no_wait:
        show(poller.result(), output, query)


@online_deployment_app.command("show")
def deployment_show(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Show a deployment, its instances and its request metrics (count, p50/p99 latency, errors)."""
    show(
        client(workspace_name).online_deployments.get(need(name), need(endpoint_name, "--endpoint-name")),
        output,
        query,
    )


@online_deployment_app.command("list")
def deployment_list(
    endpoint_name: EndpointOpt = None,
    workspace_name: WorkspaceOpt = None,
    output: OutputOpt = OutputFormat.table,
    query: QueryOpt = None,
) -> None:
    """List the deployments of an endpoint."""
    deployments = client(workspace_name).online_deployments.list(need(endpoint_name, "--endpoint-name"))
    show(list(deployments), output, query, columns=DEPLOYMENT_COLUMNS)


@online_deployment_app.command("delete")
def deployment_delete(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    yes: YesOpt = False,
    no_wait: NoWaitOpt = False,
    workspace_name: WorkspaceOpt = None,
) -> None:
    """Delete a deployment (its traffic must be 0) and stop its instances."""
    name, endpoint = need(name), need(endpoint_name, "--endpoint-name")
    confirm_or_abort(yes, f"Delete deployment {name!r} of {endpoint!r}?")
    client(workspace_name).online_deployments.begin_delete(name, endpoint).result()


@online_deployment_app.command("get-logs")
def deployment_logs(
    name: NameOpt = None,
    endpoint_name: EndpointOpt = None,
    lines: Annotated[int, typer.Option("--lines", "-l", help="How many lines from the end.")] = 100,
    container: Annotated[str | None, typer.Option("--container", "-c", help="inference-server (the only one).")] = None,
    workspace_name: WorkspaceOpt = None,
) -> None:
    """Print the end of the deployment's instance logs (each instance's, headed by its number).

    Example: shoal online-deployment get-logs --name blue --endpoint-name my-ep --lines 50"""
    text = client(workspace_name).online_deployments.get_logs(
        need(name), need(endpoint_name, "--endpoint-name"), lines=lines, container_type=container
    )
    typer.echo(text)
