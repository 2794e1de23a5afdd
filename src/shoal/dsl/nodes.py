"""Pipeline steps: ``Node`` (one step, as a component or command call made it), its ports
(``NodeInput``, ``NodeOutput``, bindings too) and how values given to a step are read
(a literal, an ``Input``, a binding) and written back as the step's YAML."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from shoal.dsl.bindings import Binding, PipelineInput, check_scope, expr
from shoal.dsl.context import Builder, PipelineArgumentError, current
from shoal.entities.environment import Environment
from shoal.entities.io import Input, Output
from shoal.entities.job_parts import merged, plain
from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.entities.refs import absolute_local_path, is_local_path
from shoal.entities.sweep.search_space import SweepDistribution
from shoal.entities.validation import scalar_to_str
from shoal.errors import UserError

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
MAP_FIELDS = ("tags", "properties", "environment_variables")
# A sweep step's own keys (besides ``trial``), set by ``.sweep(...)`` and the sweep setters.
SWEEP_KEYS = ("search_space", "sampling_algorithm", "objective", "early_termination")
PY_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


class NodeInput(Binding):
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
        return expr(f"parent.jobs.{self._owner._step_name()}.inputs.{self._port}")

    def _scope(self) -> Builder | None:
        return self._owner._builder

    def _describe(self) -> str:
        return f"{self._owner._label()}.inputs.{self._port}"


class NodeOutput(Binding):
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
        return expr(f"parent.jobs.{self._owner._step_name()}.outputs.{self._port}")

    def _scope(self) -> Builder | None:
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
            port._value = input_value(value, port.type)
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
        d["_fields"] = {key: ({} if key in MAP_FIELDS else None) for key in NODE_FIELDS}
        # Inputs given a distribution (``lr=Uniform(0.01, 0.1)``): the search space of ``.sweep()``.
        d["_search_space"] = {k: v for k, v in values.items() if isinstance(v, SweepDistribution)}
        d["_sweep"] = {}  # a sweep step's search_space, sampling_algorithm, objective, early_termination
        values = {k: v for k, v in values.items() if k not in self._search_space}
        for key, value in (fields or {}).items():
            setattr(self, key, value)
        unknown = [n for n in [*values, *self._search_space] if n not in input_types]
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
        if name in SWEEP_KEYS and self.__dict__.get("_kind") == "sweep":
            return self._sweep.get(name)
        raise AttributeError(f"a pipeline step has no attribute {name!r}; it has {', '.join(NODE_FIELDS)}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "name":
            self.__dict__["name"] = value
        elif name in NODE_FIELDS:
            if name in MAP_FIELDS and value is None:
                value = {}
            self._fields[name] = value
        elif name in SWEEP_KEYS and self._kind == "sweep":
            self._sweep[name] = plain(value)  # e.g. sweep_step.early_termination = BanditPolicy(...)
        elif name in ("inputs", "outputs"):
            raise AttributeError(f"set single {name} instead: step.{name}.<name> = …")
        else:
            raise AttributeError(f"a pipeline step has no attribute {name!r}; it has name, {', '.join(NODE_FIELDS)}")

    def set_resources(
        self,
        *,
        instance_type: str | list[str] | None = None,
        instance_count: int | None = None,
        locations: list[str] | None = None,
        properties: dict[str, Any] | None = None,
        docker_args: str | None = None,
        shm_size: str | None = None,
        **resources: Any,
    ) -> None:
        """``instance_count``, ``instance_type``, ``shm_size``, … (merged into ``resources``)."""
        self.resources = merged(
            self.resources,
            instance_type=instance_type,
            instance_count=instance_count,
            locations=locations,
            properties=properties,
            docker_args=docker_args,
            shm_size=shm_size,
            **resources,
        )

    def set_limits(
        self,
        *,
        max_concurrent_trials: int | None = None,
        max_total_trials: int | None = None,
        timeout: int | None = None,
        trial_timeout: int | None = None,
    ) -> None:
        """A step's ``limits``: ``timeout``; on a sweep step also ``max_total_trials``,
        ``max_concurrent_trials`` and ``trial_timeout``, as azure-ai-ml's ``Sweep.set_limits``."""
        trials = {"max_concurrent_trials": max_concurrent_trials, "max_total_trials": max_total_trials}
        trials["trial_timeout"] = trial_timeout
        given = [k for k, v in trials.items() if v is not None]
        if given and self._kind != "sweep":
            raise UserError(
                f"step {self._label()}: {', '.join(given)} are limits of a sweep step; call .sweep(...) first"
            )
        self.limits = merged(self.limits, timeout=timeout, **trials)

    def set_objective(self, *, goal: str | None = None, primary_metric: str | None = None) -> None:
        """A sweep step's objective, as azure-ai-ml's ``Sweep.set_objective``."""
        if self._kind != "sweep":
            raise UserError(f"step {self._label()} is not a sweep: call .sweep(...) on it first")
        self._sweep["objective"] = merged(self._sweep.get("objective"), goal=goal, primary_metric=primary_metric)

    def sweep(
        self,
        *,
        primary_metric: str,
        goal: str,
        sampling_algorithm: Any = "random",
        compute: str | None = None,
        max_concurrent_trials: int | None = None,
        max_total_trials: int | None = None,
        timeout: int | None = None,
        trial_timeout: int | None = None,
        early_termination_policy: Any = None,
        search_space: dict[str, Any] | None = None,
        identity: Any = None,
        queue_settings: Any = None,
        job_tier: str | None = None,
        priority: str | None = None,
    ) -> Node:
        """This command step (a component's, or an inline ``command(...)``'s) as a sweep step, as
        azure-ai-ml's ``Command.sweep`` makes one in a pipeline: the inputs given distributions
        (``train(lr=Uniform(0.01, 0.1))``), plus
        ``search_space``, are searched; the step is replaced by the sweep step, whose outputs are
        its best trial's."""
        space = {**self._search_space, **(search_space or {})}
        if not space:
            raise UserError(
                f"step {self._label()}: a sweep needs a search space; call the component with distributions, "
                "e.g. train(lr=Uniform(0.01, 0.1))"
            )
        if self._kind != "command":
            raise UserError(f"step {self._label()}: only a command step can be swept, not a {self._kind} step")
        trial = copy.deepcopy(self._component) if self._component is not None else self._inline_trial(space)
        values = {n: p._value for n, p in self.inputs.items() if n not in space and p._value is not None}
        node = Node(
            kind="sweep",
            component=None,
            inline=None,
            input_types={n: p.type for n, p in self.inputs.items() if n not in space},
            values=values,
            outputs={n: Output(type=o._declared_type) for n, o in self.outputs.items()},
            default_name=self._default_name,
            name=self.name,
        )
        for key, value in self._fields.items():
            node._fields[key] = copy.deepcopy(value)
        node._fields["compute"] = compute or self._fields.get("compute")
        node._fields["identity"] = identity or self._fields.get("identity")
        queue = plain(queue_settings) or merged(None, job_tier=job_tier, priority=priority)
        node._fields["queue_settings"] = queue or self._fields.get("queue_settings")
        node.__dict__["_trial"] = trial
        node._sweep.update(
            search_space={k: plain(v) for k, v in space.items()},
            sampling_algorithm=plain(sampling_algorithm),
            objective={"goal": goal, "primary_metric": primary_metric},
            early_termination=plain(early_termination_policy),
        )
        node.set_limits(
            max_concurrent_trials=max_concurrent_trials,
            max_total_trials=max_total_trials,
            timeout=timeout,
            trial_timeout=trial_timeout,
        )
        builder = self._builder
        if builder is not None:
            builder.nodes[builder.nodes.index(self)] = node  # the swept step runs as the sweep's trials
            node.__dict__["_builder"] = builder
        return node

    def _inline_trial(self, space: Mapping[str, Any]) -> dict[str, Any]:
        """An inline ``command(...)`` step as the command component its trials run: its command,
        code and environment, its inputs (but the searched ones) and outputs as ports."""
        inline = self._inline or {}
        trial: dict[str, Any] = {"type": "command"}
        for key in ("command", "code", "environment", "additional_includes"):
            if inline.get(key) is not None:
                trial[key] = copy.deepcopy(inline[key])
        for key in ("distribution", "resources", "environment_variables"):
            if self._fields.get(key):
                trial[key] = copy.deepcopy(plain(self._fields[key]))
        trial["inputs"] = {}
        for name, port in self.inputs.items():
            if name in space:
                continue
            value = port._value
            declared: dict[str, Any] = {"type": port.type or literal_type(value) or "string"}
            if port.mode:
                declared["mode"] = port.mode
            if value is None:
                declared["optional"] = True
            trial["inputs"][name] = declared
        trial["outputs"] = {n: {"type": o._declared_type or "uri_folder"} for n, o in self.outputs.items()}
        return trial

    def _label(self) -> str:
        return self.name or self._default_name

    def _step_name(self) -> str:
        if not self.name:
            raise UserError(f"step {self._default_name} has no name yet: bindings resolve when the pipeline is built")
        return self.name

    def __repr__(self) -> str:
        return f"<pipeline step {self._label()} ({self._kind})>"

    def __str__(self) -> str:
        """The step's YAML, as ``print(node)`` shows in azure-ai-ml (its repr while the steps it
        binds to have no names yet: they are named when the pipeline function returns)."""
        try:
            step = self._to_step(self._builder)
        except UserError:
            return repr(self)
        return yaml.safe_dump(step, sort_keys=False, allow_unicode=True, default_flow_style=False)

    def _to_step(self, builder: Builder) -> dict[str, Any]:
        step: dict[str, Any] = {"type": self._kind}
        if self._component is not None:
            step["component"] = copy.deepcopy(self._component)
        if self._kind == "sweep":
            step["trial"] = copy.deepcopy(self.__dict__["_trial"])
            step.update({k: copy.deepcopy(v) for k, v in self._sweep.items() if v is not None})
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
                outputs[port_name] = expr(f"parent.outputs.{out._bound}")
            elif settings := out._settings():
                outputs[port_name] = settings
            elif self._inline is not None:
                outputs[port_name] = None
        if outputs or self._inline is not None:
            step["outputs"] = outputs
        for key in NODE_FIELDS:
            value = self._fields[key]
            if value is None or (key in MAP_FIELDS and not value):
                continue
            step[key] = _serialize_value(value, builder, f"{self._label()}.{key}")
            if key == "environment_variables":
                step[key] = {k: scalar_to_str(v) for k, v in step[key].items()}
        return step


def _serialize_value(value: Any, builder: Builder, where: str) -> Any:
    """Plain data for a step field: bindings become expressions, models become dicts."""
    if isinstance(value, Binding):
        check_scope(value, builder, where)
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


def _serialize_input(port: NodeInput, builder: Builder, where: str) -> Any:
    value = port._value
    if value is None:
        return None
    if isinstance(value, PipelineInput) and value._scope() is builder and value.result() is None and builder.top:
        return None  # an optional pipeline input left unset: the step's input stays unset too
    if isinstance(value, Binding):
        check_scope(value, builder, where)
        if port.mode:
            return {"type": port.type or value.type or "uri_folder", "path": value._expression(), "mode": port.mode}
        return value._expression()
    if isinstance(value, Input):
        out = value.model_dump(mode="json", exclude_none=True)
        if port.mode:
            out["mode"] = port.mode
        return out
    return value


def single_output(node: Node) -> NodeOutput:
    """The output of a step passed where one output is expected (it must have exactly one)."""
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


def input_value(value: Any, type_: str | None) -> Any:
    """What a step input (or a pipeline input) holds: a literal, an Input, a binding, or None."""
    if isinstance(value, Node):
        return single_output(value)
    if isinstance(value, Binding) or value is None:
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


def literal_type(value: Any) -> str | None:
    """The input type a value implies (``integer`` for 3, a binding's or Input's type), if any."""
    if isinstance(value, Node):
        value = single_output(value)
    if isinstance(value, Binding | Input):
        return value.type
    if isinstance(value, Mapping):
        return str(value.get("type") or "uri_folder")
    for py, name in PY_TYPES.items():
        if type(value) is py:
            return name
    return None


def register(node: Node) -> Node:
    """Add ``node`` to the pipeline being built, if a pipeline function is running."""
    builder = current()
    if builder is not None:
        builder.add(node)
    return node


def is_binding(value: Any) -> bool:
    """Whether ``value`` is a step, a step's port or a pipeline input (a ``${{…}}`` once built)."""
    return isinstance(value, Binding | Node)
