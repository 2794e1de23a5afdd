"""Validation helpers shared by the entity modules, and pydantic errors → SpecError.

Entity validators raise :class:`FieldIssue` (a ValueError that also names a field path) so
that model-level checks such as "image and build are exclusive" point at the right YAML line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError

from shoal.errors import SpecError, did_you_mean


class FieldIssue(ValueError):
    """A validation problem at ``path`` (dotted, relative to the model that raised it)."""

    def __init__(self, path: str, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.missing = missing


# --- coercions -------------------------------------------------------------------------------


def scalar_to_str(value: Any) -> Any:
    """YAML gives ints, floats, bools and nulls where Azure expects strings; coerce those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return ""
    return value  # anything else is left for pydantic to reject with a clear message


def _str_dict(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): scalar_to_str(v) for k, v in value.items()}
    return value


def _version(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


StrDict = Annotated[dict[str, str], BeforeValidator(_str_dict)]
"""``tags`` / ``properties``: str → str, scalar values coerced, ``null`` = empty."""

_BAD_ENV_NAME = re.compile(r"^$|[=\x00-\x1f\x7f]")


def _env_names(value: dict[str, str]) -> dict[str, str]:
    # A process environment cannot hold such a name: the job would fail late, in its runner.
    for name in value:
        if _BAD_ENV_NAME.search(name):
            raise ValueError(
                f"environment variable name {name[:80]!r} is invalid: it may not be empty "
                "or contain '=' or control characters"
            )
    return value


EnvDict = Annotated[dict[str, str], BeforeValidator(_str_dict), AfterValidator(_env_names)]
"""``environment_variables``: a StrDict whose names a process environment can hold."""

VersionStr = Annotated[str, BeforeValidator(_version)]


# --- name and version rules ------------------------------------------------------------------


class NameRule:
    """A regex plus the sentence shown to users when a name breaks it."""

    def __init__(self, what: str, pattern: str, rule: str) -> None:
        self.what = what
        self.regex = re.compile(pattern)
        self.pattern = pattern
        self.rule = rule

    def check(self, value: str) -> str:
        if not self.regex.fullmatch(value):
            raise ValueError(f"{self.what} {value!r} is invalid: {self.rule} (pattern {self.pattern})")
        return value


ASSET_NAME = NameRule(
    "name",
    r"[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,254}",
    "it must start with a letter or digit, contain only letters, digits, '-', '_' and '.', "
    "and be at most 255 characters long",
)
ASSET_VERSION = NameRule(
    "version",
    r"[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,63}",
    "it must start with a letter or digit, contain only letters, digits, '-', '_' and '.', "
    "and be at most 64 characters long",
)
COMPONENT_NAME = NameRule(
    "component name",
    r"[a-z][a-z0-9_]{0,254}",
    "it must start with a lowercase letter, contain only lowercase letters, digits and '_', "
    "and be at most 255 characters long",
)
COMPUTE_NAME = NameRule(
    "compute name",
    r"[a-zA-Z][a-zA-Z0-9-]{1,23}",
    "it must start with a letter, contain only letters, digits and '-', and be 2 to 24 characters long",
)
DATASTORE_NAME = NameRule(
    "datastore name",
    r"[a-zA-Z0-9_]{1,255}",
    "it may contain only letters, digits and '_' (no '-'), and be 1 to 255 characters long",
)
WORKSPACE_NAME = NameRule(
    "workspace name",
    r"[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}",
    "it must start with a letter or digit, contain only letters, digits, '_' and '-', and be 3 to 33 characters long",
)


# --- pydantic errors → SpecError -------------------------------------------------------------


def format_path(parts: list[str | int]) -> str:
    """``["a", "b", 0, "c"]`` → ``"a.b[0].c"`` (the LineMap key format)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def split_path(path: str) -> list[str | int]:
    """Inverse of :func:`format_path`."""
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def _clean_loc(loc: tuple[Any, ...], data: Any, missing: bool) -> list[str | int]:
    """Drop pydantic's union/discriminator tags from ``loc`` by walking the input data.

    A segment that is not a key (or index) of the data at that point is a tag pydantic added,
    except the last one of a "missing" error, which is the name of the missing field.
    """
    parts: list[str | int] = []
    current = data
    for i, seg in enumerate(loc):
        last = i == len(loc) - 1
        if (
            isinstance(current, Mapping)
            and seg in current
            or isinstance(current, list | tuple)
            and isinstance(seg, int)
            and 0 <= seg < len(current)
        ):
            parts.append(seg)
            current = current[seg]
        elif last and missing:
            parts.append(seg)
    return parts


def _message(err: Mapping[str, Any]) -> str:
    etype = err["type"]
    msg = str(err["msg"])
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, FieldIssue):
        return error.message
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if etype in ("literal_error", "enum") and isinstance(err.get("input"), str | int | float | bool):
        msg += f", got {err['input']!r}"
    return msg


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold: ``X``, ``list[X]``, ``X | Y``, ``dict[str, X]``…"""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found += _models_in(arg)
    return found


def field_names_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> set[str]:
    """The field names (and aliases) of the model(s) that ``loc`` (up to its last segment) lands in.

    Segments that are not fields (list indices, dict keys, union tags) leave the models as they are."""
    if model is None:
        return set()
    models: list[type[BaseModel]] = [model]
    for seg in loc[:-1]:
        nxt: list[type[BaseModel]] = []
        for m in models:
            for fname, info in m.model_fields.items():
                if seg in (fname, info.alias):
                    nxt += _models_in(info.annotation)
        if nxt:
            models = nxt
    names: set[str] = set()
    for m in models:
        for fname, info in m.model_fields.items():
            names.add(info.alias or fname)
    return names


def issues_from_validation(
    exc: ValidationError, data: Any, line_map: Any = None, model: type[BaseModel] | None = None
) -> list[dict]:
    """One ``{"path", "line", "message", "type"}`` dict per pydantic error; an unknown field's
    ``hint`` is ``(did you mean 'x'?)`` when ``model`` has a field of a close name."""
    issues: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors():
        parts = _clean_loc(tuple(err["loc"]), data, err["type"] == "missing")
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, FieldIssue) and error.path:
            parts += split_path(error.path)
        path = format_path(parts)
        etype = err["type"]
        if etype == "extra_forbidden":
            kind = "unknown"
        elif etype == "missing" or (isinstance(error, FieldIssue) and error.missing):
            kind = "missing"
        else:
            kind = "invalid"
        message = _message(err)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        line = line_map.find(path) if line_map is not None else None
        issue = {"path": path, "line": line, "message": message, "type": kind}
        if kind == "unknown" and err["loc"]:
            hint = did_you_mean(str(err["loc"][-1]), field_names_at(model, tuple(err["loc"])))
            if hint:
                issue["hint"] = hint
        issues.append(issue)
    return issues


def describe_issue(issue: Mapping[str, Any]) -> str:
    """The issue without its location: ``unknown field 'x'``, ``field 'a.b': <why>``."""
    path = issue.get("path") or ""
    if issue.get("type") == "unknown":
        return f"unknown field {path!r}{issue.get('hint') or ''}"
    if issue.get("type") == "missing":
        text = f"missing required field {path!r}"
        if issue.get("message") and issue["message"] != "Field required":
            text += f" ({issue['message']})"
        return text
    return f"field {path!r}: {issue['message']}" if path else str(issue["message"])


def render_issue(issue: Mapping[str, Any], source: str | None) -> str:
    """``<source> line <n>: <description>``, leaving out what is unknown."""
    where = source or ""
    if issue.get("line"):
        where = f"{where} line {issue['line']}" if where else f"line {issue['line']}"
    return f"{where}: {describe_issue(issue)}" if where else describe_issue(issue)


def spec_error(
    issues: list[dict], *, source: str | None = None, kind: str | None = None, what: str | None = None
) -> SpecError:
    """Build the SpecError for ``issues``; each message line names file, line and field."""
    issues = sorted(issues, key=lambda i: i.get("line") or 0)
    if len(issues) == 1:
        message = render_issue(issues[0], source)
    else:
        head = f"{source}: " if source else ""
        label = what or (f"{kind} spec" if kind else "spec")
        lines = [render_issue(i, None) for i in issues]
        message = f"{head}{len(lines)} problems in the {label}:\n" + "\n".join("  " + ln for ln in lines)
    details: dict[str, Any] = {
        "errors": [{"path": i["path"], "line": i["line"], "message": describe_issue(i)} for i in issues]
    }
    if source:
        details["source"] = source
    if kind:
        details["kind"] = kind
    return SpecError(message, details=details)


def spec_error_from_validation(
    exc: ValidationError,
    data: Any,
    *,
    source: str | None = None,
    line_map: Any = None,
    kind: str | None = None,
    model: type[BaseModel] | None = None,
) -> SpecError:
    return spec_error(issues_from_validation(exc, data, line_map, model), source=source, kind=kind)


def single_issue(
    path: str,
    message: str,
    *,
    source: str | None = None,
    line_map: Any = None,
    kind: str | None = None,
    issue_type: str = "invalid",
) -> SpecError:
    line = line_map.find(path) if line_map is not None else None
    issue = {"path": path, "line": line, "message": message, "type": issue_type}
    return spec_error([issue], source=source, kind=kind)
