"""The ``shoal`` command tree: nouns as in ``az ml`` (``main`` runs it).

Building Typer's click commands costs (pydantic adapters for every parameter), so ``main`` runs
:func:`light_app`: the tree with only the invoked group's commands, the others stand-ins with the
same names and help."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal import __version__
from shoal.cli.access import audit_app, role_app, user_app
from shoal.cli.account import account_app
from shoal.cli.assets import ASSET_NOUNS, build
from shoal.cli.batch_endpoints import batch_deployment_app, batch_endpoint_app
from shoal.cli.common import OutputOpt, QueryOpt
from shoal.cli.endpoints import online_deployment_app, online_endpoint_app
from shoal.cli.examples import add_examples
from shoal.cli.jobs import job_app
from shoal.cli.output import OutputFormat, render
from shoal.cli.resources import compute_app, datastore_app, workspace_app
from shoal.cli.schedules import connection_app, schedule_app
from shoal.cli.server import server_app
from shoal.entities.kind_names import KIND_NAMES
from shoal.errors import UserError

GLOBAL_FLAGS_HELP = (
    "Global flags, as in az, in any position: -g/--resource-group and --subscription (accepted for "
    "compatibility; Shoal has one resource group), --debug (DEBUG logs, tracebacks on error), --verbose "
    "(INFO logs), --only-show-errors (no warnings). -o jsonc: colored JSON on a terminal."
)
app = typer.Typer(
    help="Shoal: a self-hosted Azure Machine Learning v2 workspace.",
    epilog=GLOBAL_FLAGS_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,  # `shoal completion bash|zsh|fish` prints the script instead
)
# One noun per kind with a ``cli_noun`` in the kind registry, in its order.
NOUN_APPS: dict[str, typer.Typer] = {
    "workspace": workspace_app,
    "compute": compute_app,
    "datastore": datastore_app,
    **{kind: build(kind) for kind in ASSET_NOUNS},
    "job": job_app,
    "schedule": schedule_app,
    "connection": connection_app,
    "online_endpoint": online_endpoint_app,
    "online_deployment": online_deployment_app,
    "batch_endpoint": batch_endpoint_app,
    "batch_deployment": batch_deployment_app,
}
for _kind, _names in KIND_NAMES.items():
    if _names.cli_noun:
        app.add_typer(NOUN_APPS[_kind], name=_names.cli_noun)
app.add_typer(server_app, name="server")
app.add_typer(account_app, name="account")
app.add_typer(user_app, name="user")
app.add_typer(role_app, name="role")
app.add_typer(audit_app, name="audit")


@app.command("version")
def version(output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """Print Shoal's version, as `az version`.

    The output is {"shoal": "0.1.0"}; `--query shoal -o tsv` gives the version alone."""
    render({"shoal": __version__}, output, query=query)


@app.command("studio")
def studio(
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the link; do not open a browser.")
    ] = False,
) -> None:
    """Open Shoal studio: print a one-time login link (valid 5 minutes, once) that signs a browser
    in with this CLI's token, and open it where a browser is. The session lasts 12 hours and ends
    when the token is revoked."""
    from shoal.cli.common import client, open_in_browser

    found = client(None).access.studio_login()
    typer.echo(found["url"])
    if not no_browser and open_in_browser(found["url"]):
        typer.echo("Opened in your browser.", err=True)


@app.command("configure")
def configure(
    defaults: Annotated[
        list[str] | None,
        typer.Option(
            "--defaults",
            "-d",
            help="key=value pairs (workspace, group, location, subscription); an empty value unsets one.",
        ),
    ] = None,
    more: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
    list_defaults: Annotated[bool, typer.Option("--list-defaults", "-l", help="Show the saved defaults.")] = False,
    output: OutputOpt = OutputFormat.json,
    query: QueryOpt = None,
) -> None:
    """Save defaults, as `az configure --defaults`.

    The default workspace is used when neither -w nor SHOAL_WORKSPACE names one; group and location
    are recorded only (Shoal has one resource group). Saved in $XDG_CONFIG_HOME/shoal/config.yaml
    (~/.config/shoal/config.yaml)."""
    from shoal.cli.global_args import DEFAULT_KEYS, config_path, read_defaults, write_defaults

    if more and not defaults:
        raise UserError(f"unexpected {' '.join(more)!r}: give --defaults key=value …")
    defaults = [*(defaults or []), *(more or [])]  # `--defaults a=1 b=2`, as az takes them
    if defaults:
        pairs: dict[str, str] = {}
        for item in defaults:
            key, sep, value = item.partition("=")
            if not sep or key not in DEFAULT_KEYS:
                raise UserError(f"--defaults takes key=value with key one of {', '.join(DEFAULT_KEYS)}, got {item!r}")
            pairs[key] = value
        write_defaults(pairs)
        typer.echo(f"Saved defaults in {config_path()}", err=True)
    if list_defaults or not defaults:
        saved = read_defaults()
        render([{"name": k, "value": v} for k, v in saved.items()], output, query=query)


SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


@app.command("completion")
def completion(shell: Annotated[str, typer.Argument(help="bash, zsh, fish or powershell.")] = "bash") -> None:
    """Print the shell completion script.

    Add `eval "$(shoal completion bash)"` to ~/.bashrc (zsh, fish: the same with their name)."""
    from typer._completion_shared import get_completion_script
    from typer.completion import completion_init

    completion_init()
    if shell not in SHELLS:
        raise UserError(f"unknown shell {shell!r}: one of {', '.join(SHELLS)}")
    typer.echo(get_completion_script(prog_name="shoal", complete_var="_SHOAL_COMPLETE", shell=shell))


add_examples(app)


def _stand_in(doc: str | None) -> Any:
    def command() -> None:
        pass

    command.__doc__ = doc
    return command


def light_app(args: list[str]) -> typer.Typer:
    """``app`` with the commands of only the group (or root command) ``args`` name: the same
    names, help and order, so ``shoal --help`` and ``shoal model list`` build just what they show."""
    word = next((a for a in args if not a.startswith("-")), None)
    light = typer.Typer(
        help=app.info.help,
        epilog=app.info.epilog,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for info in app.registered_commands:
        if info.name == word:
            light.registered_commands.append(info)
        else:
            light.command(info.name, help=info.help or info.callback.__doc__)(_stand_in(info.callback.__doc__))
    for group in app.registered_groups:
        if group.name == word:
            light.registered_groups.append(group)
        else:
            light.add_typer(typer.Typer(help=group.typer_instance.info.help), name=group.name)
    return light
