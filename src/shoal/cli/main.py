"""The ``shoal`` entry point: nouns as in ``az ml``; errors print ``Error [CODE]: message``.

az's global flags (``-g``, ``--subscription``, ``--debug``, ``--verbose``, ``--only-show-errors``) are
taken out of the command line first (``global_args``), so they work in any position.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from shoal import __version__
from shoal.cli.account import account_app
from shoal.cli.assets import ASSET_NOUNS, build
from shoal.cli.common import OutputOpt, QueryOpt
from shoal.cli.examples import add_examples
from shoal.cli.jobs import job_app
from shoal.cli.output import OutputFormat, render
from shoal.cli.resources import compute_app, datastore_app, workspace_app
from shoal.cli.server import server_app
from shoal.entities.kind_names import KIND_NAMES
from shoal.errors import ShoalError, UserError

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
}
for _kind, _names in KIND_NAMES.items():
    if _names.cli_noun:
        app.add_typer(NOUN_APPS[_kind], name=_names.cli_noun)
app.add_typer(server_app, name="server")
app.add_typer(account_app, name="account")


@app.command("version")
def version(output: OutputOpt = OutputFormat.json, query: QueryOpt = None) -> None:
    """Print Shoal's version, as `az version` does: {"shoal": "0.1.0"} (-o tsv: the version alone)."""
    render({"shoal": __version__}, output, query=query)


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
    """Save defaults for later commands, as `az configure --defaults` does. The default workspace is
    used when neither -w nor SHOAL_WORKSPACE names one; group and location are recorded only (Shoal
    has one resource group). Saved in $XDG_CONFIG_HOME/shoal/config.yaml (~/.config/shoal/config.yaml)."""
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
    """Print the shell completion script; e.g. add `eval "$(shoal completion bash)"` to ~/.bashrc."""
    from typer._completion_shared import get_completion_script
    from typer.completion import completion_init

    completion_init()
    if shell not in SHELLS:
        raise UserError(f"unknown shell {shell!r}: one of {', '.join(SHELLS)}")
    typer.echo(get_completion_script(prog_name="shoal", complete_var="_SHOAL_COMPLETE", shell=shell))


add_examples(app)


def main(argv: list[str] | None = None) -> None:
    from shoal.cli import global_args

    args, found = global_args.strip(sys.argv[1:] if argv is None else argv)
    global_args.apply(found)
    if os.environ.get("_SHOAL_COMPLETE"):  # the shell asks for completions (`shoal completion`'s script)
        from typer.completion import completion_init

        completion_init()
    try:
        app(args=args, prog_name="shoal")
    except ShoalError as exc:
        if found.debug:
            import traceback

            traceback.print_exc()
        print(f"Error [{exc.code}]: {exc.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
