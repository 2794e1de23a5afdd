"""Azure ML's type rules for a pipeline's ports: literals coerced to a port's primitive type, and
which data types may be bound to which (accepted, accepted with a warning, or rejected)."""

from __future__ import annotations

from typing import Any

from shoal.entities.expressions import format_literal

MODEL_TYPES = ("mlflow_model", "custom_model", "triton_model")


def coerce_literal(type_name: str, value: Any) -> Any:
    """A literal as the port's type, or ValueError. Strings from YAML or the CLI are parsed."""
    if type_name == "string":
        return format_literal(value) if not isinstance(value, str) else value
    if type_name == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"{value!r} is not a valid boolean")
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid {type_name}")
    if type_name == "integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a valid integer")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a valid number")


def data_compatibility(given: str, declared: str) -> str:
    """``"ok"``, ``"warn"`` (Azure accepts it) or ``"error"`` (Azure rejects it)."""
    if given == declared or "path" in (given, declared):
        return "ok"
    if (given, declared) in (("uri_file", "uri_folder"), ("uri_folder", "mltable")):
        return "warn"
    if declared == "uri_folder" and given in (*MODEL_TYPES, "mltable"):
        return "ok"
    if given == "uri_folder" and declared in MODEL_TYPES:
        return "ok"
    if given in MODEL_TYPES and declared in MODEL_TYPES:
        return "ok"
    return "error"


def looks_like_path(value: str) -> bool:
    return "://" in value or value.startswith(("azureml:", "/", "./", "../", "file:", "runs:/"))


def control_fits(given: str, declared: str) -> bool:
    """Whether a control output of type ``given`` may feed a primitive input ``declared``: the same
    type, any type into a string, an integer into a number."""
    return given == declared or declared == "string" or (given, declared) == ("integer", "number")
