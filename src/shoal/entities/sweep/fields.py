"""Field types shared by the sweep parts: strict numbers (a bound is never ``True`` or ``"0.1"``),
case-insensitive names, and a SpecError whose paths start at the sweep job's field."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError

from shoal.entities.validation import issues_from_validation, spec_error
from shoal.errors import SpecError


def _number(value: Any) -> Any:
    # pydantic's lax mode takes True for 1 and "0.1" for 0.1; a search space bound never means those.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON round trips may turn 10 into 10.0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Number = Annotated[int | float, BeforeValidator(_number)]
Integer = Annotated[int, BeforeValidator(_integer)]


def spec_error_at(exc: ValidationError, data: Any, prefix: str) -> SpecError:
    issues = issues_from_validation(exc, data)
    for issue in issues:
        issue["path"] = f"{prefix}.{issue['path']}" if issue["path"] else prefix
    return spec_error(issues, what=prefix)
