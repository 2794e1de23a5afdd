"""``shoal model|data|environment|component …``: versioned assets, as ``az ml`` has them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.common import (
    ArchivedOnlyOpt,
    DescriptionOpt,
    IncludeArchivedOpt,
    LabelOpt,
    MaxResultsOpt,
    NameOpt,
    OutputOpt,
    QueryOpt,
    RequiredName,
    SetOpt,
    TagsOpt,
    VersionOpt,
    WorkspaceOpt,
    client,
    list_view,
    parse_tags,
    patch_from_sets,
    show,
)
from shoal.cli.kind_flags import create_command
from shoal.cli.output import OutputFormat
from shoal.entities.kind_names import KIND_NAMES, VERSIONED_KINDS
from shoal.errors import UserError


@dataclass(frozen=True)
class AssetCommands:
    """What sets one asset noun's commands apart (its create flags are in ``kind_flags``)."""

    columns: list[str]  # for -o table
    show_latest: bool = False  # show without --version/--label shows the latest version
    stages: bool = False  # list/update take --stage
    download: bool = False  # has `download`


ASSET_COMMANDS: dict[str, AssetCommands] = {
    "model": AssetCommands(["name", "version", "type", "stage", "description"], stages=True, download=True),
    "data": AssetCommands(["name", "version", "type", "path", "description"], download=True),
    "environment": AssetCommands(["name", "version", "image", "description"]),
    "component": AssetCommands(["name", "version", "type", "display_name", "description"], show_latest=True),
}
# Versioned kinds with a CLI noun, in registry order (model, data, environment, component) → noun.
ASSET_NOUNS: dict[str, str] = {
    kind: str(KIND_NAMES[kind].cli_noun) for kind in VERSIONED_KINDS if KIND_NAMES[kind].cli_noun
}


def build(kind: str) -> typer.Typer:
    spec, commands = KIND_NAMES[kind], ASSET_COMMANDS[kind]
    app = typer.Typer(help=f"Manage {spec.plural}.", no_args_is_help=True)

    def ops(workspace: str | None) -> Any:
        return getattr(client(workspace), str(spec.sdk_group))

    app.command("create")(create_command(kind, lambda workspace, entity: ops(workspace).create_or_update(entity)))

    @app.command("show")
    def show_asset(
        name: RequiredName,
        version: VersionOpt = None,
        label: LabelOpt = None,
        workspace_name: WorkspaceOpt = None,
        output: OutputOpt = OutputFormat.json,
        query: QueryOpt = None,
    ) -> None:
        """Show one version (by --version or --label)."""
        if version is None and label is None and not commands.show_latest:
            raise UserError("give --version or --label (e.g. --label latest)")
        show(ops(workspace_name).get(name, version=version, label=label), output, query)

    @app.command("list")
    def list_assets(
        name: NameOpt = None,
        stage: Annotated[str | None, typer.Option("--stage", "-s", help="Only models in this stage.")] = None,
        include_archived: IncludeArchivedOpt = False,
        archived_only: ArchivedOnlyOpt = False,
        max_results: MaxResultsOpt = None,
        workspace_name: WorkspaceOpt = None,
        output: OutputOpt = OutputFormat.json,
        query: QueryOpt = None,
    ) -> None:
        """List the latest version of each name, or every version of --name."""
        if stage and not commands.stages:
            raise UserError("--stage applies to models only")
        items = list(
            ops(workspace_name).list(
                name,
                stage=stage,
                list_view_type=list_view(include_archived, archived_only),
                max_results=max_results,
            )
        )
        show(items, output, query, columns=commands.columns)

    @app.command("update")
    def update_asset(
        name: RequiredName,
        version: VersionOpt = None,
        label: LabelOpt = None,
        description: DescriptionOpt = None,
        tags: TagsOpt = None,
        stage: Annotated[str | None, typer.Option("--stage", "-s", help="Model stage.")] = None,
        set: SetOpt = None,
        workspace_name: WorkspaceOpt = None,
        output: OutputOpt = OutputFormat.json,
        query: QueryOpt = None,
    ) -> None:
        """Change metadata (description, tags, model stage); versions are otherwise immutable."""
        group = ops(workspace_name)
        current = group.get(name, version=version, label=label or (None if version else "latest"))
        patch = patch_from_sets(set, current)
        if description is not None:
            patch["description"] = description
        if tags:
            patch["tags"] = {**(current.tags or {}), **(parse_tags(tags) or {})}
        if stage is not None:
            if not commands.stages:
                raise UserError("--stage applies to models only")
            patch["stage"] = stage
        if not patch:
            raise UserError("nothing to update: give --set, --description, --tags or --stage")
        show(group.update(name, current.version, **patch), output, query)

    for verb in ("archive", "restore"):
        _add_archive(app, kind, verb, ops)

    if commands.download:

        @app.command("download")
        def download_asset(
            name: RequiredName,
            version: Annotated[str, typer.Option("--version", "-v", help="Version.")],
            download_path: Annotated[Path, typer.Option("--download-path", "-p", help="Folder to write into.")] = Path(
                "."
            ),
            workspace_name: WorkspaceOpt = None,
        ) -> None:
            """Download a version's files to <download-path>/<name>/."""
            target = ops(workspace_name).download(name, version, download_path)
            typer.echo(f"Downloaded {kind} {name}:{version} to {target}", err=True)

    return app


def _add_archive(app: typer.Typer, kind: str, verb: str, ops: Any) -> None:
    def command(
        name: RequiredName,
        version: VersionOpt = None,
        label: LabelOpt = None,
        workspace_name: WorkspaceOpt = None,
    ) -> None:
        getattr(ops(workspace_name), verb)(name, version=version, label=label)
        what = f"{name}:{version}" if version else f"{name}@{label}" if label else f"{name} (all versions)"
        typer.echo(f"{verb.title()}d {kind} {what}", err=True)

    command.__doc__ = f"{verb.title()} a version (-v/-l) or, with neither, the whole name."
    app.command(verb)(command)
