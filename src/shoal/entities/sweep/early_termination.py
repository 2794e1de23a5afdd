"""Early termination policies (``early_termination:``): bandit, median stopping and truncation
selection, as declarations; applying them is ``shoal.services.jobs.early_termination``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Discriminator, Field, Tag, TypeAdapter, ValidationError, model_validator

from shoal.entities.base import ShoalModel
from shoal.entities.sweep.fields import Integer, Number, lower, spec_error_at
from shoal.entities.validation import FieldIssue


class EarlyTerminationPolicy(ShoalModel):
    """Applied at every multiple of ``evaluation_interval`` (0 means 1, the SDK's default) that is
    at least ``delay_evaluation``, counted in reports of the primary metric."""

    type: str
    evaluation_interval: Integer = Field(1, ge=0)
    delay_evaluation: Integer = Field(0, ge=0)

    @property
    def interval(self) -> int:
        return max(1, self.evaluation_interval)


class BanditPolicy(EarlyTerminationPolicy):
    """Cancel a trial that falls outside the slack of the best trial (``slack_factor`` is a ratio,
    ``slack_amount`` an absolute distance; exactly one of them)."""

    type: Literal["bandit"] = "bandit"
    slack_factor: Number | None = Field(None, ge=0)
    slack_amount: Number | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_slack(self) -> Self:
        if (self.slack_factor is None) == (self.slack_amount is None):
            given = "both were given" if self.slack_factor is not None else "neither was given"
            raise FieldIssue(
                "slack_factor", f"a bandit policy needs exactly one of slack_factor or slack_amount; {given}"
            )
        return self


class MedianStoppingPolicy(EarlyTerminationPolicy):
    """Cancel a trial whose best value is worse than the median of the other trials' running averages."""

    type: Literal["median_stopping"] = "median_stopping"


class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """Cancel the lowest ``truncation_percentage`` % of the trials at each evaluation interval."""

    type: Literal["truncation_selection"] = "truncation_selection"
    truncation_percentage: Integer = Field(ge=1, le=99)


POLICY_TYPES: dict[str, type[EarlyTerminationPolicy]] = {
    "bandit": BanditPolicy,
    "median_stopping": MedianStoppingPolicy,
    "truncation_selection": TruncationSelectionPolicy,
}


def _policy(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    data = dict(value)
    type_name = lower(data.get("type"))
    allowed = ", ".join(POLICY_TYPES)
    if type_name is None:
        raise FieldIssue("type", f"an early termination policy needs a type; one of: {allowed}", missing=True)
    if type_name not in POLICY_TYPES:
        raise FieldIssue("type", f"unknown early termination policy {type_name!r}; allowed: {allowed}")
    data["type"] = type_name
    return data


def _policy_kind(value: Any) -> str | None:
    type_name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return type_name if type_name in POLICY_TYPES else None


Policy = Annotated[
    Annotated[BanditPolicy, Tag("bandit")]
    | Annotated[MedianStoppingPolicy, Tag("median_stopping")]
    | Annotated[TruncationSelectionPolicy, Tag("truncation_selection")],
    Discriminator(_policy_kind),
    BeforeValidator(_policy),
]
"""``early_termination:``."""

_POLICY: TypeAdapter[Any] = TypeAdapter(Policy)


def parse_early_termination(data: Any) -> BanditPolicy | MedianStoppingPolicy | TruncationSelectionPolicy | None:
    if data is None:
        return None
    try:
        return _POLICY.validate_python(data)
    except ValidationError as exc:
        raise spec_error_at(exc, data, "early_termination") from None
