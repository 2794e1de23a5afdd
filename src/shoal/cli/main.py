"""The ``shoal`` entry point: nouns as in ``az ml``; errors print ``Error [CODE]: message``."""

from __future__ import annotations

import sys

import typer

from shoal import __version__
from shoal.cli.account import account_app
from shoal.cli.assets import build
from shoal.cli.jobs import job_app
from shoal.cli.resources import compute_app, datastore_app, workspace_app
from shoal.cli.server import server_app
from shoal.errors import ShoalError

app = typer.Typer(
    help="Shoal: a self-hosted Azure Machine Learning v2 workspace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(workspace_app, name="workspace")
app.add_typer(compute_app, name="compute")
app.add_typer(datastore_app, name="datastore")
for _kind in ("model", "data", "environment", "component"):
    app.add_typer(build(_kind), name=_kind)
app.add_typer(job_app, name="job")
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
