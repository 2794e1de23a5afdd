"""MLflow's search grammar: ``filter`` strings and ``order_by`` clauses, parsed into plain tuples.

    metrics.loss < 0.5 AND params.model = 'cnn' AND tags.`my tag` != "x"
    attributes.status IN ('FINISHED', 'FAILED') AND attributes.run_name ILIKE '%fox%'

Keys: ``metrics.``/``metric.``, ``params.``/``param.``/``parameter(s).``, ``tags.``/``tag.``,
``attributes.``/``attribute.``/``attr.``/``run.`` (a bare name is an attribute); a key may be
backquoted or double-quoted. Only AND joins comparisons, as in MLflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shoal.errors import UserError

KINDS = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")

TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<bq>`[^`]*`)
    | (?P<op>!=|>=|<=|=|>|<|\(|\)|,)
    | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
    | (?P<word>[A-Za-z_][\w]*)
    | (?P<dot>\.)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    kind: str  # metric | param | tag | attribute | dataset
    key: str
    op: str
    value: Any  # str, float, or a tuple of str for IN


def _bad(message: str) -> UserError:
    return UserError(message)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _bad(f"Invalid filter string {text!r}: cannot parse at {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body) if token[0] in "'\"" else body


class _Parser:
    def __init__(self, text: str, default_kind: str = "attribute") -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.default_kind = default_kind

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise _bad(f"Invalid filter string {self.text!r}: it ends too early")
        self.i += 1
        return tok

    def key(self) -> tuple[str, str]:
        kind, text = self.take()
        if kind in ("bq", "str"):
            return self.default_kind, _unquote(text)
        if kind != "word":
            raise _bad(f"Invalid filter string {self.text!r}: expected a key, got {text!r}")
        nxt = self.peek()
        if nxt is None or nxt[0] != "dot":
            return self.default_kind, text
        if text.lower() not in KINDS:
            raise _bad(
                f"Invalid entity type '{text}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            )
        self.take()
        # The rest of the key: a quoted name, or words and dots up to the operator.
        kind2, part = self.take()
        if kind2 in ("bq", "str"):
            return KINDS[text.lower()], _unquote(part)
        parts = [part]
        while (tok := self.peek()) is not None and tok[0] == "dot":
            parts.append(self.take()[1])
            parts.append(self.take()[1])
        return KINDS[text.lower()], "".join(parts)

    def op(self) -> str:
        kind, text = self.take()
        if kind == "op" and text in COMPARISONS:
            return text
        upper = text.upper()
        if kind == "word" and upper in ("LIKE", "ILIKE", "IN"):
            return upper
        if kind == "word" and upper == "NOT":
            nxt = self.take()
            if nxt[1].upper() == "IN":
                return "NOT IN"
        if kind == "word" and upper == "IS":
            nxt = self.take()
            if nxt[1].upper() == "NULL":
                return "IS NULL"
            if nxt[1].upper() == "NOT" and self.take()[1].upper() == "NULL":
                return "IS NOT NULL"
        raise _bad(f"Invalid filter string {self.text!r}: unknown comparator {text!r}")

    def value(self, op: str) -> Any:
        if op in ("IS NULL", "IS NOT NULL"):
            return None
        if op in ("IN", "NOT IN"):
            if self.take() != ("op", "("):
                raise _bad(f"Invalid filter string {self.text!r}: {op} needs a list in parentheses")
            items: list[str] = []
            while True:
                kind, text = self.take()
                if kind != "str":
                    raise _bad(f"Invalid filter string {self.text!r}: {op} takes quoted strings")
                items.append(_unquote(text))
                kind, text = self.take()
                if text == ")":
                    return tuple(items)
                if text != ",":
                    raise _bad(f"Invalid filter string {self.text!r}: expected ',' or ')'")
        kind, text = self.take()
        if kind == "str":
            return _unquote(text)
        if kind == "num":
            return float(text)
        raise _bad(f"Invalid filter string {self.text!r}: expected a value, got {text!r}")

    def clauses(self) -> list[Clause]:
        out: list[Clause] = []
        while self.peek() is not None:
            kind, key = self.key()
            op = self.op()
            out.append(Clause(kind, key, op, self.value(op)))
            nxt = self.peek()
            if nxt is None:
                break
            if nxt[0] != "word" or nxt[1].upper() != "AND":
                raise _bad(f"Invalid filter string {self.text!r}: only AND joins comparisons, got {nxt[1]!r}")
            self.take()
        return out


def parse_filter(text: str | None, default_kind: str = "attribute") -> list[Clause]:
    if not text or not text.strip():
        return []
    clauses = _Parser(text, default_kind).clauses()
    for c in clauses:
        _check(c)
    return clauses


def _check(c: Clause) -> None:
    if c.kind == "metric":
        if c.op not in COMPARISONS:
            raise _bad(f"Invalid comparator '{c.op}' for metric '{c.key}'; use one of {list(COMPARISONS)}")
        if not isinstance(c.value, float):
            raise _bad(f"Expected numeric value type for metric. Found {c.value!r}")
    elif c.kind in ("param", "tag"):
        if c.op not in STRING_OPS:
            raise _bad(f"Invalid comparator '{c.op}' for {c.kind} '{c.key}'; use one of {list(STRING_OPS)}")
        if isinstance(c.value, float):
            raise _bad(f"Expected a quoted string value for {c.kind}s. Got value {c.value!r}")


@dataclass(frozen=True)
class Order:
    kind: str
    key: str
    ascending: bool


ORDER = re.compile(r"^\s*(?P<key>.+?)\s*(?:\s(?P<dir>ASC|DESC))?\s*$", re.IGNORECASE)


def parse_order_by(items: list[str] | None, default_kind: str = "attribute") -> list[Order]:
    out: list[Order] = []
    for item in items or []:
        m = ORDER.match(item or "")
        if not m or not m.group("key"):
            raise _bad(f"Invalid order_by clause {item!r}")
        parser = _Parser(m.group("key"), default_kind)
        kind, key = parser.key()
        if parser.peek() is not None:
            raise _bad(f"Invalid order_by clause {item!r}")
        out.append(Order(kind, key, (m.group("dir") or "ASC").upper() == "ASC"))
    return out
