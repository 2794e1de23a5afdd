"""Early termination of sweep trials (bandit, median stopping, truncation selection), as pure
functions of the primary metric the trials reported.

The sweep controller calls :func:`should_terminate` with every trial's whole history each tick, so
a restarted server reaches the same decisions. A trial is judged at its latest evaluation interval
against the others at the same interval; the reason names the policy and the values compared.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.entities.sweep.early_termination import (
    BanditPolicy,
    MedianStoppingPolicy,
    TruncationSelectionPolicy,
    parse_early_termination,
)


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _series(points: Sequence[tuple[int, float]]) -> list[float]:
    """The values in reporting order (by step; equal steps keep their order), NaN and inf dropped.

    One report is one interval (Azure: "each time the training script logs the primary metric")."""
    ordered = sorted(enumerate(points), key=lambda p: (p[1][0], p[0]))
    return [float(v) for _, (_, v) in ordered if _finite(v)]


def _better(a: float, b: float, goal: str) -> bool:
    return a > b if goal == "maximize" else a < b


def _best(values: Sequence[float], goal: str) -> float:
    return max(values) if goal == "maximize" else min(values)


def primary_value(points: Sequence[tuple[int, float]], goal: str, how: str = "last") -> float | None:
    """A trial's objective from its primary metric's points: the last reported value, or the best."""
    values = _series(points)
    if not values:
        return None
    if how == "last":
        return values[-1]
    if how == "best":
        return _best(values, goal.lower())
    raise ValueError(f"how must be 'last' or 'best', not {how!r}")


def _g(x: float) -> str:
    return f"{x:.6g}"


def _bandit(policy: BanditPolicy, goal: str, trial: str, k: int, series: dict[str, list[float]]) -> tuple[bool, str]:
    bests = {name: _best(s[:k], goal) for name, s in series.items() if len(s) >= k}
    mine = bests[trial]
    leader = min(bests, key=lambda n: (-bests[n] if goal == "maximize" else bests[n], n))
    best = bests[leader]
    if leader == trial or mine == best:
        return False, ""
    sign = 1 if goal == "maximize" else -1
    if policy.slack_factor is not None:
        s = policy.slack_factor
        if goal == "maximize":
            # best/(1+s) for a positive best; mirrored so a negative best still allows |best|·s/(1+s).
            threshold = best - abs(best) * s / (1 + s)
            formula = f"{_g(best)}/(1+{_g(s)})" if best >= 0 else f"{_g(best)}-|{_g(best)}|*{_g(s)}/(1+{_g(s)})"
        else:
            threshold = best + abs(best) * s
            formula = f"{_g(best)}*(1+{_g(s)})" if best >= 0 else f"{_g(best)}+|{_g(best)}|*{_g(s)}"
    else:
        a = policy.slack_amount or 0
        threshold = best - sign * a
        formula = f"{_g(best)}{'-' if goal == 'maximize' else '+'}{_g(a)}"
    if not _better(threshold, mine, goal):
        return False, ""
    side = "below" if goal == "maximize" else "above"
    return True, (
        f"bandit: {_g(mine)} at interval {k} is {side} {formula}={_g(threshold)} "
        f"(the best trial, {leader}, had {_g(best)})"
    )


def _median(goal: str, trial: str, k: int, series: dict[str, list[float]]) -> tuple[bool, str]:
    averages = [statistics.fmean(s[:k]) for name, s in series.items() if name != trial and len(s) >= k]
    if not averages:
        return False, ""
    median = statistics.median(averages)
    mine = _best(series[trial][:k], goal)
    if not _better(median, mine, goal):
        return False, ""
    side = "below" if goal == "maximize" else "above"
    return True, (
        f"median_stopping: best {_g(mine)} at interval {k} is {side} the median {_g(median)} "
        f"of {len(averages)} other trials' running averages"
    )


def _truncation(
    policy: TruncationSelectionPolicy, goal: str, trial: str, k: int, series: dict[str, list[float]]
) -> tuple[bool, str]:
    at_k = {name: s[k - 1] for name, s in series.items() if len(s) >= k}
    cut = len(at_k) * policy.truncation_percentage // 100
    if cut == 0:
        return False, ""
    worst_first = sorted(at_k.values(), reverse=goal == "minimize")
    survivor = worst_first[cut]  # ties with the first survivor survive too
    mine = at_k[trial]
    if not _better(survivor, mine, goal):
        return False, ""
    return True, (
        f"truncation_selection: {_g(mine)} at interval {k} is in the lowest {policy.truncation_percentage}% "
        f"of {len(at_k)} trials (cut-off {_g(survivor)})"
    )


def should_terminate(
    policy: Any, goal: str, *, trial: str, histories: Mapping[str, Sequence[tuple[int, float]]]
) -> tuple[bool, str]:
    """Whether ``trial`` should be canceled now, and why (the policy and the values compared).

    ``histories`` holds the primary metric's ``(step, value)`` points of every trial of the sweep
    (``trial`` included). The trial is judged at its latest evaluation interval: the largest
    multiple of ``evaluation_interval`` it has reached, if that is ≥ ``delay_evaluation``; the
    others are compared at the same interval, those that have not reached it left out."""
    policy = parse_early_termination(policy) if isinstance(policy, Mapping) else policy
    if policy is None or trial not in histories:
        return False, ""
    goal = goal.lower()
    series = {name: _series(points) for name, points in histories.items()}
    k = len(series[trial]) // policy.interval * policy.interval
    if k == 0 or k < policy.delay_evaluation:
        return False, ""
    if isinstance(policy, BanditPolicy):
        return _bandit(policy, goal, trial, k, series)
    if isinstance(policy, MedianStoppingPolicy):
        return _median(goal, trial, k, series)
    if isinstance(policy, TruncationSelectionPolicy):
        return _truncation(policy, goal, trial, k, series)
    raise ValueError(f"unknown early termination policy {policy!r}")
