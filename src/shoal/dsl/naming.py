"""Step names as azure-ai-ml gives them: an explicit ``name``, else the local variable holding the
step, else its component's name, with ``_1``, ``_2``… for repeats."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shoal.dsl.nodes import Node
from shoal.errors import UserError

STEP_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _sanitize(name: str) -> str:
    out = re.sub(r"[^a-z0-9_]", "_", name.lower())
    return out if out and not out[0].isdigit() else f"_{out}"


def assign_names(nodes: list[Node], local_vars: Mapping[str, Any], pipeline: str) -> None:
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
