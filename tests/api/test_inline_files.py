"""Small files inside the runner's own calls (``services/jobs/inline_files.py``).

In: small inputs and code come inside the run spec (``inline``), so a pipeline step starts without
a listing and a download of its upstream step's output. Bigger ones, ``direct`` ones, links and
anything not on a local store are left for the runner to fetch as before.

Out: small outputs and artifacts come with the Completed report (``files``), written before the
outcome is recorded, under the same rule as ``PUT …/contents``: a job token writes its own
outputs and its runs' artifacts only; anything malformed or too big is refused and nothing is
written.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from shoal.runtime.__main__ import fetch_code
from shoal.runtime.materialize import materialize_inputs
from shoal.services.jobs.inline_files import INLINE_BYTES, INLINE_FILES
from shoal.services.workspaces import builtin_datastore_path

from .conftest import error_of
from .test_jobs_api import BLOB, job, report, start_attempt, submitted


def _files(api, tree: dict[str, bytes]) -> Path:
    root = Path(builtin_datastore_path(api.app.state.ctx, "default", "workspaceblobstore"))
    for rel, content in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    return root


def _decoded(tree: dict) -> dict[str, bytes]:
    return {path: base64.b64decode(content) for path, content in tree["files"]}


def test_small_inputs_and_code_come_with_the_run_spec(sqlite_api, tmp_path: Path):
    api = sqlite_api
    root = _files(
        api,
        {
            "in/one.txt": b"a line\n",
            "in/folder/a.csv": b"x,y\n1,2\n",
            "in/folder/sub/b.bin": bytes(range(256)),
            **{f"in/many/{i:02d}.txt": b"." for i in range(INLINE_FILES + 1)},
            "in/big/data.bin": b"0" * (INLINE_BYTES + 1),
            "in/direct/d.txt": b"read by the job itself",
        },
    )
    os.symlink("/etc/hostname", root / "in/folder/link")  # never sent, as never listed
    inputs = {
        "one": {"type": "uri_file", "path": f"{BLOB}/in/one.txt"},
        "folder": {"type": "uri_folder", "path": f"{BLOB}/in/folder/", "mode": "ro_mount"},
        "many": {"type": "uri_folder", "path": f"{BLOB}/in/many/"},
        "big": {"type": "uri_folder", "path": f"{BLOB}/in/big/", "mode": "download"},
        "direct": {"type": "uri_folder", "path": f"{BLOB}/in/direct/", "mode": "direct"},
        "n": 3,
    }
    name = submitted(api, command="ls", inputs=inputs)["name"]
    headers = start_attempt(api, name)
    spec = api.anon.get(api.url(f"/jobs/{name}/runspec"), headers=headers).json()

    sent = spec["inline"]["inputs"]
    assert set(sent) == {"one", "folder"}  # many: too many files; big: too many bytes; direct: the job's own
    assert sent["one"]["is_dir"] is False and _decoded(sent["one"]) == {"one.txt": b"a line\n"}
    assert sent["folder"]["is_dir"] is True
    assert _decoded(sent["folder"]) == {"a.csv": b"x,y\n1,2\n", "sub/b.bin": bytes(range(256))}

    # The runner places them where its download would have, read-only for ro_mount, and fetches
    # nothing for them (no client: a request would fail).
    only_inline = {k: v for k, v in spec["inputs"].items() if k in sent or k == "n"}
    values = materialize_inputs(None, only_inline, tmp_path, None, sent)  # type: ignore[arg-type]
    assert Path(values["one"]).read_bytes() == b"a line\n" and values["one"].endswith("/inputs/one/one.txt")
    folder = Path(values["folder"])
    assert (folder / "sub/b.bin").read_bytes() == bytes(range(256)) and not (folder / "link").exists()
    assert (folder / "a.csv").stat().st_mode & 0o222 == 0  # ro_mount: no write bits
    assert values["n"] == "3"


def test_an_inline_path_that_climbs_out_is_refused(tmp_path: Path):
    evil = {"x": {"is_dir": True, "files": [["../../escaped.txt", base64.b64encode(b"no").decode()]]}}
    spec = {"x": {"type": "uri_folder", "uri": f"{BLOB}/in/x/", "mode": "download"}}
    with pytest.raises(ValueError, match="not inside its folder"):
        materialize_inputs(None, spec, tmp_path / "run", None, evil)  # type: ignore[arg-type]
    assert not (tmp_path / "escaped.txt").exists()


def test_small_code_snapshot_comes_with_the_run_spec(sqlite_api, tmp_path: Path):
    api = sqlite_api
    _files(api, {"code/train.py": b"print('hi')\n", "code/lib/util.py": b"X = 1\n"})
    name = submitted(api, command="python train.py", code=f"{BLOB}/code/")["name"]
    headers = start_attempt(api, name)
    spec = api.anon.get(api.url(f"/jobs/{name}/runspec"), headers=headers).json()
    code = spec["inline"]["code"]
    assert _decoded(code) == {"train.py": b"print('hi')\n", "lib/util.py": b"X = 1\n"}
    workdir = tmp_path / "run" / "wd"
    fetch_code(None, spec["code"], workdir, code)  # type: ignore[arg-type]
    assert (workdir / "train.py").read_text() == "print('hi')\n" and (workdir / "lib/util.py").exists()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_small_outputs_come_with_the_completed_report(sqlite_api):
    api = sqlite_api
    root = _files(api, {})
    made = submitted(api, command="echo", outputs={"o": {"type": "uri_folder"}, "f": {"type": "uri_file"}})
    name = made["name"]
    headers = start_attempt(api, name)
    spec = api.anon.get(api.url(f"/jobs/{name}/runspec"), headers=headers).json()
    offer = spec["inline"]["writes"]
    assert set(offer["datastores"]) >= {"workspaceblobstore", "workspaceartifactstore"}  # local stores
    assert (offer["files"], offer["bytes"]) == (INLINE_FILES, INLINE_BYTES)
    folder = spec["outputs"]["o"]["path"].split("/paths/", 1)[1].rstrip("/")
    single = spec["outputs"]["f"]["path"].split("/paths/", 1)[1]
    art = spec["artifacts"]
    assert report(api, name, headers, "Running").status_code == 200
    files = [
        {"datastore": "workspaceblobstore", "prefix": folder, "files": [["x", _b64(b"step\n")], ["s/y", _b64(b"\0")]]},
        {"datastore": "workspaceblobstore", "prefix": "", "files": [[single, _b64(b"one file")]]},
        {"datastore": art["datastore"], "prefix": f"{art['path']}/outputs", "files": [["m.json", _b64(b"{}")]]},
    ]
    r = report(api, name, headers, "Completed", exit_code=0, files=files)
    assert r.status_code == 200 and r.json()["status"] == "Completed", r.text
    assert (root / folder / "x").read_bytes() == b"step\n" and (root / folder / "s/y").read_bytes() == b"\0"
    assert (root / single).read_bytes() == b"one file"
    listed = api.http.get(api.url(f"/datastores/{art['datastore']}/files"), params={"path": f"{art['path']}/outputs"})
    assert [f["path"] for f in listed.json()["value"]] == ["m.json"], listed.text
    assert "shoal.status_time.Finalizing" in job(api, name)["properties"]


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        # Another job's folder, the datastore's root, a path that climbs out: not this job's to write.
        ([{"datastore": "workspaceblobstore", "prefix": "azureml/other-job", "files": [["x", "eA=="]]}], 403, None),
        ([{"datastore": "workspaceblobstore", "prefix": "", "files": [["x", "eA=="]]}], 403, None),
        ([{"datastore": "workspaceblobstore", "prefix": "OUT", "files": [["../../x", "eA=="]]}], 400, None),
        ([{"datastore": "workspaceblobstore", "prefix": "OUT", "files": [["x", "not base64!"]]}], 400, None),
        ([{"datastore": "workspaceblobstore", "prefix": "OUT", "files": [["x"]]}], 400, None),
        ([{"prefix": "OUT", "files": []}], 400, None),
        ("not a list", 400, None),
        (
            [{"datastore": "workspaceblobstore", "prefix": "OUT", "files": [[f"{i}", "eA=="] for i in range(17)]}],
            413,
            None,
        ),
        (
            [{"datastore": "workspaceblobstore", "prefix": "OUT", "files": [["x", _b64(b"0" * (INLINE_BYTES + 1))]]}],
            413,
            None,
        ),
        # Files come with a Completed report only.
        ([{"datastore": "workspaceblobstore", "prefix": "OUT", "files": [["x", "eA=="]]}], 400, "Failed"),
    ],
)
def test_report_files_that_are_not_the_jobs_or_not_well_formed_are_refused(sqlite_api, files, status, code):
    api = sqlite_api
    root = _files(api, {})
    name = submitted(api, command="echo", outputs={"o": {"type": "uri_folder"}})["name"]
    headers = start_attempt(api, name)
    spec = api.anon.get(api.url(f"/jobs/{name}/runspec"), headers=headers).json()
    folder = spec["outputs"]["o"]["path"].split("/paths/", 1)[1].rstrip("/")
    if isinstance(files, list):
        files = [{**g, "prefix": folder} if g.get("prefix") == "OUT" else g for g in files]
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert report(api, name, headers, "Running").status_code == 200
    r = report(api, name, headers, code or "Completed", exit_code=0 if code is None else 1, files=files)
    assert r.status_code == status, r.text
    assert error_of(r)["message"]
    assert job(api, name)["status"] == "Running"  # nothing recorded
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written
