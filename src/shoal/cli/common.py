"""Options every command shares, and the client the commands use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.output import OutputFormat, render
from shoal.errors import UserError

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace-name",
        "-w",
        help="Workspace (default: SHOAL_WORKSPACE, then the `shoal configure` default, then 'default').",
    ),
]
OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="json, jsonc, yaml, table, tsv or none.")]
QueryOpt = Annotated[str | None, typer.Option("--query", help="JMESPath query applied to the result, as in az.")]
FileOpt = Annotated[Path | None, typer.Option("--file", "-f", help="YAML file describing the object.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field of the YAML: --set a.b=value (repeatable)."),
]
NameOpt = Annotated[str | None, typer.Option("--name", "-n", help="Name.")]
RequiredName = Annotated[str, typer.Option("--name", "-n", help="Name.")]
VersionOpt = Annotated[str | None, typer.Option("--version", "-v", help="Version.")]
LabelOpt = Annotated[str | None, typer.Option("--label", "-l", help="Label: latest (default for components).")]
TagsOpt = Annotated[list[str] | None, typer.Option("--tags", help="Tags as key=value (repeatable).")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="Description.")]
MaxResultsOpt = Annotated[int | None, typer.Option("--max-results", "-r", help="At most this many results.")]
IncludeArchivedOpt = Annotated[bool, typer.Option("--include-archived", help="List archived items too.")]
ArchivedOnlyOpt = Annotated[bool, typer.Option("--archived-only", help="List only archived items.")]


def client(workspace: str | None) -> Any:
    from shoal.cli.global_args import default_workspace
    from shoal.client.ml_client import MLClient

    return MLClient(workspace_name=default_workspace(workspace))


def parse_tags(tags: list[str] | None) -> dict[str, str] | None:
    if not tags:
        return None
    out: dict[str, str] = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--tags takes key=value, got {item!r}")
        out[key] = value
    return out


def set_overrides(values: list[str] | None) -> list[str]:
    for item in values or []:
        if "=" not in item:
            raise UserError(f"--set takes path=value, got {item!r}")
    return list(values or [])


def patch_from_sets(values: list[str] | None, current: Any = None, *, typed: bool = False) -> dict[str, Any]:
    """``--set key=value`` for update commands. ``tags.k=v`` / ``properties.k=v`` change one entry of
    the object's current mapping; ``typed`` reads values as YAML scalars (``--set max_instances=3``)."""
    import yaml

    patch: dict[str, Any] = {}
    for item in set_overrides(values):
        key, _, value = item.partition("=")
        head, _, rest = key.partition(".")
        if rest and head in ("tags", "properties"):
            patch.setdefault(head, dict(getattr(current, head, None) or {}))[rest] = value
        else:
            patch[key] = yaml.safe_load(value) if typed and value else value
    return patch


def list_view(include_archived: bool, archived_only: bool) -> str:
    if include_archived and archived_only:
        raise UserError("give --include-archived or --archived-only, not both")
    return "All" if include_archived else "ArchivedOnly" if archived_only else "ActiveOnly"


def show(obj: Any, output: OutputFormat, query: str | None, columns: list[str] | None = None) -> None:
    if isinstance(obj, list):
        data = [o.to_dict() if hasattr(o, "to_dict") else o for o in obj]
    else:
        data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    render(data, output, columns=columns, query=query)


def begin_command(app: typer.Typer, operations: str, verb: str, doc: str, epilog: str | None = None) -> None:
    """Register ``verb -n NAME`` on ``app``: ``<operations>.begin_<verb>(name)``, waited on and shown."""

    def command(
        name: RequiredName,
        workspace_name: WorkspaceOpt = None,
        output: OutputOpt = OutputFormat.json,
        query: QueryOpt = None,
    ) -> None:
        ops = getattr(client(workspace_name), operations)
        show(getattr(ops, f"begin_{verb}")(name).result(), output, query)

    command.__doc__ = doc
    app.command(verb, epilog=epilog)(command)


def open_in_browser(url: str) -> bool:
    """Open ``url`` in a browser when this machine has one with a desktop; False when not (a
    server, CI, an SSH session: the printed URL is all)."""
    import os
    import sys
    import webbrowser

    if sys.platform.startswith("linux") and not any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    ):
        return False  # no desktop: not a text browser that would take over the terminal
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    return bool(browser.open(url, new=2))
