"""The bounded YAML reader every Shoal YAML goes through: line numbers, ``--set`` overrides.

YAML is composed into nodes with PyYAML's safe parts (libyaml's parser when available) and
then built by hand, so that:
every key's line is known (for error messages); alias expansion is measured before anything
is built (a "billion laughs" file fails in microseconds); duplicate keys are errors; and only
plain YAML tags are accepted (no ``!!python/...``). The entity modules read files here too (an
``Environment(conda_file=...)`` made in Python reads its conda file), so this module imports no entity.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from shoal.entities.validation import format_path, split_path
from shoal.errors import SpecError

MAX_NODES = 100_000
MAX_BYTES = 10 * 1024 * 1024

Source = str | os.PathLike[str] | IO[str] | IO[bytes]


class LineMap(dict[str, int]):
    """Dotted field path (``a.b[0].c``) → 1-based line; ``""`` is the document itself."""

    def find(self, path: str) -> int | None:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        parts = split_path(path)
        while True:
            key = format_path(parts)
            if key in self:
                return self[key]
            if not parts:
                return None
            parts.pop()


# --- reading ---------------------------------------------------------------------------------


def read_source(source: Source) -> tuple[str, str, Path | None]:
    """``(text, label for messages, file path or None)``."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        label = os.fspath(source)
        if not path.is_file():
            raise SpecError(f"{label}: file not found" if not path.exists() else f"{label}: not a file")
        if path.stat().st_size > MAX_BYTES:
            raise SpecError(f"{label}: file is larger than {MAX_BYTES // (1024 * 1024)} MB")
        raw: str | bytes = path.read_bytes()
    else:
        name = getattr(source, "name", None)
        label = name if isinstance(name, str) else "<stream>"
        path = Path(name) if isinstance(name, str) and Path(name).is_file() else None
        raw = source.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise SpecError(f"{label}: document is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return raw, label, path


class _TooManyNodes(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _CountingComposer(Composer):
    """PyYAML's composer, counting nodes as they are made so a huge file stops early."""

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if not self.check_event(AliasEvent):  # aliases add no node; _Meter counts their expansion
            self.node_count = getattr(self, "node_count", 0) + 1
            if self.node_count > MAX_NODES:
                raise _TooManyNodes(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


class _PyLoader(Reader, Scanner, Parser, _CountingComposer, Resolver):
    """Pure-Python scanning and parsing (SafeLoader's parts, without its constructor)."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        _CountingComposer.__init__(self)
        Resolver.__init__(self)


_Loader: type = _PyLoader
if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _CLoader(_CountingComposer, CParser, Resolver):
        """libyaml scans and parses (fast); composition stays in Python so nodes can be counted."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _CountingComposer.__init__(self)
            Resolver.__init__(self)

    _Loader = _CLoader


def _huge(label: str, line: int | None) -> SpecError:
    where = f" line {line}" if line else ""
    return SpecError(
        f"{label}{where}: the document expands to a huge document (anchors/aliases): "
        f"more than {MAX_NODES} nodes or {MAX_BYTES // (1024 * 1024)} MB"
    )


def _compose(text: str, label: str) -> Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    except _TooManyNodes as exc:
        raise _huge(label, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise SpecError(f"{label}{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{label}: invalid YAML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{label}: invalid YAML: nested too deeply") from None
    finally:
        getattr(loader, "dispose", lambda: None)()


# --- measuring (alias bombs) -----------------------------------------------------------------


class _Meter:
    """Size of the document with every alias expanded, computed once per distinct node."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.memo: dict[int, tuple[int, int]] = {}
        self.active: set[int] = set()

    def measure(self, node: Node) -> tuple[int, int]:
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.active:
            raise SpecError(f"{self.label} line {node.start_mark.line + 1}: recursive alias")
        self.active.add(key)
        count, size = 1, 0
        if isinstance(node, ScalarNode):
            size = len(node.value)
        else:
            children = node.value if isinstance(node, SequenceNode) else [n for kv in node.value for n in kv]
            for child in children:
                c, s = self.measure(child)
                count, size = count + c, size + s
                if count > MAX_NODES or size > MAX_BYTES:
                    raise _huge(self.label, node.start_mark.line + 1)
        self.active.discard(key)
        self.memo[key] = (count, size)
        return count, size


# --- building --------------------------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class _Builder:
    def __init__(self, label: str) -> None:
        self.label = label
        self.lines = LineMap()

    def _error(self, node: Node, message: str) -> SpecError:
        return SpecError(f"{self.label} line {node.start_mark.line + 1}: {message}")

    def _tag_error(self, node: Node) -> SpecError:
        tag = node.tag.replace(_TAG, "!!")
        return self._error(node, f"YAML tag {tag!r} is not allowed; only plain YAML values are accepted")

    def build(self, node: Node, parts: list[str | int]) -> Any:
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                raise self._tag_error(node)
            out = []
            for i, child in enumerate(node.value):
                self.lines.setdefault(format_path([*parts, i]), child.start_mark.line + 1)
                out.append(self.build(child, [*parts, i]))
            return out
        if node.tag != _TAG + "map":
            raise self._tag_error(node)
        return self._mapping(node, parts)

    def _scalar(self, node: ScalarNode) -> Any:
        tag = node.tag[len(_TAG) :] if node.tag.startswith(_TAG) else None
        if tag in ("str", "timestamp", "binary"):
            return node.value  # timestamps stay strings: entities compare and dump them as text
        if tag == "null":
            return None
        construct = {
            "bool": _CONSTRUCTOR.construct_yaml_bool,
            "int": _CONSTRUCTOR.construct_yaml_int,
            "float": _CONSTRUCTOR.construct_yaml_float,
        }.get(tag or "")
        if construct is None:
            raise self._tag_error(node)
        try:
            return construct(node)
        except (ValueError, KeyError):  # only reachable with explicit tags, e.g. `!!int abc`
            raise self._error(node, f"{node.value!r} is not a valid {tag}") from None

    def _mapping(self, node: MappingNode, parts: list[str | int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._error(key_node, "mapping keys must be plain strings")
            key = key_node.value  # keep the key as written: `yes:` stays "yes", `1:` stays "1"
            if key in out:
                raise self._error(key_node, f"duplicate key {key!r}")
            # setdefault: keys pulled in by a merge must not take over the explicit keys' lines
            self.lines.setdefault(format_path([*parts, key]), key_node.start_mark.line + 1)
            out[key] = self.build(value_node, [*parts, key])
        # `<<: *base` (or a list of them): explicit keys win, then earlier merges win.
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for src in sources:
                if not isinstance(src, MappingNode):
                    raise self._error(src, "a merge key '<<' needs a mapping or a list of mappings")
                for key, value in self._mapping(src, parts).items():
                    out.setdefault(key, value)
        return out


def _kind_of_value(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def load_yaml(source: Source, *, params_override: list[Any] | None = None) -> tuple[dict[str, Any], LineMap]:
    """Load one YAML mapping safely; ``(data, line_map)``. Errors are SpecErrors naming the file."""
    text, label, _ = read_source(source)
    return load_text(text, label, params_override)


def parse_yaml_text(text: str, label: str) -> dict[str, Any]:
    """A YAML mapping a user sent the server (an ``MLmodel``, a conda file), with the CLI's
    bounds: size, alias expansion, plain tags only. ``label`` names the file in every error."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"{label}: document is larger than {MAX_BYTES // (1024 * 1024)} MB")
    return load_text(text, label, None)[0]


def load_text(text: str, label: str, params_override: list[Any] | None) -> tuple[dict[str, Any], LineMap]:
    node = _compose(text, label)
    if node is None:
        raise SpecError(f"{label}: the file is empty")
    builder = _Builder(label)
    try:
        _Meter(label).measure(node)
        data = builder.build(node, [])
    except RecursionError:
        raise SpecError(f"{label}: nested too deeply") from None
    if not isinstance(data, dict):
        got = _kind_of_value(data)
        raise SpecError(f"{label} line {node.start_mark.line + 1}: the document must be a mapping, got {got}")
    builder.lines[""] = node.start_mark.line + 1
    if params_override:
        data = apply_overrides(data, params_override)
    return data, builder.lines


# --- overrides -------------------------------------------------------------------------------


def parse_override_value(text: str) -> Any:
    """Like ``az ml --set``: JSON if it parses (``3``, ``true``, ``[1,2]``), else the plain string.

    So ``max_instances=3`` gives 3 while ``tags.x=yes`` and ``version=01`` stay strings.
    """
    if text in ("NaN", "Infinity", "-Infinity"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _override_items(overrides: Iterable[Any]) -> Iterable[tuple[str, Any]]:
    if isinstance(overrides, str | Mapping):
        overrides = [overrides]
    for item in overrides:
        if isinstance(item, str):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SpecError(f"invalid override {item!r}: expected <field.path>=<value>")
            yield key.strip(), parse_override_value(value)
        elif isinstance(item, Mapping):
            yield from ((str(k), v) for k, v in item.items())
        else:
            raise SpecError(f"invalid override {item!r}: expected 'a.b=value' or {{'a.b': value}}")


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[Any]) -> dict[str, Any]:
    """A copy of ``data`` with ``a.b=value`` strings or ``{"a.b": value}`` dicts applied.

    Missing intermediate mappings are created; ``a.list[0].b`` or ``a.list.0.b`` index lists.
    """
    out = copy.deepcopy(dict(data))
    for key, value in _override_items(overrides):
        parts = [int(p) if isinstance(p, str) and p.isdigit() else p for p in split_path(key)]
        if not parts:
            raise SpecError(f"invalid override {key!r}: empty field path")
        current: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            here = format_path(parts[:i]) or "the document"
            if isinstance(current, list):
                if not isinstance(part, int) or not 0 <= part < len(current):
                    raise SpecError(f"invalid override {key!r}: {here} is a list; index {part!r} is out of range")
            elif isinstance(current, dict):
                part = str(part)
                if not last and current.get(part) is None:
                    current[part] = {}
            else:
                raise SpecError(f"invalid override {key!r}: {here} is {_kind_of_value(current)}, not a mapping")
            if last:
                current[part] = value
            else:
                current = current[part]
    return out
