"""Job schedules (``_schema/schedule/``): a trigger (cron or recurrence) and the job it creates.

``create_job`` is a job spec (a dict or a job entity, inlined by the loader or the SDK from
``./job.yml``), ``azureml:<job name>`` (an existing job's spec, copied by the server), or
``{job: azureml:<job name>, settings/inputs/outputs/tags…}`` (that job with overrides).
The server computes fire times (``services/schedules/timing.py``) and starts the jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from shoal.entities.base import Entity, ShoalModel
from shoal.entities.names import JOB_NAME
from shoal.entities.time_zones import UTC_NAME, zone_info
from shoal.entities.validation import FieldIssue, StrDict

WEEK_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FREQUENCIES = ("minute", "hour", "day", "week", "month")
JOB_TYPES = ("command", "pipeline", "sweep")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, int | str) and not isinstance(value, bool) else value


def _check_range(values: list[int], low: int, high: int, what: str) -> list[int]:
    for value in values:
        if not low <= value <= high:
            raise ValueError(f"{what} must be between {low} and {high}, got {value}")
    return sorted(set(values))


def _iso(value: Any) -> Any:
    """``datetime`` → ISO 8601 text; text is checked to parse (Azure's form: no UTC offset)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date and time such as 2022-07-10T10:00:00") from None
    return value


class RecurrencePattern(ShoalModel):
    """When in a day, week or month a recurrence fires (``RecurrencePattern`` in azure-ai-ml)."""

    hours: list[int]
    minutes: list[int]
    week_days: list[str] | None = None
    month_days: list[int] | None = None

    @field_validator("hours", "minutes", "week_days", "month_days", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[int]) -> list[int]:
        return _check_range(value, 0, 23, "hours")

    @field_validator("minutes")
    @classmethod
    def _minutes(cls, value: list[int]) -> list[int]:
        return _check_range(value, 0, 59, "minutes")

    @field_validator("month_days")
    @classmethod
    def _month_days(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else _check_range(value, 1, 31, "month_days")

    @field_validator("week_days")
    @classmethod
    def _week_days(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        days = [str(day).strip().lower() for day in value]
        for day in days:
            if day not in WEEK_DAYS:
                raise ValueError(f"week_days: {day!r} is not a day; use {', '.join(WEEK_DAYS)}")
        return sorted(set(days), key=WEEK_DAYS.index)


class TriggerBase(ShoalModel):
    """``start_time``/``end_time`` are wall-clock times in ``time_zone`` (Azure: no UTC offset)."""

    type: str
    start_time: str | None = None
    end_time: str | None = None
    time_zone: str = UTC_NAME

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return _iso(value)

    @field_validator("time_zone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> Any:
        value = getattr(value, "value", value)
        if value is None:
            return UTC_NAME
        if isinstance(value, str):
            zone_info(value)  # unknown names are refused here, naming the field
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start_time and self.end_time:
            start, end = datetime.fromisoformat(self.start_time), datetime.fromisoformat(self.end_time)
            if (start.tzinfo is None) == (end.tzinfo is None) and end <= start:
                raise FieldIssue("end_time", f"end_time {self.end_time} is not after start_time {self.start_time}")
        return self


class CronTrigger(TriggerBase):
    """A five-field cron expression (minute hour day-of-month month day-of-week), as Azure's."""

    type: Literal["cron"] = "cron"
    expression: str

    @field_validator("expression")
    @classmethod
    def _expression(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(
                f"cron expression {value!r} has {len(fields)} fields; Azure ML takes 5: "
                "minute hour day-of-month month day-of-week (for example '0 * * * *')"
            )
        if not croniter.is_valid(value):
            raise ValueError(f"cron expression {value!r} is not valid")
        return " ".join(fields)


class RecurrenceTrigger(TriggerBase):
    """Every ``interval`` ``frequency`` units from ``start_time``, or at ``schedule``'s times."""

    type: Literal["recurrence"] = "recurrence"
    frequency: Literal["minute", "hour", "day", "week", "month"]
    interval: int = Field(ge=1)
    schedule: RecurrencePattern | None = None

    @field_validator("frequency", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _pattern_fits(self) -> Self:
        pattern = self.schedule
        if pattern is None:
            return self
        if self.frequency in ("minute", "hour"):
            raise FieldIssue(
                "schedule", f"a recurrence pattern (schedule) needs frequency day, week or month, not {self.frequency}"
            )
        if pattern.week_days and self.frequency != "week":
            raise FieldIssue("schedule.week_days", "week_days need frequency: week")
        if pattern.month_days and self.frequency != "month":
            raise FieldIssue("schedule.month_days", "month_days need frequency: month")
        return self


Trigger = Annotated[CronTrigger | RecurrenceTrigger, Field(discriminator="type")]


class Schedule(Entity):
    """Fields of every schedule; the server fills the read-only ones."""

    KIND: ClassVar[str] = "schedule"
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Entity.READ_ONLY_FIELDS + (
        "is_enabled",
        "provisioning_state",
        "next_fire_time",
        "last_fire_time",
        "last_job_name",
        "last_error",
    )

    name: str  # type: ignore[assignment]
    display_name: str | None = None
    properties: StrDict = Field(default_factory=dict)
    trigger: Trigger
    # read-only: Azure's, then Shoal's (when the server starts the next job, and what the last did)
    is_enabled: bool = True
    provisioning_state: str | None = None
    next_fire_time: str | None = None
    last_fire_time: str | None = None
    last_job_name: str | None = None
    last_error: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return JOB_NAME.check(value)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.id is not None:  # a stored schedule always says whether it is enabled
            out["is_enabled"] = self.is_enabled
        return out

    @field_validator("trigger", mode="before")
    @classmethod
    def _trigger(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "type" not in value:
            return {**value, "type": "recurrence" if "frequency" in value else "cron"}
        return value


class JobSchedule(Schedule):
    """``JobSchedule(name=…, trigger=CronTrigger(…), create_job=pipeline_job)``."""

    create_job: str | dict[str, Any]

    @field_validator("create_job", mode="before")
    @classmethod
    def _create_job(cls, value: Any) -> Any:
        if isinstance(value, Entity):  # a job built with the SDK
            value = value.to_dict()
        if isinstance(value, Mapping):
            value = dict(value)
            if "job" not in value:  # an inline job spec
                job_type = value.get("type", "command")
                if job_type not in JOB_TYPES:
                    raise ValueError(f"create_job: a {job_type!r} job cannot be scheduled; use {', '.join(JOB_TYPES)}")
            elif not isinstance(value["job"], str):
                raise ValueError("create_job.job must name a job (azureml:<job name>) or a job YAML file")
        elif isinstance(value, str) and not value.strip():
            raise ValueError("create_job is empty: give a job YAML file, azureml:<job name> or a job spec")
        return value
