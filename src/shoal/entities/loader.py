"""The ``load_*`` functions: a YAML spec (read by :mod:`shoal.entities.yamlfile`) into an entity,
its relative paths made absolute against the file's folder and its conda files inlined."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.entities.base import Entity
from shoal.entities.code import Code
from shoal.entities.component import Component
from shoal.entities.compute import Compute
from shoal.entities.data import Data
from shoal.entities.datastore import Datastore
from shoal.entities.environment import Environment
from shoal.entities.job import Job
from shoal.entities.kinds import KINDS, kind_of_schema, parse_entity
from shoal.entities.model import Model
from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.entities.refs import is_local_path, strip_file_prefix
from shoal.entities.validation import single_issue
from shoal.entities.workspace import Workspace
from shoal.entities.yamlfile import (  # noqa: F401 - re-exported: the loader's names since the start
    MAX_BYTES,
    MAX_NODES,
    LineMap,
    Source,
    apply_overrides,
    load_text,
    load_yaml,
    parse_override_value,
    read_source,
)
from shoal.errors import SpecError

if TYPE_CHECKING:  # croniter and tzlocal load only when a schedule does
    from shoal.entities.connection import WorkspaceConnection
    from shoal.entities.schedule import JobSchedule

# --- relative paths --------------------------------------------------------------------------


class _PathResolver:
    """Makes local paths absolute against the YAML file's folder; inlines conda files."""

    def __init__(self, base: Path, label: str, lines: LineMap) -> None:
        self.base = base
        self.label = label
        self.lines = lines

    def local(self, value: str) -> str:
        path = os.path.expanduser(strip_file_prefix(value))
        out = Path(os.path.normpath(self.base / path)).as_posix()
        return out + "/" if value.endswith("/") and not out.endswith("/") else out

    def fix(self, container: Any, key: str) -> None:
        if isinstance(container, dict) and isinstance(container.get(key), str) and is_local_path(container[key]):
            container[key] = self.local(container[key])

    def environment(self, env: Any, prefix: str) -> None:
        if not isinstance(env, dict):
            return
        self.fix(env.get("build"), "path")
        conda = env.get("conda_file")
        if isinstance(conda, str) and is_local_path(conda):
            env["conda_file"] = self.conda(self.local(conda), f"{prefix}conda_file")

    def conda(self, path: str, field: str) -> dict[str, Any]:
        if not Path(path).is_file():
            raise single_issue(field, f"conda file {path!r} not found", source=self.label, line_map=self.lines)
        data, _ = load_yaml(path)
        return data

    def job_like(self, node: Any, prefix: str) -> None:
        """Command/parallel/sweep steps and inline components, nested in pipeline ``jobs``."""
        if not isinstance(node, dict):
            return
        self.fix(node, "code")
        self.fix(node, "component")  # a local component YAML (`./train.yml`, `file:train.yml`)
        self.environment(node.get("environment"), f"{prefix}environment.")
        includes = node.get("additional_includes")
        if isinstance(includes, list):
            for i in range(len(includes)):
                if isinstance(includes[i], str) and is_local_path(includes[i]):
                    includes[i] = self.local(includes[i])
        for key in ("task", "trial", "component"):
            self.job_like(node.get(key), f"{prefix}{key}.")
        jobs = node.get("jobs")
        if isinstance(jobs, dict):
            for name, job in jobs.items():
                self.job_like(job, f"{prefix}jobs.{name}.")

    def environment_file(self, node: Any, prefix: str) -> None:
        """``environment: file:./env.yml`` (an environment spec next to the job) is inlined."""
        env = node.get("environment") if isinstance(node, dict) else None
        if not (isinstance(env, str) and env.startswith("file:")):
            return
        path = self.local(env)
        if not Path(path).is_file():
            field = f"{prefix}environment"
            raise single_issue(field, f"environment file {path!r} not found", source=self.label, line_map=self.lines)
        data, lines = load_yaml(path)
        _PathResolver(Path(path).parent, path, lines).environment(data, "")
        node["environment"] = data

    def job_inputs(self, inputs: Any) -> None:
        """Local ``path`` of data inputs (``{type: uri_folder, path: ./data}``); literals stay as written."""
        if isinstance(inputs, dict):
            for value in inputs.values():
                if isinstance(value, dict) and value.get("type") not in PRIMITIVE_TYPES:
                    self.fix(value, "path")

    def job(self, node: Any, prefix: str) -> None:
        """A job, a sweep's trial or a pipeline step; then the component-like paths (code, env...)."""
        if not isinstance(node, dict):
            return
        self.environment_file(node, prefix)
        self.environment_file(node.get("trial"), f"{prefix}trial.")
        self.job_inputs(node.get("inputs"))
        jobs = node.get("jobs")
        if isinstance(jobs, dict):
            for name, step in jobs.items():
                self.job(step, f"{prefix}jobs.{name}.")
        self.job_like(node, prefix)

    def resolve(self, kind: str, data: dict[str, Any]) -> None:
        if kind in ("model", "data", "code"):
            self.fix(data, "path")
        elif kind == "environment":
            self.environment(data, "")
        elif kind == "datastore" and data.get("type") == "local":
            self.fix(data, "path")
        elif kind == "component":
            self.job_like(data, "")
        elif kind == "job":
            self.job(data, "")
        elif kind in ("online_deployment", "batch_deployment"):
            model = data.get("model")
            if isinstance(model, dict):
                self.fix(model, "path")
            self.fix(data.get("code_configuration"), "code")
            self.environment(data.get("environment"), "environment.")
        elif kind == "schedule":
            self.schedule(data)

    def schedule(self, data: dict[str, Any]) -> None:
        """``create_job: ./job.yml`` or ``{job: ./job.yml, <overrides>}``: the job file inlined (its own
        paths resolved against its folder), the overrides laid over it (dicts merged key by key)."""
        node = data.get("create_job")
        overrides = dict(node) if isinstance(node, dict) and "job" in node else None
        path = overrides.pop("job") if overrides is not None else node
        if not (isinstance(path, str) and is_local_path(path) and not path.startswith("azureml:")):
            if overrides is None:
                self.job(node, "create_job.")  # an inline job
            return
        file = self.local(path)
        if not Path(file).is_file():
            raise single_issue("create_job", f"job file {file!r} not found", source=self.label, line_map=self.lines)
        job, lines = load_yaml(file)
        _PathResolver(Path(file).parent, file, lines).job(job, "")
        for key, value in (overrides or {}).items():
            merge = isinstance(value, dict) and isinstance(job.get(key), dict)
            job[key] = {**job[key], **value} if merge else value
        data["create_job"] = job


# --- load_entity and friends -----------------------------------------------------------------


def load_entity(
    kind: str | None,
    source: Source,
    *,
    params_override: list[Any] | None = None,
    relative_origin: str | os.PathLike[str] | None = None,
) -> Entity:
    """Load a YAML spec into an entity; ``kind=None`` detects the kind from ``$schema``."""
    text, label, path = read_source(source)
    data, lines = load_text(text, label, params_override)
    if kind is None:
        schema = data.get("$schema")
        kind = kind_of_schema(schema)
        if kind is None:
            raise SpecError(
                f"{label}: cannot tell what kind of spec this is from its $schema ({schema!r}); "
                f"load it with one of load_{', load_'.join(KINDS)}"
            )
        if kind not in KINDS:
            raise SpecError(f"{label}: this is a {kind} spec; shoal.entities loads {', '.join(KINDS)}")
    if relative_origin is not None:
        base = Path(relative_origin)
    elif path is not None:
        base = path.parent
    else:
        base = Path.cwd()
    _PathResolver(Path(os.path.abspath(base)), label, lines).resolve(kind, data)
    return parse_entity(kind, data, source=label, line_map=lines)


def load_workspace(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Workspace:
    return load_entity("workspace", source, relative_origin=relative_origin, params_override=params_override)


def load_compute(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Compute:
    return load_entity("compute", source, relative_origin=relative_origin, params_override=params_override)


def load_datastore(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Datastore:
    return load_entity("datastore", source, relative_origin=relative_origin, params_override=params_override)


def load_model(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Model:
    return load_entity("model", source, relative_origin=relative_origin, params_override=params_override)


def load_data(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Data:
    return load_entity("data", source, relative_origin=relative_origin, params_override=params_override)


def load_environment(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Environment:
    return load_entity("environment", source, relative_origin=relative_origin, params_override=params_override)


def load_component(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Component:
    return load_entity("component", source, relative_origin=relative_origin, params_override=params_override)


def load_code(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Code:
    return load_entity("code", source, relative_origin=relative_origin, params_override=params_override)


def load_schedule(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> JobSchedule:
    return load_entity("schedule", source, relative_origin=relative_origin, params_override=params_override)


def load_connection(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> WorkspaceConnection:
    return load_entity("connection", source, relative_origin=relative_origin, params_override=params_override)


def load_job(source: Source, *, relative_origin: Any = None, params_override: Any = None) -> Job:
    """A command, sweep or pipeline job (``type``, default ``command``) with local paths made absolute."""
    return load_entity("job", source, relative_origin=relative_origin, params_override=params_override)
