"""``shoal account get-access-token``: the bearer token, printed as ``az account get-access-token`` does.

For an MLflow client outside a job::

    export MLFLOW_TRACKING_URI=$(shoal workspace show --query mlflow_tracking_uri -o tsv)
    export MLFLOW_TRACKING_TOKEN=$(shoal account get-access-token --query accessToken -o tsv)
"""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.common import OutputOpt, QueryOpt, client
from shoal.cli.output import OutputFormat, render

account_app = typer.Typer(help="The access token of the Shoal server (as `az account`).", no_args_is_help=True)


@account_app.command("get-access-token")
def get_access_token(
    resource: Annotated[
        str | None, typer.Option("--resource", help="Accepted for az compatibility; Shoal has one token.")
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Accepted for az compatibility; Shoal has one token.")
    ] = None,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Print {accessToken, tokenType, expiresOn, expires_on} for the configured server
    (SHOAL_SERVER_URL with SHOAL_TOKEN), or the local server's admin token (started when needed).

    The local admin token does not expire: expiresOn and expires_on are null. Use it as
    MLFLOW_TRACKING_TOKEN or as an HTTP ``Authorization: Bearer`` header.
    """
    from shoal.client.local_server import ensure_server, read_token
    from shoal.config import load_settings
    from shoal.errors import AuthError

    settings = load_settings()
    _, token = ensure_server(settings)
    token = token or read_token(settings)
    if not token:
        raise AuthError("no access token: set SHOAL_TOKEN for a remote server (SHOAL_SERVER_URL)")
    body = {"accessToken": token, "tokenType": "Bearer", "expiresOn": None, "expires_on": None}
    render(body, output, query=query)


@account_app.command("show")
def show(output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """Who the token speaks for (as `az account show`): its name, kind (admin, user, job), whether
    a server admin, and its roles by workspace."""
    render(client(None).access.whoami(), output, query=query)
