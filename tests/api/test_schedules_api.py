"""Schedules through the real app and the SDK, fired by the real schedule timer at chosen times:
each fire time starts one job (also with two timers on one database), restarts keep the next
fire time, late fire times are skipped, disabled schedules start nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from shoal import CommandJob, CronTrigger, JobSchedule, RecurrenceTrigger, TimeZone
from shoal.errors import InvalidStateError, NotFoundError, UserError
from shoal.services.schedules.firing import SCHEDULE_NAME, ScheduleTimer
from tests.api.conftest import Api, error_of

ENV = {"image": "python:3.11"}
START = "2030-01-01T00:00:00"


def job(**extra):
    return CommandJob(command="echo ${{inputs.who}}", inputs={"who": "${{name}}"}, environment=ENV, **extra)


def schedule(name="nightly", **extra):
    trigger = RecurrenceTrigger(frequency="minute", interval=5, start_time=START, time_zone=TimeZone.UTC)
    return JobSchedule(name=name, trigger=trigger, create_job=job(experiment_name="sched"), **extra)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def jobs_of(api: Api, name: str) -> list:
    return [j for j in api.ml.jobs.list() if (j.tags or {}).get(SCHEDULE_NAME) == name]


def test_a_fire_time_starts_one_job_named_and_marked_for_its_schedule(api: Api):
    created = api.ml.schedules.begin_create_or_update(schedule()).result()
    assert created.is_enabled and created.provisioning_state == "Succeeded"
    assert at(created.next_fire_time) == datetime(2030, 1, 1, tzinfo=UTC)
    timer = ScheduleTimer(api.app.state.ctx, None)
    assert timer.tick(datetime(2029, 12, 31, 23, 59, tzinfo=UTC)) == []  # not yet
    fire = datetime(2030, 1, 1, 0, 0, 0, 300000, tzinfo=UTC)
    assert timer.tick(fire) == ["nightly-20300101000000"]
    assert timer.tick(fire) == []  # claimed: never twice
    started = api.ml.jobs.get("nightly-20300101000000")
    assert started.properties[SCHEDULE_NAME] == "nightly"
    assert started.properties["azureml.scheduleTrigger.triggerTime"].startswith("2030-01-01T00:00:00")
    assert started.tags[SCHEDULE_NAME] == "nightly" and started.experiment_name == "sched"
    assert started.inputs["who"] == "nightly-20300101000000"  # ${{name}}, as Azure ML fills it
    shown = api.ml.schedules.get("nightly")
    assert shown.last_job_name == "nightly-20300101000000" and shown.last_error is None
    assert at(shown.next_fire_time) == datetime(2030, 1, 1, 0, 5, tzinfo=UTC)
    assert [j.name for j in jobs_of(api, "nightly")] == ["nightly-20300101000000"]
    # `schedule trigger`: one job now, the fire times untouched
    triggered = api.ml.schedules.trigger("nightly")
    assert triggered.job_name.startswith("nightly-") and triggered.schedule_action_type == "CreateJob"
    assert api.ml.jobs.get(triggered.job_name).properties[SCHEDULE_NAME] == "nightly"
    assert api.ml.schedules.get("nightly").next_fire_time == shown.next_fire_time


def test_two_timers_on_one_database_start_a_fire_time_once(api: Api):
    api.ml.schedules.begin_create_or_update(schedule("shared")).result()
    timers = [ScheduleTimer(api.app.state.ctx, None) for _ in range(4)]
    fire = datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda t=t: results.append(t.tick(fire))) for t in timers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sum(results, [])) == ["shared-20300101000000"]
    assert len(jobs_of(api, "shared")) == 1


def test_a_restarted_server_keeps_the_next_fire_time_and_skips_late_ones(api: Api):
    from tests.api.conftest import Api as Fresh

    api.ml.schedules.begin_create_or_update(schedule("kept")).result()
    ScheduleTimer(api.app.state.ctx, None).tick(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    again = Fresh(api.settings)  # a new app on the same home and database: a restart
    try:
        kept = again.ml.schedules.get("kept")
        assert at(kept.next_fire_time) == datetime(2030, 1, 1, 0, 5, tzinfo=UTC)
        timer = ScheduleTimer(again.app.state.ctx, None, misfire_grace=60)
        assert timer.tick(datetime(2030, 1, 1, 0, 0, 2, tzinfo=UTC)) == []  # the 00:00 fire stays done
        # down from 00:04 to 00:30: the 00:05 fire is 25 minutes late: skipped, not made up
        assert timer.tick(datetime(2030, 1, 1, 0, 30, 0, tzinfo=UTC)) == []
        assert at(again.ml.schedules.get("kept").next_fire_time) == datetime(2030, 1, 1, 0, 35, tzinfo=UTC)
        assert timer.tick(datetime(2030, 1, 1, 0, 35, 1, tzinfo=UTC)) == ["kept-20300101003500"]
        assert len(jobs_of(again, "kept")) == 2
    finally:
        again.close()


def test_disabled_schedules_start_nothing_and_enable_counts_from_now(sqlite_api: Api):
    api = sqlite_api
    api.ml.schedules.begin_create_or_update(schedule("paused")).result()
    disabled = api.ml.schedules.begin_disable(name="paused").result()
    assert disabled.is_enabled is False and disabled.next_fire_time is None
    timer = ScheduleTimer(api.app.state.ctx, None)
    assert timer.tick(datetime(2030, 1, 1, 1, 0, tzinfo=UTC)) == []
    assert [s.name for s in api.ml.schedules.list()] == []  # enabled only, as azure-ai-ml lists
    assert [s.name for s in api.ml.schedules.list(list_view_type="All")] == ["paused"]
    assert [s.name for s in api.ml.schedules.list(list_view_type="DisabledOnly")] == ["paused"]
    enabled = api.ml.schedules.begin_enable(name="paused").result()
    assert enabled.is_enabled and at(enabled.next_fire_time) == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidStateError, match="disable it first"):
        api.ml.schedules.begin_delete("paused")
    api.ml.schedules.begin_disable("paused")
    api.ml.schedules.begin_delete("paused").result()
    with pytest.raises(NotFoundError, match="paused"):
        api.ml.schedules.get("paused")


def test_a_schedule_can_start_a_copy_of_an_existing_job_with_overrides(sqlite_api: Api):
    api = sqlite_api
    template = api.ml.jobs.create_or_update(job(display_name="template"))
    spec = {
        "name": "copier",
        "trigger": {"type": "cron", "expression": "0 * * * *", "start_time": START},
        "create_job": {"job": f"azureml:{template.name}", "tags": {"team": "ml"}, "display_name": "copy"},
    }
    created = api.ml.schedules.begin_create_or_update(spec).result()
    assert created.create_job["display_name"] == "copy" and created.create_job["command"].startswith("echo")
    names = ScheduleTimer(api.app.state.ctx, None).tick(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    started = api.ml.jobs.get(names[0])
    assert started.display_name == "copy" and started.tags["team"] == "ml"


def test_bad_schedules_are_refused_and_store_nothing(sqlite_api: Api):
    api = sqlite_api
    body = schedule("bad").to_dict()
    cases = [
        ({**body, "trigger": {"type": "cron", "expression": "* * *"}}, 422, "expression"),
        ({**body, "trigger": {"type": "cron", "expression": "0 * * * *", "time_zone": "Mars"}}, 422, "time_zone"),
        ({**body, "create_job": "azureml:no-such-job"}, 404, "no-such-job"),
        ({**body, "create_job": {**body["create_job"], "compute": "cpu-cluster"}}, 404, "create_job: compute"),
        ({**body, "create_job": "./local-job.yml"}, 422, "local file"),
        ({**body, "create_job": {"type": "command", "command": 5}}, 422, "command"),
        ({**body, "create_job": {"type": "spark"}}, 422, "cannot be scheduled"),
    ]
    for spec, status, word in cases:
        response = api.http.put(api.url("/schedules/bad"), json=spec)
        assert response.status_code == status, (spec, response.text)
        assert word in error_of(response)["message"]
    assert api.http.get(api.url("/schedules?list_view_type=all")).json()["value"] == []
    with pytest.raises(UserError, match="list_view_type"):
        list(api.ml.schedules.list(list_view_type="sometimes"))


def test_a_job_that_cannot_start_is_recorded_on_the_schedule(sqlite_api: Api):
    api = sqlite_api
    cluster = {"name": "gone-cluster", "type": "amlcompute", "max_instances": 1}
    api.http.put(api.url("/computes/gone-cluster"), json=cluster).raise_for_status()
    spec = schedule("broken").to_dict()
    spec["create_job"]["compute"] = "gone-cluster"
    api.http.put(api.url("/schedules/broken"), json=spec).raise_for_status()
    api.http.delete(api.url("/computes/gone-cluster")).raise_for_status()
    assert ScheduleTimer(api.app.state.ctx, None).tick(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)) == []
    shown = api.ml.schedules.get("broken")
    assert "gone-cluster" in shown.last_error
    assert at(shown.next_fire_time) == datetime(2030, 1, 1, 0, 5, tzinfo=UTC)  # it tries again next time


def test_cron_triggers_from_the_sdk(sqlite_api: Api):
    api = sqlite_api
    trigger = CronTrigger(expression="15 10 * * *", start_time=START, time_zone="Eastern Standard Time")
    created = api.ml.begin_create_or_update(JobSchedule(name="cron", trigger=trigger, create_job=job())).result()
    assert at(created.next_fire_time) == datetime(2030, 1, 1, 15, 15, tzinfo=UTC)  # 10:15 EST
    assert timedelta(0) < at(created.creation_context["created_at"]) - datetime(2020, 1, 1, tzinfo=UTC)


def test_a_pipeline_schedule_from_yaml_fills_name_in_its_inputs(sqlite_api: Api):
    from shoal import load_schedule
    from tests.unit.conftest import YAML_DIR

    api = sqlite_api
    cluster = {"name": "cpu-cluster", "type": "amlcompute", "max_instances": 1}
    api.http.put(api.url("/computes/cpu-cluster"), json=cluster).raise_for_status()
    loaded = load_schedule(YAML_DIR / "schedule" / "recurrence-with-settings-schedule.yml")
    created = api.ml.schedules.begin_create_or_update(loaded).result()
    assert created.create_job["settings"] == {"continue_on_step_failure": True}
    names = ScheduleTimer(api.app.state.ctx, None).tick(at(created.next_fire_time))
    pipeline = api.ml.jobs.get(names[0])
    assert pipeline.type == "pipeline" and pipeline.inputs["greeting"] == names[0]
    assert pipeline.tags == {"schedule": "recurrence_with_settings", SCHEDULE_NAME: "recurrence_with_settings"}
