"""Job inputs and outputs: the SDK ``Input`` / ``Output`` classes and YAML job input values.

A job input is a literal (str, int, float, bool), an ``Input`` mapping ``{type, path, mode,
path_on_compute, datastore}``, or null (an optional input left unset). A job output is an
``Output`` mapping ``{type, path, mode, name, version}`` or null (a default ``uri_folder``).
Types and modes: azureml-v2-surface.md §3.5.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import (
    BeforeValidator,
    Discriminator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from shoal.entities.base import ShoalModel
from shoal.entities.ports import DATA_TYPES, PRIMITIVE_TYPES
from shoal.entities.refs import arm_id_as_reference
from shoal.entities.validation import ASSET_NAME, ASSET_VERSION, FieldIssue, VersionStr

INPUT_TYPES = DATA_TYPES + PRIMITIVE_TYPES
OUTPUT_TYPES = DATA_TYPES + PRIMITIVE_TYPES

INPUT_MODES: tuple[str, ...] = ("ro_mount", "download", "direct")
MLTABLE_INPUT_MODES: tuple[str, ...] = INPUT_MODES + ("eval_mount", "eval_download")
OUTPUT_MODES: tuple[str, ...] = ("rw_mount", "upload", "direct", "mount")

DEFAULT_INPUT_MODE = "ro_mount"
DEFAULT_OUTPUT_MODE = "rw_mount"


def input_modes(type_name: str) -> tuple[str, ...]:
    """The modes an input of ``type_name`` allows (none for a literal-valued input)."""
    if type_name in PRIMITIVE_TYPES:
        return ()
    return MLTABLE_INPUT_MODES if type_name == "mltable" else INPUT_MODES


def _lower(data: Any, *keys: str) -> Any:
    """``type: URI_Folder`` and ``mode: RO_MOUNT`` are accepted, as azure-ai-ml does."""
    if isinstance(data, Mapping) and any(isinstance(data.get(k), str) for k in keys):
        return {**data, **{k: data[k].lower() for k in keys if isinstance(data.get(k), str)}}
    return data


class _LenientInit(ShoalModel):
    """``Input(...)``/``Output(...)`` made in Python warn about a keyword they do not know and go
    on, as azure-ai-ml's take ``**kwargs``; YAML stays strict (it is validated without __init__)."""

    def __init__(self, /, **data: Any) -> None:
        fields = type(self).model_fields
        unknown = [k for k in data if k not in fields]
        for key in unknown:
            del data[key]
            warnings.warn(
                f"{type(self).__name__}(...) ignores the keyword {key!r} (azure-ai-ml accepts and ignores it too)",
                UserWarning,
                stacklevel=2,
            )
        super().__init__(**data)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _fits(type_name: str, value: Any) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False  # bool is an int subclass in Python, not a number in YAML
    return isinstance(value, int) if type_name == "integer" else isinstance(value, int | float)


INPUT_PATH_ALIASES = {"folder": "uri_folder", "file": "uri_file"}


class Input(_LenientInit):
    """A job input (``Input(type="uri_file", path="./data.csv")``), or a typed literal with a default.

    ``mode`` stays None when not given; :attr:`effective_mode` is the one a runner applies.
    """

    type: str = "uri_folder"
    path: str | None = None
    mode: str | None = None
    default: Any = None
    optional: bool | None = None
    min: int | float | None = None
    max: int | float | None = None
    enum: list[Any] | None = None
    description: str | None = None
    datastore: str | None = None
    path_on_compute: str | None = None

    # ``Input(folder=…)`` / ``Input(file=…)``: written in some azure-ai-ml notebooks, where the
    # keyword is ignored and the service refuses the input for having no path. Its meaning is
    # plain, so Shoal reads it as the path (with that type), saying so.
    def __init__(self, /, **data: Any) -> None:
        for alias, type_name in INPUT_PATH_ALIASES.items():
            if alias in data and "path" not in data:
                data["path"] = data.pop(alias)
                data.setdefault("type", type_name)
                warnings.warn(
                    f"Input({alias}=…) is read as Input(type={data['type']!r}, path=…); azure-ai-ml ignores "
                    f"'{alias}' and the job fails there for an input without a path",
                    UserWarning,
                    stacklevel=2,
                )
        super().__init__(**data)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        data = _lower(data, "type", "mode")
        # An asset's ARM id (``Input(path=data_asset.id)``) is the asset, not a local path.
        if isinstance(data, Mapping) and (ref := arm_id_as_reference(data.get("path"))) is not None:
            data = {**data, "path": ref}
        # `default: 10` on a string input is the string "10" in Azure ML too.
        if isinstance(data, Mapping) and data.get("type") == "string":
            default = data.get("default")
            if isinstance(default, int | float) and not isinstance(default, bool):
                return {**data, "default": str(default)}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.type not in INPUT_TYPES:
            raise FieldIssue("type", f"unknown input type {self.type!r}; use one of {', '.join(INPUT_TYPES)}")
        if self.type in PRIMITIVE_TYPES:
            for key in ("path", "mode", "datastore", "path_on_compute"):
                if getattr(self, key) is not None:
                    raise FieldIssue(key, f"{_a(self.type)} input takes a literal value (or a default), not a {key}")
            if self.default is not None and not _fits(self.type, self.default):
                raise FieldIssue("default", f"{self.default!r} is not a valid {self.type}")
            if self.enum is not None and self.default is not None and self.default not in self.enum:
                raise FieldIssue("default", f"{self.default!r} is not one of enum {self.enum}")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise FieldIssue("min", f"min ({self.min}) is larger than max ({self.max})")
            return self
        for key in ("min", "max", "enum"):
            if getattr(self, key) is not None:
                raise FieldIssue(key, f"{key} is only for integer, number, boolean and string inputs")
        if self.mode is not None:
            allowed = input_modes(self.type)
            if self.mode not in allowed:
                why = " is an output mode;" if self.mode in OUTPUT_MODES else " is not allowed;"
                raise FieldIssue(
                    "mode", f"mode {self.mode!r}{why} an input of type {self.type} allows {', '.join(allowed)}"
                )
        return self

    @property
    def is_literal(self) -> bool:
        return self.type in PRIMITIVE_TYPES

    @property
    def effective_mode(self) -> str | None:
        """The mode a runner uses: the given one, else ``ro_mount``; None for literal inputs."""
        if self.is_literal:
            return None
        return self.mode or DEFAULT_INPUT_MODE


LiteralValue = StrictBool | StrictInt | StrictFloat | StrictStr


class Output(_LenientInit):
    """A job output (``Output(type="mlflow_model")``); with ``name`` it registers an asset when the job ends."""

    type: str = "uri_folder"
    path: str | None = None
    mode: str | None = None
    description: str | None = None
    name: str | None = None
    version: VersionStr | None = None
    path_on_compute: str | None = None
    # A primitive output is a control output (``is_control``, as azure-ai-ml's keyword): its job
    # writes a value that later steps' inputs can be bound to. ``value`` is what the job wrote,
    # set by the server when the job completes.
    is_control: bool | None = None
    value: LiteralValue | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        return _lower(data, "type", "mode")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.type not in OUTPUT_TYPES:
            raise FieldIssue("type", f"unknown output type {self.type!r}; use one of {', '.join(OUTPUT_TYPES)}")
        if self.type not in PRIMITIVE_TYPES:
            for key in ("is_control", "value"):
                if getattr(self, key):
                    raise FieldIssue(key, f"only a primitive output (string, number, integer, boolean) has {key}")
        if self.type in PRIMITIVE_TYPES:
            for key in ("path", "mode", "name", "version", "path_on_compute"):
                if getattr(self, key) is not None:
                    raise FieldIssue(key, f"{_a(self.type)} output is a control value; it has no {key}")
        if self.mode is not None and self.mode not in OUTPUT_MODES:
            why = " is an input mode;" if self.mode in MLTABLE_INPUT_MODES else " is not allowed;"
            raise FieldIssue("mode", f"mode {self.mode!r}{why} an output allows {', '.join(OUTPUT_MODES)}")
        if self.name is not None:
            try:
                ASSET_NAME.check(self.name)
            except ValueError as exc:
                raise FieldIssue("name", str(exc)) from None
        if self.version is not None:
            if self.name is None:
                raise FieldIssue("version", "a version was given without a name; give both or neither")
            try:
                ASSET_VERSION.check(self.version)
            except ValueError as exc:
                raise FieldIssue("version", str(exc)) from None
        return self

    @property
    def effective_mode(self) -> str | None:
        """The mode a runner uses: the given one, else ``rw_mount``; None for control outputs."""
        if self.type in PRIMITIVE_TYPES:
            return None
        return self.mode or DEFAULT_OUTPUT_MODE


# --- job input / output values ---------------------------------------------------------------


def _value_kind(value: Any) -> str | None:
    if isinstance(value, Input | Mapping):
        return "input"
    if isinstance(value, bool | int | float | str):
        return "literal"
    return None


JobInputValue = Annotated[
    Annotated[LiteralValue, Tag("literal")] | Annotated[Input, Tag("input")],
    Discriminator(
        _value_kind,
        custom_error_type="job_input",
        custom_error_message="must be a literal (string, number, boolean) or an input mapping {type, path, mode}",
    ),
]
"""One job input: a literal, or an :class:`Input`."""


def _null_is_unset(value: Any) -> Any:
    return {} if value is None else value


JobInputs = Annotated[dict[str, JobInputValue | None], BeforeValidator(_null_is_unset)]
"""``inputs:``; a null value is an input left unset (its ``$[[…]]`` fragments are dropped)."""

JobOutputs = Annotated[dict[str, Output | None], BeforeValidator(_null_is_unset)]
"""``outputs:``; a null value (``out:`` or ``out: ~``) is a default ``uri_folder`` output."""


def output_or_default(value: Output | None) -> Output:
    """The output a runner materialises: a null output is a default ``uri_folder``."""
    return value if value is not None else Output()


def input_value(value: Any) -> Any:
    """The value behind a job input: the literal, an Input's path, or a typed literal's default."""
    if isinstance(value, Input):
        return value.default if value.is_literal else value.path
    return value
