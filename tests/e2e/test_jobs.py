"""Command jobs end to end: a real server, real runner processes, the real CLI and SDK."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path

from tests.e2e.conftest import Cli, wait_for, write_job


def submit(cli: Cli, path: Path, *extra: str) -> str:
    return cli("job", "create", "--file", str(path), "--query", "name", "-o", "tsv", *extra).out.strip()


def test_hello_world_streams_and_completes(jobs_cli, tmp_path):
    path = write_job(
        tmp_path,
        """
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: echo "hello world"
        environment:
          image: library/python:latest
        """,
    )
    result = jobs_cli("job", "create", "--file", str(path), "--stream")
    assert "RunId:" in result.out and "hello world" in result.out
    assert "Execution Summary" in result.out and "Status: Completed" in result.out


def test_code_inputs_outputs_env_and_download(jobs_cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        textwrap.dedent(
            """
            import os, sys, pathlib
            data, lr, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
            print("rows", len(open(data).read().splitlines()), "lr", lr)
            (out / "model.txt").write_text(f"lr={lr}")
            pathlib.Path("outputs").mkdir(exist_ok=True)
            pathlib.Path("outputs/metrics.json").write_text('{"acc": 1}')
            keys = ["AZUREML_RUN_ID", "AZUREML_PARAMETER_lr", "AZURE_ML_OUTPUT_model", "MLFLOW_RUN_ID", "GREETING"]
            for k in keys:
                print(k, os.environ.get(k))
            """
        )
    )
    (src / ".amlignore").write_text("secret.txt\n")
    (src / "secret.txt").write_text("not uploaded")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    path = write_job(
        tmp_path,
        """
        command: python train.py ${{inputs.data}} ${{inputs.lr}} ${{outputs.model}}
        code: ./src
        environment:
          image: python:3.11
        environment_variables:
          GREETING: lr is ${{inputs.lr}}
        inputs:
          lr: 0.5
          data:
            type: uri_file
            path: ./data.csv
        outputs:
          model:
        experiment_name: e2e
        """,
    )
    name = submit(jobs_cli, path)
    job = wait_for(jobs_cli, name)
    assert job["status"] == "Completed", job
    assert job["experiment_name"] == "e2e"
    assert job["outputs"]["model"]["path"] == f"azureml://datastores/workspaceblobstore/paths/azureml/{name}/model/"
    out = tmp_path / "dl"
    jobs_cli("job", "download", "-n", name, "--all", "--snapshot", "--download-path", str(out))
    assert (out / "snapshot" / "train.py").read_text() == (src / "train.py").read_text()
    assert not (out / "snapshot" / "secret.txt").exists(), ".amlignore must keep secret.txt out of the snapshot"
    log = (out / "artifacts" / "user_logs" / "std_log.txt").read_text()
    assert "rows 3 lr 0.5" in log
    assert f"AZUREML_RUN_ID {name}" in log and "AZUREML_PARAMETER_lr 0.5" in log and f"MLFLOW_RUN_ID {name}" in log
    assert "GREETING lr is 0.5" in log
    assert (out / "named-outputs" / "model" / "model.txt").read_text() == "lr=0.5"
    assert json.loads((out / "artifacts" / "outputs" / "metrics.json").read_text()) == {"acc": 1}
    snapshot = json.loads(jobs_cli("job", "show", "-n", name, "--query", "code", "-o", "json").out)
    assert snapshot.startswith("azureml:")


def test_failing_command_fails_with_its_exit_code(jobs_cli, tmp_path):
    path = write_job(tmp_path, "command: echo about to fail; exit 3\nenvironment:\n  image: python:3.11\n")
    result = jobs_cli("job", "create", "--file", str(path), "--stream", check=False)
    assert result.code == 1 and "about to fail" in result.out and "Status: Failed" in result.out
    name = result.out.split("RunId:", 1)[1].split()[0]
    job = json.loads(jobs_cli("job", "show", "-n", name).out)
    assert job["status"] == "Failed" and job["exit_code"] == 3 and "3" in job["error"]["message"]


def test_image_only_jobs_see_no_host_packages(jobs_cli, tmp_path):
    # httpx is installed where Shoal runs; a python:3.11 job gets a clean venv and cannot import it.
    path = write_job(tmp_path, 'command: python -c "import json, httpx"\nenvironment:\n  image: python:3.11\n')
    result = jobs_cli("job", "create", "--file", str(path), "--stream", check=False)
    assert result.code == 1 and "Status: Failed" in result.out
    assert "ModuleNotFoundError: No module named 'httpx'" in result.out


def test_cancel_stops_the_whole_process_group(jobs_cli, tmp_path):
    path = write_job(tmp_path, "command: sleep 60 & sleep 61 & wait\nenvironment:\n  image: python:3.11\n")
    name = submit(jobs_cli, path)
    wait_for(jobs_cli, name, ("Running",))
    pids = _wait_for_processes(name, lambda cmds: b"61" in cmds and b"60" in cmds)
    jobs_cli("job", "cancel", "-n", name)
    job = wait_for(jobs_cli, name)
    assert job["status"] == "Canceled"
    time.sleep(0.5)
    for pid in pids:
        assert not _running(pid), f"process {pid} of the canceled job is still running"


def _wait_for_processes(job: str, ready, timeout: float = 20.0) -> list[int]:
    """This machine's processes of ``job`` (its environment names it: job code may be in a sandbox
    whose files and PIDs the test cannot share), once ``ready(their command lines)``."""
    deadline = time.monotonic() + timeout
    needle = f"AZUREML_RUN_ID={job}".encode()
    while True:
        found = {}
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and needle in (proc / "environ").read_bytes().split(b"\0"):
                    found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
        if ready(b" ".join(found.values())) or time.monotonic() > deadline:
            return list(found)
        time.sleep(0.1)


def _running(pid: int) -> bool:
    """Alive and not a zombie (in a container, PID 1 may never reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_timeout_stops_the_job(jobs_cli, tmp_path):
    path = write_job(tmp_path, "command: sleep 30\nenvironment:\n  image: python:3.11\nlimits:\n  timeout: 1\n")
    job = wait_for(jobs_cli, submit(jobs_cli, path))
    assert job["status"] == "Canceled" and job["error"]["code"] == "JOB_TIMEOUT"


def test_cluster_capacity_queues_jobs_first_in_first_out(jobs_cli, tmp_path):
    jobs_cli("compute", "create", "--name", "one-node", "--type", "amlcompute", "--max-instances", "1")
    names = []
    for i in range(3):
        path = write_job(
            tmp_path / f"j{i}",
            # The first job outlasts the next two submits and a poll (CLI calls of up to 3 s each
            # on a loaded machine), so that the polls below see a job running; a sleep costs no CPU.
            f"command: echo start $(date +%s.%N); sleep {15 if i == 0 else 1}; echo end $(date +%s.%N)\n"
            "environment:\n  image: python:3.11\ncompute: azureml:one-node\n",
        )
        names.append(submit(jobs_cli, path))
    seen_running: set[str] = set()
    deadline = time.monotonic() + 90  # under load the first job may take a while to start
    while len(seen_running) < 2 and time.monotonic() < deadline:
        nodes = json.loads(jobs_cli("compute", "list-nodes", "-n", "one-node").out)
        assert len(nodes) == 1, nodes
        if nodes[0]["run_id"]:
            seen_running.add(nodes[0]["run_id"])
        elif seen_running:
            break  # the queue has run dry
        time.sleep(0.2)
    assert seen_running <= set(names) and seen_running
    jobs = [wait_for(jobs_cli, n) for n in names]
    assert [j["status"] for j in jobs] == ["Completed"] * 3
    spans = []
    for name in names:  # the stamps each job printed
        log = jobs_cli("job", "stream", "-n", name).out.split()
        spans.append((float(log[log.index("start") + 1]), float(log[log.index("end") + 1])))
    assert spans == sorted(spans), "jobs must start in submission order"
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, "a one-node cluster must never run two jobs at once"


def test_bad_jobs_are_refused_and_leave_nothing(jobs_cli, tmp_path):
    before = len(json.loads(jobs_cli("job", "list", "--all-results").out))
    cases = {
        "command: echo ${{inputs.nope}}\nenvironment:\n  image: python:3.11\n": ("INVALID_SPEC", "nope"),
        "command: echo hi\ncode: ./missing-folder\nenvironment:\n  image: python:3.11\n": ("NOT_FOUND", "missing"),
        "command: echo hi\ncompute: azureml:no-such-cluster\nenvironment:\n  image: python:3.11\n": (
            "NOT_FOUND",
            "no-such-cluster",
        ),
        "command: echo hi\nenvironment: azureml:no-such-env:1\n": ("NOT_FOUND", "no-such-env"),
        "command: echo ${{inputs.x}}\ninputs:\n  x:\n    type: uri_folder\nenvironment:\n  image: python:3.11\n": (
            "INVALID_SPEC",
            "x",
        ),
    }
    for i, (body, (code, word)) in enumerate(cases.items()):
        path = write_job(tmp_path / f"bad{i}", body)
        result = jobs_cli("job", "create", "--file", str(path), check=False)
        assert result.code == 1, body
        assert f"Error [{code}]" in result.err and word in result.err, (body, result.err)
    assert len(json.loads(jobs_cli("job", "list", "--all-results").out)) == before


def test_killed_runner_fails_the_job_within_the_heartbeat_timeout(jobs_cli, tmp_path):
    path = write_job(tmp_path, "command: sleep 60 & wait\nenvironment:\n  image: python:3.11\n")
    name = submit(jobs_cli, path)
    wait_for(jobs_cli, name, ("Running",))
    pids = _wait_for_processes(name, lambda cmds: b"sleep 60" in cmds)
    runner_pid = _runner_pid(jobs_cli.home, name)
    os.kill(runner_pid, signal.SIGKILL)
    job = wait_for(jobs_cli, name, timeout=30)
    assert job["status"] == "Failed" and job["error"]["code"] in ("RUNNER_LOST", "NOT_RESPONDING")
    time.sleep(0.5)
    assert pids and not [p for p in pids if _running(p)], "the lost runner's command must not be left running"


def _runner_pid(home: Path, job: str) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"shoal.runtime" in cmd and job.encode() in cmd:
            return int(proc.name)
    raise AssertionError(f"no runner process for {job}")


def _warm_runner(home: Path) -> int | None:
    """The pid of the warm runner of the server of this home (its working folder), if it runs."""
    for proc in Path("/proc").iterdir():
        try:
            if b"shoal.runtime.warm" in (proc / "cmdline").read_bytes().split(b"\0") and os.readlink(
                proc / "cwd"
            ) == str(home.resolve()):
                return int(proc.name)
        except OSError:
            continue
    return None


def test_server_restart_while_a_job_runs(jobs_cli, tmp_path):
    if _warm_runner(jobs_cli.home) is None:  # a server's first job starts cold, and its warm runner
        warm_up = submit(jobs_cli, write_job(tmp_path / "w", "command: echo\nenvironment:\n  image: python:3.11\n"))
        wait_for(jobs_cli, warm_up)
    # Long enough for a loaded machine's CLI calls (seconds each) to see it Running and stop the server.
    path = write_job(tmp_path, "command: sleep 8; echo survived\nenvironment:\n  image: python:3.11\n")
    name = submit(jobs_cli, path)
    wait_for(jobs_cli, name, ("Running",))
    # Its runner was forked by the server's warm runner, whose exit with the server must not end it.
    parent = Path(f"/proc/{_runner_pid(jobs_cli.home, name)}/status").read_text().split("PPid:")[1].split()[0]
    assert int(parent) == _warm_runner(jobs_cli.home)
    jobs_cli("server", "stop")
    time.sleep(1)
    jobs_cli("server", "start", "--detach")
    job = wait_for(jobs_cli, name)
    assert job["status"] == "Completed"
    data, _ = _log(jobs_cli, name)
    assert "survived" in data


def _log(cli: Cli, name: str) -> tuple[str, int]:
    out = cli("job", "stream", "-n", name, check=False).out
    return out, len(out)


def test_distributed_pytorch_ranks(jobs_cli, tmp_path):
    path = write_job(
        tmp_path,
        """
        command: echo rank $RANK of $WORLD_SIZE local $LOCAL_RANK master $MASTER_ADDR
        environment:
          image: python:3.11
        distribution:
          type: pytorch
          process_count_per_instance: 2
        resources:
          instance_count: 1
        """,
    )
    name = submit(jobs_cli, path)
    assert wait_for(jobs_cli, name)["status"] == "Completed"
    out = tmp_path / "dl"
    jobs_cli("job", "download", "-n", name, "--download-path", str(out))
    logs = sorted((out / "artifacts" / "user_logs").glob("std_log_process_*.txt"))
    assert [p.read_text().strip() for p in logs] == [
        "rank 0 of 2 local 0 master 127.0.0.1",
        "rank 1 of 2 local 1 master 127.0.0.1",
    ]


def test_named_output_is_registered_on_completion(jobs_cli, tmp_path):
    path = write_job(
        tmp_path,
        """
        command: echo weights > ${{outputs.model}}/w.txt
        environment:
          image: python:3.11
        outputs:
          model:
            type: custom_model
            name: job-made-model
            version: "1"
        """,
    )
    name = submit(jobs_cli, path)
    assert wait_for(jobs_cli, name)["status"] == "Completed"
    model = json.loads(jobs_cli("model", "show", "-n", "job-made-model", "-v", "1").out)
    assert model["path"] == f"azureml://datastores/workspaceblobstore/paths/azureml/{name}/model/"
    out = tmp_path / "m"
    jobs_cli("model", "download", "-n", "job-made-model", "-v", "1", "--download-path", str(out))
    assert (out / "job-made-model" / "model" / "w.txt").read_text().strip() == "weights"


def _yaml(path: Path, body: dict) -> Path:
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def test_inputs_and_outputs_on_every_datastore_backend(jobs_cli, tmp_path, cloud_backend):
    """A datastore on S3 (moto) or Azure Blob (Azurite): data assets on it, a job
    reading them in download / ro_mount / direct mode and writing outputs back (upload, rw_mount).
    (Local datastores go the same way through the server; tests/api covers them.)"""
    backend = cloud_backend
    files = backend.files()
    files.write_stream("data/train.csv", [b"a,b\n1,2\n3,4\n"])
    files.write_stream("data/tbl/part-0.csv", [b"x\n1\n"])
    files.write_stream("data/tbl/MLTable", [b"paths:\n  - pattern: ./*.csv\n"])
    store = {"$schema": "https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json", "name": "ext"}
    jobs_cli("datastore", "create", "--file", str(_yaml(tmp_path / "ds.yml", {**store, **backend.datastore()})))
    base = "azureml://datastores/ext/paths/data"
    for name, type_, path in (("trainf", "uri_file", f"{base}/train.csv"), ("tbl", "mltable", f"{base}/tbl/")):
        jobs_cli(
            "data",
            "create",
            "--file",
            str(_yaml(tmp_path / f"{name}.yml", {"name": name, "version": "1", "type": type_, "path": path})),
        )
    jobs_cli("data", "download", "-n", "tbl", "-v", "1", "--download-path", str(tmp_path / "tbl"))
    got = {p.name: p.read_bytes() for p in (tmp_path / "tbl").rglob("*") if p.is_file()}
    assert got == {"part-0.csv": b"x\n1\n", "MLTable": b"paths:\n  - pattern: ./*.csv\n"}
    shown = jobs_cli("datastore", "show", "-n", "ext", "-o", "json").out
    assert backend.secret is None or backend.secret not in shown
    path = write_job(
        tmp_path,
        """
        command: >-
          python -c "import sys, os, pathlib;
          print('rows', len(open(sys.argv[1]).read().splitlines()));
          print('tbl', sorted(os.listdir(sys.argv[2])));
          print('direct', sys.argv[3]);
          pathlib.Path(sys.argv[4], 'model.txt').write_text('m');
          pathlib.Path(sys.argv[4], 'weights.bin').write_bytes(bytes(range(256)) * 12288);
          pathlib.Path(sys.argv[5], 'deep').mkdir();
          pathlib.Path(sys.argv[5], 'deep', 'r.txt').write_text('r');
          print('url rows', len(open(sys.argv[6]).read().splitlines()))"
          ${{inputs.f}} ${{inputs.t}} ${{inputs.d}} ${{outputs.up}} ${{outputs.rw}} ${{inputs.u}}
        environment:
          image: python:3.11
        inputs:
          f: {type: uri_file, path: azureml:trainf:1, mode: download}
          t: {type: mltable, path: azureml:tbl:1, mode: ro_mount}
          d: {type: uri_folder, path: azureml://datastores/ext/paths/data/, mode: direct}
          u: {type: uri_file, path: URL}
        outputs:
          up: {type: uri_folder, mode: upload, path: azureml://datastores/ext/paths/results/up/}
          rw: {type: uri_folder, mode: rw_mount, path: azureml://datastores/ext/paths/results/rw/}
        """,
    )
    # Azure: the blob's own URL, read with the datastore's account key (Azurite refuses anonymous
    # reads of a private container).
    url = f"{backend.azurite.account_url}/{backend.place}/data/train.csv" if backend.azurite else f"{base}/train.csv"
    path.write_text(path.read_text().replace("URL", url))
    name = submit(jobs_cli, path)
    job = wait_for(jobs_cli, name)
    assert job["status"] == "Completed", job
    out = tmp_path / "dl"
    jobs_cli("job", "download", "-n", name, "--all", "--download-path", str(out))
    log = (out / "artifacts" / "user_logs" / "std_log.txt").read_text()
    assert "rows 3" in log and "url rows 3" in log and "tbl ['MLTable', 'part-0.csv']" in log
    assert "direct azureml://datastores/ext/paths/data/" in log
    # The runner reached the store itself (no line saying that it went through the server instead).
    assert not [p for p in out.rglob("*") if p.is_file() and "directly failed" in p.read_text(errors="replace")]
    with files.open_read("results/up/model.txt") as fh:
        assert fh.read() == b"m"
    # 3 MB: on S3 the runner sends it to the store itself, each part's request signed by the server.
    with files.open_read("results/up/weights.bin") as fh:
        assert fh.read() == bytes(range(256)) * 12288
    if backend.kind == "s3":  # a multipart upload's ETag ends in its number of parts (the server's would be one PUT)
        assert files.fs.info(f"{files.root}/results/up/weights.bin")["ETag"].strip('"').endswith("-1")
    else:  # Azure: a block the runner staged, committed by the server (the server's would be one Put Blob)
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(backend.azurite.connection_string()) as service:
            committed, _ = service.get_blob_client(backend.place, "results/up/weights.bin").get_block_list()
        assert len(committed) == 1
    with files.open_read("results/rw/deep/r.txt") as fh:
        assert fh.read() == b"r"
    assert (out / "named-outputs" / "rw" / "deep" / "r.txt").read_text() == "r"
    if backend.secret:  # no log, run spec or answer of this job holds the datastore's secret
        spec = jobs_cli("job", "show", "-n", name, "-o", "json").out
        logs = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
        server_logs = "".join(p.read_text(errors="replace") for p in jobs_cli.home.rglob("*.log") if p.is_file())
        for text in (spec, logs, server_logs):
            assert backend.secret not in text


def test_an_input_the_server_cannot_read_fails_the_job_with_its_message(jobs_cli, tmp_path, cloud_backend):
    """Wrong stored credentials: the runner gives up at once (a 4xx will not go away) and the
    job fails with the server's message, instead of staying in Preparing."""
    body = {"name": "badds", **cloud_backend.datastore(wrong=True)}
    jobs_cli("datastore", "create", "--file", str(_yaml(tmp_path / "ds.yml", body)))
    path = write_job(
        tmp_path,
        """
        command: cat ${{inputs.f}}
        environment:
          image: python:3.11
        inputs:
          f: {type: uri_file, path: azureml://datastores/badds/paths/x.csv}
        """,
    )
    name = submit(jobs_cli, path, "--skip-validation")
    job = wait_for(jobs_cli, name, timeout=60)
    assert job["status"] == "Failed", job
    message = json.dumps(job.get("error") or job)
    assert "datastore 'badds'" in message and "credentials" in message, message
    secret = body["credentials"].get("secret_access_key") or body["credentials"].get("account_key")
    assert secret not in message
    logs = [p for p in jobs_cli.home.rglob("*") if p.is_file() and p.suffix in (".log", ".txt", ".json")]
    assert logs and not [p for p in logs if secret in p.read_text(errors="replace")]
