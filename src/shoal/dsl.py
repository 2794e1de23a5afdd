"""``shoal.dsl``: pipelines written as Python functions, as ``azure.ai.ml.dsl`` writes them.

    from shoal import Input, dsl, load_component

    train = load_component("train.yml")

    @dsl.pipeline(default_compute="cpu-cluster")
    def flow(data: Input, lr: float = 0.1):
        trained = train(training_data=data, learning_rate=lr)
        return {"model": trained.outputs.model_output}

    job = flow(Input(path="./data"))        # a PipelineJob: ml_client.jobs.create_or_update(job)

Inside the function, calling a component (``load_component(...)`` result), calling a
``command(...)`` result, or calling ``command(...)`` itself adds a step; calling another
``@dsl.pipeline`` function adds a ``type: pipeline`` step whose component is that pipeline, inline.
The function's parameters are the pipeline's inputs (``${{parent.inputs.<name>}}``); a step's
``.outputs.<o>`` and ``.inputs.<i>`` bind to other steps (``${{parent.jobs.<step>.outputs.<o>}}``).
A returned ``{"name": step.outputs.o}`` declares pipeline outputs. Steps are named after the local
variables holding them, else after their component (``train_model``, ``train_model_1``, …).

The result is the pipeline job's YAML shape; local paths stay local (absolute) and are uploaded by
``ml_client.jobs.create_or_update``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from shoal.entities import hooks
from shoal.entities.component import Component
from shoal.entities.environment import Environment
from shoal.entities.io import Input, Output
from shoal.entities.job import CommandJob, PipelineJob
from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.entities.refs import absolute_local_path, is_local_path
from shoal.entities.validation import scalar_to_str
from shoal.errors import UserError

__all__ = ["pipeline", "Node", "NodeInput", "NodeOutput", "PipelineInput", "PipelineArgumentError"]

STEP_NAME = re.compile(r"[a-z_][a-z0-9_]*")
COMPONENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,254}")
SETTINGS = ("default_compute", "default_datastore", "continue_on_step_failure", "force_rerun")
# @dsl.pipeline keywords that are fields of the pipeline job rather than settings.
JOB_FIELDS = ("compute", "properties", "identity")
# What a step may set besides its inputs and outputs (the Azure ML node keys).
NODE_FIELDS = (
    "display_name",
    "description",
    "tags",
    "properties",
    "compute",
    "environment_variables",
    "resources",
    "limits",
    "distribution",
    "identity",
    "queue_settings",
    "services",
    "comment",
)
_MAP_FIELDS = ("tags", "properties", "environment_variables")
_PY_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
_TYPE_NAMES = {"bool": "boolean", "int": "integer", "float": "number", "str": "string"}


class PipelineArgumentError(UserError, TypeError):
    """A pipeline function or a component was called with arguments that do not fit it."""


# --- the pipeline being built ----------------------------------------------------------------

_state = threading.local()


def _stack() -> list[_Builder]:
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def _current() -> _Builder | None:
    stack = _stack()
    return stack[-1] if stack else None


def in_pipeline() -> bool:
    """True while a ``@dsl.pipeline`` function body runs (its calls add steps)."""
    return _current() is not None


class _Builder:
    """The steps one call of a pipeline function creates, in creation order."""

    def __init__(self, name: str, *, top: bool) -> None:
        self.name = name
        self.top = top  # the pipeline job itself, not a nested pipeline component
        self.nodes: list[Node] = []

    def add(self, node: Node) -> None:
        node.__dict__["_builder"] = self
        self.nodes.append(node)


# --- bindings: values that become ${{parent…}} expressions -----------------------------------


def _expr(path: str) -> str:
    return "${{" + path + "}}"


class _Binding:
    """A value standing for another one in the pipeline; it is written as a ``${{…}}`` expression."""

    type: str | None

    def _expression(self) -> str:
        raise NotImplementedError

    def _scope(self) -> _Builder | None:
        raise NotImplementedError

    def __str__(self) -> str:
        return self._expression()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._describe()}>"

    def _describe(self) -> str:
        return self._expression()


class PipelineInput(_Binding):
    """A parameter of a pipeline function: ``${{parent.inputs.<name>}}``."""

    def __init__(self, builder: _Builder, name: str, type_: str | None, value: Any) -> None:
        self._builder = builder
        self.name = name
        self.type = type_
        self._value = value

    def result(self) -> Any:
        """The value the pipeline was called with (or the parameter's default)."""
        return self._value

    def _expression(self) -> str:
        return _expr(f"parent.inputs.{self.name}")

    def _scope(self) -> _Builder | None:
        return self._builder


class NodeInput(_Binding):
    """A step's input: its value, and ``${{parent.jobs.<step>.inputs.<name>}}`` when passed on."""

    def __init__(self, owner: Node, port: str, type_: str | None, value: Any = None) -> None:
        self._owner = owner
        self._port = port
        self.type = type_
        self.mode: str | None = None
        self._value = value

    def result(self) -> Any:
        return self._value

    def _expression(self) -> str:
        return _expr(f"parent.jobs.{self._owner._step_name()}.inputs.{self._port}")

    def _scope(self) -> _Builder | None:
        return self._owner._builder

    def _describe(self) -> str:
        return f"{self._owner._label()}.inputs.{self._port}"


class NodeOutput(_Binding):
    """A step's output: ``${{parent.jobs.<step>.outputs.<name>}}``; set ``mode``, ``path``,
    ``name``/``version`` (register the output as an asset) or ``type`` to configure it."""

    def __init__(self, owner: Node, port: str, spec: Output | None, *, declared: bool) -> None:
        spec = spec or Output()
        self._owner = owner
        self._port = port
        self._declared_type = spec.type
        # A command() output is part of the step's definition; a component's is only configured.
        self._declared = declared
        self.type: str | None = spec.type
        self.mode = spec.mode
        self.path = spec.path
        self.name = spec.name
        self.version = spec.version
        self.description = spec.description
        self._bound: str | None = None

    def _expression(self) -> str:
        return _expr(f"parent.jobs.{self._owner._step_name()}.outputs.{self._port}")

    def _scope(self) -> _Builder | None:
        return self._owner._builder

    def _describe(self) -> str:
        return f"{self._owner._label()}.outputs.{self._port}"

    def _settings(self) -> dict[str, Any]:
        keys = ("mode", "path", "name", "version")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if out or self.type != self._declared_type or (self._declared and self.type != "uri_folder"):
            out = {"type": self.type, **out}
        if self._declared and self.description:
            out["description"] = self.description
        return out


class _Ports(Mapping[str, Any]):
    """``step.inputs`` / ``step.outputs``: attribute or item access; assigning an input sets its value."""

    def __init__(self, kind: str, owner: Node, ports: dict[str, Any]) -> None:
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_ports", ports)

    def _missing(self, name: str) -> AttributeError:
        known = ", ".join(self._ports) or "none"
        return AttributeError(
            f"step {self._owner._label()} has no {self._kind[:-1]} {name!r} (its {self._kind}: {known})"
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._ports[name]
        except KeyError:
            raise self._missing(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._ports[name]

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in self._ports:
            raise self._missing(name)
        port = self._ports[name]
        if self._kind == "inputs":
            port._value = _input_value(value, port.type)
            return
        if isinstance(value, Mapping):
            value = Output(**value)
        if not isinstance(value, Output):
            raise UserError(f"{port._describe()}: assign an Output(...) (or set .mode, .path, … on it)")
        for key in ("type", "mode", "path", "name", "version", "description"):
            setattr(port, key, getattr(value, key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._ports)

    def __len__(self) -> int:
        return len(self._ports)

    def __repr__(self) -> str:
        return f"<{self._kind} of {self._owner._label()}: {', '.join(self._ports)}>"


# --- steps -----------------------------------------------------------------------------------


class Node:
    """One step of a pipeline, as a component call (or a ``command(...)``) made it.

    Besides ``inputs`` and ``outputs``, a step's Azure ML node keys can be set as attributes:
    ``name`` (the step name), ``compute``, ``environment_variables``, ``resources``, ``limits``,
    ``distribution``, ``identity``, ``queue_settings``, ``services``, ``display_name``,
    ``description``, ``tags``, ``properties``, ``comment``.
    """

    def __init__(
        self,
        *,
        kind: str,
        component: str | dict[str, Any] | None,
        inline: dict[str, Any] | None,
        input_types: Mapping[str, str | None],
        values: Mapping[str, Any],
        outputs: Mapping[str, Output | None],
        default_name: str,
        fields: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        d = self.__dict__
        d["_kind"] = kind
        d["_component"] = component
        d["_inline"] = inline  # the definition of an inline command step (command, code, environment)
        d["_default_name"] = default_name
        d["_builder"] = None
        d["name"] = name
        d["_fields"] = {key: ({} if key in _MAP_FIELDS else None) for key in NODE_FIELDS}
        for key, value in (fields or {}).items():
            setattr(self, key, value)
        unknown = [n for n in values if n not in input_types]
        if unknown:
            known = ", ".join(input_types) or "none"
            raise PipelineArgumentError(
                f"{self._label()} has no input {', '.join(map(repr, unknown))} (its inputs: {known})"
            )
        d["inputs"] = _Ports("inputs", self, {n: NodeInput(self, n, t) for n, t in input_types.items()})
        for port, value in values.items():
            self.inputs[port] = value
        declared = inline is not None
        ports = {n: NodeOutput(self, n, spec, declared=declared) for n, spec in outputs.items()}
        d["outputs"] = _Ports("outputs", self, ports)

    @property
    def type(self) -> str:
        return self._kind

    @property
    def component(self) -> str | dict[str, Any] | None:
        """The step's component: a reference, or an inline definition (None for an inline command)."""
        return self._component

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("_fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(f"a pipeline step has no attribute {name!r}; it has {', '.join(NODE_FIELDS)}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "name":
            self.__dict__["name"] = value
        elif name in NODE_FIELDS:
            if name in _MAP_FIELDS and value is None:
                value = {}
            self._fields[name] = value
        elif name in ("inputs", "outputs"):
            raise AttributeError(f"set single {name} instead: step.{name}.<name> = …")
        else:
            raise AttributeError(f"a pipeline step has no attribute {name!r}; it has name, {', '.join(NODE_FIELDS)}")

    def set_resources(self, **resources: Any) -> None:
        """``instance_count``, ``instance_type``, ``shm_size``, … (merged into ``resources``)."""
        self.resources = {**(self.resources or {}), **{k: v for k, v in resources.items() if v is not None}}

    def set_limits(self, *, timeout: int | None = None, **limits: Any) -> None:
        values = {"timeout": timeout, **limits}
        self.limits = {**(self.limits or {}), **{k: v for k, v in values.items() if v is not None}}

    def _label(self) -> str:
        return self.name or self._default_name

    def _step_name(self) -> str:
        if not self.name:
            raise UserError(f"step {self._default_name} has no name yet: bindings resolve when the pipeline is built")
        return self.name

    def __repr__(self) -> str:
        return f"<pipeline step {self._label()} ({self._kind})>"

    def _to_step(self, builder: _Builder) -> dict[str, Any]:
        step: dict[str, Any] = {"type": self._kind}
        if self._component is not None:
            step["component"] = copy.deepcopy(self._component)
        step.update(copy.deepcopy(self._inline or {}))
        inputs: dict[str, Any] = {}
        for port_name, port in self.inputs.items():
            value = _serialize_input(port, builder, f"{self._label()}.inputs.{port_name}")
            if value is not None:
                inputs[port_name] = value
        if inputs or self._inline is not None:
            step["inputs"] = inputs
        outputs: dict[str, Any] = {}
        for port_name, out in self.outputs.items():
            if out._bound:
                outputs[port_name] = _expr(f"parent.outputs.{out._bound}")
            elif settings := out._settings():
                outputs[port_name] = settings
            elif self._inline is not None:
                outputs[port_name] = None
        if outputs or self._inline is not None:
            step["outputs"] = outputs
        for key in NODE_FIELDS:
            value = self._fields[key]
            if value is None or (key in _MAP_FIELDS and not value):
                continue
            step[key] = _serialize_value(value, builder, f"{self._label()}.{key}")
            if key == "environment_variables":
                step[key] = {k: scalar_to_str(v) for k, v in step[key].items()}
        return step


def _serialize_value(value: Any, builder: _Builder, where: str) -> Any:
    """Plain data for a step field: bindings become expressions, models become dicts."""
    if isinstance(value, _Binding):
        _check_scope(value, builder, where)
        return value._expression()
    if isinstance(value, Environment):
        return value.to_dict()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): _serialize_value(v, builder, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_serialize_value(v, builder, where) for v in value]
    return value


def _check_scope(binding: _Binding, builder: _Builder, where: str) -> None:
    if binding._scope() is not builder:
        raise UserError(
            f"{where}: {binding._describe()} is not part of this pipeline; pass it in as an input "
            "of this pipeline function instead"
        )


def _serialize_input(port: NodeInput, builder: _Builder, where: str) -> Any:
    value = port._value
    if value is None:
        return None
    if isinstance(value, PipelineInput) and value._scope() is builder and value.result() is None and builder.top:
        return None  # an optional pipeline input left unset: the step's input stays unset too
    if isinstance(value, _Binding):
        _check_scope(value, builder, where)
        if port.mode:
            return {"type": port.type or value.type or "uri_folder", "path": value._expression(), "mode": port.mode}
        return value._expression()
    if isinstance(value, Input):
        out = value.model_dump(mode="json", exclude_none=True)
        if port.mode:
            out["mode"] = port.mode
        return out
    return value


def _single_output(node: Node) -> NodeOutput:
    if len(node.outputs) != 1:
        raise UserError(
            f"step {node._label()} has {len(node.outputs)} outputs; pass one of them, e.g. "
            f"{node._label()}.outputs.{next(iter(node.outputs), 'name')}"
        )
    return next(iter(node.outputs.values()))


def _absolute(value: Input) -> Input:
    if not value.is_literal and value.path and is_local_path(value.path):
        return value.model_copy(update={"path": absolute_local_path(value.path)})
    return value


def _input_value(value: Any, type_: str | None) -> Any:
    """What a step input (or a pipeline input) holds: a literal, an Input, a binding, or None."""
    if isinstance(value, Node):
        return _single_output(value)
    if isinstance(value, _Binding) or value is None:
        return value
    if isinstance(value, Output):
        raise UserError("an Output cannot be an input; pass a step's output (step.outputs.<name>)")
    if isinstance(value, Mapping):
        value = Input(**value)
    if isinstance(value, Input):
        return _absolute(value)
    if isinstance(value, str) and type_ is not None and type_ not in PRIMITIVE_TYPES and "${{" not in value:
        return _absolute(Input(type=type_, path=value))  # a path or reference for a data input
    if not isinstance(value, bool | int | float | str):
        raise UserError(
            f"{value!r} ({type(value).__name__}) is not an input value: use a literal, Input(...) or a binding"
        )
    return value


def _literal_type(value: Any) -> str | None:
    if isinstance(value, Node):
        value = _single_output(value)
    if isinstance(value, _Binding | Input):
        return value.type
    if isinstance(value, Mapping):
        return str(value.get("type") or "uri_folder")
    for py, name in _PY_TYPES.items():
        if type(value) is py:
            return name
    return None


# --- components and commands as steps --------------------------------------------------------


def _register(node: Node) -> Node:
    builder = _current()
    if builder is not None:
        builder.add(node)
    return node


def inline_component(component: Component) -> dict[str, Any]:
    """A component's definition as a step's inline ``component:`` (local paths kept, made absolute)."""
    out = component.to_dict()
    out.pop("$schema", None)
    environment = getattr(component, "environment", None)
    if isinstance(environment, Environment):
        out["environment"] = environment.to_dict()  # without the empty maps and server flags
    return out


def _component_ref(component: Component) -> str | dict[str, Any]:
    """A registered component (fetched from the server) by reference; any other inline."""
    if component.id and component.name and component.version:
        return f"azureml:{component.name}:{component.version}"
    return inline_component(component)


def component_step(component: Component, args: tuple[Any, ...], inputs: Mapping[str, Any]) -> Node:
    """``component(**inputs)``: a step running ``component`` (added to the pipeline being built)."""
    label = component.name or "component"
    if args:
        raise PipelineArgumentError(f"component {label}: pass inputs by name, e.g. {label}(<input>=…)")
    node = Node(
        kind=component.type,
        component=_component_ref(component),
        inline=None,
        input_types={n: port.type for n, port in component.inputs.items()},
        values=inputs,
        outputs={n: Output(type=port.type) for n, port in component.outputs.items()},
        default_name=label,
    )
    return _register(node)


hooks.register(hooks.COMPONENT_CALL, component_step)  # Component.__call__ (entities import no SDK module)


# Command job fields that are node keys; the rest of the job (command, code, environment) defines the step.
_COMMAND_DROPPED = ("type", "name", "experiment_name", "parent_job_name", "inputs", "outputs", "status")


def command_step(job: CommandJob, inputs: Mapping[str, Any]) -> Node:
    """A ``command(...)`` called in a pipeline function: an inline command step."""
    body = job.to_dict()
    fields = {key: body.pop(key) for key in NODE_FIELDS if key in body}
    for key in _COMMAND_DROPPED:
        body.pop(key, None)
    types: dict[str, str | None] = {}
    for name, declared in job.inputs.items():
        given = inputs.get(name)
        binding_only = is_binding(given) and not isinstance(declared, Input)  # no declared type to keep
        types[name] = _literal_type(given if binding_only else declared)
    values = {**job.inputs, **inputs}
    node = Node(
        kind="command",
        component=None,
        inline=body,
        input_types=types,
        values=values,
        outputs=dict(job.outputs),
        default_name=(job.name or "command").lower(),
        fields=fields,
        name=job.name,
    )
    for name, declared in job.inputs.items():
        if isinstance(declared, Input) and declared.mode:
            node.inputs[name].mode = declared.mode  # kept when a binding replaces the declared input
    return _register(node)


def placeholder(value: Any) -> Any:
    """What a command job validates in place of a binding: a typed data input, or a string."""
    if isinstance(value, Node):
        value = _single_output(value)
    if not isinstance(value, _Binding):
        return value
    if value.type in PRIMITIVE_TYPES:
        return "binding"
    return Input(type=value.type or "uri_folder")


def is_binding(value: Any) -> bool:
    return isinstance(value, _Binding | Node)


# --- the decorator ---------------------------------------------------------------------------


def _sanitize(name: str) -> str:
    out = re.sub(r"[^a-z0-9_]", "_", name.lower())
    return out if out and not out[0].isdigit() else f"_{out}"


def _assign_names(nodes: list[Node], local_vars: Mapping[str, Any], pipeline: str) -> None:
    """Step names as azure-ai-ml gives them: an explicit ``name``, else the variable holding the
    step, else the component name; repeats get ``_1``, ``_2``… (after a variable's name when a
    variable holds a step of the same component)."""
    ids = {id(n) for n in nodes}
    named: dict[int, str] = {}
    taken: dict[str, int] = {}
    for variable, value in local_vars.items():
        if not isinstance(value, Node) or id(value) not in ids or id(value) in named:
            continue
        name = (value.name or variable).lower()
        if not STEP_NAME.fullmatch(name):
            raise UserError(
                f"pipeline {pipeline}: invalid step name {name!r}: use lowercase letters, digits and '_', "
                "not starting with a digit"
            )
        if name in taken:
            raise UserError(f"pipeline {pipeline}: two steps are named {name!r}")
        named[id(value)] = name
        taken[name] = 1
    for node in nodes:  # named explicitly, but held by no variable
        if id(node) not in named and node.name:
            name = node.name.lower()
            if not STEP_NAME.fullmatch(name):
                raise UserError(f"pipeline {pipeline}: invalid step name {name!r}")
            if name in taken:
                raise UserError(f"pipeline {pipeline}: two steps are named {name!r}")
            named[id(node)] = name
            taken[name] = 1
    by_component = {node._default_name: named[id(node)] for node in nodes if id(node) in named}
    used = set(taken)
    counters = dict(taken)
    for node in nodes:
        if id(node) in named:
            continue
        base = _sanitize(by_component.get(node._default_name, node._default_name))
        count = counters.get(base, 0)
        name = base if count == 0 else f"{base}_{count}"
        while name in used:
            count += 1
            name = f"{base}_{count}"
        counters[base] = count + 1
        used.add(name)
        named[id(node)] = name
    for node in nodes:
        node.__dict__["name"] = named[id(node)]


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
    return _PY_TYPES.get(annotation)


class _Parameter:
    """One input of a pipeline function: its declared type, default and whether it is required."""

    def __init__(self, param: inspect.Parameter, where: str) -> None:
        self.name = param.name
        self.annotation = param.annotation
        self.default = None if param.default is inspect.Parameter.empty else param.default
        self.required = param.default is inspect.Parameter.empty
        self.type = _annotation_type(param.annotation, f"{where} input {param.name!r}")
        if self.type is None and self.default is not None:
            self.type = _literal_type(self.default)

    def declaration(self, value: Any) -> dict[str, Any]:
        """The input as a pipeline component declares it."""
        type_ = self.type or _literal_type(value) or "uri_folder"
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
        outer = _current()
        builder = _Builder(self.name, top=outer is None)
        values: dict[str, Any] = {}
        types: dict[str, str | None] = {}
        for name, param in self.params.items():
            value = given.get(name, param.default)
            types[name] = param.type or _literal_type(value)
            values[name] = _input_value(value, types[name])
        for name, value in extra.items():
            types[name] = _literal_type(value)
            values[name] = _input_value(value, types[name])
        if outer is None:
            for name, value in values.items():
                if is_binding(value):
                    raise UserError(f"pipeline {self.name}: input {name!r} is {value!r}, a step of another pipeline")
        inputs = {name: PipelineInput(builder, name, types[name], values[name]) for name in values}
        call_args = {n: inputs[n] for n in self.params}
        if self.var_keyword:
            call_args.update({n: inputs[n] for n in extra})
        _stack().append(builder)
        try:
            returned, local_vars = _run_capturing_locals(self.func, (), call_args)
        finally:
            _stack().pop()
        if not builder.nodes:
            raise UserError(f"pipeline {self.name} has no steps: call components in its function")
        _assign_names(builder.nodes, local_vars, self.name)
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

    def _outputs(self, returned: Any, builder: _Builder) -> dict[str, NodeOutput]:
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
                value = _single_output(value)
            if not isinstance(value, NodeOutput):
                raise UserError(f"pipeline {self.name}: output {key!r} must be a step's output, got {value!r}")
            if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_]+", key):
                raise UserError(f"pipeline {self.name}: invalid output name {key!r}")
            _check_scope(value, builder, f"pipeline {self.name} output {key!r}")
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
        return _register(node)


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
