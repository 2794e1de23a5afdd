"""Binding: following a step's input values (literals, data, ``${{parent…}}`` expressions) to where
they come from, and checking them against the ports they are given to. ``Binder`` collects the
errors and warnings; the ``Expander`` that walks the steps builds on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.entities.expressions import EXPRESSION_RE, binding_of, format_literal
from shoal.entities.pipeline_graph.model import ARTIFACTS, FAILED, UNSET, Leaf, Node, OutputRef, Value, join_field
from shoal.entities.pipeline_graph.type_rules import coerce_literal, control_fits, data_compatibility, looks_like_path
from shoal.entities.ports import DATA_TYPES, PRIMITIVE_TYPES


class Binder:
    """Binds values for one expansion, collecting every problem rather than stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []
        self.warnings: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append({"field": where, "message": f"{where}: {message}" if where else message})

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
                        inner = Value("literal", literal=coerce_literal(type_name, inner.literal))
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
            if out.get("type") in PRIMITIVE_TYPES:  # a control output: the value the step's job wrote
                return Value("output", ref=OutputRef(target.path, port), type=out["type"])
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
                return {k: walk(v, join_field(at, str(k))) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, f"{at}[{i}]") for i, v in enumerate(value)]
            return value

        out = dict(step)
        for key, value in step.items():
            if key in ("inputs", "outputs", "jobs", "component", "command", "type"):
                continue
            out[key] = walk(value, join_field(where, key))
        return out

    # ports

    def bind_port(self, port: Mapping[str, Any], value: Value, where: str) -> Value:
        """A value given to a declared port, checked against the port's type."""
        declared = port.get("type") or "uri_folder"
        if value.kind == "unset":
            return value
        if value.is_control:
            if declared not in PRIMITIVE_TYPES:
                self.error(where, f"the input is declared {declared}, but it is bound to a {value.type} control output")
                return FAILED
            if not control_fits(value.type or "string", declared):
                self.error(where, f"a {value.type} control output cannot be bound to an input declared {declared}")
                return FAILED
            return Value("output", ref=value.ref, type=declared)
        if declared in PRIMITIVE_TYPES:
            if value.is_data:
                self.error(where, f"the input is declared {declared}, but it is bound to data ({value.type})")
                return FAILED
            try:
                literal = coerce_literal(declared, value.literal)
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
            if isinstance(value.literal, str) and looks_like_path(value.literal):
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
                    f"{join_field(where, name)}: component '{component}' does not declare input '{name}'; ignored"
                )
        for name, port in ports.items():
            port = dict(port or {})
            at = join_field(where, name)
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

    # outputs

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
            self.error(join_field(where, "outputs"), "outputs must be a mapping")
            return outputs
        for name, value in given.items():
            at = join_field(join_field(where, "outputs"), str(name))
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
                self.error(
                    join_field(join_field(where, "outputs"), name), f"unknown output type {settings.get('type')!r}"
                )
        return outputs
