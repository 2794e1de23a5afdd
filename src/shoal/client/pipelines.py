"""What the SDK and CLI do to a job before the server sees it, and how a pipeline is followed.

:class:`LocalPaths` turns everything local in a job body into something the server can read, for
command jobs and pipeline jobs alike: code folders become anonymous code assets
(``azureml:<hash>:1``, as component registration does: ``client/component_files.py``), data inputs become datastore
URIs, environment build contexts are uploaded, and a pipeline step's local component file
(``component: ./train.yml``) is loaded and inlined, recursively for pipeline components. Every
local path is checked first, so a missing one fails (naming the field, e.g.
``jobs.train_job.component``) before anything is uploaded.

:func:`stream_pipeline` polls a pipeline and its steps (child jobs, recursively) and prints each
step's status changes, reused steps, then the pipeline's end.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from shoal.client.component_files import upload_component_files
from shoal.client.transport import Transport
from shoal.client.uploads import upload_path
from shoal.entities.pipeline_graph.expander import UNSUPPORTED_STEPS
from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.entities.refs import is_local_path, strip_file_prefix
from shoal.errors import NotFoundError, SpecError

TERMINAL = ("Completed", "Failed", "Canceled")


def _local(text: str) -> Path:
    return Path(strip_file_prefix(text)).expanduser()


def _field(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class LocalPaths:
    """Checks, then uploads, the local paths of one job body (see the module's docstring)."""

    def __init__(self, transport: Transport, workspace: str) -> None:
        self._t = transport
        self._ws = workspace
        self._uploads: list[Callable[[], None]] = []
        self._loading: list[Path] = []
        self._done: dict[str, dict[str, Any]] = {}

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``body`` with nothing local left in it."""
        body = self.inline(body)
        for upload in self._uploads:
            upload()
        return body

    def inline(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``body`` with every local path checked and local component files inlined,
        uploading nothing (what ``validate`` looks at); ``prepare`` then uploads."""
        body = copy.deepcopy(body)
        self._uploads = []
        if body.get("type") == "pipeline":
            _refuse_unsupported_steps(body, "")  # before any local path is checked or uploaded
            self._pipeline(body, "")
        else:
            if body.get("type") == "sweep" and body.get("trial") is not None:
                body["trial"] = self._component(body["trial"], "trial")
            self._definition(body, "")
            self._inputs(body.get("inputs"), "inputs")
        return body

    # -- checking: each check queues its upload -----------------------------------------------

    def _definition(self, node: dict[str, Any], prefix: str) -> None:
        """``code`` (with ``additional_includes``) and an environment build context: a command
        job, an inline command step, or an inline component (uploaded as components are)."""
        code = node.get("code")
        includes = node.get("additional_includes") or []
        local_code = isinstance(code, str) and is_local_path(code)
        if local_code and not _local(code).is_dir():
            raise NotFoundError(f"{_field(prefix, 'code')}: code folder '{code}' does not exist")
        for include in includes if local_code else []:
            if isinstance(include, str) and not _local(include).exists():
                raise NotFoundError(f"{_field(prefix, 'additional_includes')}: '{include}' does not exist")
        env = node.get("environment")
        build = env.get("build") if isinstance(env, dict) else None
        local_build = isinstance(build, dict) and isinstance(build.get("path"), str) and is_local_path(build["path"])
        if local_build and not _local(build["path"]).is_dir():
            field = _field(prefix, "environment.build.path")
            raise NotFoundError(f"{field}: build context '{build['path']}' is not a folder")
        if local_code or local_build:
            self._uploads.append(lambda: self._upload_definition(node))

    def _upload_definition(self, node: dict[str, Any]) -> None:
        # The component route uploads code with its includes merged, registers the anonymous
        # code asset and uploads the build context: one code path for jobs, steps and components.
        # A definition repeated in several steps (one component called twice) is sent once.
        keys = ("code", "additional_includes", "environment")
        key = json.dumps([node.get(k) for k in keys], sort_keys=True, default=str)
        if key not in self._done:
            upload_component_files(self._t, self._ws, node)
            self._done[key] = {k: copy.deepcopy(node[k]) for k in keys if k in node}
        node.update(copy.deepcopy(self._done[key]))

    def _inputs(self, inputs: Any, prefix: str) -> None:
        if not isinstance(inputs, dict):
            return
        for name, value in inputs.items():
            if not (isinstance(value, dict) and isinstance(value.get("path"), str) and is_local_path(value["path"])):
                continue
            if value.get("type") in PRIMITIVE_TYPES:
                continue
            field, path = _field(prefix, name), value["path"]
            local = _local(path)
            if not local.exists():
                raise NotFoundError(f"{field}: local path '{path}' does not exist")
            kind = value.get("type") or "uri_folder"
            if kind == "uri_file" and not local.is_file():
                raise SpecError(f"{field}: type uri_file needs a file, but '{path}' is a folder")
            if kind == "uri_folder" and local.is_file() and value.get("mode") == "direct":
                # A direct input is a URI handed over as is: azure-ai-ml uploads a file given as
                # uri_folder (the spark notebook 1i does) and the step reads the file's URI.
                value["type"] = kind = "uri_file"
            if kind in ("uri_folder", "mltable") and not local.is_dir():
                raise SpecError(f"{field}: type {kind} needs a folder, but '{path}' is a file")
            self._uploads.append(lambda value=value, local=local: self._upload_input(value, local))

    def _upload_input(self, value: dict[str, Any], local: Path) -> None:
        datastore = value.get("datastore") or "workspaceblobstore"
        value["path"] = upload_path(self._t, self._ws, local, datastore=datastore)

    def _pipeline(self, node: dict[str, Any], prefix: str) -> None:
        """A pipeline job or pipeline component: its inputs, its component, each of its steps."""
        self._inputs(node.get("inputs"), _field(prefix, "inputs"))
        if node.get("component") is not None:
            node["component"] = self._component(node["component"], _field(prefix, "component"))
        jobs = node.get("jobs")
        for name, step in jobs.items() if isinstance(jobs, dict) else []:
            if isinstance(step, dict):
                self._step(step, _field(prefix, f"jobs.{name}"))

    def _step(self, step: dict[str, Any], prefix: str) -> None:
        for key in ("component", "trial"):  # a sweep step's trial is a component too
            if step.get(key) is not None:
                step[key] = self._component(step[key], f"{prefix}.{key}")
        self._definition(step, prefix)  # an inline command step, or a step overriding code or environment
        self._inputs(step.get("inputs"), f"{prefix}.inputs")

    def _component(self, value: Any, field: str) -> Any:
        """A step's component: references stay; a local file is loaded and inlined; inline
        definitions have their own local paths (and, for pipelines, their steps) handled."""
        if isinstance(value, str):
            if not is_local_path(value):
                return value
            value = self._load(value, field)
        if isinstance(value, dict):
            if value.get("type") == "pipeline":
                self._pipeline(value, field)
            elif value.get("type") == "parallel" and isinstance(value.get("task"), dict):
                self._definition(value["task"], f"{field}.task")  # a parallel task's code and environment
            else:
                self._definition(value, field)
        return value

    def _load(self, text: str, field: str) -> dict[str, Any]:
        from shoal.dsl.steps import inline_component
        from shoal.entities.loader import load_component

        path = _local(text).absolute()
        if not path.is_file():
            raise NotFoundError(f"{field}: component file '{text}' does not exist")
        if path in self._loading:
            chain = " -> ".join(str(p) for p in [*self._loading, path])
            raise SpecError(f"{field}: component file '{text}' includes itself ({chain})")
        self._loading.append(path)
        try:
            data = inline_component(load_component(path))
            if data.get("type") == "pipeline":
                _absolute_step_inputs(data, path.parent)
            return data
        finally:
            self._loading.pop()


def _refuse_unsupported_steps(node: dict[str, Any], prefix: str) -> None:
    """A step Shoal cannot run (spark, automl, …) is refused first, with the server's reason,
    rather than after the job's local files were checked and uploaded for nothing."""
    jobs = node.get("jobs")
    for name, step in jobs.items() if isinstance(jobs, dict) else []:
        if not isinstance(step, dict):
            continue
        where = _field(prefix, f"jobs.{name}")
        component = step.get("component")
        kind = step.get("type") or (component.get("type") if isinstance(component, dict) else None)
        if kind in UNSUPPORTED_STEPS:
            raise SpecError(
                f"pipeline job: {where}.type: step type '{kind}' is not supported in pipelines yet"
                f"{UNSUPPORTED_STEPS[kind]}",
                details={"field": f"{where}.type"},
            )
        if isinstance(component, dict) and component.get("type") == "pipeline":
            _refuse_unsupported_steps(component, f"{where}.component")


def _absolute_step_inputs(component: dict[str, Any], base: Path) -> None:
    """Local data paths of a pipeline component's steps, relative to the component's file."""
    for step in (component.get("jobs") or {}).values():
        if not isinstance(step, dict):
            continue
        for value in (step.get("inputs") or {}).values():
            path = value.get("path") if isinstance(value, dict) else None
            if isinstance(path, str) and is_local_path(path) and value.get("type") not in PRIMITIVE_TYPES:
                local = Path(strip_file_prefix(path)).expanduser()
                if not local.is_absolute():
                    value["path"] = (base / local).resolve().as_posix()
        inner = step.get("component")
        if isinstance(inner, dict) and inner.get("type") == "pipeline":
            _absolute_step_inputs(inner, base)


# -- following a pipeline --------------------------------------------------------------------


def reuse_of(job: dict[str, Any]) -> dict[str, Any] | None:
    """A step's ``properties["reuse"]`` (an object; a JSON string is read too), or None."""
    value = (job.get("properties") or {}).get("reuse")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def reuse_text(job: dict[str, Any]) -> str:
    """``reused from <job>``, ``ran``, or "" when the server said nothing about reuse."""
    reuse = reuse_of(job)
    if reuse is None:
        return ""
    if reuse.get("reused"):
        return f"reused from {reuse.get('from_job') or '?'}"
    return "ran"


def step_label(job: dict[str, Any]) -> str:
    return str((job.get("properties") or {}).get("shoal.step") or job.get("display_name") or job.get("name"))


def _created(job: dict[str, Any]) -> str:
    return str((job.get("creation_context") or {}).get("created_at") or "")


class _PipelineWatch:
    def __init__(self, transport: Transport, base: str, out: TextIO) -> None:
        self._t = transport
        self._base = base
        self._out = out
        self.seen: dict[str, str] = {}  # step job name -> last status printed
        self.reused: set[str] = set()
        self.primary_metric: str | None = None  # a sweep's, to show each trial's value

    def steps(self, parent: str) -> list[dict[str, Any]]:
        """Every step under ``parent``, nested pipelines' steps included, oldest first."""
        children = sorted(
            self._t.paged(self._base, {"parent_job_name": parent, "list_view_type": "All"}),
            key=lambda j: (_created(j), step_label(j)),
        )
        out: list[dict[str, Any]] = []
        for child in children:
            out.append(child)
            if child.get("type") == "pipeline":
                out.extend(self.steps(child["name"]))
        return out

    def report(self, parent: str) -> list[dict[str, Any]]:
        steps = self.steps(parent)
        for step in steps:
            name, status, label = step["name"], step.get("status") or "?", step_label(step)
            params = (step.get("properties") or {}).get("shoal.sweep.params")
            if params is not None:
                self._trial(step, name, status, label, params)
                continue
            reuse = reuse_of(step)
            if reuse and reuse.get("reused") and name not in self.reused:
                self.reused.add(name)
                key = str(reuse.get("key") or "")
                short = f" (key {key[:8]}…)" if key else ""
                self._out.write(f"[{label}] reused from {reuse.get('from_job') or '?'}{short}\n")
                self.seen[name] = status
                continue
            before = self.seen.get(name)
            if before is None:
                self._out.write(f"[{label}] {status}\n")
            elif before != status:
                self._out.write(f"[{label}] {before} → {status}\n")
            self.seen[name] = status
        self._out.flush()
        return steps

    def _trial(self, step: dict[str, Any], name: str, status: str, label: str, params: Any) -> None:
        """A sweep trial: its parameters when it appears, its metric or why it stopped when it ends."""
        before = self.seen.get(name)
        if before is None:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items())) if isinstance(params, dict) else params
            self._out.write(f"[{label}] {status}  {shown}\n")
        elif before != status:
            extra = ""
            if status in TERMINAL:
                full = self._t.request("GET", f"{self._base}/{name}")
                stopped = (full.get("properties") or {}).get("shoal.sweep.early_termination")
                metric = self.primary_metric
                if stopped:
                    extra = f"  stopped early: {stopped}"
                elif metric and metric in (full.get("metrics") or {}):
                    extra = f"  {metric}={full['metrics'][metric]}"
                elif metric and status == "Completed":
                    extra = f"  (never logged {metric})"
            self._out.write(f"[{label}] {before} → {status}{extra}\n")
        self.seen[name] = status


def stream_pipeline(
    transport: Transport, workspace: str, name: str, *, out: TextIO | None = None, poll: float = 1.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Print a pipeline's step changes until it ends; returns its final body and its steps."""
    out = out or sys.stdout
    base = f"/workspaces/{workspace}/jobs"
    out.write(f"RunId: {name}\nWeb View: {transport.base_url}/studio{base}/{name}\n\n")
    out.flush()
    watch = _PipelineWatch(transport, base, out)
    first = transport.request("GET", f"{base}/{name}")
    watch.primary_metric = (first.get("objective") or {}).get("primary_metric")
    while True:
        job = transport.request("GET", f"{base}/{name}")
        steps = watch.report(name)
        if job.get("status") in TERMINAL:
            steps = watch.report(name)  # the last changes, recorded before the pipeline ended
            break
        time.sleep(poll)
    out.write(f"\nExecution Summary\n=================\nRunId: {name}\nStatus: {job.get('status')}\n")
    for step in steps:
        suffix = f" ({reuse_text(step)})" if reuse_text(step) else ""
        out.write(f"  {step_label(step)}: {step.get('status')}{suffix}\n")
    best = (job.get("properties") or {}).get("best_child_run_id")
    if best:
        value = (job.get("properties") or {}).get("best_metric_value")
        out.write(f"Best trial: {best} ({watch.primary_metric}={value})\n")
    if job.get("error"):
        out.write(f"Error: {job['error'].get('message', job['error'])}\n")
    out.flush()
    return job, steps
