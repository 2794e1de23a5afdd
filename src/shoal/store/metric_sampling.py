"""The metric sampling query behind ``metrics/get-history-bulk-interval``: done in the database
with window functions (SQLite and PostgreSQL alike), so a run with millions of points costs the
server ``limit`` rows. What it means is in ``services/tracking/history_sampling.py``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shoal.store.tables import MetricRow


def sampled_points(session: Session, job_id: int, key: str, limit: int, steps: tuple[int, int] | None) -> list[Any]:
    """One run's points of one metric cut into ``limit`` near-equal buckets (``NTILE``), the first
    point of each, and the run's last point always (replacing the last sample when full)."""
    filters = [MetricRow.job_id == job_id, MetricRow.key == key]
    if steps is not None:
        filters += [MetricRow.step >= steps[0], MetricRow.step <= steps[1]]
    order = (MetricRow.step, MetricRow.timestamp, MetricRow.value, MetricRow.is_nan)
    bucketed = (
        select(
            MetricRow.step,
            MetricRow.timestamp,
            MetricRow.value,
            MetricRow.is_nan,
            func.ntile(limit).over(order_by=order).label("bucket"),
        )
        .where(*filters)
        .subquery()
    )
    b = bucketed.c
    ranked = select(
        b.step,
        b.timestamp,
        b.value,
        b.is_nan,
        func.row_number().over(partition_by=b.bucket, order_by=(b.step, b.timestamp, b.value, b.is_nan)).label("rn"),
    ).subquery()
    r = ranked.c
    rows = list(
        session.execute(
            select(r.step, r.timestamp, r.value, r.is_nan)
            .where(r.rn == 1)
            .order_by(r.step, r.timestamp, r.value, r.is_nan)
        ).all()
    )
    last = session.execute(
        select(MetricRow.step, MetricRow.timestamp, MetricRow.value, MetricRow.is_nan)
        .where(*filters)
        .order_by(MetricRow.step.desc(), MetricRow.timestamp.desc(), MetricRow.value.desc(), MetricRow.is_nan.desc())
        .limit(1)
    ).first()
    if last is not None and (not rows or tuple(rows[-1]) != tuple(last)):
        if len(rows) >= limit:
            rows[-1] = last
        else:
            rows.append(last)
    return rows
