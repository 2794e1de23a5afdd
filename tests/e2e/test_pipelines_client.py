"""Pipelines from the user's side: ``shoal job create --file pipeline.yml --stream`` with a local
component file, ``job list --parent-job-name -o table``, reuse and ``--set settings.force_rerun``,
and a ``@dsl.pipeline`` submitted and streamed through the SDK."""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path

import pytest

from shoal import Input, MLClient, command, dsl, load_component
from shoal.client.jobs import JobFailedError
from shoal.config import ShoalSettings

COMPONENT = """\
name: shout
type: command
inputs:
  text: {type: uri_folder}
  times: {type: integer, default: 1}
outputs:
  loud: {type: uri_folder}
code: ./src
environment: {image: "python:3.11"}
command: python shout.py ${{inputs.text}} ${{inputs.times}} ${{outputs.loud}}
"""

SHOUT = """\
import pathlib, sys
src, times, out = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
text = (src / "words.txt").read_text().strip()
(out / "words.txt").write_text((text.upper() + "!") * times)
print("shouted", text)
"""

PIPELINE = """\
type: pipeline
display_name: shout_twice
settings: {default_compute: local}
inputs:
  words: {type: uri_folder, path: ./words}
outputs:
  result: {type: uri_folder}
jobs:
  first:
    type: command
    component: ./shout.yml
    inputs: {text: "${{parent.inputs.words}}"}
  second:
    type: command
    component: file:shout.yml
    inputs: {text: "${{parent.jobs.first.outputs.loud}}", times: 2}
    outputs: {loud: "${{parent.outputs.result}}"}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline-project")
    (root / "src").mkdir()
    (root / "src" / "shout.py").write_text(SHOUT)
    (root / "words").mkdir()
    (root / "words" / "words.txt").write_text("hello\n")
    (root / "shout.yml").write_text(COMPONENT)
    (root / "pipeline.yml").write_text(PIPELINE)
    return root


def run_id(out: str) -> str:
    match = re.search(r"^RunId: (\S+)$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def table_rows(out: str) -> dict[str, str]:
    """Step display name -> its table line."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 2 and cells[1] in ("first", "second"):
            rows[cells[1]] = line
    return rows


def test_create_stream_list_and_reuse(jobs_cli, project: Path) -> None:
    first = jobs_cli("job", "create", "--file", str(project / "pipeline.yml"), "--stream")
    name = run_id(first.out)
    assert "Status: Completed" in first.out, first.out
    second_lines = [line for line in first.out.splitlines() if line.startswith("[second] ")]
    assert second_lines and second_lines[-1].endswith("Completed"), first.out
    assert re.search(r"^\[first\] .*Completed$", first.out, re.MULTILINE), first.out

    listed = jobs_cli("job", "list", "--parent-job-name", name, "-o", "table")
    for header in ("Name", "Display Name", "Status", "Type", "Reuse"):
        assert header in listed.out, listed.out
    rows = table_rows(listed.out)
    assert set(rows) == {"first", "second"}, listed.out
    assert all("Completed" in r and "command" in r and "ran" in r for r in rows.values()), listed.out

    # The same pipeline again: both steps are reused, and say from which job.
    again = jobs_cli("job", "create", "--file", str(project / "pipeline.yml"), "--stream")
    assert re.search(r"^\[first\] reused from \S+ \(key [0-9a-f]{8}…\)$", again.out, re.MULTILINE), again.out
    rows = table_rows(jobs_cli("job", "list", "-p", run_id(again.out), "-o", "table").out)
    assert all("reused from" in r for r in rows.values()), rows

    # force_rerun through --set runs them again.
    forced = jobs_cli(
        "job", "create", "--file", str(project / "pipeline.yml"), "--set", "settings.force_rerun=true", "--stream"
    )
    assert "reused from" not in forced.out and "Status: Completed" in forced.out, forced.out
    shown = jobs_cli("job", "show", "-n", run_id(forced.out), "--query", "settings.force_rerun", "-o", "tsv")
    assert shown.out.strip() == "True"


def test_a_failing_step_fails_the_stream(jobs_cli, tmp_path: Path) -> None:
    spec = tmp_path / "failing.yml"
    spec.write_text(
        textwrap.dedent(
            """\
            type: pipeline
            jobs:
              bad:
                command: echo failing; exit 3
                environment: {image: "python:3.11"}
            """
        )
    )
    result = jobs_cli("job", "create", "--file", str(spec), "--stream", check=False)
    assert result.code == 1, (result.out, result.err)
    assert "Error [JOB_FAILED]" in result.err and re.search(r"^\[bad\] .*Failed$", result.out, re.MULTILINE)


def test_a_missing_component_file_is_named(jobs_cli, project: Path, tmp_path: Path) -> None:
    spec = tmp_path / "pipeline.yml"
    spec.write_text(PIPELINE.replace("./shout.yml", "./nope.yml"))
    (tmp_path / "words").mkdir()
    result = jobs_cli("job", "create", "--file", str(spec), check=False)
    assert result.code == 1 and "jobs.first.component" in result.err and "nope.yml" in result.err


def test_a_dsl_pipeline_through_the_sdk(jobs_cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shout = load_component(project / "shout.yml")
    monkeypatch.chdir(project)

    @dsl.pipeline(default_compute="local", experiment_name="dsl-e2e")
    def louder(words: Input, times: int = 3):
        once = shout(text=words)
        more = shout(text=once.outputs.loud, times=times)
        return {"result": more.outputs.loud}

    with MLClient(settings=ShoalSettings(home=jobs_cli.home)) as ml:
        job = ml.jobs.create_or_update(louder(Input(path="./words"), times=2))
        buffer = io.StringIO()
        done = ml.jobs.stream(job.name, out=buffer)
        assert done.status == "Completed", buffer.getvalue()
        assert "[more]" in buffer.getvalue() and "Execution Summary" in buffer.getvalue()
        steps = {s.display_name: s for s in ml.jobs.list(parent_job_name=job.name)}
        assert set(steps) == {"once", "more"}
        out = ml.jobs.download(steps["more"].name, download_path=project / "dl", output_name="loud")
        assert (out / "named-outputs" / "loud" / "words.txt").read_text() == "HELLO!!HELLO!!"

        @dsl.pipeline(default_compute="local")
        def broken(words: Input):
            once = shout(text=words)
            command(command="exit 1", environment={"image": "python:3.11"}, inputs={"x": once.outputs.loud})

        failing = ml.jobs.create_or_update(broken(Input(path="./words")))
        buffer = io.StringIO()
        with pytest.raises(JobFailedError, match="command"):
            ml.jobs.stream(failing.name, out=buffer)
        assert "[command] " in buffer.getvalue(), buffer.getvalue()


def test_show_query_reuse_of_a_step(jobs_cli, project: Path) -> None:
    jobs_cli("job", "create", "--file", str(project / "pipeline.yml"), "--stream")  # a first run, or reused
    run = jobs_cli("job", "create", "--file", str(project / "pipeline.yml"), "--stream")
    listed = json.loads(jobs_cli("job", "list", "-p", run_id(run.out), "-o", "json").out)
    first = next(j for j in listed if j["display_name"] == "first")
    reuse = json.loads(jobs_cli("job", "show", "-n", first["name"], "--query", "properties.reuse", "-o", "json").out)
    assert set(reuse) >= {"reused", "key", "reason", "parts"}
    assert reuse["reused"] is True and reuse["from_job"] in reuse["reason"]
    assert set(reuse["parts"]) == {"component", "code", "environment", "outputs", "inputs"}
    # A reused step's download has the logs and artifacts of the job it was reused from.
    dest = project / f"dl-{first['name']}"
    jobs_cli("job", "download", "-n", first["name"], "--all", "--download-path", str(dest))
    assert "shouted hello" in (dest / "artifacts" / "user_logs" / "std_log.txt").read_text()
    assert (dest / "named-outputs" / "loud" / "words.txt").read_text() == "HELLO!"


def test_validate_finds_errors_before_submitting(jobs_cli, project: Path, tmp_path: Path) -> None:
    assert (
        "valid"
        in jobs_cli("job", "validate", "--file", str(project / "pipeline.yml")).err
        + jobs_cli("job", "validate", "--file", str(project / "pipeline.yml")).out
    )
    bad = project / "bad.yml"
    bad.write_text(
        PIPELINE.replace("${{parent.jobs.first.outputs.loud}}", "${{parent.jobs.frist.outputs.loud}}").replace(
            "times: 2", "times: many"
        )
    )
    before = jobs_cli("job", "list", "-o", "json").out
    result = jobs_cli("job", "validate", "--file", str(bad), check=False)
    assert result.code == 1
    assert "jobs.second.inputs.text" in result.err and "frist" in result.err, result.err
    assert "jobs.second.inputs.times" in result.err and "integer" in result.err, result.err
    # Warnings too: an input the component does not declare.
    odd = project / "odd.yml"
    odd.write_text(PIPELINE.replace("times: 2}", "times: 2, extra: 1}"))
    odd_result = jobs_cli("job", "validate", "--file", str(odd))
    assert "does not declare input 'extra'" in odd_result.err, odd_result.err
    created = jobs_cli("job", "create", "--file", str(odd), "--query", "name", "-o", "tsv")
    assert "Warning: jobs.second.inputs.extra" in created.err, created.err
    before = jobs_cli("job", "list", "-o", "json").out
    assert jobs_cli("job", "list", "-o", "json").out == before  # nothing was submitted


def test_a_registered_pipeline_component_with_local_steps(jobs_cli, project: Path, tmp_path: Path) -> None:
    (project / "twice.yml").write_text(
        textwrap.dedent(
            """\
            name: shout_twice_component
            type: pipeline
            inputs:
              words: {type: uri_folder}
            outputs:
              result: {type: uri_folder}
            jobs:
              one:
                component: ./shout.yml
                inputs: {text: "${{parent.inputs.words}}"}
              two:
                component: ./shout.yml
                inputs: {text: "${{parent.jobs.one.outputs.loud}}"}
                outputs: {loud: "${{parent.outputs.result}}"}
            """
        )
    )
    jobs_cli("component", "create", "--file", str(project / "twice.yml"))
    stored = json.loads(jobs_cli("component", "show", "-n", "shout_twice_component", "-l", "latest").out)
    inner = stored["jobs"]["one"]["component"]
    assert isinstance(inner, dict) and inner["code"].startswith("azureml:"), inner
    job = tmp_path / "use.yml"
    job.write_text(
        textwrap.dedent(
            f"""\
            type: pipeline
            inputs:
              words: {{type: uri_folder, path: {project / "words"}}}
            jobs:
              loud:
                type: pipeline
                component: azureml:shout_twice_component@latest
                inputs: {{words: "${{{{parent.inputs.words}}}}"}}
            """
        )
    )
    run = jobs_cli("job", "create", "--file", str(job), "--stream")
    assert "Status: Completed" in run.out and "[loud/two]" in run.out, run.out
