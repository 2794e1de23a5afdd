"""Attacks from the security anchors (shared/reference/security-reliability-anchors.md) that no
other test tries; docs/security.md maps every anchor to its test or to why it does not apply.
Each test names the anchors it covers."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from shoal.runtime.materialize import fetch_url, url_file_name
from shoal.store.tables import ResourceRow

from .conftest import Api, error_of
from .test_users_roles_audit import make_user

SECRET_KEY = "c2VjcmV0LWtleS1tdXN0LW5ldmVyLWNvbWUtYmFjaw=="


def _ml(api: Api, endpoint: str, workspace: str = "default") -> str:
    return api.url(f"/mlflow/api/2.0/mlflow/{endpoint}", workspace)


def _run(api: Api, workspace: str = "default") -> str:
    exp = api.http.post(_ml(api, "experiments/create", workspace), json={"name": f"e-{workspace}"})
    body = {"experiment_id": exp.json()["experiment_id"]}
    return str(api.http.post(_ml(api, "runs/create", workspace), json=body).json()["run"]["info"]["run_id"])


# -- URIs: model-version sources (BI-12, BI-13, BI-16, BI-17) ------------------------------------

SOURCES = [
    "file:///etc/",  # CVE-2023-1177
    "FILE:///etc/",
    " file:///etc/",
    "file:/etc",
    "//proc/self/root",  # CVE-2023-6977
    "/etc",  # CVE-2023-1176 / 3765
    "../../../etc",  # CVE-2026-116690
    "\\..\\..\\etc",  # CVE-2023-2780
    "http:///#/../../etc/",  # CVE-2024-1483
    "http://h/p?../../",  # CVE-2023-6909
    "http://h/p#/../../etc",  # CVE-2024-2928 / 3848
    "dbfs:/",  # CVE-2024-8859
    "http://attacker/api/2.0/mlflow-artifacts/artifacts/",  # CVE-2023-6018
    "mlflow-artifacts:/../../etc",
    "runs:/abc/../../etc",
    "models:/nosuch/1/../../..",
]


def test_model_version_sources_outside_shoal_are_refused(sqlite_api):
    api = sqlite_api
    assert api.http.post(_ml(api, "registered-models/create"), json={"name": "m"}).status_code == 200
    for source in SOURCES:
        r = api.http.post(_ml(api, "model-versions/create"), json={"name": "m", "source": source})
        assert r.status_code in (400, 404), (source, r.text)
    # CVE-2026-2614: a client-set reserved tag does not switch the check off.
    tags = [{"key": "mlflow.prompt.is_prompt", "value": "true"}]
    r = api.http.post(_ml(api, "model-versions/create"), json={"name": "m", "source": "file:///etc/", "tags": tags})
    assert r.status_code == 400
    found = api.http.get(_ml(api, "registered-models/get"), params={"name": "m"}).json()["registered_model"]
    assert found.get("latest_versions", []) == []
    # CVE-2024-3099: names that decode or normalize to another are refused, not a second model.
    for name in ("my%20model", "my model", "ｍodel", "m/../x"):
        r = api.http.post(_ml(api, "registered-models/create"), json={"name": name})
        assert r.status_code == 400, (name, r.text)


# -- SSRF through a datastore's endpoint (BI-15; CVE-2023-6974, CVE-2023-48023) -------------------


def _s3(endpoint: str) -> dict[str, Any]:
    return {
        "type": "s3",
        "bucket": "latest",
        "endpoint_url": endpoint,
        "credentials": {"access_key_id": "AKIA", "secret_access_key": "x"},
    }


def test_datastores_cannot_point_at_metadata_services_or_the_servers_own_host(sqlite_api):
    api = sqlite_api
    carl = make_user(api, "carl", "Contributor")

    def put(name: str, endpoint: str, headers: dict | None = None) -> Any:
        return api.anon.put(api.url(f"/datastores/{name}"), json=_s3(endpoint), headers=headers or api.http.headers)

    for endpoint in ("http://169.254.169.254", "http://[::ffff:169.254.169.254]", "http://[fe80::1]:80"):
        for who in (carl, None):  # not even the admin
            r = put("imds", endpoint, who)
            assert r.status_code == 400 and "cloud metadata address" in error_of(r)["message"], (endpoint, r.text)
    for endpoint in ("http://127.0.0.1:9000", "http://127.1:9000", "http://0x7f000001", "http://localhost:9000"):
        r = put("own", endpoint, carl)
        assert r.status_code == 403 and "server's own host" in error_of(r)["message"], (endpoint, r.text)
    assert api.anon.get(api.url("/datastores/own"), headers=carl).status_code == 404  # nothing stored
    # An admin may (Azurite, MinIO beside the server); anyone with write may use a private address.
    assert put("own", "http://127.0.0.1:9000").status_code == 200
    assert put("minio", "http://10.0.0.5:9000", carl).status_code == 200
    # Checked again when opened: a stored endpoint that now points at a metadata service is refused.
    ctx = api.app.state.ctx
    with ctx.db.write() as session:
        row = session.scalar(select(ResourceRow).where(ResourceRow.name == "minio"))
        row.spec = {**row.spec, "endpoint_url": "http://169.254.169.254"}
    ctx.stores.clear()
    r = api.anon.get(
        api.url("/datastores/minio/content"),
        params={"path": "meta-data/iam/security-credentials/role"},
        headers=carl,
    )
    assert r.status_code == 400 and "cloud metadata address" in error_of(r)["message"], r.text


# -- downloads by the runner (BI-15, BI-32; CVE-2024-0520) ----------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        body = b"payload"
        self.send_response(200)
        self.send_header("Content-Disposition", 'attachment; filename="../../evil.sh"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_inputs_use_the_urls_name_and_never_reach_metadata_services(web, tmp_path: Path):
    target = tmp_path / "job" / "inputs" / "data"
    local = fetch_url(f"{web}/files/data.csv", target, tmp_path / "cache")
    assert local == target / "data.csv" and local.read_bytes() == b"payload"
    assert not list(tmp_path.rglob("evil.sh"))  # the server's Content-Disposition name is ignored
    assert url_file_name("http://h/a/..") == url_file_name("http://h/") == "download"
    for url in ("http://169.254.169.254/latest/meta-data/", f"{web}/redirect"):
        with pytest.raises(ValueError, match="cloud metadata address"):
            fetch_url(url, tmp_path / "x", None)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


# -- bodies and values (BI-21, BI-24, L-07) -------------------------------------------------------


def test_extreme_metric_values_round_trip(api):
    """``1e999999``, ``-1e999999`` and ``NaN`` as metric values (MLflow's own server accepts them)
    are stored and read back as JSON on SQLite and PostgreSQL; a duplicate key is the last one
    (one parser sees the body: nothing checks a different value than the one stored)."""
    run = _run(api)
    for key, literal in (("inf", "1e999999"), ("ninf", "-1e999999"), ("nan", "NaN")):
        body = f'{{"run_id":"{run}","key":"{key}","value":{literal},"timestamp":1,"step":0}}'
        r = api.http.post(_ml(api, "runs/log-metric"), content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, (literal, r.text)
    body = f'{{"run_id":"{run}","key":"first","key":"dup","value":1,"timestamp":1,"step":0}}'
    r = api.http.post(_ml(api, "runs/log-metric"), content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    r = api.http.get(_ml(api, "runs/get"), params={"run_id": run})
    metrics = {m["key"]: m["value"] for m in json.loads(r.text)["run"]["data"]["metrics"]}
    assert str(metrics["inf"]) in ("inf", "Infinity") and str(metrics["ninf"]) in ("-inf", "-Infinity")
    assert str(metrics["nan"]).lower() == "nan" and metrics["dup"] == 1 and "first" not in metrics
    # A step or timestamp that is not an int64 is a 400 (not a 500).
    body = f'{{"run_id":"{run}","key":"a","value":1,"timestamp":1,"step":1e999}}'
    r = api.http.post(_ml(api, "runs/log-metric"), content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_stored_files_are_never_served_as_pages(sqlite_api):
    """An uploaded ``.html`` artifact comes back as bytes with ``nosniff`` (stored XSS, BI-21)."""
    api = sqlite_api
    run = _run(api)
    path = api.url(f"/mlflow/api/2.0/mlflow-artifacts/artifacts/ExperimentRun/dcid.{run}/x.html")
    page = b"<script>alert(document.cookie)</script>"
    assert api.http.put(path, content=page, headers={"Content-Type": "text/html"}).status_code == 200
    r = api.http.get(path)
    assert r.content == page
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-content-type-options"] == "nosniff"
    r = api.http.get(api.url("/<script>alert(1)</script>"))
    assert r.headers["content-type"] == "application/json" and r.headers["x-content-type-options"] == "nosniff"


def test_huge_page_sizes_are_capped_or_refused(sqlite_api):
    """L-07: a listing never answers with everything at once."""
    api = sqlite_api
    for i in range(3):
        api.http.put(api.url(f"/models/m{i}/versions/1"), json={"path": "https://e.com/m"})
    r = api.http.get(api.url("/models"), params={"max_results": 10**9})
    assert r.status_code in (200, 400)
    r = api.http.post(_ml(api, "runs/search"), json={"experiment_ids": ["0"], "max_results": 10**9})
    assert r.status_code == 400 and "max_results" in r.json()["message"]


# -- workspaces and secrets (A-07, A-08, BI-14) --------------------------------------------------


def test_another_workspaces_runs_models_and_jobs_are_not_reachable(sqlite_api):
    """A user of workspace A names B's run, model or job inside A's requests: not found."""
    api = sqlite_api
    api.http.put("/api/v1/workspaces/ws-b", json={})
    run_b = _run(api, "ws-b")
    api.http.post(_ml(api, "registered-models/create", "ws-b"), json={"name": "mb"})
    api.http.post(_ml(api, "model-versions/create", "ws-b"), json={"name": "mb", "source": f"runs:/{run_b}/model"})
    alice = make_user(api, "alice", "Contributor")
    assert api.anon.get(_ml(api, "runs/get"), params={"run_id": run_b}, headers=alice).status_code == 404
    metric = {"run_id": run_b, "key": "x", "value": 1, "timestamp": 1, "step": 0}
    assert api.anon.post(_ml(api, "runs/log-metric"), json=metric, headers=alice).status_code == 404
    assert api.anon.get(api.url(f"/jobs/{run_b}"), headers=alice).status_code == 404
    api.anon.post(_ml(api, "registered-models/create"), json={"name": "ma"}, headers=alice)
    for source in (f"runs:/{run_b}/model", "models:/mb/1", f"mlflow-artifacts:/ExperimentRun/dcid.{run_b}/model"):
        r = api.anon.post(_ml(api, "model-versions/create"), json={"name": "ma", "source": source}, headers=alice)
        assert r.status_code in (400, 404), (source, r.text)
    for path in (f"runs:/{run_b}/model", "azureml:mb:1"):
        r = api.anon.put(api.url("/models/ma2/versions/1"), json={"path": path}, headers=alice)
        assert r.status_code == 404, (path, r.text)
    # Every direct route into B: refused, whatever exists there.
    assert api.anon.get(api.url("/models", "ws-b"), headers=alice).status_code == 403


def test_secret_values_never_come_back_without_the_right(api):
    """A-08: a datastore's key is in no response (get, list, show after an update, errors) and no
    audit record; only ``include_secrets`` with the ``secrets`` right returns it."""
    spec = {
        "type": "azure_blob",
        "account_name": "acct",
        "container_name": "c",
        "credentials": {"account_key": SECRET_KEY},
    }
    assert api.http.put(api.url("/datastores/blob"), json=spec).status_code == 200
    rita = make_user(api, "rita", "Reader")
    dana = make_user(api, "dana", "AzureML Data Scientist")
    seen = [
        api.anon.get(api.url("/datastores/blob"), headers=rita).text,
        api.anon.get(api.url("/datastores"), headers=rita).text,
        api.anon.get(api.url("/datastores/blob"), headers=rita, params={"include_secrets": "true"}).text,
        api.anon.put(api.url("/datastores/blob"), headers=dana, json={**spec, "account_name": 5}).text,
        api.anon.put(api.url("/datastores/blob"), headers=dana, json={**spec, "description": "d"}).text,
        api.anon.get(api.url("/datastores/blob"), headers=dana).text,
        api.http.get("/api/v1/audit", params={"max_results": 1000}).text,
    ]
    assert not [text for text in seen if SECRET_KEY in text]
    r = api.anon.get(api.url("/datastores/blob"), headers=dana, params={"include_secrets": "true"})
    assert SECRET_KEY in r.text


# -- specs and bodies (BI-23, BI-27, BI-30) -------------------------------------------------------


def test_environment_variable_names_a_process_cannot_hold_are_refused(sqlite_api):
    """BI-30 (BentoML CVE-2026-44346: a newline in an env name became a Dockerfile line): refused
    at submission naming the variable, nothing created. Values go to the process as they are
    (argv lists, no shell, no generated files); LD_PRELOAD and the like act inside the sandbox
    only (tests/e2e/test_env_build_isolation.py)."""
    api = sqlite_api
    for name in ("A=B", "A\nRUN id", "", "X\x00Y"):
        body = {"command": "echo hi", "environment": {"image": "python:3.11"}, "environment_variables": {name: "1"}}
        r = api.http.post(api.url("/jobs"), json=body)
        assert r.status_code in (400, 422), (name, r.text)
    assert api.http.get(api.url("/jobs")).json()["value"] == []


def test_compressed_bodies_are_never_inflated(sqlite_api):
    """BI-27: the server decodes no Content-Encoding and opens no archive; a gzip bomb is bytes
    that are not JSON (400 at once)."""
    import gzip

    api = sqlite_api
    bomb = gzip.compress(b"[" + b"0," * 20_000_000 + b"0]")
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    r = api.http.post(_ml(api, "experiments/create"), content=bomb, headers=headers)
    assert r.status_code == 400 and len(bomb) < 100_000


def test_log_batch_follows_mlflows_limits(sqlite_api):
    """BI-23: more than 1000 metrics, 100 params or 100 tags in one batch, and values over MLflow's
    lengths, are 400s naming the limit; nothing of the batch is stored."""
    api = sqlite_api
    run = _run(api)
    cases = [
        ({"metrics": [{"key": f"k{i}", "value": 1, "timestamp": 1, "step": 0} for i in range(1001)]}, "1000 metrics"),
        ({"params": [{"key": f"p{i}", "value": "1"} for i in range(101)]}, "100 params"),
        ({"tags": [{"key": f"t{i}", "value": "1"} for i in range(101)]}, "100 tags"),
        ({"params": [{"key": "big", "value": "x" * 6001}]}, "6000"),
        ({"tags": [{"key": "big", "value": "x" * 8001}]}, "8000"),
    ]
    for body, limit in cases:
        r = api.http.post(_ml(api, "runs/log-batch"), json={"run_id": run, **body})
        assert r.status_code == 400 and limit in r.json()["message"], (limit, r.text)
    data = api.http.get(_ml(api, "runs/get"), params={"run_id": run}).json()["run"]["data"]
    assert not data.get("metrics") and not data.get("params")


# -- the database (F-11) --------------------------------------------------------------------------


def test_a_write_lock_held_elsewhere_is_a_503_with_retry_after_and_reads_go_on(shoal_home):
    """F-11: another process holds SQLite's write lock past the busy timeout: writes answer 503
    with ``Retry-After`` (not a 500), reads are served, and the next write after it lets go works."""
    import sqlite3

    from shoal.config import ShoalSettings

    api = Api(ShoalSettings(home=shoal_home, db_busy_timeout=0.3))
    try:
        url = api.settings.resolved_database_url()
        holder = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            r = api.http.put(api.url("/models/m/versions/1"), json={"path": "https://e.com/m"})
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1" and "database is busy" in error_of(r)["message"]
            assert api.http.get(api.url("/models")).status_code == 200
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        r = api.http.put(api.url("/models/m/versions/1"), json={"path": "https://e.com/m"})
        assert r.status_code == 200, r.text
    finally:
        api.close()


# -- load (L-02) -----------------------------------------------------------------------------------


def test_concurrent_log_batches_into_one_run_all_land(api):
    """L-02 (MLflow's test_log_metric_concurrent_logging_succeeds, its SQLite 'database is
    locked' and MySQL deadlock reports): 16 clients send a 1000-metric batch into one run at
    once; no error, and every point is stored, on SQLite and PostgreSQL."""
    from concurrent.futures import ThreadPoolExecutor

    from starlette.testclient import TestClient

    run = _run(api)
    keys = [f"m{i}" for i in range(1000)]

    def send(step: int) -> int:
        client = TestClient(api.app, raise_server_exceptions=False)  # no lifespan: the app is up
        try:
            metrics = [{"key": k, "value": step, "timestamp": 1000 + step, "step": step} for k in keys]
            r = client.post(
                _ml(api, "runs/log-batch"), json={"run_id": run, "metrics": metrics}, headers=api.http.headers
            )
            return r.status_code
        finally:
            client.close()

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(send, range(16)))
    assert codes == [200] * 16
    data = api.http.get(_ml(api, "runs/get"), params={"run_id": run}).json()["run"]["data"]
    assert len(data["metrics"]) == 1000 and {m["value"] for m in data["metrics"]} == {15}
    for key in ("m0", "m500", "m999"):
        r = api.http.get(_ml(api, "metrics/get-history"), params={"run_id": run, "metric_key": key})
        assert sorted(p["step"] for p in r.json()["metrics"]) == list(range(16)), key
