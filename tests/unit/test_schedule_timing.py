"""Fire times of cron and recurrence triggers, in their time zones (pure: no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shoal.entities.schedule import CronTrigger, RecurrencePattern, RecurrenceTrigger
from shoal.errors import SpecError
from shoal.services.schedules.timing import next_fire

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_cron_in_a_windows_time_zone_follows_daylight_saving():
    trigger = CronTrigger(expression="0 9 * * *", time_zone="Pacific Standard Time")
    # 9:00 in Los Angeles is 17:00 UTC in winter (PST) and 16:00 UTC in summer (PDT)
    assert next_fire(trigger, utc(2026, 1, 10, 12, 0), created=CREATED) == utc(2026, 1, 10, 17, 0)
    assert next_fire(trigger, utc(2026, 7, 10, 12, 0), created=CREATED) == utc(2026, 7, 10, 16, 0)
    # strictly after: at the fire time itself, the next one is a day later
    assert next_fire(trigger, utc(2026, 7, 10, 16, 0), created=CREATED) == utc(2026, 7, 11, 16, 0)


def test_cron_respects_start_and_end_time():
    trigger = CronTrigger(expression="0 * * * *", start_time="2026-03-01T10:00:00", end_time="2026-03-01T12:00:00")
    assert next_fire(trigger, utc(2026, 1, 1), created=CREATED) == utc(2026, 3, 1, 10, 0)  # exactly at start
    assert next_fire(trigger, utc(2026, 3, 1, 11, 30), created=CREATED) == utc(2026, 3, 1, 12, 0)
    assert next_fire(trigger, utc(2026, 3, 1, 12, 0), created=CREATED) is None  # ended


def test_plain_recurrence_counts_from_start_time():
    every_15 = RecurrenceTrigger(frequency="minute", interval=15, start_time="2026-03-01T10:05:00")
    assert next_fire(every_15, utc(2026, 1, 1), created=CREATED) == utc(2026, 3, 1, 10, 5)
    assert next_fire(every_15, utc(2026, 3, 1, 10, 5), created=CREATED) == utc(2026, 3, 1, 10, 20)
    assert next_fire(every_15, utc(2026, 3, 1, 13, 7), created=CREATED) == utc(2026, 3, 1, 13, 20)
    monthly = RecurrenceTrigger(frequency="month", interval=1, start_time="2026-01-31T08:00:00")
    assert next_fire(monthly, utc(2026, 2, 1), created=CREATED) == utc(2026, 2, 28, 8, 0)  # clipped to the month
    # wall-clock days: 8:00 in Paris stays 8:00 across the March change
    daily = RecurrenceTrigger(frequency="day", interval=2, start_time="2026-03-27T08:00:00", time_zone="Europe/Paris")
    assert next_fire(daily, utc(2026, 3, 28), created=CREATED) == utc(2026, 3, 29, 6, 0)


def test_recurrence_patterns_as_the_azureml_examples_write_them():
    # recurrence-job-schedule.yml: every day at 4:00, 4:30, 5:00 … 12:30 Pacific time
    daily = RecurrenceTrigger(
        frequency="day",
        interval=1,
        schedule=RecurrencePattern(hours=[4, 5, 10, 11, 12], minutes=[0, 30]),
        start_time="2022-07-10T10:00:00",
        time_zone="Pacific Standard Time",
    )
    assert next_fire(daily, utc(2026, 7, 10, 12, 0), created=CREATED) == utc(2026, 7, 10, 12, 30)  # 5:30 PDT
    assert next_fire(daily, utc(2026, 7, 10, 13, 0), created=CREATED) == utc(2026, 7, 10, 17, 0)  # 10:00 PDT
    assert next_fire(daily, utc(2026, 7, 10, 19, 45), created=CREATED) == utc(2026, 7, 11, 11, 0)  # 4:00 next day
    weekly = RecurrenceTrigger(
        frequency="week",
        interval=2,
        schedule=RecurrencePattern(hours=9, minutes=0, week_days=["Monday", "friday"]),
        start_time="2026-03-02T00:00:00",  # a Monday
    )
    assert next_fire(weekly, utc(2026, 3, 2, 10), created=CREATED) == utc(2026, 3, 6, 9, 0)  # that Friday
    assert next_fire(weekly, utc(2026, 3, 6, 10), created=CREATED) == utc(2026, 3, 16, 9, 0)  # skips a week
    monthly = RecurrenceTrigger(
        frequency="month", interval=1, schedule=RecurrencePattern(hours=6, minutes=15, month_days=[1, 15])
    )
    assert next_fire(monthly, utc(2026, 4, 2), created=CREATED) == utc(2026, 4, 15, 6, 15)


def test_start_defaults_to_creation_time():
    trigger = RecurrenceTrigger(frequency="hour", interval=1)
    assert next_fire(trigger, utc(2026, 1, 1, 5, 30), created=utc(2026, 1, 1, 0, 10)) == utc(2026, 1, 1, 6, 10)


@pytest.mark.parametrize(
    ("trigger", "field", "message"),
    [
        (lambda: CronTrigger(expression="0 * * * * *"), "expression", "Azure ML takes 5"),
        (lambda: CronTrigger(expression="0 25 * * *"), "expression", "not valid"),
        (lambda: CronTrigger(expression="0 * * * *", time_zone="Atlantis"), "time_zone", "unknown time zone"),
        (lambda: RecurrenceTrigger(frequency="fortnight", interval=1), "frequency", "fortnight"),
        (lambda: RecurrenceTrigger(frequency="day", interval=0), "interval", "greater than or equal to 1"),
        (
            lambda: RecurrenceTrigger(frequency="hour", interval=1, schedule={"hours": [1], "minutes": [0]}),
            "schedule",
            "day, week or month",
        ),
        (lambda: RecurrencePattern(hours=[24], minutes=[0]), "hours", "between 0 and 23"),
        (lambda: RecurrencePattern(hours=[1], minutes=[0], week_days=["funday"]), "week_days", "funday"),
        (
            lambda: CronTrigger(expression="0 * * * *", start_time="2026-02-01T00:00:00", end_time="2026-01-01"),
            "end_time",
            "not after start_time",
        ),
        (lambda: CronTrigger(expression="0 * * * *", start_time="next tuesday"), "start_time", "ISO 8601"),
    ],
)
def test_bad_triggers_are_refused_naming_the_field(trigger, field, message):
    with pytest.raises(SpecError) as caught:
        trigger()
    assert field in str(caught.value) and message in str(caught.value)
