"""Inputs in and outputs out on the runner side, and the environment the user command sees."""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from shoal.runtime.__main__ import job_environment
from shoal.runtime.materialize import (
    fetch_datastore,
    format_literal,
    inline_uploads,
    materialize_inputs,
    parse_datastore_uri,
    planned_uploads,
    prepare_outputs,
    read_control_outputs,
    upload,
)

BLOB = "azureml://datastores/workspaceblobstore/paths"


class FakeClient:
    """The runner client's file calls, over a folder per datastore."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads: list[tuple[str, str, bytes]] = []

    def list_files(self, datastore: str, path: str) -> dict[str, Any]:
        base = self.root / datastore / path
        if base.is_file():
            return {"is_dir": False, "value": [{"path": base.name, "size": base.stat().st_size}]}
        files = sorted(p for p in base.rglob("*") if p.is_file())
        return {
            "is_dir": True,
            "value": [{"path": p.relative_to(base).as_posix(), "size": p.stat().st_size} for p in files],
        }

    def download(self, datastore: str, path: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((self.root / datastore / path).read_bytes())

    def download_many(self, datastore: str, items: list[tuple[str, Path, int]]) -> None:
        for path, target, _size in items:
            self.download(datastore, path, target)

    def upload(self, datastore: str, path: str, source: Path) -> None:
        self.uploads.append((datastore, path, source.read_bytes()))

    def upload_tree(self, datastore: str, prefix: str, folder: Path, files: list[Path]) -> int:
        for f in files:
            self.upload(datastore, f"{prefix.rstrip('/')}/{f.relative_to(folder).as_posix()}", f)
        return len(files)


# -- small pieces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "True"), (False, "False"), (3, "3"), (0, "0"), (0.25, "0.25"), ("x y", "x y"), ("", "")],
)
def test_format_literal(value, text):
    assert format_literal(value) == text


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        (f"{BLOB}/a/b.csv", ("workspaceblobstore", "a/b.csv")),
        (f"{BLOB}/a/b/", ("workspaceblobstore", "a/b/")),
        (f"{BLOB}/", ("workspaceblobstore", "")),
        ("azureml://datastores/mine/paths/x", ("mine", "x")),
        ("azureml://datastores/mine", None),
        ("https://example.com/a.csv", None),
        ("azureml:data:1", None),
        ("./local/file", None),
    ],
)
def test_parse_datastore_uri(uri, parsed):
    assert parse_datastore_uri(uri) == parsed


# -- outputs -----------------------------------------------------------------------------------


def test_prepare_outputs_gives_empty_folders_and_file_paths(tmp_path):
    stale = tmp_path / "outputs" / "model"
    stale.mkdir(parents=True)
    (stale / "left-over.txt").write_text("from an earlier attempt")
    outputs = {
        "model": {"type": "uri_folder", "path": f"{BLOB}/azureml/j/model/"},
        "mlflow": {"type": "mlflow_model", "path": f"{BLOB}/azureml/j/mlflow/"},
        "report": {"type": "uri_file", "path": f"{BLOB}/azureml/j/report/result.csv"},
        "other_file": {"type": "uri_file", "path": "https://example.com/x"},
        "count": {"type": "integer"},
    }
    paths = prepare_outputs(outputs, tmp_path)
    assert set(paths) == {"model", "mlflow", "report", "other_file", "count"}
    assert paths["count"] == str(tmp_path / "outputs" / "count")  # a control output: the job writes its value here
    for name in ("model", "mlflow"):
        assert paths[name] == str(tmp_path / "outputs" / name)
        assert Path(paths[name]).is_dir() and not any(Path(paths[name]).iterdir())
    report = Path(paths["report"])
    assert report == tmp_path / "outputs" / "report" / "result.csv"
    assert report.parent.is_dir() and not report.exists()
    assert Path(paths["other_file"]) == tmp_path / "outputs" / "other_file" / "other_file"


def test_upload_outputs_and_artifacts(tmp_path):
    client = FakeClient(tmp_path / "stores")
    outputs = {
        "model": {"type": "uri_folder", "path": f"{BLOB}/azureml/j/model/"},
        "report": {"type": "uri_file", "path": f"{BLOB}/azureml/j/report.csv"},
        "empty": {"type": "uri_folder", "path": f"{BLOB}/azureml/j/empty/"},
        "count": {"type": "integer"},
    }
    run_dir = tmp_path / "run"
    paths = prepare_outputs(outputs, run_dir)
    (Path(paths["model"]) / "sub").mkdir()
    (Path(paths["model"]) / "sub" / "w.bin").write_bytes(b"weights")
    (Path(paths["model"]) / "a.txt").write_text("a")
    Path(paths["report"]).write_text("x,y\n")
    upload(client, planned_uploads(outputs, run_dir))
    assert sorted(client.uploads) == [
        ("workspaceblobstore", "azureml/j/model/a.txt", b"a"),
        ("workspaceblobstore", "azureml/j/model/sub/w.bin", b"weights"),
        ("workspaceblobstore", "azureml/j/report.csv", b"x,y\n"),
    ]

    client.uploads.clear()
    workdir = tmp_path / "wd"
    (workdir / "outputs").mkdir(parents=True)
    (workdir / "logs").mkdir()
    (workdir / "outputs" / "metrics.json").write_text("{}")
    (workdir / "logs" / "extra.log").write_text("log")
    (workdir / "train.py").write_text("not an artifact")
    artifacts = {"datastore": "workspaceartifactstore", "path": "ExperimentRun/dcid.j"}
    upload(client, planned_uploads({}, run_dir, artifacts, workdir))
    assert sorted(client.uploads) == [
        ("workspaceartifactstore", "ExperimentRun/dcid.j/logs/extra.log", b"log"),
        ("workspaceartifactstore", "ExperimentRun/dcid.j/outputs/metrics.json", b"{}"),
    ]


def test_small_outputs_and_artifacts_go_with_the_report_where_offered(tmp_path):
    outputs = {
        "model": {"type": "uri_folder", "path": f"{BLOB}/azureml/j/model/"},
        "report": {"type": "uri_file", "path": f"{BLOB}/azureml/j/report.csv"},
    }
    run_dir, workdir = tmp_path / "run", tmp_path / "wd"
    paths = prepare_outputs(outputs, run_dir)
    (Path(paths["model"]) / "sub").mkdir()
    (Path(paths["model"]) / "sub" / "w.bin").write_bytes(b"\x00weights")
    Path(paths["report"]).write_text("x,y\n")
    (workdir / "outputs").mkdir(parents=True)
    (workdir / "outputs" / "metrics.json").write_text("{}")
    artifacts = {"datastore": "workspaceartifactstore", "path": "ExperimentRun/dcid.j"}
    plan = planned_uploads(outputs, run_dir, artifacts, workdir)
    offer = {"datastores": ["workspaceblobstore", "workspaceartifactstore"], "files": 16, "bytes": 65536}
    groups = inline_uploads(plan, offer)
    assert groups == [
        {"datastore": "workspaceblobstore", "prefix": "azureml/j/model", "files": [["sub/w.bin", "AHdlaWdodHM="]]},
        {"datastore": "workspaceblobstore", "prefix": "", "files": [["azureml/j/report.csv", "eCx5Cg=="]]},
        {
            "datastore": "workspaceartifactstore",
            "prefix": "ExperimentRun/dcid.j/outputs",
            "files": [["metrics.json", "e30="]],
        },
    ]
    # Not offered (an old server), a store not offered (S3), too many files or bytes: uploaded.
    assert inline_uploads(plan, None) is None
    assert inline_uploads(plan, {**offer, "datastores": ["workspaceblobstore"]}) is None
    assert inline_uploads(plan, {**offer, "files": 2}) is None
    assert inline_uploads(plan, {**offer, "bytes": 10}) is None
    assert inline_uploads([], offer) == []  # nothing to send


# -- inputs ------------------------------------------------------------------------------------


def test_materialize_inputs(tmp_path):
    stores = tmp_path / "stores"
    (stores / "workspaceblobstore" / "data" / "sub").mkdir(parents=True)
    (stores / "workspaceblobstore" / "data" / "a.csv").write_text("a\n")
    (stores / "workspaceblobstore" / "data" / "sub" / "b.csv").write_text("b\n")
    client = FakeClient(stores)
    inputs = {
        "folder": {"type": "uri_folder", "mode": "ro_mount", "uri": f"{BLOB}/data/"},
        "copy": {"type": "uri_folder", "mode": "download", "uri": f"{BLOB}/data"},
        "file": {"type": "uri_file", "mode": "ro_mount", "uri": f"{BLOB}/data/a.csv"},
        "direct": {"type": "uri_folder", "mode": "direct", "uri": f"{BLOB}/data/"},
        "placed": {"type": "uri_file", "uri": f"{BLOB}/data/a.csv", "path_on_compute": "/mnt/data"},
        "unset": {"type": "uri_folder", "mode": "ro_mount"},
        "lr": {"type": "number", "value": 0.5},
        "flag": {"type": "boolean", "value": False},
        "none": {"type": "string", "value": None},
    }
    run_dir = tmp_path / "run"
    values = materialize_inputs(client, inputs, run_dir, None)
    assert values["direct"] == f"{BLOB}/data/"
    assert (values["lr"], values["flag"], values["none"], values["unset"]) == ("0.5", "False", None, None)
    folder = Path(values["folder"])
    assert folder == run_dir / "inputs" / "folder"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "a.csv",
        "sub/b.csv",
    ]
    assert Path(values["file"]) == run_dir / "inputs" / "file" / "a.csv"
    assert Path(values["file"]).read_text() == "a\n"
    # path_on_compute lands under the job's own folder, never where the runner's rights would reach
    assert Path(values["placed"]) == run_dir / "inputs" / "placed" / "mnt" / "data" / "a.csv"
    for ro in (folder / "a.csv", folder / "sub" / "b.csv", Path(values["file"])):
        assert not ro.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), ro
    assert (Path(values["copy"]) / "a.csv").stat().st_mode & stat.S_IWUSR

    with pytest.raises(ValueError, match="cannot fetch"):
        materialize_inputs(client, {"x": {"type": "uri_folder", "uri": "s3://bucket/x"}}, run_dir, None)
    escape = {"type": "uri_file", "uri": f"{BLOB}/data/a.csv", "path_on_compute": "../../../root/.ssh"}
    with pytest.raises(ValueError, match="path_on_compute"):
        materialize_inputs(client, {"x": escape}, run_dir, None)


def test_http_inputs_are_downloaded_once_into_the_cache(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "data.csv").write_text("1,2\n")
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data.csv"
        spec = {"d": {"type": "uri_file", "mode": "download", "uri": url}}
        cache = tmp_path / "cache"
        first = materialize_inputs(FakeClient(tmp_path), spec, tmp_path / "run1", cache)
        second = materialize_inputs(FakeClient(tmp_path), spec, tmp_path / "run2", cache)
        assert Path(first["d"]).read_text() == Path(second["d"]).read_text() == "1,2\n"
        assert Path(first["d"]) == tmp_path / "run1" / "inputs" / "d" / "data.csv"
        assert hits == ["/data.csv"]
    finally:
        server.shutdown()
        server.server_close()


# -- the user command's environment ----------------------------------------------------------


def test_job_environment(monkeypatch):
    monkeypatch.setenv("SHOAL_JOB_TOKEN", "secret-token")
    monkeypatch.setenv("SHOAL_SERVER_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("KEEP_ME", "kept")
    # The server's own MLflow settings must not steer the job's client.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "5")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://elsewhere")
    # The server's artifact-root keys, exported as docs/team-mode.md shows, are not the job's.
    for var in ("AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING", "FSSPEC_S3_SECRET", "AZURE_CLIENT_SECRET"):
        monkeypatch.setenv(var, "server-storage-key")
    spec = {
        "job": "brave_otter_x7kq2mzr9d",
        "workspace": "default",
        "experiment_name": "exp",
        "experiment_id": "3",
        "mlflow_tracking_uri": "http://127.0.0.1:8080/api/v1/workspaces/default/mlflow",
        "inputs": {
            "lr": {"type": "number", "value": 0.5},
            "data": {"type": "uri_folder", "uri": f"{BLOB}/d/"},
            "unset": {"type": "string", "value": None},
        },
        "environment_variables": {
            "GREETING": "lr is ${{inputs.lr}}",
            "DATA": "${{inputs.data}}",
            "MODEL_DIR": "${{outputs.model}}",
            "OPTIONAL": "x$[[ --u ${{inputs.unset}}]]",
            "PLAIN": "value",
            "AWS_REGION": "set-by-the-job",
        },
    }
    inputs = {"lr": "0.5", "data": "/run/inputs/data", "unset": None}
    outputs = {"model": "/run/outputs/model"}
    env = job_environment(spec, "job-token", inputs, outputs)

    assert not [k for k in env if k.startswith("SHOAL_")]
    assert "secret-token" not in env.values()
    assert "server-storage-key" not in env.values()
    assert env["AWS_REGION"] == "set-by-the-job"  # the job's own YAML may still set such variables
    assert env["KEEP_ME"] == "kept" and env["PYTHONUNBUFFERED"] == "1"
    assert env["AZUREML_RUN_ID"] == env["MLFLOW_RUN_ID"] == "brave_otter_x7kq2mzr9d"
    assert env["AZUREML_ARM_WORKSPACE_NAME"] == "default"
    assert env["AZUREML_EXPERIMENT_NAME"] == env["AZUREML_ARM_PROJECT_NAME"] == env["MLFLOW_EXPERIMENT_NAME"] == "exp"
    assert env["AZUREML_ARM_SUBSCRIPTION"] and env["AZUREML_ARM_RESOURCEGROUP"]
    assert env["MLFLOW_TRACKING_URI"] == spec["mlflow_tracking_uri"]
    assert env["MLFLOW_TRACKING_TOKEN"] == "job-token"
    assert env["MLFLOW_EXPERIMENT_ID"] == "3" and "MLFLOW_REGISTRY_URI" not in env
    assert env["AZUREML_PARAMETER_lr"] == "0.5"
    assert env["AZURE_ML_INPUT_data"] == "/run/inputs/data"
    assert "AZUREML_PARAMETER_unset" not in env and "AZURE_ML_INPUT_unset" not in env
    assert "AZURE_ML_INPUT_lr" not in env and "AZUREML_PARAMETER_data" not in env
    assert env["AZURE_ML_OUTPUT_model"] == "/run/outputs/model"
    assert env["GREETING"] == "lr is 0.5"
    assert env["DATA"] == "/run/inputs/data"
    assert env["MODEL_DIR"] == "/run/outputs/model"
    assert env["OPTIONAL"] == "x"
    assert env["PLAIN"] == "value"
    assert os.environ["SHOAL_JOB_TOKEN"] == "secret-token"  # the runner's own environment is untouched


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next status of ``plan`` (the last one repeats)."""

    plan: list[int] = []
    seen: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status = self.plan[min(len(self.seen), len(self.plan) - 1)]
        self.seen.append(status)
        body = b'{"is_dir": true, "value": []}'
        if status >= 400:
            body = b'{"error": {"code": "INFRA_ERROR", "message": "cannot reach datastore \'ext\'"}}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("plan", "outcome", "tries"),
    [
        ([502], "refused", 5),  # an error that does not go away fails the call with its message
        ([500, 500, 200], "ok", 3),
        ([503, 503, 503, 503, 503, 502, 200], "ok", 7),  # 503: a server restarting, not counted
        ([404], "refused", 1),  # a 4xx will not get better: no retry at all
    ],
)
def test_runner_gives_up_on_server_errors_that_repeat(monkeypatch, plan, outcome, tries):
    from shoal.runtime import client as runner_client

    monkeypatch.setattr(runner_client.time, "sleep", lambda _s: None)
    handler = type("Handler", (_Answers,), {"plan": plan, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = runner_client.RunnerClient(f"http://127.0.0.1:{server.server_port}", "t", "ws", "job", None)
        if outcome == "ok":
            assert client.list_files("ext", "data") == {"is_dir": True, "value": []}
        else:
            with pytest.raises(runner_client.ServerRefused, match="cannot reach datastore 'ext'"):
                client.list_files("ext", "data")
        assert len(handler.seen) == tries
    finally:
        server.shutdown()
        server.server_close()


def test_a_tree_moves_on_several_connections_and_the_first_error_stops_it(tmp_path, monkeypatch):
    """The runner's own client against a real HTTP server: small files of one output go up in
    one batch, larger ones in parallel (each thread its own keep-alive connection), and a
    refused file fails the call."""
    from shoal.runtime import client as runner_client
    from shoal.runtime.client import TRANSFERS, RunnerClient, ServerRefused
    from shoal.storage.batches import parse_batch

    seen: list[tuple[str, int, bytes]] = []
    lock = threading.Lock()

    class Store(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Transfer-Encoding") == "chunked":
                while (size := int(self.rfile.readline(), 16)) > 0:
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
            with lock:
                seen.append((self.path, self.client_address[1], body))
            status = 403 if "bad" in self.path else 200
            reply = b'{"error": {"code": "PERMISSION_DENIED", "message": "no"}}' if status == 403 else b"{}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            # Signed URLs for the store itself (Azure Blob only): a server on another store has none.
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = b'{"error": {"code": "UNSUPPORTED", "message": "direct transfers: Azure Blob only"}}'
            self.send_response(400)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        folder = tmp_path / "out"
        for i in range(40):
            (folder / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
            (folder / f"d{i % 4}" / f"f{i}.txt").write_text(str(i))
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        client = RunnerClient(f"http://127.0.0.1:{server.server_port}", "t", "ws", "job", None)
        assert client.upload_tree("ds", "pre", folder, files) == 40
        [(path, _port, body)] = seen  # small files: one request, every file in it
        assert path.startswith("/api/v1/workspaces/ws/datastores/ds/contents?prefix=pre")
        assert dict(parse_batch([body])) == {f.relative_to(folder).as_posix(): f.read_bytes() for f in files}

        seen.clear()
        monkeypatch.setattr(runner_client, "SMALL", 0)  # every file on its own
        assert client.upload_tree("ds", "pre", folder, files) == 40
        assert len(seen) == 40
        assert 1 < len({port for _, port, _ in seen}) <= TRANSFERS  # several connections, reused
        (folder / "bad.txt").write_text("x")
        with pytest.raises(ServerRefused, match="no"):
            client.upload_tree("ds", "pre", folder, [*files, folder / "bad.txt"])
    finally:
        server.shutdown()
        server.server_close()


def test_a_store_the_runner_cannot_reach_gets_the_file_through_the_server(tmp_path):
    """A direct upload whose store does not answer from here (a runner in a network namespace):
    the unfinished upload is aborted, the file goes through the server, and the datastore's next
    file goes there at once. No message names the signed headers."""
    import json
    import socket

    from shoal.runtime.client import RunnerClient

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    seen: list[tuple[str, str]] = []
    stored: dict[str, bytes] = {}

    class Server(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, body: Any, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(("POST", self.path.split("?")[0].rsplit("/ds/", 1)[1]))
            if self.path.endswith("/direct-uploads"):
                self._answer({"upload_id": "u1", "part_size": 50 << 20, "parts": 1})
            elif self.path.endswith("/sign"):
                signed = {"url": f"http://127.0.0.1:{dead}/b/k?uploadId=u1", "headers": {"Authorization": "SIG"}}
                self._answer({"parts": [{"number": body["parts"][0], **signed}]})
            else:
                self._answer({})

        def do_PUT(self) -> None:  # noqa: N802 - http.server's name
            body = b""
            while (size := int(self.rfile.readline(), 16)) > 0:
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            seen.append(("PUT", self.path.split("?")[0].rsplit("/ds/", 1)[1]))
            stored[self.path] = body
            self._answer({})

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        big = tmp_path / "big.bin"
        big.write_bytes(b"b" * (3 << 20))
        client = RunnerClient(f"http://127.0.0.1:{server.server_port}", "t", "ws", "job", None)
        client.upload("ds", "out/big.bin", big)
        assert seen == [  # given up at the first connection refused, not part after part
            ("POST", "direct-uploads"),
            ("POST", "direct-uploads/sign"),
            ("POST", "direct-uploads/abort"),
            ("PUT", "content"),
        ]
        assert list(stored.values()) == [big.read_bytes()]
        seen.clear()
        client.upload("ds", "out/big2.bin", big)
        assert seen == [("PUT", "content")]
    finally:
        server.shutdown()
        server.server_close()


def test_small_files_go_through_the_server_when_the_store_cannot_be_reached(tmp_path):
    """Signed URLs for small files (Azure Blob) whose store does not answer from here: the batch
    goes through the server, said once in the runner's log without the URLs, and the
    datastore's later batches go there at once."""
    import json
    import socket

    from shoal.runtime.client import RunnerClient
    from shoal.storage.batches import header, parse_batch

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    seen: list[str] = []
    stored: dict[str, bytes] = {}

    class Server(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(self.path.split("?")[0].rsplit("/ds/", 1)[1])
            if self.path.endswith("/contents/read"):
                self._answer(b"".join(header(p, len(stored[p])) + stored[p] for p in body["paths"]))
                return
            urls = [{"path": p, "url": f"http://127.0.0.1:{dead}/acct/c/{p}?sig=SECRETSIG"} for p in body["paths"]]
            self._answer(json.dumps({"headers": {}, "value": urls}).encode())

        def do_PUT(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path.split("?")[0].rsplit("/ds/", 1)[1])
            stored.update(dict(parse_batch([self.rfile.read(int(self.headers["Content-Length"]))])))
            self._answer(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    err = io.StringIO()
    try:
        folder = tmp_path / "out"
        folder.mkdir()
        (folder / "a.txt").write_text("a")
        client = RunnerClient(f"http://127.0.0.1:{server.server_port}", "t", "ws", "job", None)
        with contextlib.redirect_stderr(err):
            client.upload_tree("ds", "", folder, [folder / "a.txt"])
            assert seen == ["direct-writes", "contents"] and stored == {"a.txt": b"a"}
            seen.clear()
            client.upload_tree("ds", "", folder, [folder / "a.txt"])
            client.download_many("ds", [("a.txt", tmp_path / "in" / "a.txt", 1)])
        assert seen == ["contents", "contents/read"]  # the datastore is not tried directly again
        assert (tmp_path / "in" / "a.txt").read_text() == "a"
        seen.clear()
        fresh = RunnerClient(f"http://127.0.0.1:{server.server_port}", "t", "ws", "job", None)
        with contextlib.redirect_stderr(err):
            fresh.download_many("ds", [("a.txt", tmp_path / "in2" / "a.txt", 1)])
        assert seen == ["direct-reads", "contents/read"] and (tmp_path / "in2" / "a.txt").read_text() == "a"
        said = err.getvalue()
        assert said.count("directly failed") == 2 and "SECRETSIG" not in said, said
    finally:
        server.shutdown()
        server.server_close()


def test_control_outputs_are_read_back_bounded_and_never_through_a_symlink(tmp_path):
    outputs = {
        "n": {"type": "integer"},
        "flag": {"type": "boolean"},
        "big": {"type": "string"},
        "d": {"type": "uri_folder", "path": f"{BLOB}/x/"},
    }
    paths = prepare_outputs(outputs, tmp_path)
    Path(paths["n"]).write_text("3\n")
    (tmp_path / "secret").write_text("s")
    Path(paths["flag"]).symlink_to(tmp_path / "secret")
    assert read_control_outputs(outputs, tmp_path) == {"n": "3\n"}
    Path(paths["big"]).write_text("x" * (64 * 1024 + 1))
    with pytest.raises(ValueError, match="control output 'big' holds more than"):
        read_control_outputs(outputs, tmp_path)


def test_the_datastore_root_is_fetched_as_a_folder(tmp_path):
    store = tmp_path / "stores" / "workspaceblobstore"
    (store / "LocalUpload" / "h").mkdir(parents=True)
    (store / "LocalUpload" / "h" / "a.txt").write_text("a")
    (store / "b.txt").write_text("b")
    local = fetch_datastore(FakeClient(tmp_path / "stores"), f"{BLOB}/", tmp_path / "in")
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()) == [
        "LocalUpload/h/a.txt",
        "b.txt",
    ]
