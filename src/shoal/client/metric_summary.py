"""A summary of a job's metric history: per metric, last, min, max, count and the best step.

The goal of a metric decides which end is "best": ``minimize`` when its name contains ``loss``
or ``error`` (any case), else ``maximize``; a caller's ``goal`` overrides it for every metric.
Non-finite values (NaN, infinities) count as points but never as min, max or best.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shoal.errors import UserError

GOALS = ("maximize", "minimize")
MINIMIZE_WORDS = ("loss", "error")


def default_goal(metric: str) -> str:
    """``minimize`` for loss-like and error-like names, else ``maximize``."""
    lowered = metric.lower()
    return "minimize" if any(word in lowered for word in MINIMIZE_WORDS) else "maximize"


def iso_time(timestamp_ms: Any) -> Any:
    """Epoch milliseconds as ISO-8601 UTC (``2024-05-01T12:00:00.123+00:00``); other values as given."""
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int | float):
        return timestamp_ms
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def summarize(rows: Iterable[dict[str, Any]], goal: str | None = None) -> list[dict[str, Any]]:
    """One row per metric name (in first-seen order) from ``get_metrics`` rows (ordered by step):

    ``{"name", "count", "last", "last_step", "min", "min_step", "max", "max_step", "goal", "best",
    "best_step", "last_time"}``; min/max/best are None when no value was finite."""
    if goal is not None and goal not in GOALS:
        raise UserError(f"--goal must be one of {', '.join(GOALS)}, got {goal!r}")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(str(row["name"]), []).append(row)
    out: list[dict[str, Any]] = []
    for name, points in by_name.items():
        finite = [p for p in points if _finite(p["value"])]
        low = min(finite, key=lambda p: float(p["value"]), default=None)
        high = max(finite, key=lambda p: float(p["value"]), default=None)
        metric_goal = goal or default_goal(name)
        best = low if metric_goal == "minimize" else high
        last = points[-1]
        out.append(
            {
                "name": name,
                "count": len(points),
                "last": last["value"],
                "last_step": last.get("step"),
                "min": None if low is None else low["value"],
                "min_step": None if low is None else low.get("step"),
                "max": None if high is None else high["value"],
                "max_step": None if high is None else high.get("step"),
                "goal": metric_goal,
                "best": None if best is None else best["value"],
                "best_step": None if best is None else best.get("step"),
                "last_time": iso_time(last.get("timestamp")),
            }
        )
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
