"""The ``shoal`` entry point: nouns as in ``az ml``; errors print ``Error [CODE]: message``."""

from __future__ import annotations

import sys

import typer

from shoal import __version__
from shoal.cli.account import account_app
from shoal.cli.assets import ASSET_NOUNS, build
from shoal.cli.jobs import job_app
from shoal.cli.resources import compute_app, datastore_app, workspace_app
from shoal.cli.server import server_app
from shoal.entities.kind_names import KIND_NAMES
from shoal.errors import ShoalError

app = typer.Typer(
    help="Shoal: a self-hosted Azure Machine Learning v2 workspace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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
def version() -> None:
    """Print Shoal's version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except ShoalError as exc:
        print(f"Error [{exc.code}]: {exc.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
