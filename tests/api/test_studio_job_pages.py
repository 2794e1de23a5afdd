"""What a job's studio page reads beyond the job: every rank's log file in the live state, the
code snapshot file by file, the environment, and lineage (which job produced or used an asset)."""

from __future__ import annotations

from shoal import command
from tests.api.conftest import error_of
from tests.api.test_jobs_api import BLOB, ENV, append, put_data, start_attempt, submitted


def studio(api, route: str, **params):
    return api.http.get(api.url("/studio" + route), params=params)


def test_watch_lists_every_ranks_log_and_follows_it(api):
    name = submitted(api, command="echo hi", distribution={"type": "pytorch", "process_count_per_instance": 2})["name"]
    headers = start_attempt(api, name)
    assert append(api, name, headers, 0, b"rank 0 says hi\n", path="user_logs/std_log_process_0.txt").status_code == 200
    assert append(api, name, headers, 0, b"rank 1\n", path="user_logs/std_log_process_1.txt").status_code == 200
    first = studio(api, f"/jobs/{name}/watch")
    assert first.json()["logs"] == {"user_logs/std_log_process_0.txt": 15, "user_logs/std_log_process_1.txt": 7}
    assert first.json()["status"] == "Preparing" and not first.json()["terminal"]
    etag = first.headers["etag"]
    assert api.http.get(api.url(f"/studio/jobs/{name}/watch"), headers={"If-None-Match": etag}).status_code == 304
    append(api, name, headers, 7, b"more\n", path="user_logs/std_log_process_1.txt")
    grown = api.http.get(api.url(f"/studio/jobs/{name}/watch"), headers={"If-None-Match": etag})
    assert grown.status_code == 200 and grown.json()["logs"]["user_logs/std_log_process_1.txt"] == 12
    # The new bytes, with the logs route the page already uses.
    tail = api.http.get(api.url(f"/jobs/{name}/logs"), params={"path": "user_logs/std_log_process_1.txt", "offset": 7})
    assert tail.content == b"more\n" and tail.headers["x-log-size"] == "12"
    assert studio(api, "/jobs/nope/watch").status_code == 404


def test_code_snapshot_is_browsable_file_by_file(api, tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print('training')\n")
    (src / "pkg" / "util.py").write_text("X = 1\n")
    (src / "blob.bin").write_bytes(b"\xff\x00\xfe")
    monkeypatch.chdir(tmp_path)
    job = api.ml.jobs.create_or_update(command(code=str(src), command="python train.py", environment=ENV))
    listing = studio(api, f"/jobs/{job.name}/code").json()
    assert [f["path"] for f in listing["files"]] == ["blob.bin", "pkg/util.py", "train.py"]
    assert listing["truncated"] is False and listing["uri"].startswith("azureml://datastores/")
    text = studio(api, f"/jobs/{job.name}/code/file", path="pkg/util.py")
    assert text.status_code == 200 and text.text == "X = 1\n" and text.headers["content-type"].startswith("text/plain")
    assert text.headers["x-content-type-options"] == "nosniff"
    raw = studio(api, f"/jobs/{job.name}/code/file", path="blob.bin")
    assert raw.content == b"\xff\x00\xfe" and raw.headers["content-type"] == "application/octet-stream"
    for path, status in (("../train.py", 400), ("nope.py", 404), ("", 400)):
        r = studio(api, f"/jobs/{job.name}/code/file", path=path)
        assert r.status_code == status, (path, r.text)
    no_code = submitted(api, command="echo")["name"]
    r = studio(api, f"/jobs/{no_code}/code")
    assert r.status_code == 404 and "no code snapshot" in error_of(r)["message"]
    env = studio(api, f"/jobs/{job.name}/environment").json()
    assert env["build_log"] is None and env["environment"]


def test_lineage_names_the_producing_and_using_jobs(api):
    put_data(api, "iris", "1", f"{BLOB}/data/iris/")
    user = submitted(api, name="uses-iris", inputs={"d": {"type": "uri_folder", "path": "azureml:iris:1"}})["name"]
    submitted(api, name="unrelated", inputs={"d": {"type": "uri_folder", "path": f"{BLOB}/data/other/"}})
    found = studio(api, "/lineage", kind="data", name="iris", version="1").json()
    assert [u["job"] for u in found["used_by"]] == [user] and found["used_by"][0]["input"] == "inputs.d"
    assert found["produced_by"] is None and found["used_by_truncated"] is False

    producer = submitted(api, name="trainer", outputs={"model": {}})["name"]
    r = api.http.put(
        api.url("/models/clf/versions/1"),
        json={"type": "custom_model", "path": f"azureml://jobs/{producer}/outputs/artifacts/paths/model"},
    )
    assert r.status_code == 200, r.text
    model = studio(api, "/lineage", kind="model", name="clf", version="1").json()
    assert model["produced_by"]["job"] == producer
    r = studio(api, "/lineage", kind="widget", name="clf", version="1")
    assert r.status_code == 400 and "kind" in error_of(r)["message"]
    assert studio(api, "/lineage", kind="model", name="clf", version="9").status_code == 404
