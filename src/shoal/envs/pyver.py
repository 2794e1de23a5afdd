"""Just enough version matching to ask "does this interpreter satisfy ``python=3.11``?".

Python versions are plain dotted integers, so the full PEP 440 machinery (and a dependency on
``packaging``) is not needed.
"""

from __future__ import annotations

import re

from shoal.errors import SpecError

_CLAUSE = re.compile(r"^(===|==|!=|~=|>=|<=|>|<)?\s*(\d+(?:\.\d+)*)(\.\*)?$")

Version = tuple[int, ...]


def parse_version(text: str) -> Version:
    return tuple(int(part) for part in text.split("."))


def check_constraint(constraint: str) -> None:
    """Raise SpecError unless ``constraint`` is a comma-separated list of clauses this module understands."""
    for clause in constraint.split(","):
        if not _CLAUSE.match(clause.strip()):
            raise SpecError(f"python version constraint '{constraint}' is not understood (clause '{clause.strip()}')")


def satisfies(version: Version, constraint: str | None) -> bool:
    """Whether ``version`` (e.g. ``(3, 11, 7)``) meets every clause of ``constraint`` (``==3.11.*,!=3.11.0``)."""
    if not constraint:
        return True
    return all(_clause_ok(version, clause.strip()) for clause in constraint.split(","))


def _clause_ok(version: Version, clause: str) -> bool:
    match = _CLAUSE.match(clause)
    if match is None:
        raise SpecError(f"python version constraint clause '{clause}' is not understood")
    op, text, star = match.group(1) or "==", match.group(2), match.group(3)
    want = parse_version(text)
    if star or op == "~=":
        # Prefix match: ==3.11.* takes 3.11.x; ~=3.11.2 means >=3.11.2 and ==3.11.*.
        prefix = want if star else want[:-1]
        in_prefix = version[: len(prefix)] == prefix
        if op == "~=":
            return in_prefix and _pad(version, want) >= _pad(want, version)
        return in_prefix if op == "==" else not in_prefix
    a, b = _pad(version, want), _pad(want, version)
    return {
        "==": a == b,
        "===": a == b,
        "!=": a != b,
        ">=": a >= b,
        "<=": a <= b,
        ">": a > b,
        "<": a < b,
    }[op]


def _pad(v: Version, other: Version) -> Version:
    return v + (0,) * max(0, len(other) - len(v))
