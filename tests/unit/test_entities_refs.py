"""Asset references (§3.1) and data URIs (§3.2)."""

from __future__ import annotations

import pytest

from shoal.entities import (
    AssetRef,
    format_asset_id,
    format_datastore_uri,
    format_job_output_uri,
    is_local_path,
    parse_asset_ref,
    parse_path,
)
from shoal.errors import SpecError

ARM = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces/ws1"

REFS = [
    ("azureml:iris:1", None, AssetRef(None, "iris", "1")),
    ("azureml:iris:2024.01.08-rc1", "data", AssetRef("data", "iris", "2024.01.08-rc1")),
    ("azureml:iris@latest", None, AssetRef(None, "iris", label="latest")),
    ("azureml:train_model@default", "component", AssetRef("component", "train_model", label="default")),
    ("iris:3", "data", AssetRef("data", "iris", "3")),
    ("iris@latest", None, AssetRef(None, "iris", label="latest")),
    ("azureml:cpu-cluster", "compute", AssetRef("compute", "cpu-cluster")),
    ("cpu-cluster", None, AssetRef(None, "cpu-cluster")),
    (
        "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest",
        "environment",
        AssetRef("environment", "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", label="latest"),
    ),
    (
        "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:33",
        None,
        AssetRef(None, "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", "33"),
    ),
    (f"azureml:{ARM}/models/m/versions/3", None, AssetRef("model", "m", "3", workspace="ws1")),
    (f"{ARM}/models/m/versions/3", "model", AssetRef("model", "m", "3", workspace="ws1")),
    (
        f"{ARM}/environments/e/labels/latest",
        None,
        AssetRef("environment", "e", label="latest", workspace="ws1"),
    ),
    (f"{ARM}/data/d", None, AssetRef("data", "d", workspace="ws1")),
    (f"{ARM}/computes/cpu-cluster", None, AssetRef("compute", "cpu-cluster", workspace="ws1")),
    (
        f"azureml:{ARM.replace('resourceGroups', 'resourcegroups')}/codes/c/versions/1",
        None,
        AssetRef("code", "c", "1", workspace="ws1"),
    ),
    (
        "azureml://locations/westeurope/workspaces/0000-1111/models/m/versions/7",
        None,
        AssetRef("model", "m", "7", workspace="0000-1111"),
    ),
    (
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        None,
        AssetRef("environment", "sklearn-1.5", label="latest", registry="azureml"),
    ),
    (
        "azureml://registries/shared/components/train_model/versions/2",
        "component",
        AssetRef("component", "train_model", "2", registry="shared"),
    ),
    ("azureml://registries/hf/models/bert", None, AssetRef("model", "bert", registry="hf")),
    ("  azureml:iris:1  ", None, AssetRef(None, "iris", "1")),
]


@pytest.mark.parametrize(("text", "kind", "expected"), REFS, ids=[r[0].strip() for r in REFS])
def test_parse_asset_ref(text: str, kind: str | None, expected: AssetRef) -> None:
    assert parse_asset_ref(text, kind) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "azureml:",
        "azureml::1",
        "azureml:iris:",
        "azureml:iris@",
        "azureml:a:b:c",
        "azureml:iris:1@latest",
        "a b",
        "azureml://datastores/ds/paths/x",
        "azureml://registries/r/computes/c/versions/1",
        "azureml://registries/r/widgets/w/versions/1",
        f"{ARM}/widgets/w/versions/1",
        f"{ARM}/models/m/versions/1/extra",
        "/not/an/arm/id",
    ],
)
def test_malformed_refs(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_asset_ref(text)
    assert repr(text.strip()) in str(info.value) if text.strip() else "empty" in str(info.value)


def test_kind_mismatch() -> None:
    with pytest.raises(SpecError, match="refers to a model, not a data"):
        parse_asset_ref(f"{ARM}/models/m/versions/3", "data")


@pytest.mark.parametrize(
    ("ref", "text"),
    [
        (AssetRef("data", "iris", "1"), "azureml:iris:1"),
        (AssetRef("data", "iris", label="latest"), "azureml:iris@latest"),
        (AssetRef("compute", "cpu"), "azureml:cpu"),
        (AssetRef("model", "m", "2", registry="r"), "azureml://registries/r/models/m/versions/2"),
        (
            AssetRef("environment", "e", label="latest", registry="r"),
            "azureml://registries/r/environments/e/labels/latest",
        ),
        (AssetRef("model", "bert", registry="hf"), "azureml://registries/hf/models/bert"),
    ],
)
def test_asset_ref_str(ref: AssetRef, text: str) -> None:
    assert str(ref) == text
    assert parse_asset_ref(text, ref.kind) == ref


# --- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("./data/iris.csv", {"scheme": "local", "path": "./data/iris.csv"}),
        ("data/", {"scheme": "local", "path": "data/", "is_folder": True}),
        ("/abs/file.txt", {"scheme": "local", "path": "/abs/file.txt"}),
        ("file:./x.csv", {"scheme": "local", "path": "./x.csv"}),
        ("file:///srv/x", {"scheme": "local", "path": "/srv/x"}),
        ("C:\\data\\x.csv", {"scheme": "local", "path": "C:\\data\\x.csv"}),
        (
            "azureml://datastores/workspaceblobstore/paths/raw/iris.csv",
            {
                "scheme": "datastore",
                "datastore": "workspaceblobstore",
                "path": "raw/iris.csv",
                "is_folder": False,
            },
        ),
        (
            "azureml://datastores/ds/paths/raw/",
            {"scheme": "datastore", "datastore": "ds", "path": "raw/", "is_folder": True},
        ),
        ("azureml://datastores/ds/paths/", {"scheme": "datastore", "datastore": "ds", "path": ""}),
        ("azureml://datastores/managed", {"scheme": "datastore", "datastore": "managed", "path": ""}),
        (
            "azureml://subscriptions/s/resourcegroups/rg/workspaces/ws/datastores/ds/paths/a/b.csv",
            {
                "scheme": "datastore",
                "datastore": "ds",
                "path": "a/b.csv",
                "subscription": "s",
                "resource_group": "rg",
                "workspace": "ws",
            },
        ),
        (
            "azureml://subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
            "/workspaces/ws/datastores/ds/paths/a",
            {"scheme": "datastore", "datastore": "ds", "path": "a", "workspace": "ws"},
        ),
        (
            "azureml://datastores/${{default_datastore}}/paths/${{name}}/${{output_name}}",
            {
                "scheme": "datastore",
                "datastore": "${{default_datastore}}",
                "path": "${{name}}/${{output_name}}",
            },
        ),
        (
            "azureml://jobs/blue_cat_x1/outputs/artifacts/paths/model/",
            {"scheme": "job_output", "job": "blue_cat_x1", "output": "artifacts", "path": "model/"},
        ),
        ("azureml://jobs/j/outputs/out", {"scheme": "job_output", "job": "j", "output": "out", "path": ""}),
        ("runs:/run-42/model", {"scheme": "runs", "run_id": "run-42", "path": "model"}),
        ("runs:/run-42", {"scheme": "runs", "run_id": "run-42", "path": ""}),
        ("https://acct.blob.core.windows.net/c/x.csv", {"scheme": "http", "protocol": "https"}),
        ("http://example.org/x", {"scheme": "http", "protocol": "http"}),
        ("wasbs://c@acct.blob.core.windows.net/p", {"scheme": "cloud", "protocol": "wasbs"}),
        ("abfss://fs@acct.dfs.core.windows.net/p", {"scheme": "cloud", "protocol": "abfss"}),
        ("adl://store.azuredatalakestore.net/p", {"scheme": "cloud", "protocol": "adl"}),
        ("s3://bucket/key", {"scheme": "cloud", "protocol": "s3"}),
        ("gs://bucket/key", {"scheme": "cloud", "protocol": "gs"}),
        ("azureml:iris:1", {"scheme": "asset", "asset": AssetRef(None, "iris", "1")}),
        ("azureml:iris@latest", {"scheme": "asset", "asset": AssetRef(None, "iris", label="latest")}),
        (
            "azureml://registries/r/data/d/versions/1",
            {"scheme": "registry", "asset": AssetRef("data", "d", "1", registry="r")},
        ),
        (
            "azureml://locations/l/workspaces/w/models/m/versions/1",
            {"scheme": "asset", "asset": AssetRef("model", "m", "1", workspace="w")},
        ),
    ],
)
def test_parse_path(text: str, fields: dict) -> None:
    ref = parse_path(text)
    assert ref.raw == text
    for name, value in fields.items():
        assert getattr(ref, name) == value, name


@pytest.mark.parametrize("text", ["", "ftp://host/x", "git+https://github.com/a/b", "azureml://widgets/x", "runs:"])
def test_bad_paths(text: str) -> None:
    with pytest.raises(SpecError, match="invalid path"):
        parse_path(text)


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("./x", True),
        ("x/y", True),
        ("/abs", True),
        ("file:x", True),
        ("C:\\x", True),
        ("azureml:iris:1", False),
        ("azureml://datastores/d/paths/x", False),
        ("runs:/r/m", False),
        ("https://x", False),
        ("git+https://github.com/a/b", False),
        ("s3://b/k", False),
        ("${{parent.inputs.data}}", False),
    ],
)
def test_is_local_path(text: str, local: bool) -> None:
    assert is_local_path(text) is local


def test_format_ids() -> None:
    assert format_asset_id("team-ws", "models", "m", "3") == (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/shoal/providers"
        "/Microsoft.MachineLearningServices/workspaces/team-ws/models/m/versions/3"
    )
    assert format_asset_id("ws", "computes", "cpu").endswith("/workspaces/ws/computes/cpu")
    assert format_asset_id("ws", "environments", "e", label="latest").endswith("/environments/e/labels/latest")
    assert parse_asset_ref(format_asset_id("ws", "data", "d", "1")) == AssetRef("data", "d", "1", workspace="ws")
    assert format_datastore_uri("ds", "/raw/x.csv") == "azureml://datastores/ds/paths/raw/x.csv"
    assert format_datastore_uri("ds", "raw/") == "azureml://datastores/ds/paths/raw/"
    assert parse_path(format_datastore_uri("ds", "a/b")).path == "a/b"
    assert format_job_output_uri("j", "out", "model/") == "azureml://jobs/j/outputs/out/paths/model/"
