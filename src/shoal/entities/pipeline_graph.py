"""Pipeline graphs: a pipeline job expanded into the command steps that run, with their bindings.

A pipeline's steps may be inline command jobs, command components or pipeline components (nested
pipelines, expanded recursively). Every ``${{parent.…}}`` binding is followed to where its value
comes from: a literal, a data path, or an output of another command step. What comes out is flat:
each leaf step (a command job to run) with its inputs bound and the leaf steps it waits for; each
pipeline (the root and nested ones) with the leaf outputs its own outputs stand for.

Everything is checked before anything runs, and every problem names the step path and the field
(``jobs.train_job.inputs.max_epochs``): bindings to missing steps, inputs or outputs; cycles;
types Azure ML rejects; required inputs without a value. Azure's tolerated quirks (an input the
component does not declare, ``uri_file`` given to ``uri_folder``, ``uri_folder`` given to
``mltable``, unknown ``settings`` keys, ``services``) are accepted with a warning.

Pure: components referenced by name come through a callback; nothing here reads a store.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal.entities.expressions import EXPRESSION_RE, binding_of, format_literal
from shoal.entities.ports import DATA_TYPES, PRIMITIVE_TYPES
from shoal.errors import SpecError

ComponentResolver = Callable[[str, str], dict[str, Any]]
"""``(reference, field)`` → the component's spec as a dict; raises when it does not exist."""

ARTIFACTS = "artifacts"  # every command step's reserved output: its run's artifacts (./outputs, ./logs)
KNOWN_SETTINGS = {
    "default_compute",
    "default_datastore",
    "continue_on_step_failure",
    "force_rerun",
    "default_environment",
    "continue_run_on_failed_optional_input",
    "on_init",
    "on_finalize",
    "timeout",
}
STEP_TYPES = ("command", "pipeline", "sweep")
# A sweep step's own fields, kept as given for the sweep job it becomes.
SWEEP_FIELDS = ("search_space", "sampling_algorithm", "objective", "limits", "early_termination")
# Fields of a step that override its component's, and are copied into the command job that runs.
STEP_JOB_FIELDS = (
    "compute",
    "resources",
    "distribution",
    "environment_variables",
    "limits",
    "environment",
    "code",
    "display_name",
    "description",
    "tags",
    "properties",
    "identity",
    "queue_settings",
    "services",
)
COMPONENT_JOB_FIELDS = ("command", "code", "environment", "resources", "distribution", "environment_variables")
MODEL_TYPES = ("mlflow_model", "custom_model", "triton_model")


@dataclass(frozen=True)
class OutputRef:
    """Output ``output`` of the leaf step at ``step`` (a step path such as ``train/score_job``)."""

    step: str
    output: str


@dataclass
class Value:
    """What an input is bound to: a literal, a data path, another step's output, or nothing."""

    kind: str  # "literal" | "data" | "output" | "unset"
    literal: Any = None
    path: str | None = None
    ref: OutputRef | None = None
    type: str | None = None
    mode: str | None = None

    @property
    def is_data(self) -> bool:
        return self.kind in ("data", "output")


UNSET = Value("unset")
FAILED = Value("unset")
"""A binding that failed, its error already reported: compared by identity, so that the input it
was given to is not also reported as missing."""


@dataclass
class Leaf:
    """A command step: the command job it runs, its bound inputs and the steps it waits for."""

    path: str
    name: str
    parent: str
    job: dict[str, Any]
    inputs: dict[str, Value]
    outputs: dict[str, dict[str, Any]]
    component: dict[str, Any]
    component_ref: str | None
    deterministic: bool
    depends_on: set[str] = field(default_factory=set)
    kind: str = "command"  # or "sweep": a sweep job whose trial is ``component``


@dataclass
class Node:
    """A pipeline (the root has path ``""``): its inputs, and the leaf outputs its outputs stand for."""

    path: str
    name: str
    parent: str | None
    inputs: dict[str, Value]
    outputs: dict[str, dict[str, Any]]
    bound_outputs: dict[str, OutputRef] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    root: Node
    nodes: dict[str, Node]
    leaves: dict[str, Leaf]
    settings: dict[str, Any]
    warnings: list[str]

    def order(self) -> list[str]:
        """Leaf paths, each after every leaf it waits for."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(path: str) -> None:
            if path in seen:
                return
            seen.add(path)
            for dep in sorted(self.leaves[path].depends_on):
                visit(dep)
            done.append(path)

        for path in self.leaves:
            visit(path)
        return done


def step_path(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def field_of(path: str) -> str:
    """``a/b`` → ``jobs.a.jobs.b`` (where the step sits in the YAML)."""
    return ".".join(f"jobs.{part}" for part in path.split("/")) if path else ""


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _strip_azureml(value: Any) -> Any:
    return value.split(":", 1)[1] if isinstance(value, str) and value.startswith("azureml:") else value


# -- type rules -----------------------------------------------------------------------------


def _coerce_literal(type_name: str, value: Any) -> Any:
    """A literal as the port's type, or ValueError. Strings from YAML or the CLI are parsed."""
    if type_name == "string":
        return format_literal(value) if not isinstance(value, str) else value
    if type_name == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"{value!r} is not a valid boolean")
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid {type_name}")
    if type_name == "integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a valid integer")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a valid number")


def data_compatibility(given: str, declared: str) -> str:
    """``"ok"``, ``"warn"`` (Azure accepts it) or ``"error"`` (Azure rejects it)."""
    if given == declared or "path" in (given, declared):
        return "ok"
    if (given, declared) in (("uri_file", "uri_folder"), ("uri_folder", "mltable")):
        return "warn"
    if declared == "uri_folder" and given in (*MODEL_TYPES, "mltable"):
        return "ok"
    if given == "uri_folder" and declared in MODEL_TYPES:
        return "ok"
    if given in MODEL_TYPES and declared in MODEL_TYPES:
        return "ok"
    return "error"


def _looks_like_path(value: str) -> bool:
    return "://" in value or value.startswith(("azureml:", "/", "./", "../", "file:", "runs:/"))


# -- the expander ---------------------------------------------------------------------------


class _Expander:
    def __init__(self, resolve: ComponentResolver, settings: Mapping[str, Any]) -> None:
        self.resolve = resolve
        self.settings = settings
        self.errors: list[dict[str, str]] = []
        self.warnings: list[str] = []
        self.nodes: dict[str, Node] = {}
        self.leaves: dict[str, Leaf] = {}

    def error(self, where: str, message: str) -> None:
        self.errors.append({"field": where, "message": f"{where}: {message}" if where else message})

    # components

    def component(self, ref: Any, where: str) -> tuple[dict[str, Any] | None, str | None]:
        if isinstance(ref, Mapping):
            return copy.deepcopy(dict(ref)), None
        if isinstance(ref, str) and ref.strip():
            if ref.startswith("file:") or ref.endswith((".yml", ".yaml")):
                self.error(where, f"local component file {ref!r} was not inlined; submit it with the CLI or SDK")
                return None, None
            try:
                return copy.deepcopy(self.resolve(ref, where)), ref
            except SpecError as exc:
                self.error(where, exc.message)
            except Exception as exc:  # noqa: BLE001 - a missing component is the user's error here
                self.error(where, getattr(exc, "message", str(exc)))
            return None, None
        self.error(where, "must be a component reference (azureml:<name>:<version>) or a component spec")
        return None, None

    # bindings

    def bind(self, value: Any, where: str, node: Node, siblings: Mapping[str, Leaf | Node]) -> Value:
        """What a step's input value stands for, in the pipeline ``node``."""
        if value is None:
            return UNSET
        if isinstance(value, Mapping):
            data = dict(value)
            type_name = data.get("type")
            if type_name in PRIMITIVE_TYPES:
                raw = data.get("value", data.get("default"))
                inner = self.bind(raw, where, node, siblings) if raw is not None else UNSET
                if inner.kind == "literal":
                    try:
                        inner = Value("literal", literal=_coerce_literal(type_name, inner.literal))
                    except ValueError as exc:
                        self.error(where, str(exc))
                        return FAILED
                return inner
            path = data.get("path")
            if path is None:
                if type_name is not None or data.get("mode") is not None:
                    return Value("unset", type=type_name, mode=data.get("mode"))
                self.error(where, "a data input needs a 'path'")
                return FAILED
            inner = self.bind(path, where, node, siblings)
            if inner.kind == "literal":
                inner = Value("data", path=str(inner.literal), type=type_name or "uri_folder")
            elif inner.kind == "unset":
                return inner
            if type_name and inner.is_data and type_name != inner.type:
                inner = Value(inner.kind, path=inner.path, ref=inner.ref, type=type_name, mode=inner.mode)
            if data.get("mode"):
                inner = Value(inner.kind, path=inner.path, ref=inner.ref, type=inner.type, mode=data["mode"])
            return inner
        expr = binding_of(value)
        if expr is not None:
            return self.follow(expr, where, node, siblings)
        if isinstance(value, str) and EXPRESSION_RE.search(value):
            return Value("literal", literal=self.interpolate(value, where, node))
        if isinstance(value, bool | int | float | str):
            return Value("literal", literal=value)
        self.error(where, f"unsupported input value {value!r}")
        return FAILED

    def follow(self, expr: str, where: str, node: Node, siblings: Mapping[str, Leaf | Node]) -> Value:
        parts = expr.split(".")
        if parts[0] in ("inputs", "jobs") and len(parts) >= 2:
            parts = ["parent", *parts]  # the older form, still accepted by Azure ML: ${{inputs.x}}
        if parts[:2] == ["parent", "inputs"] and len(parts) == 3:
            name = parts[2]
            if name not in node.inputs:
                declared = ", ".join(sorted(node.inputs)) or "none"
                self.error(where, f"binds to pipeline input '{name}', which is not declared (inputs: {declared})")
                return FAILED
            return node.inputs[name]
        if parts[:2] == ["parent", "jobs"] and len(parts) == 5 and parts[3] in ("outputs", "inputs"):
            step, kind, port = parts[2], parts[3], parts[4]
            target = siblings.get(step)
            if target is None:
                known = ", ".join(sorted(node.spec.get("jobs") or {})) or "none"
                if step in (node.spec.get("jobs") or {}):
                    return FAILED  # the step exists but failed to expand (or is in a cycle); its error says why
                self.error(where, f"binds to step '{step}', which is not a step of this pipeline (steps: {known})")
                return FAILED
            if kind == "inputs":
                if port not in target.inputs:
                    self.error(where, f"binds to input '{port}' of step '{step}', which it does not have")
                    return FAILED
                return target.inputs[port]
            return self.output_of(target, step, port, where)
        if parts[:2] == ["parent", "outputs"]:
            self.error(where, f"${{{{{expr}}}}} can bind an output, not an input")
            return FAILED
        self.error(
            where,
            f"unsupported binding ${{{{{expr}}}}}; use ${{{{parent.inputs.<name>}}}} or "
            "${{parent.jobs.<step>.outputs.<name>}}",
        )
        return FAILED

    def output_of(self, target: Leaf | Node, step: str, port: str, where: str) -> Value:
        if isinstance(target, Leaf):
            if port == ARTIFACTS:
                return Value("output", ref=OutputRef(target.path, ARTIFACTS), type="uri_folder")
            out = target.outputs.get(port)
            if out is None:
                have = ", ".join(sorted(target.outputs)) or "none"
                self.error(
                    where, f"binds to output '{port}' of step '{step}', which it does not have (outputs: {have})"
                )
                return FAILED
            if out.get("type") in PRIMITIVE_TYPES:
                self.error(where, f"output '{port}' of step '{step}' is a {out['type']}; Shoal binds data outputs only")
                return FAILED
            return Value("output", ref=OutputRef(target.path, port), type=out.get("type") or "uri_folder")
        ref = target.bound_outputs.get(port)
        if ref is None:
            if port in target.outputs:
                self.error(where, f"output '{port}' of pipeline step '{step}' is not bound to any of its steps")
            else:
                have = ", ".join(sorted(target.outputs)) or "none"
                self.error(
                    where, f"binds to output '{port}' of step '{step}', which it does not have (outputs: {have})"
                )
            return FAILED
        return Value("output", ref=ref, type=target.outputs[port].get("type") or "uri_folder")

    def interpolate(self, text: str, where: str, node: Node) -> str:
        """Parameters inside a longer string: ``"run-${{parent.inputs.n}}"``."""

        def sub(match: Any) -> str:
            expr = match.group(1)
            parts = expr.split(".")
            if parts[:2] == ["parent", "inputs"] and len(parts) == 3 and parts[2] in node.inputs:
                value = node.inputs[parts[2]]
                if value.kind == "literal":
                    return format_literal(value.literal)
                if value.kind == "data" and value.path:
                    return value.path
                self.error(where, f"${{{{{expr}}}}} has no literal value to put into {text!r}")
                return match.group(0)
            if parts[:2] == ["parent", "inputs"] and len(parts) == 3:
                self.error(where, f"binds to pipeline input '{parts[2]}', which is not declared")
                return match.group(0)
            return match.group(0)  # ${{inputs.x}}, ${{outputs.y}}, ${{name}}: filled later

        return EXPRESSION_RE.sub(sub, text)

    def scalar_fields(self, step: dict[str, Any], where: str, node: Node) -> dict[str, Any]:
        """``compute: ${{parent.inputs.compute_name}}`` and other parameters in a step's own fields."""

        def walk(value: Any, at: str) -> Any:
            if isinstance(value, str):
                expr = binding_of(value)
                if expr is not None:
                    bound = self.follow(expr, at, node, {})
                    if bound.kind == "literal":
                        return bound.literal
                    if bound is not FAILED:
                        why = "has no value" if bound.kind == "unset" else "is not a literal value"
                        self.error(at, f"${{{{{expr}}}}} {why}; only parameters fit here")
                    return None
                return self.interpolate(value, at, node) if EXPRESSION_RE.search(value) else value
            if isinstance(value, dict):
                return {k: walk(v, _join(at, str(k))) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, f"{at}[{i}]") for i, v in enumerate(value)]
            return value

        out = dict(step)
        for key, value in step.items():
            if key in ("inputs", "outputs", "jobs", "component", "command", "type"):
                continue
            out[key] = walk(value, _join(where, key))
        return out

    # ports

    def bind_port(self, port: Mapping[str, Any], value: Value, where: str) -> Value:
        """A value given to a declared port, checked against the port's type."""
        declared = port.get("type") or "uri_folder"
        if value.kind == "unset":
            return value
        if declared in PRIMITIVE_TYPES:
            if value.is_data:
                self.error(where, f"the input is declared {declared}, but it is bound to data ({value.type})")
                return FAILED
            try:
                literal = _coerce_literal(declared, value.literal)
            except ValueError as exc:
                self.error(where, f"{exc} (the input is declared {declared})")
                return FAILED
            if port.get("enum") is not None and literal not in port["enum"]:
                self.error(where, f"{literal!r} is not one of {port['enum']}")
            if port.get("min") is not None and literal < port["min"]:
                self.error(where, f"{literal!r} is below the minimum {port['min']}")
            if port.get("max") is not None and literal > port["max"]:
                self.error(where, f"{literal!r} is above the maximum {port['max']}")
            return Value("literal", literal=literal)
        if value.kind == "literal":
            if isinstance(value.literal, str) and _looks_like_path(value.literal):
                return Value("data", path=value.literal, type=declared, mode=port.get("mode"))
            self.error(where, f"the input is declared {declared}, but it is given the literal {value.literal!r}")
            return FAILED
        given = value.type or "uri_folder"
        verdict = data_compatibility(given, declared)
        if verdict == "error":
            self.error(where, f"a {given} cannot be bound to an input declared {declared}")
            return FAILED
        if verdict == "warn":
            self.warnings.append(
                f"{where}: a {given} is bound to an input declared {declared} (accepted, as Azure ML does)"
            )
        return Value(value.kind, path=value.path, ref=value.ref, type=given, mode=value.mode or port.get("mode"))

    def bind_ports(
        self, ports: Mapping[str, Any], given: Mapping[str, Value], where: str, component: str
    ) -> dict[str, Value]:
        bound: dict[str, Value] = {}
        for name in given:
            if name not in ports:
                self.warnings.append(
                    f"{_join(where, name)}: component '{component}' does not declare input '{name}'; ignored"
                )
        for name, port in ports.items():
            port = dict(port or {})
            at = _join(where, name)
            value = given.get(name, UNSET)
            if value is FAILED:
                bound[name] = FAILED
                continue
            if value.kind == "unset" and port.get("default") is not None:
                default = port["default"]
                if (port.get("type") or "uri_folder") in PRIMITIVE_TYPES:
                    value = Value("literal", literal=default)
                else:
                    value = Value("data", path=str(default), type=port.get("type") or "uri_folder")
            if value.kind == "unset":
                if not port.get("optional"):
                    self.error(at, "required input has no value (not optional, no default)")
                bound[name] = Value("unset", type=port.get("type"))
                continue
            bound[name] = self.bind_port(port, value, at)
        return bound

    # steps

    def pipeline(self, node: Node, jobs: Mapping[str, Any], default_compute: Any) -> None:
        where_jobs = _join(field_of(node.path), "jobs")
        if not isinstance(jobs, Mapping) or not jobs:
            self.error(where_jobs, "a pipeline needs at least one step")
            return
        siblings: dict[str, Leaf | Node] = {}
        for name in self.step_order(jobs, where_jobs):
            step = jobs[name]
            where = _join(where_jobs, name)
            if not isinstance(step, Mapping):
                self.error(where, "a step must be a mapping")
                continue
            made = self.step(node, name, dict(step), where, siblings, default_compute)
            if made is not None:
                siblings[name] = made
                node.steps.append(made.path)

    def step_order(self, jobs: Mapping[str, Any], where: str) -> list[str]:
        """Steps in binding order (producers first); a cycle is an error naming it."""
        deps: dict[str, set[str]] = {}
        for name, step in jobs.items():
            found: set[str] = set()
            for text in _strings(step.get("inputs") if isinstance(step, Mapping) else None):
                for match in EXPRESSION_RE.finditer(text):
                    parts = match.group(1).split(".")
                    if parts[0] == "jobs":
                        parts = ["parent", *parts]
                    if parts[:2] == ["parent", "jobs"] and len(parts) >= 3 and parts[2] in jobs:
                        found.add(parts[2])
            deps[name] = found
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = trail[trail.index(name) :] + [name]
                self.error(_join(where, name), f"steps form a cycle: {' -> '.join(cycle)}")
                return
            state[name] = 1
            for dep in sorted(deps[name]):
                visit(dep, [*trail, name])
            state[name] = 2
            order.append(name)

        for name in jobs:
            visit(name, [])
        return order

    def step(
        self,
        node: Node,
        name: str,
        step: dict[str, Any],
        where: str,
        siblings: Mapping[str, Leaf | Node],
        default_compute: Any,
    ) -> Leaf | Node | None:
        path = step_path(node.path, name)
        component, ref = (None, None)
        if step.get("component") is not None:
            component, ref = self.component(step["component"], _join(where, "component"))
            if component is None:
                return None
        type_name = step.get("type") or (component or {}).get("type") or "command"
        if component is not None and (component.get("type") or "command") != type_name:
            self.error(
                _join(where, "type"), f"the step is '{type_name}' but its component is '{component.get('type')}'"
            )
            return None
        if type_name not in STEP_TYPES:
            self.error(
                _join(where, "type"),
                f"step type '{type_name}' is not supported in pipelines yet (supported: {', '.join(STEP_TYPES)})",
            )
            return None
        if "services" in step:
            self.warnings.append(f"{_join(where, 'services')}: services are accepted and ignored on Shoal")
        fields = self.scalar_fields(step, where, node)
        given = {
            str(k): self.bind(v, _join(_join(where, "inputs"), str(k)), node, siblings)
            for k, v in (step.get("inputs") or {}).items()
        }
        compute = fields.get("compute") or default_compute
        if type_name == "pipeline":
            if component is None:
                self.error(_join(where, "component"), "a pipeline step needs a pipeline component")
                return None
            return self.nested(node, name, path, step, fields, component, ref, given, where, compute)
        if type_name == "sweep":
            return self.sweep(node, name, path, step, fields, given, where, compute)
        return self.leaf(node, name, path, step, fields, component, ref, given, where, compute)

    def sweep(
        self,
        node: Node,
        name: str,
        path: str,
        step: dict[str, Any],
        fields: dict[str, Any],
        given: dict[str, Value],
        where: str,
        compute: Any,
    ) -> Leaf | None:
        """A sweep step: its trial (a command component) runs as the trials of a sweep job; the
        sweep's outputs (its best trial's) feed the next steps."""
        if step.get("trial") is None:
            self.error(_join(where, "trial"), "a sweep step needs a trial (a command component)")
            return None
        trial, ref = self.component(step["trial"], _join(where, "trial"))
        if trial is None:
            return None
        if not trial.get("command"):
            self.error(_join(where, "trial"), "a sweep's trial needs a command")
            return None
        if (trial.get("type") or "command") != "command":
            self.error(_join(where, "trial"), f"a sweep's trial must be a command component, not {trial.get('type')!r}")
            return None
        space = step.get("search_space") if isinstance(step.get("search_space"), Mapping) else {}
        ports = {k: v for k, v in (trial.get("inputs") or {}).items() if k not in space}
        inputs = self.bind_ports(ports, given, _join(where, "inputs"), _comp_label(trial, ref))
        declared_outputs = {k: dict(v or {}) for k, v in (trial.get("outputs") or {}).items()}
        outputs = self.leaf_outputs(node, path, step.get("outputs") or {}, declared_outputs, where, True)
        job: dict[str, Any] = {"type": "sweep", "trial": trial}
        for key in SWEEP_FIELDS:
            if step.get(key) is not None:
                job[key] = step[key]
        for key in STEP_JOB_FIELDS:
            if fields.get(key) is not None and key not in ("code", "environment", "distribution"):
                job[key] = fields[key]
        if compute:
            job["compute"] = compute
        job.setdefault("display_name", name)
        return self.add_leaf(
            Leaf(path, name, node.path, job, inputs, outputs, trial, ref, deterministic=False, kind="sweep")
        )

    def add_leaf(self, leaf: Leaf) -> Leaf:
        """Record a leaf; it waits for the leaves whose outputs its inputs are bound to."""
        leaf.depends_on = {v.ref.step for v in leaf.inputs.values() if v.kind == "output" and v.ref is not None}
        self.leaves[leaf.path] = leaf
        return leaf

    def leaf(
        self,
        node: Node,
        name: str,
        path: str,
        step: dict[str, Any],
        fields: dict[str, Any],
        component: dict[str, Any] | None,
        ref: str | None,
        given: dict[str, Value],
        where: str,
        compute: Any,
    ) -> Leaf:
        job: dict[str, Any] = {}
        if component is not None:
            for key in COMPONENT_JOB_FIELDS:
                if component.get(key) is not None:
                    job[key] = component[key]
            inputs = self.bind_ports(
                component.get("inputs") or {}, given, _join(where, "inputs"), _comp_label(component, ref)
            )
            declared_outputs = {k: dict(v or {}) for k, v in (component.get("outputs") or {}).items()}
            deterministic = component.get("is_deterministic", True) is not False
        else:
            if not step.get("command"):
                self.error(_join(where, "command"), "an inline command step needs a command (or a component)")
            job["command"] = step.get("command")
            inputs = {}
            for key, value in given.items():
                inputs[key] = value
            declared_outputs = {
                k: dict(v) if isinstance(v, Mapping) else {} for k, v in (step.get("outputs") or {}).items()
            }
            deterministic = step.get("is_deterministic", True) is not False
            component = {
                k: step.get(k)
                for k in ("command", "code", "environment", "distribution", "resources", "environment_variables")
                if step.get(k) is not None
            }
            component["inputs"] = {
                k: {"type": v.type or ("string" if v.kind == "literal" else "uri_folder")} for k, v in inputs.items()
            }
        for key in STEP_JOB_FIELDS:
            if fields.get(key) is not None:
                job[key] = fields[key]
        if compute:
            job["compute"] = compute
        job.setdefault("display_name", name)
        if job.get("command") is None:
            job.pop("command", None)
        outputs = self.leaf_outputs(
            node, path, step.get("outputs") or {}, declared_outputs, where, component is not None
        )
        return self.add_leaf(Leaf(path, name, node.path, job, inputs, outputs, component, ref, deterministic))

    def leaf_outputs(
        self,
        node: Node,
        path: str,
        given: Mapping[str, Any],
        declared: dict[str, dict[str, Any]],
        where: str,
        strict: bool,
    ) -> dict[str, dict[str, Any]]:
        outputs = {k: v for k, v in declared.items() if k != ARTIFACTS}
        if not isinstance(given, Mapping):
            self.error(_join(where, "outputs"), "outputs must be a mapping")
            return outputs
        for name, value in given.items():
            at = _join(_join(where, "outputs"), str(name))
            if name == ARTIFACTS:
                continue  # reserved: the run's artifacts, always there
            if strict and name not in declared:
                have = ", ".join(sorted(declared)) or "none"
                self.error(at, f"the component declares no output '{name}' (outputs: {have})")
                continue
            settings = dict(outputs.get(name) or {})
            expr = binding_of(value)
            if expr is not None:
                parts = expr.split(".")
                if parts[:2] != ["parent", "outputs"] or len(parts) != 3:
                    self.error(at, f"an output can only bind to ${{{{parent.outputs.<name>}}}}, not ${{{{{expr}}}}}")
                    continue
                target = parts[2]
                if target not in node.outputs:
                    have = ", ".join(sorted(node.outputs)) or "none"
                    self.error(at, f"binds to pipeline output '{target}', which is not declared (outputs: {have})")
                    continue
                if target in node.bound_outputs:
                    self.error(at, f"pipeline output '{target}' is already bound to another step's output")
                    continue
                node.bound_outputs[target] = OutputRef(path, str(name))
                parent_out = node.outputs[target]
                settings.update({k: v for k, v in parent_out.items() if v is not None})
                settings.setdefault("type", "uri_folder")
                if parent_out.get("type") is None:  # an untyped pipeline output is what it is bound to
                    parent_out["type"] = settings["type"]
            elif isinstance(value, Mapping):
                settings.update({k: v for k, v in value.items() if v is not None})
            elif value is not None:
                self.error(at, "an output must be a mapping, null or ${{parent.outputs.<name>}}")
                continue
            settings.setdefault("type", "uri_folder")
            outputs[str(name)] = settings
        for name, settings in outputs.items():
            if settings.get("type") is None:
                settings["type"] = "uri_folder"
            elif settings["type"] not in (*DATA_TYPES, *PRIMITIVE_TYPES):
                self.error(_join(_join(where, "outputs"), name), f"unknown output type {settings.get('type')!r}")
        return outputs

    def nested(
        self,
        node: Node,
        name: str,
        path: str,
        step: dict[str, Any],
        fields: dict[str, Any],
        component: dict[str, Any],
        ref: str | None,
        given: dict[str, Value],
        where: str,
        compute: Any,
    ) -> Node | None:
        if path.count("/") >= 20:
            self.error(where, "pipelines are nested more than 20 deep")
            return None
        inputs = self.bind_ports(
            component.get("inputs") or {}, given, _join(where, "inputs"), _comp_label(component, ref)
        )
        declared = {k: dict(v or {}) for k, v in (component.get("outputs") or {}).items()}
        step_outputs = step.get("outputs") or {}
        outer_bindings: dict[str, str] = {}
        for out_name, value in step_outputs.items():
            at = _join(_join(where, "outputs"), str(out_name))
            if out_name not in declared:
                have = ", ".join(sorted(declared)) or "none"
                self.error(at, f"the pipeline component declares no output '{out_name}' (outputs: {have})")
                continue
            expr = binding_of(value)
            if expr is not None:
                parts = expr.split(".")
                if parts[:2] != ["parent", "outputs"] or len(parts) != 3 or parts[2] not in node.outputs:
                    self.error(
                        at, f"an output can only bind to a declared ${{{{parent.outputs.<name>}}}}, not {value!r}"
                    )
                    continue
                outer_bindings[str(out_name)] = parts[2]
                declared[str(out_name)].update({k: v for k, v in node.outputs[parts[2]].items() if v is not None})
            elif isinstance(value, Mapping):
                declared[str(out_name)].update({k: v for k, v in value.items() if v is not None})
        child = Node(path=path, name=name, parent=node.path, inputs=inputs, outputs=declared, spec=component)
        child.spec = {**component, "display_name": fields.get("display_name") or name}
        self.nodes[path] = child
        self.pipeline(child, component.get("jobs") or {}, compute)
        for out_name, target in outer_bindings.items():
            bound = child.bound_outputs.get(out_name)
            if bound is None:
                self.error(_join(_join(where, "outputs"), out_name), "the pipeline component does not bind this output")
            elif target in node.bound_outputs:
                self.error(_join(_join(where, "outputs"), out_name), f"pipeline output '{target}' is already bound")
            else:
                node.bound_outputs[target] = bound
                if node.outputs[target].get("type") is None:
                    node.outputs[target]["type"] = child.outputs[out_name].get("type")
        _default_output_types(child.outputs)
        return child


def _default_output_types(outputs: Mapping[str, dict[str, Any]]) -> None:
    """Outputs still untyped once their bindings are followed are folders."""
    for out in outputs.values():
        if out.get("type") is None:
            out["type"] = "uri_folder"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _comp_label(component: Mapping[str, Any], ref: str | None) -> str:
    return ref or str(component.get("name") or "inline")


def _pipeline_inputs(ex: _Expander, spec: Mapping[str, Any]) -> dict[str, Value]:
    inputs: dict[str, Value] = {}
    for name, value in (spec.get("inputs") or {}).items():
        where = f"inputs.{name}"
        if isinstance(value, str) and EXPRESSION_RE.search(value):
            ex.error(where, "a pipeline job's own inputs cannot use ${{…}} bindings")
            inputs[str(name)] = UNSET
            continue
        inputs[str(name)] = ex.bind(value, where, Node("", "", None, {}, {}), {})
    return inputs


def expand(spec: Mapping[str, Any], resolve: ComponentResolver) -> Graph:
    """Expand a pipeline job (its dict, with local files already uploaded and component files
    inlined) into leaf steps; raises one SpecError listing every problem found."""
    settings = dict(spec.get("settings") or {})
    ex = _Expander(resolve, settings)
    for key in settings:
        if key not in KNOWN_SETTINGS:
            ex.warnings.append(f"settings.{key}: unknown setting, ignored")
    if "services" in spec:
        ex.warnings.append("services: accepted and ignored on Shoal")
    outputs = {str(k): dict(v) if isinstance(v, Mapping) else {} for k, v in (spec.get("outputs") or {}).items()}
    inputs = _pipeline_inputs(ex, spec)
    jobs = spec.get("jobs") or {}
    root = Node(path="", name=str(spec.get("name") or ""), parent=None, inputs=inputs, outputs=outputs, spec=dict(spec))
    if spec.get("component") is not None and not jobs:
        component, ref = ex.component(spec["component"], "component")
        if component is not None:
            if component.get("type") != "pipeline":
                ex.error("component", "a pipeline job's component must be a pipeline component")
            else:
                root.inputs = ex.bind_ports(
                    component.get("inputs") or {}, inputs, "inputs", _comp_label(component, ref)
                )
                for name, out in (component.get("outputs") or {}).items():
                    given = {k: v for k, v in root.outputs.get(str(name), {}).items() if v is not None}
                    root.outputs[str(name)] = {**dict(out or {}), **given}
                jobs = component.get("jobs") or {}
                root.spec = {**root.spec, "jobs": jobs}
    ex.nodes[""] = root
    ex.pipeline(root, jobs, _strip_azureml(settings.get("default_compute")))
    _default_output_types(root.outputs)
    for name in root.outputs:
        if name not in root.bound_outputs:
            ex.warnings.append(f"outputs.{name}: no step output is bound to this pipeline output")
    if ex.errors:
        count = len(ex.errors)
        head = ex.errors[0]["message"]
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise SpecError(f"pipeline job: {head}{more}", details={"errors": ex.errors, "warnings": ex.warnings})
    return Graph(root=root, nodes=ex.nodes, leaves=ex.leaves, settings=settings, warnings=ex.warnings)
