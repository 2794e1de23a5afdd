"""Components and commands as steps: what calling a component (``Component.__call__``, through
the entities' hook) or a ``command(...)`` inside a ``@dsl.pipeline`` function adds to the
pipeline being built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.dsl.bindings import Binding
from shoal.dsl.context import PipelineArgumentError
from shoal.dsl.naming import STEP_NAME
from shoal.dsl.nodes import NODE_FIELDS, Node, is_binding, literal_type, register, single_output
from shoal.entities import hooks
from shoal.entities.component import Component
from shoal.entities.environment import Environment
from shoal.entities.io import Input, Output
from shoal.entities.job import CommandJob
from shoal.entities.ports import PRIMITIVE_TYPES


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
    return register(node)


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
        types[name] = literal_type(given if binding_only else declared)
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
        # A job name may hold '-' (``name="download-input"``), a step name may not: such a name
        # names the step only through its variable, else in its sanitized form.
        name=job.name if job.name and STEP_NAME.fullmatch(job.name.lower()) else None,
    )
    for name, declared in job.inputs.items():
        if isinstance(declared, Input) and declared.mode:
            node.inputs[name].mode = declared.mode  # kept when a binding replaces the declared input
    return register(node)


def placeholder(value: Any) -> Any:
    """What a command job validates in place of a binding: a typed data input, or a string."""
    if isinstance(value, Node):
        value = single_output(value)
    if not isinstance(value, Binding):
        return value
    if value.type in PRIMITIVE_TYPES:
        return "binding"
    return Input(type=value.type or "uri_folder")
