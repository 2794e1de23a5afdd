"""The SDK surface a user imports, and the layering that keeps the client off the server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import shoal


def test_every_public_name_resolves():
    for name in shoal.__all__:
        assert getattr(shoal, name) is not None, name
    with pytest.raises(AttributeError):
        _ = shoal.NoSuchThing


def test_azure_style_names_are_there():
    for name in (
        "MLClient",
        "load_model",
        "load_data",
        "load_environment",
        "load_component",
        "load_compute",
        "load_datastore",
        "load_workspace",
        "Model",
        "Data",
        "Environment",
        "Workspace",
        "AmlCompute",
        "ComputeInstance",
        "AzureBlobDatastore",
        "AccountKeyConfiguration",
        "AssetTypes",
    ):
        assert name in shoal.__all__


def test_client_and_cli_never_import_the_server_or_the_store():
    """The SDK and CLI speak HTTP only (ARCHITECTURE.md §2)."""
    code = (
        "import sys, shoal.cli.main, shoal.client.ml_client\n"
        "banned = ('shoal.server', 'shoal.services', 'shoal.store', 'sqlalchemy', 'fastapi', 'alembic')\n"
        "bad = sorted(m for m in sys.modules if m in banned or m.startswith(tuple(b + '.' for b in banned)))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported by the client side: {out}"


def test_from_config_finds_config_json_upwards(tmp_path, monkeypatch):
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(
        json.dumps({"subscription_id": "s", "resource_group": "rg", "workspace_name": "team-ws"})
    )
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    client = shoal.MLClient.from_config(base_url="http://127.0.0.1:9", token="t")
    assert client.workspace_name == "team-ws" and client.subscription_id == "s"


def test_from_config_reads_an_arm_scope(tmp_path):
    scope = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/scoped"
    (tmp_path / "config.json").write_text(json.dumps({"Scope": scope}))
    client = shoal.MLClient.from_config(path=tmp_path, base_url="http://127.0.0.1:9", token="t")
    assert client.workspace_name == "scoped"


def test_from_config_without_a_file_names_the_folder(tmp_path):
    with pytest.raises(shoal.NotFoundError, match="config.json"):
        shoal.MLClient.from_config(path=tmp_path, base_url="http://127.0.0.1:9", token="t")


def test_jobs_validate_reports_problems_without_submitting():
    from shoal.client.jobs import JobOperations
    from shoal.errors import SpecError

    ops = JobOperations(None, "default", None)  # validate never talks to the server
    good = shoal.command(command="echo ${{inputs.x}}", inputs={"x": 1}, environment={"image": "python:3.11"})
    assert ops.validate(good) == []
    bad = {"type": "command", "command": "echo ${{inputs.nope}}", "environment": {"image": "python:3.11"}}
    problems = ops.validate(bad)
    assert problems and "nope" in " ".join(problems)
    with pytest.raises(SpecError, match="nope"):
        ops.validate(bad, raise_on_failure=True)
