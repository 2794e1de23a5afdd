"""Component input and output ports (``_schema/component/input_output.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Discriminator, Tag, field_validator, model_validator

from shoal.entities.base import ShoalModel
from shoal.entities.validation import FieldIssue

PRIMITIVE_TYPES = ("integer", "number", "boolean", "string")
DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model", "path")

_PY_TYPES: dict[str, tuple[type, ...]] = {"integer": (int,), "number": (int, float), "boolean": (bool,)}


def _fits(type_name: str, value: Any) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if isinstance(value, bool) and type_name != "boolean":
        return False  # bool is an int subclass in Python, not an integer in YAML
    return isinstance(value, _PY_TYPES[type_name])


class ParameterInput(ShoalModel):
    """A literal-valued input (``type: integer|number|boolean|string``)."""

    type: Literal["integer", "number", "boolean", "string"]
    optional: bool | None = None
    default: Any = None
    min: int | float | None = None
    max: int | float | None = None
    enum: list[Any] | None = None
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _string_default(cls, data: Any) -> Any:
        # `default: 10` on a string input is the string "10" in Azure ML too.
        if isinstance(data, Mapping) and data.get("type") == "string":
            default = data.get("default")
            if isinstance(default, int | float) and not isinstance(default, bool):
                return {**data, "default": str(default)}
        # `default: 1e-3` is a string to YAML 1.1 (no dot); Azure ML reads it as the number.
        if isinstance(data, Mapping) and data.get("type") in ("number", "integer"):
            default = data.get("default")
            if isinstance(default, str):
                try:
                    parsed = (float if data["type"] == "number" else int)(default.strip())
                except ValueError:
                    return data  # refused below, naming the value
                return {**data, "default": parsed}
        return data

    @model_validator(mode="after")
    def _check_values(self) -> Self:
        if self.default is not None and not _fits(self.type, self.default):
            raise FieldIssue("default", f"{self.default!r} is not a valid {self.type}")
        if self.enum is not None and self.default is not None and self.default not in self.enum:
            raise FieldIssue("default", f"{self.default!r} is not one of enum {self.enum}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldIssue("min", f"min ({self.min}) is larger than max ({self.max})")
        return self


class DataInput(ShoalModel):
    """A file/folder/table/model input; the type defaults to ``uri_folder``."""

    # A plain str (not a Literal) so that a typo such as `type: int` gets a message listing
    # every input type, parameter types included.
    type: str = "uri_folder"
    optional: bool | None = None
    default: str | None = None
    mode: Literal["ro_mount", "download", "direct", "eval_mount", "eval_download"] | None = None
    description: str | None = None
    path_on_compute: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in DATA_TYPES:
            raise ValueError(f"unknown input type {value!r}; use one of {', '.join(PRIMITIVE_TYPES + DATA_TYPES)}")
        return value


def _input_kind(value: Any) -> str:
    type_name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return "parameter" if type_name in PRIMITIVE_TYPES else "data"


InputPort = Annotated[
    Annotated[ParameterInput, Tag("parameter")] | Annotated[DataInput, Tag("data")],
    Discriminator(_input_kind),
]


class OutputPort(ShoalModel):
    """An output; primitive types are control outputs written by the job."""

    type: Literal[
        "uri_file",
        "uri_folder",
        "mltable",
        "mlflow_model",
        "custom_model",
        "triton_model",
        "path",
        "integer",
        "number",
        "boolean",
        "string",
    ] = "uri_folder"
    mode: Literal["rw_mount", "upload", "direct", "mount"] | None = None
    description: str | None = None
    is_control: bool | None = None
    early_available: bool | None = None
    path_on_compute: str | None = None


def _null_output_is_default(value: Any) -> Any:
    # `outputs: {model:}` declares a default (uri_folder) output.
    if isinstance(value, Mapping):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


InputPorts = dict[str, InputPort]
OutputPorts = Annotated[dict[str, OutputPort], BeforeValidator(_null_output_is_default)]
