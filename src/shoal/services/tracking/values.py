"""What the MLflow tracking and registry services share about request values: MLflow's limits,
its argument checks and their messages, times in milliseconds, page tokens, and the in-Python
matching of a filter clause."""

from __future__ import annotations

import math
import posixpath
import re
from datetime import UTC, datetime
from typing import Any

from shoal.errors import UserError
from shoal.services.tracking.search_grammar import Clause
from shoal.store.paging import decode_token

MAX_KEY, MAX_PARAM_VALUE, MAX_TAG_VALUE, MAX_EXPERIMENT_NAME = 250, 6000, 8000, 500
MAX_RESULTS = 50000
KEY = re.compile(r"^[/\w.\- :]*$")
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
VIEW_TYPES = {"ACTIVE_ONLY": ("active",), "DELETED_ONLY": ("deleted",), "ALL": ("active", "deleted")}


def ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def dt(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def json_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def int_arg(data: dict[str, Any], key: str, default: int | None = None) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise UserError(f"Invalid value {value!r} for parameter '{key}': it must be an integer") from exc
    # MLflow's step and timestamp are int64; a larger number overflows both databases.
    if not MIN_INT64 <= number <= MAX_INT64:
        raise UserError(
            f"Invalid value {value!r} for parameter '{key}': it must be an integer between -2^63 and 2^63-1"
        )
    return number


def str_arg(data: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise UserError(f"Missing value for required parameter '{key}'.")
        return ""
    if not isinstance(value, str):
        raise UserError(f"Invalid value {value!r} for parameter '{key}' supplied: it must be a string")
    return value


def no_separator(value: str, what: str) -> str:
    # Ids become path segments (ExperimentRun/dcid.<run id>): a separator in one is refused.
    if "/" in value or "\\" in value:
        raise UserError(f"Invalid value {value[:200]!r} for parameter '{what}': it must not contain '/' or '\\'")
    return value


def run_id_arg(data: dict[str, Any]) -> str:
    return no_separator(str(data.get("run_id") or data.get("run_uuid") or str_arg(data, "run_id")), "run_id")


def check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise UserError(f"Missing value for required parameter 'key' of a {what}.")
    if len(key) > MAX_KEY:
        raise UserError(f"{what.capitalize()} name '{key[:40]}…' exceeds the maximum length of {MAX_KEY}")
    # As MLflow's path_not_unique: no absolute path, no '..' or '.' segment, nothing normpath changes.
    normal = posixpath.normpath(key)
    if not KEY.match(key) or key.startswith("/") or normal != key or normal == "." or normal.startswith(".."):
        raise UserError(
            f"Invalid {what} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), "
            "periods (.), spaces ( ), colons (:) and slashes (/), and may not be a relative or absolute path."
        )
    return key


def check_value(raw: Any, limit: int, what: str, key: str) -> str:
    if raw is None:
        raise UserError(f"Missing value for required parameter 'value' of {what} '{key}'.")
    value = raw if isinstance(raw, str) else (str(raw).lower() if isinstance(raw, bool) else str(raw))
    if len(value) > limit:
        raise UserError(f"{what.capitalize()} '{key}' had length {len(value)}, which exceeded length limit of {limit}")
    return value


def kv_list(items: Any) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UserError("Invalid value: expected a list of {key, value} objects")
    return items


def view_stages(value: Any) -> tuple[str, ...]:
    if value in (None, "", 1, "1"):
        return VIEW_TYPES["ACTIVE_ONLY"]
    if value in (2, "2"):
        return VIEW_TYPES["DELETED_ONLY"]
    if value in (3, "3"):
        return VIEW_TYPES["ALL"]
    if str(value).upper() not in VIEW_TYPES:
        raise UserError(f"Invalid view type {value!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL")
    return VIEW_TYPES[str(value).upper()]


def list_arg(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def page_offset(token: Any) -> int:
    if not token:
        return 0
    try:
        return int((decode_token(str(token)) or [0])[0])
    except Exception as exc:  # noqa: BLE001 - any malformed token is the caller's error
        raise UserError("Invalid page token") from exc


def match_text(value: str | None, c: Clause) -> bool:
    """A string clause (a tag's, an attribute's) matched in Python."""
    if value is None:
        return False
    if c.op == "=":
        return value == c.value
    if c.op == "!=":
        return value != c.value
    if c.op in ("LIKE", "ILIKE"):
        pattern = "^" + re.escape(str(c.value)).replace("%", ".*").replace("_", ".") + "$"
        return re.match(pattern, value, re.DOTALL | (re.IGNORECASE if c.op == "ILIKE" else 0)) is not None
    if c.op == "IN":
        return value in c.value
    if c.op == "NOT IN":
        return value not in c.value
    raise UserError(f"Invalid comparator '{c.op}' for tag '{c.key}'")


def match_number(value: float, c: Any) -> bool:
    """A numeric clause matched in Python."""
    ops = {
        "=": value == c.value,
        "!=": value != c.value,
        ">": value > c.value,
        ">=": value >= c.value,
        "<": value < c.value,
        "<=": value <= c.value,
    }
    if c.op not in ops:
        raise UserError(f"Invalid comparator '{c.op}' for attribute '{c.key}'")
    return ops[c.op]
