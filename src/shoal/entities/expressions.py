"""The ``${{…}}`` expression grammar and ``$[[…]]`` optional fragments (azureml-v2-surface.md §3.3, §3.4).

Pure string work: checking a command against the inputs and outputs it may use, filling in
values at run time, and resolving ``${{name}}``-style placeholders in output paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.errors import SpecError

EXPRESSION_RE = re.compile(r"\$\{\{\s*(\S*?)\s*\}\}")
"""``${{ inputs.lr }}`` → ``inputs.lr``."""

FRAGMENT_RE = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
"""``$[[--epochs ${{inputs.epochs}}]]`` → ``--epochs ${{inputs.epochs}}``."""

BINDING_RE = re.compile(r"\s*\$\{\{\s*(\S*?)\s*\}\}\s*")
"""A value that is one whole expression (a data binding such as ``${{parent.inputs.x}}``)."""

OUTPUT_PATH_NAMES = ("name", "output_name", "default_datastore")


def find_references(text: str) -> list[str]:
    """The expressions in ``text``, in order of first appearance: ``["inputs.lr", "outputs.model"]``."""
    if not isinstance(text, str):
        return []
    seen: dict[str, None] = {}
    for match in EXPRESSION_RE.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)


def binding_of(value: Any) -> str | None:
    """``"${{parent.inputs.x}}"`` → ``"parent.inputs.x"``; None when ``value`` is not a whole expression."""
    if not isinstance(value, str):
        return None
    match = BINDING_RE.fullmatch(value)
    return match.group(1) if match else None


def _split(ref: str) -> tuple[str, str] | None:
    """``inputs.lr`` → ``("inputs", "lr")``; None unless it is exactly ``<namespace>.<name>``."""
    parts = ref.split(".")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def _expr(ref: str) -> str:
    return "${{" + ref + "}}"


def _declared(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "none"


def command_problem(
    command: str,
    inputs_decl: Iterable[str],
    outputs_decl: Iterable[str],
    *,
    optional_inputs: Iterable[str] = (),
    search_space: Iterable[str] | None = None,
) -> str | None:
    """Why ``command`` is invalid, or None. See :func:`check_command`."""
    if not isinstance(command, str):
        return None
    inputs, outputs = set(inputs_decl), set(outputs_decl)
    optional = set(optional_inputs)
    space = set(search_space) if search_space is not None else None
    allowed = "${{inputs.<name>}} and ${{outputs.<name>}}"
    if space is not None:
        allowed = "${{inputs.<name>}}, ${{outputs.<name>}} and ${{search_space.<name>}}"
    for ref in find_references(command):
        split = _split(ref)
        namespace, name = split if split else (ref, "")
        if namespace == "inputs" and split:
            if name not in inputs:
                return f"unknown input {name!r} in {_expr(ref)}; declared inputs: {_declared(inputs)}"
        elif namespace == "outputs" and split:
            if name not in outputs:
                return f"unknown output {name!r} in {_expr(ref)}; declared outputs: {_declared(outputs)}"
        elif namespace == "search_space" and split and space is not None:
            if name not in space:
                return f"unknown search_space parameter {name!r} in {_expr(ref)}; declared: {_declared(space)}"
        else:
            return f"unsupported expression {_expr(ref)}; a command can use {allowed}"
    outside = FRAGMENT_RE.sub("", command)
    if "$[[" in outside:
        return "a '$[[' optional fragment is not closed with ']]'"
    if any("$[[" in m.group(1) for m in FRAGMENT_RE.finditer(command)):
        return "'$[[' optional fragments cannot be nested"
    for ref in find_references(outside):
        split = _split(ref)
        if split and split[0] == "inputs" and split[1] in optional:
            return (
                f"optional input {split[1]!r} is used outside a $[[ … ]] fragment; wrap it, as in "
                f"$[[--{split[1]} {_expr(ref)}]], so that it is dropped when the input is not set"
            )
    return None


def check_command(
    command: str,
    inputs: Iterable[str],
    outputs: Iterable[str],
    *,
    optional_inputs: Iterable[str] = (),
    given: Iterable[str] | None = None,
    search_space: Iterable[str] | None = None,
    where: str = "command",
) -> None:
    """Raise a SpecError naming the bad reference when ``command`` uses an undeclared input/output.

    ``inputs`` and ``outputs`` are the declared names (a dict's keys will do). Allowed:
    ``${{inputs.<declared>}}``, ``${{outputs.<declared>}}`` and, where ``search_space`` is given
    (sweep trials), ``${{search_space.<declared>}}``. ``optional_inputs`` are inputs that may
    have no value at run time; they must only appear inside ``$[[ … ]]`` fragments. ``given``
    is the other way to say it: the inputs that have a value (every other declared input is
    then optional). ``where`` names the checked text in the message.
    """
    inputs = list(inputs)
    optional = set(optional_inputs)
    if given is not None:
        optional |= set(inputs) - set(given)
    problem = command_problem(command, inputs, outputs, optional_inputs=optional, search_space=search_space)
    if problem:
        raise SpecError(f"{where}: {problem}", details={"field": where})


def format_literal(value: Any) -> str:
    """A literal input as it appears on a command line: ``True``/``False``, numbers as given."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _is_unset(values: Mapping[str, Any], name: str) -> bool:
    return values.get(name) is None


def resolve_command(
    command: str,
    values: Mapping[str, Any],
    outputs: Mapping[str, str],
    *,
    search_space: Mapping[str, Any] | None = None,
) -> str:
    """Fill in a command (or an environment variable value) at run time.

    ``values`` maps input names to their value (formatted with :func:`format_literal`; None or
    absent = unset); ``outputs`` maps output names to their local path. A ``$[[ … ]]`` fragment
    is dropped when an input it references is unset, else only its brackets are removed. A
    reference to an unset input outside a fragment, or to an unknown name, is a SpecError.
    """

    def fragment(match: re.Match[str]) -> str:
        body = match.group(1)
        for ref in find_references(body):
            split = _split(ref)
            if split and split[0] == "inputs" and _is_unset(values, split[1]):
                return ""
        return body

    def substitute(match: re.Match[str]) -> str:
        ref = match.group(1)
        split = _split(ref)
        if split is None:
            raise SpecError(f"cannot resolve {_expr(ref)} in the command: unsupported expression")
        namespace, name = split
        if namespace == "inputs":
            if _is_unset(values, name):
                raise SpecError(
                    f"input {name!r} has no value, but the command uses {_expr(ref)} outside a $[[ … ]] fragment"
                )
            return format_literal(values[name])
        if namespace == "outputs":
            if name not in outputs:
                raise SpecError(f"cannot resolve {_expr(ref)} in the command: no output {name!r}")
            return str(outputs[name])
        if namespace == "search_space" and search_space is not None:
            if search_space.get(name) is None:
                raise SpecError(f"cannot resolve {_expr(ref)} in the command: no value for {name!r}")
            return format_literal(search_space[name])
        raise SpecError(f"cannot resolve {_expr(ref)} in the command: unsupported expression")

    return EXPRESSION_RE.sub(substitute, FRAGMENT_RE.sub(fragment, command))


def resolve_output_path(path: str, *, name: str, output_name: str, default_datastore: str) -> str:
    """Fill ``${{name}}``, ``${{output_name}}`` and ``${{default_datastore}}`` in an output path.

    ``azureml://datastores/${{default_datastore}}/paths/${{name}}/${{output_name}}`` →
    ``azureml://datastores/workspaceblobstore/paths/<job>/<output>``.
    """
    datastore = default_datastore.removeprefix("azureml:")
    table = {"name": name, "output_name": output_name, "default_datastore": datastore}

    def substitute(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref not in table:
            raise SpecError(
                f"cannot resolve {_expr(ref)} in output path {path!r}; an output path can use "
                + ", ".join(_expr(n) for n in OUTPUT_PATH_NAMES)
            )
        return table[ref]

    return EXPRESSION_RE.sub(substitute, path)


def bind_inputs(declared_ports: Mapping[str, Any] | None, given: Mapping[str, Any], *, where: str = "inputs") -> dict:
    """The inputs a job runs with: ``given`` plus the defaults of ``declared_ports`` (component ports).

    With no declared ports (a plain command job), every given input declares itself and is
    returned as is. Otherwise an undeclared input, or a required port (not optional, no
    default) without a value, is a SpecError naming them. Unset optional ports map to None.
    A data port's default becomes an :class:`~shoal.entities.io.Input` of the port's type.
    """
    if declared_ports is None:
        return dict(given)
    unknown = sorted(set(given) - set(declared_ports))
    if unknown:
        raise SpecError(
            f"{where}: unknown input{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"declared inputs: {_declared(declared_ports)}",
            details={"field": where, "unknown": unknown},
        )
    bound: dict[str, Any] = {}
    missing: list[str] = []
    for name, port in declared_ports.items():
        value = given.get(name)
        default = getattr(port, "default", None)
        if value is not None:
            bound[name] = value
        elif default is not None:
            port_type = getattr(port, "type", "string")
            from shoal.entities.io import PRIMITIVE_TYPES, Input  # pydantic: not on the runner's path

            if port_type in PRIMITIVE_TYPES:
                bound[name] = default
            else:
                bound[name] = Input(type=port_type, path=default, mode=getattr(port, "mode", None))
        elif getattr(port, "optional", None):
            bound[name] = None
        else:
            missing.append(name)
    if missing:
        raise SpecError(
            f"{where}: missing required input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            "(not optional and without a default)",
            details={"field": where, "missing": missing},
        )
    return bound
