"""The MLflow artifact proxy: traversal attempts refused with 400 and nothing written (raw HTTP,
bytes sent as written), then the real MLflow client's artifact calls, byte for byte."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

pytestmark = pytest.mark.e2e

SECRET = b"canary: nobody may read or change this\n"


class Raw:
    """http.client sends the request target exactly as given (no dot-segment folding)."""

    def __init__(self, home: Path) -> None:
        server = json.loads((home / "server.json").read_text())
        url = server.get("url") or f"http://127.0.0.1:{server['port']}"
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.token = (home / "token").read_text().strip()
        self.base = "/api/v1/workspaces/default/mlflow"

    def __call__(self, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            if body is not None:
                headers["Content-Type"] = "application/octet-stream"
            conn.request(method, self.base + target, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


def _store(home: Path) -> Path:
    return home / "artifacts" / "workspaces" / "default" / "datastores" / "workspaceartifactstore"


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def run_and_canaries(mlflow_env):
    home = mlflow_env.home
    run_id = MlflowClient().create_run("0").info.run_id
    canaries = [home / "canary.txt", _store(home) / "canary.txt", _store(home).parent / "canary.txt"]
    for c in canaries:
        c.parent.mkdir(parents=True, exist_ok=True)
        c.write_bytes(SECRET)
    MlflowClient().log_text(run_id, "inside", "ok.txt")
    return Raw(home), run_id, canaries


def _prefix(run_id: str) -> str:
    return f"/api/2.0/mlflow-artifacts/artifacts/ExperimentRun/dcid.{run_id}/"


# (name, path after the run's prefix, as sent on the wire). Every one must be a 400.
PATH_CASES = [
    ("dotdot", "../../../canary.txt"),
    ("dotdot-deep", "a/../../../../../canary.txt"),
    ("dotdot-to-home", "../../../../../../../canary.txt"),
    ("dot", "./ok.txt"),
    ("encoded-dotdot", "%2e%2e/%2e%2e/%2e%2e/canary.txt"),
    ("encoded-dotdot-upper", "%2E%2E/%2E%2E/canary.txt"),
    ("double-encoded", "%252e%252e/%252e%252e/canary.txt"),
    ("double-encoded-slash", "..%252f..%252fcanary.txt"),
    ("encoded-slash", "..%2f..%2f..%2fcanary.txt"),
    ("backslash", "..\\..\\..\\canary.txt"),
    ("encoded-backslash", "..%5c..%5c..%5ccanary.txt"),
    ("semicolon", "..;/..;/canary.txt"),
    ("semicolon-name", "a;b.txt"),
    ("encoded-question", "..%3f/canary.txt"),
    ("encoded-hash", "a%23/../../canary.txt"),
    ("nul", "a%00.txt"),
    ("empty-segment", "a//b.txt"),
    ("overlong-utf8", "%c0%ae%c0%ae/canary.txt"),
]
# Absolute and scheme sources replace the whole path after ".../artifacts/".
ROOT_CASES = [
    ("absolute", "/etc/passwd"),
    ("proc-self-root", "/proc/self/root/etc/passwd"),
    ("file-scheme", "file:///etc/passwd"),
    ("file-scheme-relative", "file:canary.txt"),
    ("outside-run-root", "canary.txt"),
    ("other-store-folder", "LocalUpload/x.txt"),
    ("dotdot-from-root", "ExperimentRun/../canary.txt"),
]


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
@pytest.mark.parametrize(("name", "tail"), PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_path_form_traversal_is_refused(run_and_canaries, method, name, tail):
    raw, run_id, canaries = run_and_canaries
    before = _snapshot(_store(raw_home(canaries)))
    status, body = raw(method, _prefix(run_id) + tail, b"pwned" if method == "PUT" else None)
    assert status == 400, (name, status, body)
    assert json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"
    assert SECRET not in body
    assert all(c.read_bytes() == SECRET for c in canaries)
    assert _snapshot(_store(raw_home(canaries))) == before


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
@pytest.mark.parametrize(("name", "path"), ROOT_CASES, ids=[c[0] for c in ROOT_CASES])
def test_path_form_sources_outside_a_run_are_refused(run_and_canaries, method, name, path):
    raw, _run_id, canaries = run_and_canaries
    before = _snapshot(_store(raw_home(canaries)))
    status, body = raw(method, "/api/2.0/mlflow-artifacts/artifacts/" + path, b"pwned" if method == "PUT" else None)
    assert status == 400, (name, status, body)
    assert SECRET not in body and b"root:" not in body
    assert all(c.read_bytes() == SECRET for c in canaries)
    assert _snapshot(_store(raw_home(canaries))) == before


QUERY_CASES = [
    ("dotdot", "ExperimentRun/dcid.{run}/../../.."),
    ("encoded-dotdot", "ExperimentRun/dcid.{run}/%2e%2e/%2e%2e"),
    ("double-encoded", "ExperimentRun/dcid.{run}/%252e%252e/%252e%252e"),
    ("backslash", "ExperimentRun/dcid.{run}/..%5c..%5c.."),
    ("semicolon", "ExperimentRun/dcid.{run}/..;/.."),
    ("question", "ExperimentRun/dcid.{run}/%3f"),
    ("hash", "ExperimentRun/dcid.{run}/%23/../.."),
    ("absolute", "/etc"),
    ("proc-self-root", "//proc/self/root/etc"),
    ("file-scheme", "file:///etc"),
    ("file-scheme-relative", "file:ExperimentRun"),
    ("store-root", ""),
    ("outside-run-root", "LocalUpload"),
    ("run-id-with-dotdot", "ExperimentRun/dcid..."),
]


@pytest.mark.parametrize(("name", "query"), QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
def test_query_form_traversal_is_refused(run_and_canaries, name, query):
    raw, run_id, canaries = run_and_canaries
    status, body = raw("GET", "/api/2.0/mlflow-artifacts/artifacts?path=" + query.format(run=run_id))
    assert status == 400, (name, status, body)
    assert b"canary" not in body and b"passwd" not in body
    assert all(c.read_bytes() == SECRET for c in canaries)


def test_ids_with_separators_are_refused(run_and_canaries):
    raw, run_id, canaries = run_and_canaries
    before = _snapshot(_store(raw_home(canaries)))
    for target in (
        f"/api/2.0/mlflow/runs/get?run_id={run_id}/..",
        "/api/2.0/mlflow/runs/get?run_id=..%2F..%2Fcanary",
        "/api/2.0/mlflow/runs/get?run_id=a%5Cb",
        "/api/2.0/mlflow/experiments/get?experiment_id=0/..",
        "/api/2.0/mlflow/experiments/get?experiment_id=..%2F0",
        "/api/2.0/mlflow/metrics/get-history?run_id=a/b&metric_key=m",
    ):
        status, body = raw("GET", target)
        assert status == 400, (target, status, body)
        assert json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"
    # A run id that hides a separator in the artifact URL.
    for method in ("PUT", "GET", "DELETE"):
        status, _ = raw(
            method, f"/api/2.0/mlflow-artifacts/artifacts/ExperimentRun/dcid.{run_id}%2F..%2F..%2Fcanary.txt"
        )
        assert status == 400
        status, _ = raw(method, "/api/2.0/mlflow-artifacts/artifacts/experiments/0%2F..%2F..%2Fcanary.txt")
        assert status == 400
    assert all(c.read_bytes() == SECRET for c in canaries)
    assert _snapshot(_store(raw_home(canaries))) == before


def test_unknown_run_is_not_found_and_nothing_written(run_and_canaries):
    raw, _run_id, canaries = run_and_canaries
    before = _snapshot(_store(raw_home(canaries)))
    status, body = raw("PUT", "/api/2.0/mlflow-artifacts/artifacts/ExperimentRun/dcid.nosuchrun/a.txt", b"x")
    assert status == 404 and json.loads(body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert _snapshot(_store(raw_home(canaries))) == before


def raw_home(canaries: list[Path]) -> Path:
    return canaries[0].parent


# -- the real client --------------------------------------------------------------------------


def test_client_artifacts_roundtrip_byte_for_byte(mlflow_env, tmp_path):
    client = MlflowClient()
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    blobs = {
        "a.bin": os.urandom(3 * 1024 * 1024 + 7),
        "sub/b.txt": "héllo wörld\n".encode(),
        "sub/deeper/c with space.json": b'{"k": 1}',
        "sub/empty": b"",
    }
    for rel, data in blobs.items():
        (src / rel).write_bytes(data)
    single = tmp_path / "single.csv"
    single.write_bytes(b"x,y\n1,2\n")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(single))
        mlflow.log_artifact(str(single), artifact_path="nested/dir")
        mlflow.log_artifacts(str(src), artifact_path="tree")
        mlflow.log_text("some notes", "notes/a.txt")
        mlflow.log_dict({"x": [1, 2]}, "d.json")
    rid = run.info.run_id
    assert run.info.artifact_uri == f"mlflow-artifacts:/ExperimentRun/dcid.{rid}"

    top = {(f.path, f.is_dir) for f in client.list_artifacts(rid)}
    assert top == {("single.csv", False), ("nested", True), ("tree", True), ("notes", True), ("d.json", False)}
    tree = {f.path: (f.is_dir, f.file_size) for f in client.list_artifacts(rid, "tree/sub")}
    assert tree == {
        "tree/sub/b.txt": (False, len(blobs["sub/b.txt"])),
        "tree/sub/deeper": (True, None),
        "tree/sub/empty": (False, 0),
    }
    assert client.list_artifacts(rid, "single.csv") == []
    assert client.list_artifacts(rid, "no/such/dir") == []

    out = Path(client.download_artifacts(rid, "", str(tmp_path / "all")))
    for rel, data in blobs.items():
        assert (out / "tree" / rel).read_bytes() == data, rel
    assert (out / "single.csv").read_bytes() == single.read_bytes()
    assert (out / "nested" / "dir" / "single.csv").read_bytes() == single.read_bytes()
    assert (out / "notes" / "a.txt").read_text() == "some notes"
    one = Path(client.download_artifacts(rid, "tree/a.bin", str(tmp_path / "one")))
    assert one.read_bytes() == blobs["a.bin"]
    assert json.loads(Path(client.download_artifacts(rid, "d.json", str(tmp_path / "d"))).read_text()) == {"x": [1, 2]}
    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/a.txt") == "some notes"
    assert mlflow.artifacts.load_dict(f"runs:/{rid}/d.json") == {"x": [1, 2]}

    # Stored where Shoal keeps a job's artifacts, so `shoal job download --all` sees them.
    store = _store(mlflow_env.home) / "ExperimentRun" / f"dcid.{rid}"
    assert (store / "tree" / "a.bin").read_bytes() == blobs["a.bin"]
    assert not [p for p in store.rglob("*") if p.name.startswith(".shoal-tmp-")]
    dl = tmp_path / "dl"
    mlflow_env("job", "download", "-n", rid, "--all", "--download-path", str(dl))
    found = {p.name for p in dl.rglob("*") if p.is_file()}
    assert {"a.bin", "b.txt", "a.txt", "single.csv"} <= found

    # Overwrite, then delete through the repository.
    client.log_text(rid, "changed", "notes/a.txt")
    assert Path(client.download_artifacts(rid, "notes/a.txt", str(tmp_path / "n"))).read_text() == "changed"
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(client.get_run(rid).info.artifact_uri)
    repo.delete_artifacts("notes")
    assert "notes" not in {f.path for f in client.list_artifacts(rid)}


def test_artifact_routes_need_a_token(mlflow_env):
    import httpx

    uri = mlflow.get_tracking_uri()
    rid = MlflowClient().create_run("0").info.run_id
    r = httpx.put(f"{uri}/api/2.0/mlflow-artifacts/artifacts/ExperimentRun/dcid.{rid}/x.txt", content=b"x")
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
    assert not (_store(mlflow_env.home) / "ExperimentRun" / f"dcid.{rid}" / "x.txt").exists()


def test_symlinks_planted_in_a_run_lead_nowhere(run_and_canaries):
    raw, run_id, canaries = run_and_canaries
    home = raw_home(canaries)
    run_dir = _store(home) / "ExperimentRun" / f"dcid.{run_id}"
    (run_dir / "outside").symlink_to(home, target_is_directory=True)
    (run_dir / "secret.txt").symlink_to(home / "canary.txt")
    try:
        for method, tail, body in (
            ("GET", "outside/canary.txt", None),
            ("PUT", "outside/canary.txt", b"pwned"),
            ("PUT", "outside/new.txt", b"pwned"),
            ("DELETE", "outside/canary.txt", None),
            ("GET", "secret.txt", None),
            ("PUT", "secret.txt", b"pwned"),
            ("DELETE", "secret.txt", None),
        ):
            status, answer = raw(method, _prefix(run_id) + tail, body)
            assert status in (400, 404), (method, tail, status, answer)
            assert SECRET not in answer
        status, answer = raw("GET", f"/api/2.0/mlflow-artifacts/artifacts?path=ExperimentRun/dcid.{run_id}/outside")
        assert SECRET not in answer and b"canary" not in answer
        assert all(c.read_bytes() == SECRET for c in canaries)
        assert not (home / "new.txt").exists()
    finally:
        (run_dir / "outside").unlink()
        (run_dir / "secret.txt").unlink()
