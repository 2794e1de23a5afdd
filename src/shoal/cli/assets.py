"""``shoal model|data|environment|component …``: versioned assets, as ``az ml`` has them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.common import (
    ArchivedOnlyOpt,
    DescriptionOpt,
    FileOpt,
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
    set_overrides,
    show,
)
from shoal.cli.output import OutputFormat
from shoal.errors import UserError

GROUPS = {"model": "models", "data": "data", "environment": "environments", "component": "components"}
COLUMNS = {
    "model": ["name", "version", "type", "stage", "description"],
    "data": ["name", "version", "type", "path", "description"],
    "environment": ["name", "version", "image", "description"],
    "component": ["name", "version", "type", "display_name", "description"],
}
PathOpt = Annotated[str | None, typer.Option("--path", "-p", help="Local file or folder, or a URI.")]
TypeOpt = Annotated[str | None, typer.Option("--type", "-t", help="Asset type.")]
DatastoreOpt = Annotated[str | None, typer.Option("--datastore", help="Datastore for uploads.")]
StageOpt = Annotated[str | None, typer.Option("--stage", "-s", help="Model stage, e.g. Development.")]


def load_from(kind: str, file: Path | None, overrides: list[str], flags: dict[str, Any]) -> Any:
    """The entity from ``--file`` plus ``--set``, or from flags alone where az allows that."""
    from shoal.entities.loader import load_entity
    from shoal.entities.refs import is_local_path, strip_file_prefix
    from shoal.entities.registry import parse_entity

    given = {k: v for k, v in flags.items() if v is not None}
    if file is not None:
        # Flags like --name/--version override the file, as in az.
        extra = [{k: v} for k, v in given.items()]
        return load_entity(kind, file, params_override=[*overrides, *extra])
    if overrides:
        raise UserError("--set needs --file")
    if "name" not in given:
        raise UserError(f"give --file, or at least --name to describe the {kind} with flags")
    if "path" in given and is_local_path(given["path"]) and not given["path"].startswith("azureml:"):
        # Only local paths are made absolute: runs:/<job>/<path>, azureml:… and URLs stay as given.
        given["path"] = str(Path(strip_file_prefix(given["path"])).expanduser().resolve())
    return parse_entity(kind, given, source="command-line flags")


def build(kind: str) -> typer.Typer:
    app = typer.Typer(help=f"Manage {GROUPS[kind]}.", no_args_is_help=True)
    group_name = GROUPS[kind]

    def ops(workspace: str | None) -> Any:
        return getattr(client(workspace), group_name)

    if kind == "model":

        @app.command("create")
        def create_model(
            file: FileOpt = None,
            name: NameOpt = None,
            version: VersionOpt = None,
            path: PathOpt = None,
            type: TypeOpt = None,
            stage: StageOpt = None,
            datastore: DatastoreOpt = None,
            description: DescriptionOpt = None,
            tags: TagsOpt = None,
            set: SetOpt = None,
            workspace_name: WorkspaceOpt = None,
            output: OutputOpt = OutputFormat.json,
            query: QueryOpt = None,
        ) -> None:
            """Create a model version (uploads a local file or folder)."""
            flags = dict(
                name=name,
                version=version,
                path=path,
                type=type,
                stage=stage,
                datastore=datastore,
                description=description,
                tags=parse_tags(tags),
            )
            entity = load_from("model", file, set_overrides(set), flags)
            show(ops(workspace_name).create_or_update(entity), output, query)

    elif kind == "data":

        @app.command("create")
        def create_data(
            file: FileOpt = None,
            name: NameOpt = None,
            version: VersionOpt = None,
            path: PathOpt = None,
            type: TypeOpt = None,
            datastore: DatastoreOpt = None,
            description: DescriptionOpt = None,
            tags: TagsOpt = None,
            set: SetOpt = None,
            workspace_name: WorkspaceOpt = None,
            output: OutputOpt = OutputFormat.json,
            query: QueryOpt = None,
        ) -> None:
            """Create a data version (uploads a local file or folder)."""
            flags = dict(
                name=name,
                version=version,
                path=path,
                type=type,
                datastore=datastore,
                description=description,
                tags=parse_tags(tags),
            )
            entity = load_from("data", file, set_overrides(set), flags)
            show(ops(workspace_name).create_or_update(entity), output, query)

    elif kind == "environment":

        @app.command("create")
        def create_environment(
            file: FileOpt = None,
            name: NameOpt = None,
            version: VersionOpt = None,
            image: Annotated[str | None, typer.Option("--image", "-i", help="Docker image.")] = None,
            conda_file: Annotated[Path | None, typer.Option("--conda-file", "-c", help="Conda YAML file.")] = None,
            build_context: Annotated[
                str | None, typer.Option("--build-context", "-b", help="Docker build folder.")
            ] = None,
            dockerfile_path: Annotated[str | None, typer.Option("--dockerfile-path", "-d")] = None,
            os_type: Annotated[str | None, typer.Option("--os-type", help="linux or windows.")] = None,
            datastore: DatastoreOpt = None,
            description: DescriptionOpt = None,
            tags: TagsOpt = None,
            set: SetOpt = None,
            workspace_name: WorkspaceOpt = None,
            output: OutputOpt = OutputFormat.json,
            query: QueryOpt = None,
        ) -> None:
            """Create an environment version from an image (plus conda file) or a build context."""
            if image and build_context:
                raise UserError("--image and --build-context exclude each other")
            if conda_file and not image and file is None:
                raise UserError("--conda-file needs --image")
            conda = None
            if conda_file is not None:
                import yaml

                if not conda_file.is_file():
                    raise UserError(f"conda file '{conda_file}' does not exist")
                conda = yaml.safe_load(conda_file.read_text())
            build_spec = None
            if build_context:
                build_spec = {"path": str(Path(build_context).resolve())}
                if dockerfile_path:
                    build_spec["dockerfile_path"] = dockerfile_path
            flags = dict(
                name=name,
                version=version,
                image=image,
                conda_file=conda,
                build=build_spec,
                os_type=os_type,
                datastore=datastore,
                description=description,
                tags=parse_tags(tags),
            )
            entity = load_from("environment", file, set_overrides(set), flags)
            show(ops(workspace_name).create_or_update(entity), output, query)

    else:

        @app.command("create")
        def create_component(
            file: Annotated[Path, typer.Option("--file", "-f", help="Component YAML.")],
            name: NameOpt = None,
            version: VersionOpt = None,
            set: SetOpt = None,
            workspace_name: WorkspaceOpt = None,
            output: OutputOpt = OutputFormat.json,
            query: QueryOpt = None,
        ) -> None:
            """Register a component from its YAML (uploads its code folder)."""
            entity = load_from("component", file, set_overrides(set), dict(name=name, version=version))
            show(ops(workspace_name).create_or_update(entity), output, query)

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
        if version is None and label is None and kind != "component":
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
        if stage and kind != "model":
            raise UserError("--stage applies to models only")
        items = list(
            ops(workspace_name).list(
                name,
                stage=stage,
                list_view_type=list_view(include_archived, archived_only),
                max_results=max_results,
            )
        )
        show(items, output, query, columns=COLUMNS[kind])

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
            if kind != "model":
                raise UserError("--stage applies to models only")
            patch["stage"] = stage
        if not patch:
            raise UserError("nothing to update: give --set, --description, --tags or --stage")
        show(group.update(name, current.version, **patch), output, query)

    for verb in ("archive", "restore"):
        _add_archive(app, kind, verb, ops)

    if kind in ("model", "data"):

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
