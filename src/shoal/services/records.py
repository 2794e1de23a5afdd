"""Turning rows into the JSON bodies the API returns (read-only fields filled by the server)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "shoal"
CREATED_BY = "shoal"


def arm_id(workspace: str, *parts: str) -> str:
    base = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace}"
    )
    return "/".join([base, *parts]) if parts else base


def iso(ts: datetime) -> str:
    # SQLite hands timestamps back without their zone; they were written in UTC.
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).isoformat()


def creation_context(created_at: datetime, updated_at: datetime) -> dict[str, Any]:
    return {
        "created_at": iso(created_at),
        "created_by": CREATED_BY,
        "created_by_type": "User",
        "last_modified_at": iso(updated_at),
        "last_modified_by": CREATED_BY,
        "last_modified_by_type": "User",
    }
