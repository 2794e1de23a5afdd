"""When a trigger fires next (pure): cron expressions through croniter, recurrences by their
calendar rules, both in the trigger's time zone (so "0 9 * * *" in "Pacific Standard Time" is
9:00 in Los Angeles across daylight-saving changes), returned in UTC.

Azure's rules: ``start_time``/``end_time`` are wall-clock times in ``time_zone`` (an offset, if
given, wins); no fire before ``start_time`` (default: when the schedule was created) or after
``end_time``. A recurrence without a pattern fires at ``start_time`` and every ``interval``
minutes/hours/days/weeks/months after it; with a pattern (``schedule``) it fires at each of the
pattern's hours × minutes on the days the pattern names (every day, ``week_days``, ``month_days``),
in every ``interval``-th day, week or month counted from ``start_time``'s.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from dateutil.relativedelta import relativedelta

from shoal.entities.schedule import WEEK_DAYS, CronTrigger, RecurrenceTrigger
from shoal.entities.time_zones import zone_info

# A pattern that can never match (month_days [31] every 12 months from February) ends the search.
MAX_DAYS_SEARCHED = 366 * 8


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value (SQLite hands datetimes back without their zone) is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _local(text: str | None, zone: ZoneInfo) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)


def next_fire(trigger: CronTrigger | RecurrenceTrigger, after: datetime, *, created: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (UTC), or None when the trigger has ended."""
    zone = zone_info(trigger.time_zone)
    start = _local(trigger.start_time, zone) or as_utc(created).astimezone(zone)
    end = _local(trigger.end_time, zone)
    after_local = as_utc(after).astimezone(zone)
    if isinstance(trigger, CronTrigger):
        # croniter's get_next is strictly after its base; a fire exactly at start_time counts.
        base = max(after_local, start - timedelta(microseconds=1))
        found = croniter(trigger.expression, base).get_next(datetime)
    else:
        found = _next_recurrence(trigger, start, after_local)
    if found is None or (end is not None and found > end):
        return None
    return as_utc(found)


def _wall(zone: Any, day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)


def _next_recurrence(trigger: RecurrenceTrigger, start: datetime, after: datetime) -> datetime | None:
    if trigger.schedule is None:
        return _next_plain(trigger, start, after)
    pattern = trigger.schedule
    zone = start.tzinfo
    times = sorted((h, m) for h in pattern.hours for m in pattern.minutes)
    first = max(start, after).date()
    for offset in range(MAX_DAYS_SEARCHED):
        day = first + timedelta(days=offset)
        if not _day_matches(trigger, start.date(), day):
            continue
        for hour, minute in times:
            moment = _wall(zone, day, hour, minute)
            if moment > after and moment >= start:
                return moment
    return None


def _day_matches(trigger: RecurrenceTrigger, start: date, day: date) -> bool:
    pattern = trigger.schedule
    assert pattern is not None
    if trigger.frequency == "day":
        return (day - start).days % trigger.interval == 0
    if trigger.frequency == "week":
        weeks = ((day - timedelta(days=day.weekday())) - (start - timedelta(days=start.weekday()))).days // 7
        days = pattern.week_days or [WEEK_DAYS[start.weekday()]]
        return weeks % trigger.interval == 0 and WEEK_DAYS[day.weekday()] in days
    months = (day.year - start.year) * 12 + day.month - start.month
    return months % trigger.interval == 0 and day.day in (pattern.month_days or [start.day])


def _next_plain(trigger: RecurrenceTrigger, start: datetime, after: datetime) -> datetime:
    """``start`` + k × interval × frequency for the first k landing after ``after``; days, weeks
    and months step in wall-clock time (9:00 stays 9:00 across daylight saving)."""
    if after < start:
        return start
    if trigger.frequency in ("minute", "hour"):
        step = (
            timedelta(minutes=trigger.interval) if trigger.frequency == "minute" else timedelta(hours=trigger.interval)
        )
        elapsed = as_utc(after) - as_utc(start)
        count = elapsed // step + 1
        return (as_utc(start) + count * step).astimezone(start.tzinfo)
    if trigger.frequency in ("day", "week"):
        days = trigger.interval * (7 if trigger.frequency == "week" else 1)
        count = (after.replace(tzinfo=None) - start.replace(tzinfo=None)).days // days
        unit = relativedelta(days=days)
    else:
        count = ((after.year - start.year) * 12 + after.month - start.month) // trigger.interval
        unit = relativedelta(months=trigger.interval)
    count = max(count - 1, 0)
    naive = start.replace(tzinfo=None)
    while True:  # at most two or three steps past the estimate
        moment = (naive + unit * count).replace(tzinfo=start.tzinfo)
        if moment > after:
            return moment
        count += 1
