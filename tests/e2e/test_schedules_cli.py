"""`shoal schedule …` and `shoal connection …` against a real server process: a schedule written
as the azureml-examples `cli/schedules` files are starts its job on time, the next fire time
survives a server restart without a second start, and a disabled schedule starts nothing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shoal import MLClient
from shoal.config import ShoalSettings
from tests.e2e.conftest import Cli, write_job

# The server looks for due schedules five times a second (default: every second).
SERVER_ENV = {"SHOAL_SCHEDULE_TICK_SECONDS": "0.2"}
TAG = "azureml.scheduleTrigger.scheduleName"


def _schedule_jobs(ml: MLClient, name: str) -> list[str]:
    return [j.name for j in ml.jobs.list() if (j.tags or {}).get(TAG) == name]


def test_a_schedule_starts_its_job_on_time_once_across_a_restart(jobs_cli: Cli, tmp_path: Path):
    cli = jobs_cli
    write_job(
        tmp_path,
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: echo scheduled run ${{inputs.run}}
        inputs:
          run: ${{name}}
        environment:
          image: python:3.11
        """,
        "hello-job.yml",
    )
    # a few seconds ahead: `schedule create` (a CLI start) must land before it on a busy machine
    start = (datetime.now(UTC) + timedelta(seconds=6)).replace(tzinfo=None, microsecond=0)
    schedule = write_job(
        tmp_path,
        f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
        name: every_minute
        display_name: Every minute
        trigger:
          type: recurrence
          frequency: minute
          interval: 1
          start_time: "{start.isoformat()}"
          time_zone: UTC
        create_job: ./hello-job.yml
        """,
        "schedule.yml",
    )
    created = json.loads(cli("schedule", "create", "--file", str(schedule)).out)
    assert created["is_enabled"] is True and created["create_job"]["type"] == "command"
    assert created["next_fire_time"].startswith(start.isoformat())
    with MLClient(settings=ShoalSettings(home=cli.home)) as ml:  # the same server, without a CLI start per look
        deadline = time.monotonic() + 30
        while not (names := _schedule_jobs(ml, "every_minute")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert names == [f"every_minute-{start:%Y%m%d%H%M%S}"]
        job = ml.jobs.get(names[0])
        assert job.properties[TAG] == "every_minute" and job.inputs["run"] == names[0]
        while ml.jobs.get(names[0]).status not in ("Completed", "Failed", "Canceled"):
            time.sleep(0.2)  # no runner outlives the test's server
        shown = ml.schedules.get("every_minute")
        assert shown.last_job_name == names[0]
        following = shown.next_fire_time
        assert following.startswith((start + timedelta(minutes=1)).isoformat())

    cli("server", "stop")
    cli("server", "start", "--detach")
    with MLClient(settings=ShoalSettings(home=cli.home)) as ml:
        again = ml.schedules.get("every_minute")
        assert again.next_fire_time == following and again.last_job_name == names[0]
        time.sleep(1)  # a few ticks of the restarted server
        assert _schedule_jobs(ml, "every_minute") == names  # the fire time it had done is not done again

    disabled = json.loads(cli("schedule", "disable", "-n", "every_minute").out)
    assert disabled["is_enabled"] is False and "next_fire_time" not in disabled
    table = cli("schedule", "list", "--type", "all", "-o", "table").out
    assert "every_minute" in table and "False" in table
    cli("schedule", "delete", "-n", "every_minute", "--yes")
    with MLClient(settings=ShoalSettings(home=cli.home)) as ml:
        assert list(ml.schedules.list(list_view_type="All")) == []
        assert _schedule_jobs(ml, "every_minute") == names  # its jobs stay


def test_connections_from_the_cli_never_show_their_secrets(jobs_cli: Cli, tmp_path: Path):
    cli = jobs_cli
    spec = write_job(
        tmp_path,
        """\
        name: test_ws_conn_git_pat
        type: git
        target: https://test-git-feed.com
        credentials:
          type: pat
          pat: dummy_pat_value
        """,
        "git-pat.yml",
    )
    created = cli("connection", "create", "--file", str(spec))
    assert "dummy_pat_value" not in created.out
    assert json.loads(created.out)["credentials"] == {"type": "pat"}
    shown = cli("connection", "show", "-n", "test_ws_conn_git_pat", "-o", "yaml").out
    assert "target: https://test-git-feed.com" in shown and "dummy_pat_value" not in shown
    assert "test_ws_conn_git_pat" in cli("connection", "list", "-o", "table").out
    cli("connection", "delete", "-n", "test_ws_conn_git_pat", "--yes")
