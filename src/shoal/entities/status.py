"""Job status names (Azure ML's) and the moves allowed between them.

One function in the services writes transitions, and it checks them against this table: a job
can only move forward, terminal states are final, and only NotResponding may fall back to an
earlier state (its runner came back).
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    NOT_RESPONDING = "NotResponding"


S = JobStatus
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.CANCELED})
ACTIVE = frozenset(set(S) - TERMINAL)
# States in which a job holds a slot of its compute.
OCCUPYING = frozenset({S.PREPARING, S.RUNNING, S.FINALIZING, S.CANCEL_REQUESTED, S.NOT_RESPONDING})

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.NOT_STARTED: frozenset({S.QUEUED, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}),
    # Queued -> Running / Completed: pipelines (no runner) and reused pipeline steps.
    S.QUEUED: frozenset({S.PREPARING, S.RUNNING, S.COMPLETED, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}),
    # Preparing -> Queued: claimed by a server that died before it started the runner.
    S.PREPARING: frozenset({S.QUEUED, S.RUNNING, S.FINALIZING, S.CANCEL_REQUESTED, S.FAILED, S.NOT_RESPONDING}),
    S.RUNNING: frozenset({S.FINALIZING, S.COMPLETED, S.FAILED, S.CANCEL_REQUESTED, S.NOT_RESPONDING}),
    S.FINALIZING: frozenset({S.COMPLETED, S.FAILED, S.CANCEL_REQUESTED, S.NOT_RESPONDING}),
    S.CANCEL_REQUESTED: frozenset({S.CANCELED, S.FAILED, S.COMPLETED}),
    S.NOT_RESPONDING: frozenset(
        {S.PREPARING, S.RUNNING, S.FINALIZING, S.COMPLETED, S.FAILED, S.CANCELED, S.CANCEL_REQUESTED}
    ),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
}


def can_move(current: str, target: str) -> bool:
    return JobStatus(target) in ALLOWED[JobStatus(current)]


def is_terminal(status: str) -> bool:
    return JobStatus(status) in TERMINAL
