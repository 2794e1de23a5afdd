"""Habits of `az ml` users: global flags anywhere, -o jsonc, `shoal configure --defaults`, --web,
--skip-validation, `shoal version` and the completion script (one server for the module)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import write_job


@pytest.fixture(scope="module")
def az(cli, tmp_path_factory):
    cli.env["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg"))
    cli("model", "create", "-n", "habit", "-v", "1", "-p", "README.md", "-o", "none")
    return cli


@pytest.mark.parametrize(
    "args",
    [
        ["model", "list", "-g", "rg", "-w", "default", "--subscription", "s", "-o", "jsonc", "--only-show-errors"],
        ["-g", "rg", "--subscription", "s", "model", "list", "-o", "jsonc"],
        ["model", "--resource-group=rg", "list", "--verbose", "-o", "json"],
        ["model", "list", "--debug", "--resource-group", "rg", "-w", "default"],
    ],
)
def test_az_global_flags_are_accepted_anywhere(az, args):
    result = az(*args)
    assert "habit" in [m["name"] for m in json.loads(result.out)]  # jsonc off a terminal: plain JSON


def test_debug_logs_and_shows_a_traceback_on_error(az):
    result = az("model", "show", "-n", "nope", "-v", "1", "--debug", check=False)
    assert result.code == 1 and "Traceback" in result.err and "Error [NOT_FOUND]" in result.err
    assert "DEBUG" in result.err
    quiet = az("model", "show", "-n", "nope", "-v", "1", check=False)
    assert "Traceback" not in quiet.err and "DEBUG" not in quiet.err


def test_configure_defaults_persist_and_pick_the_workspace(az):
    az("workspace", "create", "-n", "team", "-o", "none")
    az("configure", "--defaults", "workspace=team", "group=rg")
    listed = json.loads(az("configure", "--list-defaults").out)
    assert {"name": "workspace", "value": "team"} in listed and {"name": "group", "value": "rg"} in listed
    try:
        assert az("workspace", "show", "--query", "name", "-o", "tsv").out.strip() == "team"
        assert json.loads(az("model", "list").out) == []  # team has no models
        assert "habit" in az("model", "list", "-w", "default", "--query", "[].name", "-o", "tsv").out
        env_wins = az("workspace", "show", "--query", "name", "-o", "tsv", env={"SHOAL_WORKSPACE": "default"})
        assert env_wins.out.strip() == "default"
    finally:
        az("configure", "--defaults", "workspace=")
    assert az("workspace", "show", "--query", "name", "-o", "tsv").out.strip() == "default"
    bad = az("configure", "--defaults", "colour=blue", check=False)
    assert bad.code == 1 and "workspace, group" in bad.err


@pytest.fixture(scope="module")
def job_yml(tmp_path_factory):
    return write_job(
        tmp_path_factory.mktemp("job"),
        """
        command: echo hi
        environment:
          image: python:3.11
        """,
    )


def test_web_prints_the_studio_url(az, job_yml):
    result = az("job", "create", "-f", str(job_yml), "--web", env={"BROWSER": "true"})
    job = json.loads(result.out)
    assert f"Studio: {job['services']['Studio']['endpoint']}" in result.err
    assert f"/jobs/{job['name']}" in result.err


def test_skip_validation_is_accepted_with_a_warning(az, job_yml):
    result = az("job", "create", "-f", str(job_yml), "--skip-validation", "--query", "name", "-o", "tsv")
    assert result.out.strip() and "the server always validates" in result.err
    quiet = az("job", "create", "-f", str(job_yml), "--skip-validation", "--only-show-errors", "-o", "none")
    assert "Warning" not in quiet.err
    assert "the server always validates" in " ".join(az("job", "create", "--help").out.split())


def test_version_and_completion(az):
    assert json.loads(az("version").out) == json.loads(az("version", "-o", "json").out)
    assert az("version", "--query", "shoal", "-o", "tsv").out.strip() == json.loads(az("version").out)["shoal"]
    assert "_SHOAL_COMPLETE" in az("completion", "bash").out
    assert "compdef" in az("completion", "zsh").out
    assert az("completion", "tcsh", check=False).code == 1
    completions = az(
        "mo", check=True, env={"_SHOAL_COMPLETE": "complete_bash", "COMP_WORDS": "shoal mo", "COMP_CWORD": "1"}
    )
    assert completions.out.split() == ["model"]


def test_help_has_examples(az):
    for args in (["model", "create"], ["job", "create"], ["compute", "list"], ["data", "show"], ["job", "cancel"]):
        assert "Examples:" in az(*args, "--help").out
