"""``shoal server start|stop|status|token``."""

from __future__ import annotations

from typing import Annotated

import typer

server_app = typer.Typer(help="Run the local Shoal server.", no_args_is_help=True)


@server_app.command("start")
def start(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0 picks a free one).")] = 0,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Run the jobs of compute clusters on this Ray cluster (ray://head:10001 or head:6379); "
            "needs shoal[ray]. Also SHOAL_RAY_ADDRESS.",
        ),
    ] = None,
    advertise_url: Annotated[
        str | None,
        typer.Option(
            "--advertise-url",
            help="The URL runners on Ray nodes call this server back on (http://<server-host>:8080). "
            "Also SHOAL_ADVERTISE_URL.",
        ),
    ] = None,
) -> None:
    """Start the server (in the foreground unless --detach)."""
    import os

    from shoal.client.local_server import running_server, start_server
    from shoal.config import load_settings

    # Settings of the server process, detached or not: passed on as its environment.
    if ray_address:
        os.environ["SHOAL_RAY_ADDRESS"] = ray_address
    if advertise_url:
        os.environ["SHOAL_ADVERTISE_URL"] = advertise_url

    settings = load_settings()
    url = running_server(settings)
    if url:
        typer.echo(f"Shoal server already running at {url}")
        return
    if detach:
        url = start_server(settings, host=host, port=port)
        typer.echo(f"Shoal server started at {url} (SHOAL_HOME={settings.resolved_home()})")
        return
    from shoal.server.main import serve

    serve(settings, host, port)


@server_app.command("stop")
def stop() -> None:
    """Stop the background server of this SHOAL_HOME."""
    from shoal.client.local_server import stop_server
    from shoal.config import load_settings

    stopped = stop_server(load_settings())
    typer.echo("Shoal server stopped" if stopped else "No Shoal server was running")


@server_app.command("status")
def status() -> None:
    """Say whether the server of this SHOAL_HOME is running, and where."""
    from shoal.client.local_server import running_server
    from shoal.config import load_settings

    settings = load_settings()
    url = running_server(settings)
    if url:
        typer.echo(f"running at {url} (SHOAL_HOME={settings.resolved_home()})")
    else:
        typer.echo(f"not running (SHOAL_HOME={settings.resolved_home()})")
        raise typer.Exit(3)


@server_app.command("token")
def token() -> None:
    """Print the local server's access token (for MLFLOW_TRACKING_TOKEN or HTTP clients)."""
    from shoal.client.local_server import ensure_server, read_token
    from shoal.config import load_settings

    settings = load_settings()
    ensure_server(settings)
    typer.echo(read_token(settings) or "")
