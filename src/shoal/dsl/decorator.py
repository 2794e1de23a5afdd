"""``@dsl.pipeline``: the decorator and the ``PipelineFunction`` it makes. Calling one runs the
function body with a builder on the stack, names the steps it made, and returns the pipeline job
(at the top) or a ``type: pipeline`` step (inside another pipeline function)."""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from shoal.dsl.bindings import PipelineInput, check_scope
from shoal.dsl.context import Builder, PipelineArgumentError, current, stack
from shoal.dsl.naming import assign_names
from shoal.dsl.nodes import PY_TYPES, Node, NodeOutput, input_value, is_binding, literal_type, register, single_output
from shoal.entities.component import PipelineComponent
from shoal.entities.io import Input, Output
from shoal.entities.job import PipelineJob
from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.errors import UserError

COMPONENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,254}")
SETTINGS = ("default_compute", "default_datastore", "continue_on_step_failure", "force_rerun")
# @dsl.pipeline keywords that are fields of the pipeline job rather than settings.
JOB_FIELDS = ("compute", "properties", "identity")
_TYPE_NAMES = {"bool": "boolean", "int": "integer", "float": "number", "str": "string"}


def _run_capturing_locals(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict]:
    """Call ``func`` and keep its local variables as they were when it returned."""
    code = inspect.unwrap(func).__code__
    captured: dict[str, Any] = {}
    done = [False]

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "return" and frame.f_code is code and not done[0]:
            captured.update(frame.f_locals)
            done[0] = True

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = func(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return result, captured


def _annotation_type(annotation: Any, where: str) -> str | None:
    if annotation is inspect.Parameter.empty or annotation is None:
        return None
    if isinstance(annotation, str):
        if annotation in _TYPE_NAMES:
            return _TYPE_NAMES[annotation]
        return "uri_folder" if annotation.split(".")[-1] == "Input" else None
    if annotation is Input:
        return "uri_folder"
    if isinstance(annotation, Input):
        return annotation.type
    if annotation is Output or isinstance(annotation, Output):
        raise UserError(f"{where}: an Output cannot annotate a pipeline input; return outputs as a dict")
    return PY_TYPES.get(annotation)


class _Parameter:
    """One input of a pipeline function: its declared type, default and whether it is required."""

    def __init__(self, param: inspect.Parameter, where: str) -> None:
        self.name = param.name
        self.annotation = param.annotation
        self.default = None if param.default is inspect.Parameter.empty else param.default
        self.required = param.default is inspect.Parameter.empty
        self.type = _annotation_type(param.annotation, f"{where} input {param.name!r}")
        if self.type is None and self.default is not None:
            self.type = literal_type(self.default)

    def declaration(self, value: Any) -> dict[str, Any]:
        """The input as a pipeline component declares it."""
        type_ = self.type or literal_type(value) or "uri_folder"
        out: dict[str, Any] = {"type": type_}
        if isinstance(self.annotation, Input):
            spec = self.annotation.model_dump(mode="json", exclude_none=True)
            spec.pop("path", None)
            out.update(spec)
        if type_ in PRIMITIVE_TYPES and self.default is not None and not isinstance(self.default, Input):
            out["default"] = self.default
        if not self.required and self.default is None:
            out["optional"] = True
        return out


class PipelineFunction:
    """What ``@dsl.pipeline`` makes of a function: calling it builds the pipeline."""

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.func = func
        self.options = options
        self.name = options.get("name") or func.__name__
        try:
            signature = inspect.signature(func, eval_str=True)
        except Exception:  # noqa: BLE001 - an annotation that cannot be evaluated: read it as text
            signature = inspect.signature(func)
        self.signature = signature
        self.params: dict[str, _Parameter] = {}
        self.var_keyword: str | None = None
        for param in signature.parameters.values():
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                raise UserError(f"pipeline {self.name}: *{param.name} is not supported; name each input")
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                self.var_keyword = param.name
                continue
            self.params[param.name] = _Parameter(param, f"pipeline {self.name}")
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        return f"<dsl.pipeline {self.name}>"

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            bound = self.signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise PipelineArgumentError(f"pipeline {self.name}: {exc}") from None
        given = {k: v for k, v in bound.arguments.items() if k != self.var_keyword}
        extra = dict(bound.arguments.get(self.var_keyword, {})) if self.var_keyword else {}
        missing = [p.name for p in self.params.values() if p.required and p.name not in given]
        if missing:
            names = ", ".join(repr(n) for n in missing)
            raise PipelineArgumentError(f"pipeline {self.name}() missing required input {names}")
        return given, extra

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        given, extra = self._bind(args, kwargs)
        return self._build(given, extra)

    def to_component(self) -> PipelineComponent:
        """This pipeline as a pipeline component (what ``ml_client.components.create_or_update(func)``
        registers): its parameters are the component's inputs, its returned outputs its outputs."""
        stack().append(Builder(f"{self.name} (component)", top=False))
        try:
            node = self._build({}, {})
        finally:
            stack().pop()
        component = dict(node.component) if isinstance(node.component, Mapping) else {}
        if "name" not in component:
            raise UserError(
                f"pipeline {self.name}: {self.name.lower()!r} is not a valid component name; "
                "give @dsl.pipeline(name=...) of lower-case letters, digits and '_'"
            )
        return PipelineComponent(**component)

    def _build(self, given: dict[str, Any], extra: dict[str, Any]) -> Any:
        outer = current()
        builder = Builder(self.name, top=outer is None)
        values: dict[str, Any] = {}
        types: dict[str, str | None] = {}
        for name, param in self.params.items():
            value = given.get(name, param.default)
            types[name] = param.type or literal_type(value)
            values[name] = input_value(value, types[name])
        for name, value in extra.items():
            types[name] = literal_type(value)
            values[name] = input_value(value, types[name])
        if outer is None:
            for name, value in values.items():
                if is_binding(value):
                    raise UserError(f"pipeline {self.name}: input {name!r} is {value!r}, a step of another pipeline")
        inputs = {name: PipelineInput(builder, name, types[name], values[name]) for name in values}
        call_args = {n: inputs[n] for n in self.params}
        if self.var_keyword:
            call_args.update({n: inputs[n] for n in extra})
        stack().append(builder)
        try:
            returned, local_vars = _run_capturing_locals(self.func, (), call_args)
        finally:
            stack().pop()
        if not builder.nodes:
            raise UserError(f"pipeline {self.name} has no steps: call components in its function")
        assign_names(builder.nodes, local_vars, self.name)
        outputs = self._outputs(returned, builder)
        default_compute = self.options.get("default_compute")
        if outer is not None and default_compute:
            for node in builder.nodes:
                if node.compute is None:
                    node.compute = default_compute
        jobs = {node.name: node._to_step(builder) for node in builder.nodes}
        if outer is None:
            return self._job(values, outputs, jobs)
        return self._step(given, extra, values, types, outputs, jobs)

    def _outputs(self, returned: Any, builder: Builder) -> dict[str, NodeOutput]:
        if returned is None:
            return {}
        if not isinstance(returned, Mapping):
            raise UserError(
                f"pipeline {self.name} returned {type(returned).__name__}: return None or a dict "
                '{"output_name": step.outputs.<name>}'
            )
        outputs: dict[str, NodeOutput] = {}
        for key, value in returned.items():
            if isinstance(value, Node):
                value = single_output(value)
            if not isinstance(value, NodeOutput):
                raise UserError(f"pipeline {self.name}: output {key!r} must be a step's output, got {value!r}")
            if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_]+", key):
                raise UserError(f"pipeline {self.name}: invalid output name {key!r}")
            check_scope(value, builder, f"pipeline {self.name} output {key!r}")
            if value._bound and value._bound != key:
                raise UserError(f"pipeline {self.name}: {value._describe()} is returned twice ({value._bound}, {key})")
            value._bound = key
            outputs[key] = value
        return outputs

    def _job(self, values: dict[str, Any], outputs: dict[str, NodeOutput], jobs: dict[str, Any]) -> PipelineJob:
        opts = self.options
        settings = {k: opts[k] for k in SETTINGS if opts.get(k) is not None}
        settings.update(opts.get("extra_settings") or {})
        job_outputs = {}
        for key, out in outputs.items():
            spec = {"type": out.type or "uri_folder"}
            spec.update({k: getattr(out, k) for k in ("mode", "path", "name", "version") if getattr(out, k)})
            job_outputs[key] = spec
        data: dict[str, Any] = {
            "type": "pipeline",
            "display_name": opts.get("display_name") or self.name,
            "description": opts.get("description") or _doc(self.func),
            "experiment_name": opts.get("experiment_name"),
            "tags": opts.get("tags"),
            "settings": settings or None,
            "inputs": {k: _plain(v) for k, v in values.items() if v is not None},
            "outputs": job_outputs,
            "jobs": jobs,
            **{k: opts[k] for k in JOB_FIELDS if opts.get(k) is not None},
        }
        return PipelineJob(**{k: v for k, v in data.items() if v is not None})

    def _step(
        self,
        given: dict[str, Any],
        extra: dict[str, Any],
        values: dict[str, Any],
        types: dict[str, str | None],
        outputs: dict[str, NodeOutput],
        jobs: dict[str, Any],
    ) -> Node:
        declared = {name: param.declaration(values[name]) for name, param in self.params.items()}
        declared.update({name: {"type": types[name] or "uri_folder"} for name in extra})
        component: dict[str, Any] = {"type": "pipeline"}
        name = self.name.lower()
        if COMPONENT_NAME.fullmatch(name):
            component["name"] = name
        for key in ("version", "display_name", "description", "tags"):
            value = self.options.get(key) or (_doc(self.func) if key == "description" else None)
            if value:
                component[key] = value
        component["inputs"] = declared
        component["outputs"] = {
            key: {k: v for k, v in (("type", out.type or "uri_folder"), ("mode", out.mode)) if v}
            for key, out in outputs.items()
        }
        component["jobs"] = jobs
        # The inputs the call gave, plus data defaults (primitive defaults live in the declarations).
        step_values = {n: v for n, v in values.items() if n in given or n in extra}
        for n, param in self.params.items():
            if n not in given and isinstance(param.default, Input | Mapping):
                step_values[n] = values[n]
        node = Node(
            kind="pipeline",
            component=component,
            inline=None,
            input_types=types,
            values=step_values,
            outputs={key: Output(type=out.type or "uri_folder") for key, out in outputs.items()},
            default_name=name,
        )
        return register(node)


def _plain(value: Any) -> Any:
    if isinstance(value, Input):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def _doc(func: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(func)
    return doc.strip() if doc else None


def pipeline(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    experiment_name: str | None = None,
    default_compute: str | None = None,
    default_datastore: str | None = None,
    continue_on_step_failure: bool | None = None,
    force_rerun: bool | None = None,
    tags: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """Decorate a function that builds a pipeline; calling it returns a :class:`PipelineJob`
    (or, inside another pipeline function, a ``type: pipeline`` step).

    ``name`` (default: the function's name) names the pipeline; ``display_name`` defaults to it;
    ``description`` to the docstring. ``default_compute``, ``default_datastore``,
    ``continue_on_step_failure`` and ``force_rerun`` are the job's ``settings``; ``compute``,
    ``properties`` and ``identity`` are job fields; other keywords are kept as settings too.
    In a nested pipeline, ``default_compute`` becomes the compute of its steps that name none.
    """
    options: dict[str, Any] = {
        "name": name,
        "version": version,
        "display_name": display_name,
        "description": description,
        "experiment_name": experiment_name,
        "default_compute": default_compute,
        "default_datastore": default_datastore,
        "continue_on_step_failure": continue_on_step_failure,
        "force_rerun": force_rerun,
        "tags": tags,
        **{k: kwargs.pop(k) for k in JOB_FIELDS if k in kwargs},
        "extra_settings": {k: v for k, v in kwargs.items() if v is not None},
    }

    def wrap(function: Callable[..., Any]) -> PipelineFunction:
        if not callable(function):
            raise UserError(f"@dsl.pipeline decorates a function, got {function!r}")
        return PipelineFunction(function, options)

    return wrap(func) if func is not None else wrap
