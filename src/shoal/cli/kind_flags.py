"""``shoal <noun> create`` for every kind, from data: the flags each kind's create takes, and one
function (:func:`create_command`) that turns them into a command and the command's flags into
the entity.

The table is keyed by the kind registry's kind names (``shoal.entities.kinds.KINDS``); the
noun each command hangs under is the kind's ``cli_noun``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.common import (
    DescriptionOpt,
    FileOpt,
    NameOpt,
    OutputOpt,
    QueryOpt,
    SetOpt,
    TagsOpt,
    VersionOpt,
    WorkspaceOpt,
    parse_tags,
    set_overrides,
    show,
)
from shoal.cli.output import OutputFormat
from shoal.errors import UserError


def load_from(kind: str, file: Path | None, overrides: list[str], flags: dict[str, Any]) -> Any:
    """The entity from ``--file`` plus ``--set``, or from flags alone where az allows that."""
    from shoal.entities.kinds import parse_entity
    from shoal.entities.loader import load_entity
    from shoal.entities.refs import is_local_path, strip_file_prefix

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


@dataclass(frozen=True)
class Flag:
    """One option of a create command and the entity field it fills."""

    param: str  # the command's parameter name (its option names are in ``annotation``)
    annotation: Any  # ``Annotated[<type>, typer.Option(...)]``
    field: str = ""  # entity field ("" = ``param``); "parent.key" fills a key of a dict field
    convert: Callable[[Any], Any] | None = None  # applied to values that are not None

    @property
    def target(self) -> str:
        return self.field or self.param


@dataclass(frozen=True)
class CreateFlags:
    """A kind's create command: its help, its own flags (between ``--file`` and ``--set``), and
    how it reads ``--file`` and ``--workspace-name``."""

    doc: str
    flags: tuple[Flag, ...] = ()
    file: Any = FileOpt  # the --file annotation
    file_required: bool = False
    workspace_opt: bool = True  # False: the command takes no --workspace-name (workspace create)
    check: Callable[[dict[str, Any], Path | None], None] | None = None  # sees the raw values first

    def fields(self, values: dict[str, Any], file: Path | None) -> dict[str, Any]:
        """The entity fields the flags' ``values`` describe (None where a flag was not given)."""
        if self.check is not None:
            self.check(values, file)
        fields: dict[str, Any] = {}
        for flag in self.flags:
            value = values[flag.param]
            if value is not None and flag.convert is not None:
                value = flag.convert(value)
            parent, _, key = flag.target.partition(".")
            if not key:
                fields[parent] = value
            elif value not in (None, "") and isinstance(fields.get(parent), dict):
                fields[parent][key] = value  # only into a parent another flag filled
        return fields


# -- flags several kinds share --------------------------------------------------------------

NAME = Flag("name", NameOpt)
VERSION = Flag("version", VersionOpt)
PATH = Flag("path", Annotated[str | None, typer.Option("--path", "-p", help="Local file or folder, or a URI.")])
TYPE = Flag("type", Annotated[str | None, typer.Option("--type", "-t", help="Asset type.")])
DATASTORE = Flag("datastore", Annotated[str | None, typer.Option("--datastore", help="Datastore for uploads.")])
STAGE = Flag("stage", Annotated[str | None, typer.Option("--stage", "-s", help="Model stage, e.g. Development.")])
DESCRIPTION = Flag("description", DescriptionOpt)
TAGS = Flag("tags", TagsOpt, convert=parse_tags)


# -- environment ----------------------------------------------------------------------------


def _check_environment(values: dict[str, Any], file: Path | None) -> None:
    if values["image"] and values["build_context"]:
        raise UserError("--image and --build-context exclude each other")
    if values["conda_file"] and not values["image"] and file is None:
        raise UserError("--conda-file needs --image")


def _yaml_file(help: str, kind: Any = Path) -> dict[str, Any]:
    """``CreateFlags`` keywords for a kind created only from its YAML: a required ``--file``."""
    return {"file": Annotated[kind, typer.Option("--file", "-f", help=help)], "file_required": True}


def _read_conda(conda_file: Path) -> Any:
    import yaml

    if not conda_file.is_file():
        raise UserError(f"conda file '{conda_file}' does not exist")
    return yaml.safe_load(conda_file.read_text())


def _build_spec(build_context: str) -> dict[str, Any] | None:
    return {"path": str(Path(build_context).resolve())} if build_context else None


CREATE_FLAGS: dict[str, CreateFlags] = {
    "workspace": CreateFlags(
        "Create a workspace (with its workspaceblobstore and workspaceartifactstore datastores).",
        (
            NAME,
            Flag("location", Annotated[str | None, typer.Option("--location", "-l")]),
            Flag("display_name", Annotated[str | None, typer.Option("--display-name")]),
            DESCRIPTION,
            TAGS,
        ),
        workspace_opt=False,
    ),
    "compute": CreateFlags(
        "Create a compute cluster, instance, Kubernetes or attached compute.",
        (
            NAME,
            Flag(
                "type",
                Annotated[str | None, typer.Option("--type", "-t", help="amlcompute or computeinstance.")],
                convert=str.lower,
            ),
            Flag("size", Annotated[str | None, typer.Option("--size")]),
            Flag("min_instances", Annotated[int | None, typer.Option("--min-instances")]),
            Flag("max_instances", Annotated[int | None, typer.Option("--max-instances")]),
            Flag("idle_time_before_scale_down", Annotated[int | None, typer.Option("--idle-time-before-scale-down")]),
            Flag("tier", Annotated[str | None, typer.Option("--tier", help="dedicated or low_priority.")]),
            Flag("location", Annotated[str | None, typer.Option("--location")]),
            DESCRIPTION,
            TAGS,
        ),
    ),
    "datastore": CreateFlags(
        "Create or update a datastore from YAML.",
        (NAME,),
        **_yaml_file("Datastore YAML.", Any),
    ),
    "model": CreateFlags(
        "Create a model version (uploads a local file or folder).",
        (NAME, VERSION, PATH, TYPE, STAGE, DATASTORE, DESCRIPTION, TAGS),
    ),
    "data": CreateFlags(
        "Create a data version (uploads a local file or folder).",
        (NAME, VERSION, PATH, TYPE, DATASTORE, DESCRIPTION, TAGS),
    ),
    "environment": CreateFlags(
        "Create an environment version from an image (plus conda file) or a build context.",
        (
            NAME,
            VERSION,
            Flag("image", Annotated[str | None, typer.Option("--image", "-i", help="Docker image.")]),
            Flag(
                "conda_file",
                Annotated[Path | None, typer.Option("--conda-file", "-c", help="Conda YAML file.")],
                convert=_read_conda,
            ),
            Flag(
                "build_context",
                Annotated[str | None, typer.Option("--build-context", "-b", help="Docker build folder.")],
                field="build",
                convert=_build_spec,
            ),
            Flag(
                "dockerfile_path",
                Annotated[str | None, typer.Option("--dockerfile-path", "-d")],
                field="build.dockerfile_path",
            ),
            Flag("os_type", Annotated[str | None, typer.Option("--os-type", help="linux or windows.")]),
            DATASTORE,
            DESCRIPTION,
            TAGS,
        ),
        check=_check_environment,
    ),
    "component": CreateFlags(
        "Register a component from its YAML (uploads its code folder).",
        (NAME, VERSION),
        **_yaml_file("Component YAML."),
    ),
    "schedule": CreateFlags(
        "Create or update a schedule from YAML (its create_job file is inlined and its local files uploaded).",
        (NAME,),
        **_yaml_file("Schedule YAML."),
    ),
    "connection": CreateFlags(
        "Create or update a workspace connection from YAML (its secrets are encrypted, never shown).",
        (NAME,),
        **_yaml_file("Connection YAML."),
    ),
}


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def create_command(kind: str, submit: Callable[[str | None, Any], Any]) -> Callable[..., None]:
    """The ``create`` command of ``kind``: ``--file``, the kind's flags, ``--set``, ``--workspace-name``,
    ``--output`` and ``--query``; it loads the entity and shows what ``submit(workspace, entity)`` returns."""
    spec = CREATE_FLAGS[kind]

    def command(**kwargs: Any) -> None:
        file = kwargs["file"]
        path = None if file is None else Path(file)
        fields = spec.fields({flag.param: kwargs[flag.param] for flag in spec.flags}, path)
        entity = load_from(kind, path, set_overrides(kwargs["set"]), fields)
        show(submit(kwargs.get("workspace_name"), entity), kwargs["output"], kwargs["query"])

    params = [
        _param("file", spec.file) if spec.file_required else _param("file", spec.file, None),
        *(_param(flag.param, flag.annotation, None) for flag in spec.flags),
        _param("set", SetOpt, None),
        *([_param("workspace_name", WorkspaceOpt, None)] if spec.workspace_opt else []),
        _param("output", OutputOpt, OutputFormat.json),
        _param("query", QueryOpt, None),
    ]
    command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = spec.doc
    command.__name__ = command.__qualname__ = f"create_{kind}"
    return command
