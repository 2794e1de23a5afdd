"""The sweep's ``objective:`` (goal and primary metric) and ``limits:`` (trial counts and
timeouts, with Azure's defaults)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from shoal.entities.base import ShoalModel
from shoal.entities.sweep.fields import Integer, lower


class Objective(ShoalModel):
    """``objective: {goal, primary_metric}``; the goal is case-insensitive (the SDK's ``"Maximize"``)."""

    goal: Literal["maximize", "minimize"]
    primary_metric: str = Field(min_length=1)

    def __init__(self, goal: str | None = None, primary_metric: str | None = None, **kwargs: Any) -> None:
        # azure-ai-ml's Objective takes both positionally: Objective("maximize", "accuracy").
        given = {"goal": goal, "primary_metric": primary_metric}
        super().__init__(**{k: v for k, v in given.items() if v is not None}, **kwargs)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @field_validator("goal", mode="before")
    @classmethod
    def _lower_goal(cls, value: Any) -> Any:
        return lower(value)


DEFAULT_MAX_TOTAL_TRIALS = 1000
DEFAULT_TIMEOUT = 5_184_000  # 60 days, Azure's documented default


class SweepJobLimits(ShoalModel):
    """``limits:``; unset fields keep their Azure defaults through the ``effective_*`` properties."""

    max_total_trials: Integer | None = Field(None, ge=1, le=1000)
    max_concurrent_trials: Integer | None = Field(None, ge=1, le=1000)
    timeout: Integer | None = Field(None, gt=0, description="seconds, the whole sweep")
    trial_timeout: Integer | None = Field(None, gt=0, description="seconds, each trial")

    @property
    def effective_max_total_trials(self) -> int:
        return self.max_total_trials or DEFAULT_MAX_TOTAL_TRIALS

    @property
    def effective_max_concurrent_trials(self) -> int:
        return self.max_concurrent_trials or self.effective_max_total_trials

    @property
    def effective_timeout(self) -> int:
        return self.timeout or DEFAULT_TIMEOUT
