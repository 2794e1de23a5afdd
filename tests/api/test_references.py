"""Asset paths and references are checked on the way in, and local content is stored by hash.

File behaviour (uploads, downloads, content addressing) runs on SQLite only; reference checks
that are pure metadata run on both databases.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from shoal.entities import CommandComponent, Data, Environment, Model
from shoal.errors import NotFoundError, SpecError

from .conftest import error_of


def sha256_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def all_dirs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def blobstore_root(api) -> Path:
    body = api.http.get(api.url("/datastores/workspaceblobstore")).json()
    return Path(body["path"])


def put_model(api, name: str, body: dict[str, Any], version: str = "1"):
    return api.http.put(api.url(f"/models/{name}/versions/{version}"), json=body)


def assert_nothing_created(api, plural: str, name: str) -> None:
    r = api.http.get(api.url(f"/{plural}"), params={"name": name, "list_view_type": "All"})
    assert r.status_code == 404, r.text  # not even an empty container
    r = api.http.get(api.url(f"/{plural}"), params={"list_view_type": "All"})
    assert [a["name"] for a in r.json()["value"]] == []


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my-model"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "model.pkl").write_bytes(b"pickle bytes\x00\x01")
    (folder / "sub" / "conf.yaml").write_text("lr: 0.1\n")
    (folder / "sub" / "deeper" / "empty.bin").write_bytes(b"")
    (folder / "weights.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 17))
    return folder


# -- local content: upload, content addressing, download ----------------------------------------


def test_model_from_local_folder_is_uploaded_by_content_and_downloads_byte_for_byte(sqlite_api, model_folder, tmp_path):
    api = sqlite_api
    artifacts = Path(api.settings.resolved_artifact_root())

    first = api.ml.models.create_or_update(Model(name="clf", path=str(model_folder)))
    assert first.version == "1"
    assert first.path.startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
    assert first.path.rstrip("/").endswith("/my-model")
    stored = blobstore_root(api) / first.path.split("/paths/", 1)[1]
    assert sha256_tree(stored) == sha256_tree(model_folder)
    assert not list((blobstore_root(api) / ".staging").glob("*"))  # staging cleaned up

    dirs_before = all_dirs(artifacts)
    second = api.ml.models.create_or_update(Model(name="clf", path=str(model_folder)))
    third = api.ml.models.create_or_update(Model(name="other", path=str(model_folder)))
    assert second.version == "2"
    assert second.path == first.path == third.path
    assert all_dirs(artifacts) == dirs_before  # nothing new stored

    # A changed folder is a new snapshot.
    (model_folder / "model.pkl").write_bytes(b"retrained")
    changed = api.ml.models.create_or_update(Model(name="clf", path=str(model_folder)))
    assert changed.path != first.path

    target = api.ml.models.download("clf", version="1", download_path=tmp_path / "dl")
    assert target == tmp_path / "dl" / "clf" / "my-model"
    downloaded = sha256_tree(target)
    assert "weights.bin" in downloaded and "sub/deeper/empty.bin" in downloaded
    (model_folder / "model.pkl").write_bytes(b"pickle bytes\x00\x01")  # the original again
    assert downloaded == sha256_tree(model_folder)


def test_model_from_a_single_local_file(sqlite_api, tmp_path):
    api = sqlite_api
    f = tmp_path / "model.onnx"
    f.write_bytes(os.urandom(4096))
    m = api.ml.models.create_or_update(Model(name="onnx", path=str(f)))
    assert m.path.endswith("/model.onnx")
    target = api.ml.models.download("onnx", version="1", download_path=tmp_path / "dl")
    assert target.read_bytes() == f.read_bytes()


def test_mlflow_model_needs_an_mlmodel_file(sqlite_api, tmp_path):
    api = sqlite_api
    folder = tmp_path / "mlflow"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"x")
    with pytest.raises(SpecError) as exc:
        api.ml.models.create_or_update(Model(name="mf", path=str(folder), type="mlflow_model"))
    assert "MLmodel" in exc.value.message
    assert_nothing_created(api, "models", "mf")

    # The server checks it too, for a datastore path that lacks it.
    root = blobstore_root(api)
    (root / "mlflow-bad").mkdir(parents=True)
    (root / "mlflow-bad" / "model.pkl").write_bytes(b"x")
    r = put_model(
        api,
        "mf",
        {"type": "mlflow_model", "path": "azureml://datastores/workspaceblobstore/paths/mlflow-bad/"},
    )
    assert r.status_code == 422
    assert error_of(r)["code"] == "INVALID_SPEC" and "MLmodel" in error_of(r)["message"]
    assert_nothing_created(api, "models", "mf")

    # With MLmodel, the flavors are read from it.
    (folder / "MLmodel").write_text("flavors:\n  sklearn:\n    sklearn_version: 1.5.0\n")
    m = api.ml.models.create_or_update(Model(name="mf", path=str(folder), type="mlflow_model"))
    assert m.type == "mlflow_model"
    assert m.flavors == {"sklearn": {"sklearn_version": "1.5.0"}}


def test_missing_local_path_is_not_found_and_creates_nothing(sqlite_api, tmp_path):
    api = sqlite_api
    with pytest.raises(NotFoundError) as exc:
        api.ml.models.create_or_update(Model(name="ghost", path=str(tmp_path / "nope")))
    assert "nope" in exc.value.message
    assert_nothing_created(api, "models", "ghost")
    with pytest.raises(NotFoundError):
        api.ml.data.create_or_update(Data(name="ghost", type="uri_folder", path=str(tmp_path / "nope")))
    assert_nothing_created(api, "data", "ghost")
    # A raw local path sent straight to the server is refused: the SDK must upload it first.
    r = put_model(api, "ghost", {"path": str(tmp_path)})
    assert r.status_code == 400 and "uploaded first" in error_of(r)["message"]
    assert_nothing_created(api, "models", "ghost")


def test_data_types_are_checked_against_local_paths(sqlite_api, tmp_path):
    api = sqlite_api
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n")
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "part-0.csv").write_text("a\n1\n")

    f = api.ml.data.create_or_update(Data(name="file", type="uri_file", path=str(csv)))
    assert f.path.endswith("/d.csv")
    d = api.ml.data.create_or_update(Data(name="folder", type="uri_folder", path=str(folder)))
    assert d.path.rstrip("/").endswith("/table")

    with pytest.raises(SpecError, match="uri_file needs a file"):
        api.ml.data.create_or_update(Data(name="bad1", type="uri_file", path=str(folder)))
    with pytest.raises(SpecError, match="uri_folder needs a folder"):
        api.ml.data.create_or_update(Data(name="bad2", type="uri_folder", path=str(csv)))
    with pytest.raises(SpecError, match="MLTable"):
        api.ml.data.create_or_update(Data(name="bad3", type="mltable", path=str(folder)))
    for name in ("bad1", "bad2", "bad3"):
        assert api.http.get(api.url("/data"), params={"name": name}).status_code == 404

    (folder / "MLTable").write_text("paths:\n  - pattern: ./*.csv\n")
    t = api.ml.data.create_or_update(Data(name="tbl", type="mltable", path=str(folder)))
    assert t.type == "mltable"
    target = api.ml.data.download("tbl", version="1", download_path=tmp_path / "dl")
    assert sha256_tree(target) == sha256_tree(folder)


def test_data_types_are_checked_against_datastore_paths(sqlite_api):
    api = sqlite_api
    root = blobstore_root(api)
    (root / "ds" / "tbl").mkdir(parents=True)
    (root / "ds" / "d.csv").write_text("a\n")
    (root / "ds" / "tbl" / "x.csv").write_text("a\n")
    base = "azureml://datastores/workspaceblobstore/paths/ds"

    def put_data(name: str, type_: str, path: str):
        return api.http.put(api.url(f"/data/{name}/versions/1"), json={"type": type_, "path": path})

    assert put_data("f", "uri_file", f"{base}/d.csv").status_code == 200
    assert put_data("d", "uri_folder", f"{base}/tbl/").status_code == 200
    cases = [
        ("a", "uri_file", f"{base}/tbl/", "needs a file"),
        ("b", "uri_folder", f"{base}/d.csv", "needs a folder"),
        ("c", "mltable", f"{base}/tbl/", "MLTable"),
    ]
    for name, type_, path, words in cases:
        r = put_data(name, type_, path)
        assert r.status_code == 422, r.text
        assert words in error_of(r)["message"]
        assert api.http.get(api.url("/data"), params={"name": name}).status_code == 404
    (root / "ds" / "tbl" / "MLTable").write_text("paths: []\n")
    assert put_data("c", "mltable", f"{base}/tbl/").status_code == 200


# -- datastore URIs and external URLs (metadata only: both databases) --------------------------


def test_unknown_datastore_is_not_found_naming_it(api):
    r = put_model(api, "m", {"path": "azureml://datastores/nosuch/paths/x"})
    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "NOT_FOUND" and "'nosuch'" in err["message"]
    assert err["details"]["name"] == "nosuch"
    assert_nothing_created(api, "models", "m")
    r = api.http.post(
        api.url("/data/d/versions"),
        json={"path": "azureml://datastores/nosuch/paths/x.csv", "type": "uri_file"},
    )
    assert r.status_code == 404 and "nosuch" in error_of(r)["message"]


def test_a_path_not_yet_written_in_an_existing_datastore_is_kept(api):
    """As in Azure ML (cli/assets/data/cloud-file.yml creates in a fresh workspace): the datastore
    must exist, the path inside it need not yet; a job may write it later."""
    uri = "azureml://datastores/workspaceblobstore/paths/example-data/later.csv"
    r = api.http.put(api.url("/data/d/versions/1"), json={"type": "uri_file", "path": uri})
    assert r.status_code == 200, r.text
    assert api.ml.data.get("d", version="1").path == uri


@pytest.mark.parametrize(
    "path",
    [
        "https://example.com/data/train.csv",
        "wasbs://container@account.blob.core.windows.net/data/train.csv",
        "abfss://fs@account.dfs.core.windows.net/x/y.csv",
        "s3://bucket/key.csv",
    ],
)
def test_external_urls_are_kept_as_given(api, path):
    r = api.http.put(api.url("/data/ext/versions/1"), json={"type": "uri_file", "path": path})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == path
    assert api.ml.data.get("ext", version="1").path == path
    m = api.ml.models.create_or_update(Model(name="ext", version="1", path=path))
    assert m.path == path


def test_unsupported_uri_scheme_is_a_spec_error(api):
    r = put_model(api, "m", {"path": "ftp://example.com/m.pkl"})
    assert r.status_code == 422 and "ftp" in error_of(r)["message"]
    assert_nothing_created(api, "models", "m")


@pytest.mark.parametrize("path", ["runs:/x/model", "azureml://jobs/x/outputs/artifacts/paths/model/"])
def test_job_output_paths_name_the_missing_job(api, path):
    r = put_model(api, "m", {"path": path})
    assert r.status_code == 404
    assert "job 'x'" in error_of(r)["message"]
    assert_nothing_created(api, "models", "m")


# -- environments and components --------------------------------------------------------------


def test_environment_with_image_and_build_is_invalid(api):
    r = api.http.put(
        api.url("/environments/env/versions/1"),
        json={"image": "python:3.11", "build": {"path": "https://example.com/ctx.tar.gz"}},
    )
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "INVALID_SPEC" and "image" in err["message"] and "build" in err["message"]
    assert err["details"]["errors"][0]["path"] == "build"
    assert_nothing_created(api, "environments", "env")
    with pytest.raises(SpecError):
        Environment(name="env", image="python:3.11", build={"path": "./ctx"})


def component_body(env: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "command", "command": "python train.py", "environment": env, **extra}


def test_component_with_unknown_environment_is_not_found(api):
    r = api.http.put(api.url("/components/train/versions/1"), json=component_body("azureml:nosuch-env:1"))
    assert r.status_code == 404
    err = error_of(r)
    assert "azureml:nosuch-env:1" in err["message"] and "nosuch-env" in err["message"]
    assert_nothing_created(api, "components", "train")

    # The same reference works once the environment exists; @latest resolves too.
    api.ml.environments.create_or_update(Environment(name="nosuch-env", version="1", image="python:3.11"))
    r = api.http.put(api.url("/components/train/versions/1"), json=component_body("azureml:nosuch-env:1"))
    assert r.status_code == 200, r.text
    r = api.http.put(api.url("/components/train/versions/2"), json=component_body("azureml:nosuch-env@latest"))
    assert r.status_code == 200, r.text
    r = api.http.put(api.url("/components/train/versions/3"), json=component_body("azureml:nosuch-env:2"))
    assert r.status_code == 404 and "'2'" in error_of(r)["message"]


@pytest.mark.parametrize(
    "env",
    [
        "azureml:AzureML-sklearn-1.5@latest",
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        {"image": "python:3.11-slim"},
    ],
)
def test_curated_registry_and_inline_environments_are_accepted(api, env):
    r = api.http.put(api.url("/components/train/versions/1"), json=component_body(env))
    assert r.status_code == 200, r.text
    stored = r.json()["environment"]
    if isinstance(env, str):
        assert stored == env
    else:  # an inline environment is stored normalised (defaults filled in)
        assert stored["image"] == env["image"] and stored["os_type"] == "linux"
    c = api.ml.components.get("train", version="1")
    assert isinstance(c, CommandComponent)


def test_component_code_folder_becomes_an_anonymous_code_asset(sqlite_api, tmp_path):
    api = sqlite_api
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('training')\n")
    (src / "utils.py").write_text("X = 1\n")
    comp = CommandComponent(
        name="train",
        version="1",
        command="python train.py",
        code=str(src),
        environment="azureml:AzureML-sklearn-1.5@latest",
    )
    created = api.ml.components.create_or_update(comp)
    assert created.code.startswith("azureml:") and created.code.endswith(":1")
    digest = created.code[len("azureml:") : -len(":1")]
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)

    code = api.http.get(api.url(f"/codes/{digest}/versions/1"))
    assert code.status_code == 200, code.text
    uri = code.json()["path"]
    assert f"/LocalUpload/{digest}/src" in uri
    stored = blobstore_root(api) / uri.split("/paths/", 1)[1]
    assert sha256_tree(stored) == sha256_tree(src)

    # The same code folder again reuses the snapshot and its code asset.
    again = api.ml.components.create_or_update(
        CommandComponent(
            name="train",
            version="2",
            command="python train.py --x",
            code=str(src),
            environment="azureml:AzureML-sklearn-1.5@latest",
        )
    )
    assert again.code == created.code
    assert [c["version"] for c in api.http.get(api.url("/codes"), params={"name": digest}).json()["value"]] == ["1"]


def test_component_referencing_a_missing_code_asset_is_not_found(api):
    r = api.http.put(
        api.url("/components/train/versions/1"),
        json=component_body("azureml:AzureML-sklearn-1.5@latest", code="azureml:nocode:1"),
    )
    assert r.status_code == 404 and "nocode" in error_of(r)["message"]
    assert_nothing_created(api, "components", "train")
