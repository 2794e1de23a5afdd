"""One server per SHOAL_HOME, and a stop that only forgets the server it stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Cli


def test_a_second_server_on_the_same_home_refuses_to_start(tmp_path):
    cli = Cli(tmp_path / "home")
    cli("server", "start", "--detach")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "shoal.server.main", "--port", "0"],
            env=cli.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 3 and "another Shoal server is running" in second.stderr
        assert "running at" in cli("server", "status").out
    finally:
        cli("server", "stop")
    assert cli("server", "status", check=False).code == 3


def test_stop_leaves_a_newer_servers_file_alone(tmp_path):
    from shoal.client.local_server import _forget
    from shoal.config import ShoalSettings

    settings = ShoalSettings(home=tmp_path)
    settings.server_file.write_text(json.dumps({"pid": 999999, "url": "http://127.0.0.1:1"}))
    _forget(settings, 123)  # another (older) server's pid: the file is not its to remove
    assert settings.server_file.exists()
    _forget(settings, 999999)
    assert not settings.server_file.exists()


def test_a_whole_server_on_an_object_store_artifact_root(tmp_path, cloud_backend, monkeypatch):
    """SHOAL_ARTIFACT_ROOT on S3 (moto) or Azure Blob (Azurite): code snapshots, logs, outputs,
    model registration and MLflow artifacts all live there, with no temporary object left."""
    import textwrap

    from shoal.storage.filesystem import TMP_PREFIX
    from tests.e2e.conftest import wait_for, write_job

    root, env = cloud_backend.artifact_root()
    cli = Cli(tmp_path / "home")
    cli.env.update({"SHOAL_ARTIFACT_ROOT": root, **env})
    cli("server", "start", "--detach")
    try:
        src = tmp_path / "src"
        src.mkdir()
        (src / "train.py").write_text(
            textwrap.dedent(
                """
                import os, pathlib, sys
                print("server keys seen:", sorted(set(os.environ) & set(sys.argv[2].split(","))))
                pathlib.Path(sys.argv[1], "w.txt").write_text("weights")
                pathlib.Path("outputs").mkdir(exist_ok=True)
                pathlib.Path("outputs/report.txt").write_text("report")
                pathlib.Path("outputs/big.bin").write_bytes(bytes(range(256)) * 8192)
                print("trained")
                """
            )
        )
        job = write_job(
            tmp_path,
            """
            command: python train.py ${{outputs.model}} KEYS
            code: ./src
            environment:
              image: python:3.11
            outputs:
              model:
                type: custom_model
                name: cloud-model
            """.replace("KEYS", ",".join(env)),
        )
        name = cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
        assert wait_for(cli, name)["status"] == "Completed"
        out = tmp_path / "dl"
        cli("job", "download", "-n", name, "--all", "--snapshot", "--download-path", str(out))
        assert (out / "snapshot" / "train.py").read_text() == (src / "train.py").read_text()
        log = (out / "artifacts" / "user_logs" / "std_log.txt").read_text()
        assert "trained" in log
        assert "server keys seen: []" in log  # the artifact root's keys stay the server's
        assert (out / "artifacts" / "outputs" / "report.txt").read_text() == "report"
        assert (out / "artifacts" / "outputs" / "big.bin").read_bytes() == bytes(range(256)) * 8192
        cli("model", "download", "-n", "cloud-model", "-v", "1", "--download-path", str(tmp_path / "m"))
        assert (tmp_path / "m" / "cloud-model" / "model" / "w.txt").read_text() == "weights"

        server = json.loads((cli.home / "server.json").read_text())
        token = (cli.home / "token").read_text().strip()
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        import mlflow

        client = mlflow.MlflowClient(f"{server['url']}/api/v1/workspaces/default/mlflow")
        run = client.create_run(client.create_experiment("cloud"))
        (tmp_path / "note.txt").write_text("mlflow artifact")
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"), "notes")
        got = client.download_artifacts(run.info.run_id, "notes/note.txt", str(tmp_path / "mlf"))
        assert Path(got).read_text() == "mlflow artifact"
    finally:
        cli("server", "stop", check=False)
    # Everything above is in the bucket/container, nothing is half-published.
    names = [f.path for f in cloud_backend.artifact_store().list_files("")]
    assert any(n.endswith("train.py") for n in names) and any(n.endswith("w.txt") for n in names)
    assert any(n.endswith("note.txt") for n in names) and any(n.endswith("std_log.txt") for n in names)
    assert not [n for n in names if TMP_PREFIX in n]
    if cloud_backend.kind == "s3":  # 2 MB: sent by the runner itself, signed with the root's own credentials
        store = cloud_backend.artifact_store()
        [big] = [n for n in names if n.endswith("outputs/big.bin")]
        assert store.fs.info(f"{store.root}/{big}")["ETag"].strip('"').endswith("-1")
