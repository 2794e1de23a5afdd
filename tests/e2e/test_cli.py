"""The README's command sequence and the CLI's contract, against a real server process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from tests.e2e.conftest import ROOT

EXAMPLES = ROOT / "examples"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_issue_command_sequence(cli, tmp_path):
    assert (
        cli(
            "workspace", "create", "--file", "examples/workspace/workspace.yml", "--query", "name", "-o", "tsv"
        ).out.strip()
        == "team-ws"
    )
    compute = json.loads(cli("compute", "create", "--file", "examples/compute/cpu-cluster.yml").out)
    assert compute["max_instances"] == 4 and compute["provisioning_state"] == "Succeeded"
    ds = json.loads(cli("datastore", "create", "--file", "examples/datastore/local-folder.yml").out)
    assert ds["path"] == str(EXAMPLES / "datastore" / "local-data")
    model = json.loads(cli("model", "create", "--file", "examples/model/mlflow-model.yml").out)
    assert model["version"] == "1" and model["flavors"]["sklearn"]["sklearn_version"] == "1.5.2"
    assert model["path"].startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
    cli("data", "create", "--file", "examples/data/iris-mltable.yml")
    env = json.loads(cli("environment", "create", "--file", "examples/environment/sklearn-conda.yml").out)
    assert env["conda_file"]["dependencies"][0] == "python=3.11"
    comp = json.loads(cli("component", "create", "--file", "examples/component/train.yml").out)
    assert comp["code"].startswith("azureml:") and comp["environment"] == "azureml:sklearn-env:1"

    table = cli("model", "list", "-o", "table").out
    assert "credit-model" in table and "mlflow_model" in table
    shown = yaml.safe_load(cli("model", "show", "-n", "credit-model", "-l", "latest", "-o", "yaml").out)
    assert shown["name"] == "credit-model" and shown["version"] == "1"

    cli("model", "download", "-n", "credit-model", "-v", "1", "--download-path", str(tmp_path / "out"))
    source = EXAMPLES / "model" / "credit-model"
    copied = tmp_path / "out" / "credit-model" / "credit-model"
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in source.iterdir())
    for f in source.iterdir():
        assert sha(copied / f.name) == sha(f)

    path = cli("data", "show", "-n", "iris", "-v", "1", "--query", "path", "-o", "tsv").out.strip()
    assert path.startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/") and path.endswith("/iris")


def test_rerunning_the_same_files_is_idempotent(cli):
    first = json.loads(cli("model", "create", "--file", "examples/model/mlflow-model.yml").out)
    again = json.loads(cli("model", "create", "--file", "examples/model/mlflow-model.yml").out)
    assert again["version"] == first["version"] and again["path"] == first["path"]
    assert again["creation_context"]["created_at"] == first["creation_context"]["created_at"]


def test_show_yaml_round_trips(cli, tmp_path):
    cli("model", "create", "--file", "examples/model/mlflow-model.yml")
    dumped = cli("model", "show", "-n", "credit-model", "-v", "1", "-o", "yaml").out
    (tmp_path / "m.yml").write_text(dumped)
    again = yaml.safe_load(cli("model", "create", "--file", str(tmp_path / "m.yml"), "-o", "yaml").out)
    assert again == yaml.safe_load(dumped)
    cli("compute", "create", "--file", "examples/compute/cpu-cluster.yml")
    (tmp_path / "c.yml").write_text(cli("compute", "show", "-n", "cpu-cluster", "-o", "yaml").out)
    assert json.loads(cli("compute", "create", "--file", str(tmp_path / "c.yml")).out)["name"] == "cpu-cluster"


def test_flags_describe_objects_without_a_file(cli):
    data = json.loads(
        cli("data", "create", "--name", "iris-csv", "--path", "examples/data/iris/iris.csv", "--type", "uri_file").out
    )
    assert data["type"] == "uri_file" and data["path"].endswith("/iris.csv")
    model = json.loads(
        cli(
            "model", "create", "--name", "m-flags", "--path", "./examples/model/credit-model", "--type", "mlflow_model"
        ).out
    )
    assert model["version"] == "1"
    compute = json.loads(
        cli("compute", "create", "--name", "small", "--type", "amlcompute", "--max-instances", "2").out
    )
    assert compute["max_instances"] == 2 and compute["min_instances"] == 0


def test_set_overrides_the_yaml(cli):
    out = json.loads(
        cli(
            "compute",
            "create",
            "--file",
            "examples/compute/cpu-cluster.yml",
            "--set",
            "name=tiny",
            "--set",
            "max_instances=1",
        ).out
    )
    assert out["name"] == "tiny" and out["max_instances"] == 1


def test_errors_name_the_problem_and_leave_nothing(cli, tmp_path):
    missing = cli("model", "show", "-n", "nope", "-v", "1", check=False)
    assert missing.code == 1 and missing.err.startswith("Error [NOT_FOUND]:") and "nope" in missing.err

    bad = tmp_path / "bad.yml"
    bad.write_text("name: typo-model\nversion: 1\npathh: ./x\n")
    result = cli("model", "create", "--file", str(bad), check=False)
    assert result.code == 1
    assert "Error [INVALID_SPEC]" in result.err and "bad.yml" in result.err and "line 3" in result.err
    assert "pathh" in result.err
    assert "typo-model" not in cli("model", "list", "-o", "json").out

    nomlmodel = tmp_path / "folder"
    nomlmodel.mkdir()
    (nomlmodel / "weights.bin").write_bytes(b"0")
    result = cli("model", "create", "--name", "broken", "--path", str(nomlmodel), "--type", "mlflow_model", check=False)
    assert result.code == 1 and "MLmodel" in result.err
    assert "broken" not in cli("model", "list", "-o", "json").out

    conflict = tmp_path / "conflict.yml"
    conflict.write_text((EXAMPLES / "model" / "mlflow-model.yml").read_text().replace("tiny", "changed") + "\n")
    cli("model", "create", "--file", "examples/model/mlflow-model.yml")
    result = cli(
        "model", "create", "--file", str(conflict), "--set", f"path={EXAMPLES / 'model' / 'credit-model'}", check=False
    )
    assert result.code == 1 and "Error [CONFLICT]" in result.err and "description" in result.err

    wrong = cli("model", "list", env={"SHOAL_TOKEN": "wrong", "SHOAL_SERVER_URL": _url(cli)}, check=False)
    assert wrong.code == 1 and "Error [UNAUTHENTICATED]" in wrong.err


def _url(cli) -> str:
    return json.loads((cli.home / "server.json").read_text())["url"]


def test_archive_restore_and_listing(cli):
    cli("data", "create", "--name", "arch", "--path", "examples/data/iris/iris.csv", "--type", "uri_file")
    cli("data", "create", "--name", "arch", "--path", "examples/data/iris/MLTable", "--type", "uri_file")
    cli("data", "archive", "-n", "arch", "-v", "2")
    assert cli("data", "show", "-n", "arch", "-l", "latest", "--query", "version", "-o", "tsv").out.strip() == "1"
    versions = json.loads(cli("data", "list", "-n", "arch").out)
    assert [v["version"] for v in versions] == ["1"]
    everything = json.loads(cli("data", "list", "-n", "arch", "--include-archived").out)
    assert [v["version"] for v in everything] == ["2", "1"]
    cli("data", "restore", "-n", "arch", "-v", "2")
    assert cli("data", "show", "-n", "arch", "-l", "latest", "--query", "version", "-o", "tsv").out.strip() == "2"
    cli("data", "archive", "-n", "arch")
    assert "arch" not in [d["name"] for d in json.loads(cli("data", "list").out)]


def test_update_changes_metadata_only(cli):
    cli("model", "create", "--file", "examples/model/mlflow-model.yml")
    out = json.loads(
        cli(
            "model", "update", "-n", "credit-model", "-v", "1", "--stage", "Production", "--set", "tags.reviewed=yes"
        ).out
    )
    assert out["stage"] == "Production" and out["tags"]["reviewed"] == "yes"
    listed = json.loads(cli("model", "list", "--stage", "Production").out)
    assert [m["name"] for m in listed] == ["credit-model"]
    refused = cli("model", "update", "-n", "credit-model", "-v", "1", "--set", "path=https://x/y", check=False)
    assert refused.code == 1 and "path" in refused.err


def test_workspaces_are_separate(cli):
    cli("workspace", "create", "--name", "other-ws")
    assert json.loads(cli("model", "list", "-w", "other-ws").out) == []
    shown = json.loads(cli("workspace", "show", "-n", "other-ws").out)
    assert shown["mlflow_tracking_uri"].endswith("/api/v1/workspaces/other-ws/mlflow")


def test_compute_instance_power_verbs(cli):
    # Created and started, as on Azure: its JupyterLab runs (tests/e2e/test_devbox.py has the rest).
    created = cli("compute", "create", "--file", "examples/compute/dev-instance.yml", "--query", "state", "-o", "tsv")
    assert created.out.strip() == "Running"
    assert cli("compute", "stop", "-n", "dev-instance", "--query", "state", "-o", "tsv").out.strip() == "Stopped"
    again = cli("compute", "stop", "-n", "dev-instance", check=False)
    assert again.code == 1 and "INVALID_STATE" in again.err and "already stopped" in again.err
    names = cli("compute", "list", "--query", "[].name", "-o", "tsv").out.split()
    assert names[0] == "local" and "dev-instance" in names


def test_state_survives_a_server_restart(cli):
    cli("model", "create", "--file", "examples/model/mlflow-model.yml", "--set", "name=restart-model")
    cli("server", "stop")
    assert cli("server", "status", check=False).code == 3
    # The next command starts the server again in the background.
    shown = json.loads(cli("model", "show", "-n", "restart-model", "-v", "1").out)
    assert shown["type"] == "mlflow_model"
    assert "running at" in cli("server", "status").out


def test_the_demo_job_runs(cli):
    cli("data", "create", "--file", "examples/data/iris-mltable.yml")
    out = cli("job", "create", "--file", "examples/jobs/train-job.yml", "--stream").out
    assert "trained on 2 files" in out and "Status: Completed" in out
