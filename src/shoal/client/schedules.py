"""``ml_client.schedules``: job schedules, with azure-ai-ml's ``ScheduleOperations`` methods."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from shoal.client.git_info import add_git_properties
from shoal.client.operations import Poller, _Group
from shoal.client.pipelines import LocalPaths
from shoal.entities.base import Entity
from shoal.entities.kinds import parse_entity
from shoal.entities.loader import load_entity
from shoal.entities.refs import is_local_path
from shoal.errors import UserError


class ScheduleListViewType(StrEnum):
    """Which schedules ``list`` returns (azure-ai-ml's values; ``enabled_only`` forms work too)."""

    ENABLED_ONLY = "EnabledOnly"
    DISABLED_ONLY = "DisabledOnly"
    ALL = "All"


_VIEWS = {"enabledonly": "enabled_only", "disabledonly": "disabled_only", "all": "all"}


@dataclass(frozen=True)
class ScheduleTriggerResult:
    """What ``trigger`` started (azure-ai-ml's ``ScheduleTriggerResult``)."""

    job_name: str
    schedule_action_type: str = "CreateJob"


def _schedule(body: dict[str, Any]) -> Any:
    return parse_entity("schedule", body, source="server response")


class ScheduleOperations(_Group):
    def __init__(self, transport: Any, workspace: str, *_: Any) -> None:
        super().__init__(transport, workspace)

    @property
    def _base(self) -> str:
        return f"{self._wsp}/schedules"

    def begin_create_or_update(self, schedule: Any, **_: Any) -> Poller:
        """Create or replace a schedule; its job's local files are uploaded first, as a job's are."""
        body = schedule.to_dict() if isinstance(schedule, Entity) else parse_entity("schedule", schedule).to_dict()
        body["create_job"] = self._prepare_job(body["create_job"])
        return Poller(_schedule(self._t.request("PUT", f"{self._base}/{body['name']}", json=body)))

    def _prepare_job(self, create_job: Any) -> Any:
        if isinstance(create_job, str):
            if not is_local_path(create_job) or create_job.startswith("azureml:"):
                return create_job  # an existing job: the server copies it
            create_job = {"job": create_job}
        overrides = dict(create_job)
        ref = overrides.pop("job", None)
        if isinstance(ref, str) and not (is_local_path(ref) and not ref.startswith("azureml:")):
            return create_job
        job = overrides
        if ref is not None:  # a local job YAML (SDK callers; the CLI's loader inlined it already)
            job = load_entity("job", Path(ref)).to_dict()
            for key, value in overrides.items():
                merge = isinstance(value, dict) and isinstance(job.get(key), dict)
                job[key] = {**job[key], **value} if merge else value
        if not job.get("experiment_name"):
            job["experiment_name"] = Path.cwd().name or "Default"  # as jobs.create_or_update names it
        return LocalPaths(self._t, self._ws).prepare(add_git_properties(job))

    def get(self, name: str, **_: Any) -> Any:
        return _schedule(self._t.request("GET", f"{self._base}/{name}"))

    def list(self, *, list_view_type: Any = ScheduleListViewType.ENABLED_ONLY, **_: Any) -> Iterator[Any]:
        text = str(getattr(list_view_type, "value", list_view_type) or "EnabledOnly")
        view = _VIEWS.get(text.replace("_", "").lower())
        if view is None:
            raise UserError(f"list_view_type must be one of EnabledOnly, DisabledOnly, All; got {text!r}")
        return (_schedule(s) for s in self._t.paged(self._base, {"list_view_type": view}))

    def begin_enable(self, name: str, **_: Any) -> Poller:
        return Poller(_schedule(self._t.request("POST", f"{self._base}/{name}/enable")))

    def begin_disable(self, name: str, **_: Any) -> Poller:
        return Poller(_schedule(self._t.request("POST", f"{self._base}/{name}/disable")))

    def trigger(self, name: str, **_: Any) -> ScheduleTriggerResult:
        """Start the schedule's job once, now; its next fire time stays as it was."""
        body = self._t.request("POST", f"{self._base}/{name}/trigger")
        return ScheduleTriggerResult(body["job_name"], body.get("schedule_action_type", "CreateJob"))

    def begin_delete(self, name: str, **_: Any) -> Poller:
        self._t.request("DELETE", f"{self._base}/{name}")
        return Poller(None)
