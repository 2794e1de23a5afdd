"""Sampling algorithms (``sampling_algorithm:``): random (with its seed, Sobol rule and log
base), grid and bayesian, as declarations; the sampling itself is in
``shoal.services.jobs.sweep_sampling``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Discriminator, Tag, TypeAdapter, ValidationError, field_validator, model_validator

from shoal.entities.base import ShoalModel
from shoal.entities.sweep.fields import Integer, Number, lower, spec_error_at
from shoal.entities.validation import FieldIssue


class RandomSamplingAlgorithm(ShoalModel):
    """``random``: independent draws (``rule: random``) or a scrambled Sobol sequence (``sobol``).

    ``logbase`` is the base of the log-distributions (a positive number or ``"e"``, the default)."""

    type: Literal["random"] = "random"
    seed: Integer | None = None
    rule: Literal["random", "sobol"] | None = None
    logbase: Number | Literal["e"] | None = None

    @field_validator("rule", mode="before")
    @classmethod
    def _lower_rule(cls, value: Any) -> Any:
        return lower(value)

    @model_validator(mode="after")
    def _base(self) -> Self:
        if isinstance(self.logbase, int | float) and (self.logbase <= 0 or self.logbase == 1):
            raise FieldIssue("logbase", "logbase must be a positive number other than 1, or 'e'")
        return self

    @property
    def base(self) -> float:
        return math.e if self.logbase in (None, "e") else float(self.logbase)


class GridSamplingAlgorithm(ShoalModel):
    """``grid``: every combination of an all-``choice`` space, once each."""

    type: Literal["grid"] = "grid"


class BayesianSamplingAlgorithm(ShoalModel):
    """``bayesian``: each trial chosen from the results of the earlier ones."""

    type: Literal["bayesian"] = "bayesian"


SAMPLING_TYPES: dict[str, type[ShoalModel]] = {
    "random": RandomSamplingAlgorithm,
    "grid": GridSamplingAlgorithm,
    "bayesian": BayesianSamplingAlgorithm,
}
RANDOM_ONLY = ("seed", "rule", "logbase")


def _sampling(value: Any) -> Any:
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        return value
    data = dict(value)
    type_name = lower(data.get("type"))
    allowed = ", ".join(SAMPLING_TYPES)
    if type_name is None:
        raise FieldIssue("type", f"a sampling algorithm needs a type; one of: {allowed}", missing=True)
    if type_name not in SAMPLING_TYPES:
        raise FieldIssue("type", f"unknown sampling algorithm {type_name!r}; allowed: {allowed}")
    if type_name != "random":
        for key in RANDOM_ONLY:
            if data.get(key) is not None:
                what = "the sobol rule" if key == "rule" and lower(data[key]) == "sobol" else f"{key!r}"
                raise FieldIssue(key, f"{what} applies only to random sampling, not to {type_name}")
    data["type"] = type_name
    return data


def _sampling_kind(value: Any) -> str | None:
    type_name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return type_name if type_name in SAMPLING_TYPES else None


SamplingAlgorithm = Annotated[
    Annotated[RandomSamplingAlgorithm, Tag("random")]
    | Annotated[GridSamplingAlgorithm, Tag("grid")]
    | Annotated[BayesianSamplingAlgorithm, Tag("bayesian")],
    Discriminator(_sampling_kind),
    BeforeValidator(_sampling),
]
"""``sampling_algorithm:``: a name (``random``) or a mapping (``{type: random, seed: 1, rule: sobol}``)."""

_SAMPLING: TypeAdapter[Any] = TypeAdapter(SamplingAlgorithm)


def parse_sampling_algorithm(data: Any) -> RandomSamplingAlgorithm | GridSamplingAlgorithm | BayesianSamplingAlgorithm:
    try:
        return _SAMPLING.validate_python(data)
    except ValidationError as exc:
        raise spec_error_at(exc, data, "sampling_algorithm") from None
