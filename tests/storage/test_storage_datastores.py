"""Datastore resolution: built-ins on the artifact root, local folders, lazy cloud drivers."""

from __future__ import annotations

import importlib.util
import os
import uuid

import fsspec
import pytest

from shoal.errors import UnsupportedError, UserError
from shoal.storage.datastores import DatastoreFiles, resolve_datastore_fs


def test_builtin_lives_under_the_artifact_root(tmp_path) -> None:
    spec = {"name": "workspaceblobstore", "properties": {"shoal_builtin": True}}
    fs, root = resolve_datastore_fs("azure_blob", spec, {}, artifact_root=str(tmp_path), workspace="ws1")
    assert root == os.path.join(os.path.realpath(tmp_path), "workspaces", "ws1", "datastores", "workspaceblobstore")
    files = DatastoreFiles(fs, root)
    files.write_stream("data/x.csv", [b"a,b\n"])
    assert [f.path for f in files.list_files("data")] == ["x.csv"]
    assert (tmp_path / "workspaces/ws1/datastores/workspaceblobstore/data/x.csv").read_bytes() == b"a,b\n"


def test_builtin_flag_from_caller_and_memory_root() -> None:
    art = f"memory://shoal-ds-{uuid.uuid4().hex}"
    spec = {"name": "workspaceartifactstore"}
    fs, root = resolve_datastore_fs("azure_blob", spec, {}, artifact_root=art, workspace="w", builtin=True)
    assert root.endswith("/workspaces/w/datastores/workspaceartifactstore")
    files = DatastoreFiles(fs, root)
    files.write_stream("a.txt", [b"a"])
    with files.open_read("a.txt") as fh:
        assert fh.read() == b"a"
    fsspec.filesystem("memory").rm(art.removeprefix("memory:/"), recursive=True)


@pytest.mark.parametrize(("name", "workspace"), [("../x", "w"), ("a/b", "w"), ("ok", "../w"), (None, "w")])
def test_builtin_names_are_single_segments(tmp_path, name, workspace) -> None:
    with pytest.raises(UserError):
        resolve_datastore_fs(
            "azure_blob", {"name": name}, {}, artifact_root=str(tmp_path), workspace=workspace, builtin=True
        )


def test_local_datastore(tmp_path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "f.txt").write_bytes(b"f")
    for path in (str(tmp_path / "shared"), f"file://{tmp_path}/shared"):
        fs, root = resolve_datastore_fs("local", {"name": "d", "path": path}, {}, artifact_root="/x", workspace="w")
        assert [f.path for f in DatastoreFiles(fs, root).list_files("")] == ["f.txt"]
    with pytest.raises(UserError, match="absolute"):
        resolve_datastore_fs("local", {"name": "d", "path": "rel/dir"}, {}, artifact_root="/x", workspace="w")
    with pytest.raises(UserError, match="'path'"):
        resolve_datastore_fs("local", {"name": "d"}, {}, artifact_root="/x", workspace="w")


def test_local_datastore_is_not_created(tmp_path) -> None:
    fs, root = resolve_datastore_fs(
        "local", {"name": "d", "path": str(tmp_path / "nope")}, {}, artifact_root="/x", workspace="w"
    )
    DatastoreFiles(fs, root)
    assert not (tmp_path / "nope").exists()


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_without_s3fs_says_what_to_install() -> None:
    spec = {"name": "d", "bucket": "b", "prefix": "p"}
    with pytest.raises(UnsupportedError, match=r"shoal\[s3\]"):
        resolve_datastore_fs("s3", spec, {"access_key_id": "k"}, artifact_root="/x", workspace="w")


@pytest.mark.skipif(importlib.util.find_spec("adlfs") is not None, reason="adlfs is installed")
@pytest.mark.parametrize(
    ("ds_type", "spec"),
    [
        ("azure_blob", {"name": "d", "account_name": "acct", "container_name": "c"}),
        ("azure_data_lake_gen2", {"name": "d", "account_name": "acct", "filesystem": "fs"}),
    ],
)
def test_azure_without_adlfs_says_what_to_install(ds_type, spec) -> None:
    with pytest.raises(UnsupportedError, match=r"shoal\[azure\]"):
        resolve_datastore_fs(ds_type, spec, {"account_key": "k"}, artifact_root="/x", workspace="w")


def test_cloud_specs_are_validated_before_drivers() -> None:
    with pytest.raises(UserError, match="'bucket'"):
        resolve_datastore_fs("s3", {"name": "d"}, {}, artifact_root="/x", workspace="w")
    with pytest.raises(UserError, match="bucket"):
        resolve_datastore_fs("s3", {"name": "d", "bucket": "a/../b"}, {}, artifact_root="/x", workspace="w")
    with pytest.raises(UserError):
        resolve_datastore_fs(
            "s3", {"name": "d", "bucket": "b", "prefix": "../x"}, {}, artifact_root="/x", workspace="w"
        )
    with pytest.raises(UserError, match="'container_name'"):
        resolve_datastore_fs("azure_blob", {"name": "d", "account_name": "a"}, {}, artifact_root="/x", workspace="w")


@pytest.mark.parametrize("ds_type", ["azure_file", "azure_data_lake_gen1", "hdfs", ""])
def test_unsupported_types_are_named(ds_type) -> None:
    with pytest.raises(UnsupportedError, match=repr(ds_type)):
        resolve_datastore_fs(ds_type, {"name": "d"}, {}, artifact_root="/x", workspace="w")


def test_credentials_join_the_public_keys_and_the_decrypted_secrets() -> None:
    from shoal.storage.datastores import credentials_of

    spec = {"credentials": {"access_key_id": "AKIA1"}}
    assert credentials_of(spec, {"credentials": {"secret_access_key": "s"}}) == {
        "access_key_id": "AKIA1",
        "secret_access_key": "s",
    }
    assert credentials_of({}, {"account_key": "k"}) == {"account_key": "k"}  # the older flat form


@pytest.mark.parametrize(
    ("spec", "url"),
    [
        ({}, "https://acct.blob.core.windows.net"),
        ({"endpoint": "core.chinacloudapi.cn"}, "https://acct.blob.core.chinacloudapi.cn"),
        ({"endpoint": "http://127.0.0.1:10000", "protocol": "http"}, "http://127.0.0.1:10000/acct"),
        ({"endpoint": "http://127.0.0.1:10000/acct/"}, "http://127.0.0.1:10000/acct"),
    ],
)
def test_blob_account_url(spec, url) -> None:
    from shoal.storage.datastores import blob_account_url

    assert blob_account_url("acct", spec) == url


def test_bad_protocol_is_a_user_error() -> None:
    from shoal.storage.datastores import blob_account_url

    with pytest.raises(UserError, match="protocol"):
        blob_account_url("acct", {"protocol": "ftp"})


def test_secret_values_cover_connection_string_keys_and_sas_signatures() -> None:
    from shoal.storage.datastores import secret_values

    got = secret_values(
        {
            "credentials": {
                "connection_string": "AccountName=a;AccountKey=TheKey==;BlobEndpoint=http://h/a",
                "sas_token": "?sv=1&sig=TheSig%3D",
            }
        }
    )
    assert "TheKey==" in got and "TheSig%3D" in got
