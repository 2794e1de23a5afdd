"""The search space (``search_space:``): Azure's ten parameter expressions (``Choice``,
``Uniform``, …, with the SDK's positional arguments), nested choice sub-spaces, and parsing.

Nested choice (Azure's recursive search space): a ``choice`` value may be a dict of name → literal
or expression, so one value picks a sub-space, e.g. ``{type: choice, values: [{kernel: rbf,
gamma: {type: uniform, ...}}, {kernel: linear}]}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Discriminator, Field, Tag, TypeAdapter, ValidationError, model_validator

from shoal.entities.base import ShoalModel
from shoal.entities.sweep.fields import Integer, Number, lower, spec_error_at
from shoal.entities.validation import FieldIssue, single_issue


def _scalar(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    if not isinstance(value, int | float | str | bool):
        raise ValueError(
            f"a choice value is a number, a string or a sub-space (a mapping of name → value), got {value!r}"
        )
    return value


Scalar = Annotated[int | float | str | bool, BeforeValidator(_scalar)]
"""A literal a choice may offer (Azure: int, float, str; bool for SDK dicts such as ``{"a": True}``)."""


class _Positional(ShoalModel):
    """Lets SDK classes take Azure's positional arguments: ``Uniform(0.1, 0.5)``, ``Randint(10)``."""

    POSITIONAL: ClassVar[tuple[str, ...]] = ()

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if len(args) > len(self.POSITIONAL):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.POSITIONAL)} positional arguments")
        for name, value in zip(self.POSITIONAL, args, strict=False):
            if name in data:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            data[name] = value
        super().__init__(**data)

    # Validation of nested data must not come through here (see ShoalModel.__init__).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class SweepDistribution(_Positional):
    """Base of the ten parameter expressions; ``type`` is the YAML discriminator."""

    type: str

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Choice(SweepDistribution):
    """One of ``values``; a dict value is a sub-space (name → literal or expression)."""

    POSITIONAL = ("values",)
    type: Literal["choice"] = "choice"
    values: list[ChoiceValue]

    @model_validator(mode="before")
    @classmethod
    def _values_as_list(cls, data: Any) -> Any:
        # Azure's SDK takes any iterable (``Choice(values=range(1, 5))``).
        if isinstance(data, dict) and isinstance(data.get("values"), range | tuple):
            data = {**data, "values": list(data["values"])}
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.values:
            raise FieldIssue("values", "a choice needs at least one value")
        for i, value in enumerate(self.values):
            if isinstance(value, dict) and not value:
                raise FieldIssue(f"values[{i}]", "a nested choice value (a sub-space) cannot be empty")
        return self

    @property
    def nested(self) -> bool:
        """Whether some value is a sub-space (a dict)."""
        return any(isinstance(v, dict) for v in self.values)


class Randint(SweepDistribution):
    """An integer in ``[0, upper)``."""

    POSITIONAL = ("upper",)
    type: Literal["randint"] = "randint"
    upper: Integer = Field(gt=0)


class _Range(SweepDistribution):
    POSITIONAL = ("min_value", "max_value")
    min_value: Number
    max_value: Number

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_value >= self.max_value:
            raise FieldIssue(
                "max_value", f"max_value ({self.max_value}) must be greater than min_value ({self.min_value})"
            )
        return self


class Uniform(_Range):
    """``U(min_value, max_value)``."""

    type: Literal["uniform"] = "uniform"


class LogUniform(_Range):
    """``exp(U(min_value, max_value))``: the bounds are logarithms, so the values lie in [e^min, e^max]."""

    type: Literal["loguniform"] = "loguniform"


class QUniform(_Range):
    """``round(U(min_value, max_value) / q) * q``."""

    POSITIONAL = ("min_value", "max_value", "q")
    type: Literal["quniform"] = "quniform"
    q: Number = Field(gt=0)


class QLogUniform(_Range):
    """``round(exp(U(min_value, max_value)) / q) * q``."""

    POSITIONAL = ("min_value", "max_value", "q")
    type: Literal["qloguniform"] = "qloguniform"
    q: Number = Field(gt=0)


class _Gaussian(SweepDistribution):
    POSITIONAL = ("mu", "sigma")
    mu: Number
    sigma: Number = Field(gt=0)


class Normal(_Gaussian):
    """``N(mu, sigma)``."""

    type: Literal["normal"] = "normal"


class LogNormal(_Gaussian):
    """``exp(N(mu, sigma))``."""

    type: Literal["lognormal"] = "lognormal"


class QNormal(_Gaussian):
    """``round(N(mu, sigma) / q) * q``."""

    POSITIONAL = ("mu", "sigma", "q")
    type: Literal["qnormal"] = "qnormal"
    q: Number = Field(gt=0)


class QLogNormal(_Gaussian):
    """``round(exp(N(mu, sigma)) / q) * q``."""

    POSITIONAL = ("mu", "sigma", "q")
    type: Literal["qlognormal"] = "qlognormal"
    q: Number = Field(gt=0)


DISTRIBUTION_TYPES: dict[str, type[SweepDistribution]] = {
    "choice": Choice,
    "randint": Randint,
    "uniform": Uniform,
    "loguniform": LogUniform,
    "quniform": QUniform,
    "qloguniform": QLogUniform,
    "normal": Normal,
    "lognormal": LogNormal,
    "qnormal": QNormal,
    "qlognormal": QLogNormal,
}


def _expression(value: Any) -> Any:
    if not isinstance(value, Mapping):
        if isinstance(value, SweepDistribution):
            return value
        raise ValueError(f"a search space expression is a mapping with a 'type', got {value!r}")
    data = dict(value)
    type_name = lower(data.get("type"))
    allowed = ", ".join(DISTRIBUTION_TYPES)
    if type_name is None:
        raise FieldIssue("type", f"a search space expression needs a type; one of: {allowed}", missing=True)
    if type_name not in DISTRIBUTION_TYPES:
        raise FieldIssue("type", f"unknown search space type {type_name!r}; allowed types: {allowed}")
    data["type"] = type_name
    return data


def _expression_kind(value: Any) -> str | None:
    type_name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return type_name if type_name in DISTRIBUTION_TYPES else None


Distribution = Annotated[
    Annotated[Choice, Tag("choice")]
    | Annotated[Randint, Tag("randint")]
    | Annotated[Uniform, Tag("uniform")]
    | Annotated[LogUniform, Tag("loguniform")]
    | Annotated[QUniform, Tag("quniform")]
    | Annotated[QLogUniform, Tag("qloguniform")]
    | Annotated[Normal, Tag("normal")]
    | Annotated[LogNormal, Tag("lognormal")]
    | Annotated[QNormal, Tag("qnormal")]
    | Annotated[QLogNormal, Tag("qlognormal")],
    Discriminator(_expression_kind),
    BeforeValidator(_expression),
]
"""A parameter expression: the YAML mapping or an SDK instance."""


def _entry_kind(value: Any) -> str:
    # Inside a sub-space, a mapping is an expression (Azure's ChoiceSchema: expressions or literals).
    return "expression" if isinstance(value, Mapping | SweepDistribution) else "literal"


def _value_kind(value: Any) -> str:
    return "sub_space" if isinstance(value, Mapping) else "literal"


def _sub_space(value: Any) -> Any:
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"sub-space names are strings, got {key!r}")
    return value


SubSpaceEntry = Annotated[
    Annotated[Distribution, Tag("expression")] | Annotated[Scalar, Tag("literal")], Discriminator(_entry_kind)
]
ChoiceValue = Annotated[
    Annotated[dict[str, SubSpaceEntry], Tag("sub_space")] | Annotated[Scalar, Tag("literal")],
    Discriminator(_value_kind),
    BeforeValidator(_sub_space),
]

Choice.model_rebuild()

SEARCH_SPACE: TypeAdapter[dict[str, Distribution]] = TypeAdapter(dict[str, Distribution])


def parse_search_space(data: Any) -> dict[str, SweepDistribution]:
    """``search_space:`` → name → expression; a SpecError names ``search_space.<name>.<field>``."""
    if not isinstance(data, Mapping) or not data:
        raise single_issue("search_space", "a non-empty mapping of name → expression is needed")
    try:
        return SEARCH_SPACE.validate_python(dict(data))
    except ValidationError as exc:
        raise spec_error_at(exc, data, "search_space") from None


def iter_expressions(space: Mapping[str, Any], prefix: str = "search_space") -> Iterator[tuple[str, SweepDistribution]]:
    """Every expression with its path, nested choice sub-spaces included (``p.values[1].gamma``)."""
    for name, dist in space.items():
        path = f"{prefix}.{name}"
        yield path, dist
        if isinstance(dist, Choice):
            for i, value in enumerate(dist.values):
                if isinstance(value, dict):
                    sub = {k: v for k, v in value.items() if isinstance(v, SweepDistribution)}
                    yield from iter_expressions(sub, f"{path}.values[{i}]")
