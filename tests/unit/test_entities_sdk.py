"""Entities built in Python (SDK style), serialisation rules and constants."""

from __future__ import annotations

import pytest

from shoal.constants import AssetTypes, InputOutputModes, ListViewType
from shoal.entities import (
    AccountKeyConfiguration,
    AmlCompute,
    AzureBlobDatastore,
    AzureDataLakeGen2Datastore,
    BuildContext,
    CertificateConfiguration,
    CommandComponent,
    Data,
    Environment,
    IdentityConfiguration,
    Model,
    NoneCredentialConfiguration,
    S3Datastore,
    S3KeyConfiguration,
    SasTokenConfiguration,
    ServicePrincipalConfiguration,
    Workspace,
    parse_entity,
)
from shoal.errors import SpecError


def test_datastore_with_credential_objects() -> None:
    blob = AzureBlobDatastore(
        name="raw",
        account_name="acct",
        container_name="c",
        credentials=AccountKeyConfiguration(account_key="k"),
    )
    assert blob.to_dict() == {
        "name": "raw",
        "type": "azure_blob",
        "account_name": "acct",
        "container_name": "c",
        "endpoint": "core.windows.net",
        "protocol": "https",
        "credentials": {"account_key": "k"},
    }
    assert parse_entity("datastore", blob.to_dict()) == blob
    sas = AzureBlobDatastore(
        name="s", account_name="a", container_name="c", credentials=SasTokenConfiguration(sas_token="t")
    )
    assert parse_entity("datastore", sas.to_dict()).credentials == SasTokenConfiguration(sas_token="t")
    none = AzureDataLakeGen2Datastore(
        name="l", account_name="a", filesystem="f", credentials=NoneCredentialConfiguration()
    )
    assert none.to_dict()["credentials"] == {}
    assert parse_entity("datastore", none.to_dict()) == none
    cert = CertificateConfiguration(tenant_id="t", client_id="c", thumbprint="th", certificate="pem")
    assert AzureDataLakeGen2Datastore(name="l", account_name="a", filesystem="f", credentials=cert).credentials == cert
    s3 = S3Datastore(name="s3", bucket="b", credentials=S3KeyConfiguration(access_key_id="id", secret_access_key="sk"))
    assert parse_entity("datastore", s3.to_dict()) == s3


@pytest.mark.parametrize(
    ("cls", "fields", "credential", "allowed"),
    [
        (
            AzureDataLakeGen2Datastore,
            {"account_name": "a", "filesystem": "f"},
            AccountKeyConfiguration(account_key="k"),
            "service principal",
        ),
        (
            AzureBlobDatastore,
            {"account_name": "a", "container_name": "c"},
            ServicePrincipalConfiguration(tenant_id="t", client_id="c", client_secret="s"),
            "account key",
        ),
        (S3Datastore, {"bucket": "b"}, SasTokenConfiguration(sas_token="t"), "S3 keys"),
    ],
)
def test_wrong_credentials_are_spec_errors(cls, fields, credential, allowed) -> None:
    with pytest.raises(SpecError) as info:
        cls(name="ds", credentials=credential, **fields)
    assert not isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}: field 'credentials':")
    assert "not valid for datastore type" in message and allowed in message


def test_constructor_errors_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="Model: missing required field 'path'"):
        Model(name="m")
    with pytest.raises(SpecError, match="AmlCompute: field 'max_instances'"):
        AmlCompute(name="cpu", max_instances="lots")
    with pytest.raises(SpecError, match="AccountKeyConfiguration: missing required field 'account_key'"):
        AccountKeyConfiguration()
    with pytest.raises(SpecError, match="unknown field 'imagee'"):
        Environment(name="e", imagee="x")


def test_coercions() -> None:
    m = Model(name="m", path="p", version=3, tags={"n": 1, "f": 0.5, "b": True, "empty": None})
    assert m.version == "3"
    assert m.tags == {"n": "1", "f": "0.5", "b": "true", "empty": ""}
    assert Model(name="m", path="p", tags=None).tags == {}
    with pytest.raises(SpecError, match="field 'tags.x'"):
        Model(name="m", path="p", tags={"x": [1]})
    with pytest.raises(SpecError, match="field 'version': a version was given without a name"):
        Data(path="x", version="1")


def test_anonymous_assets_are_allowed() -> None:
    assert Data(path="./x").name is None
    assert Environment(image="python:3.11").version is None


def test_to_dict_drops_noise_but_round_trips() -> None:
    m = Model(name="m", path="p")
    assert m.to_dict() == {"name": "m", "path": "p", "type": "custom_model"}
    schema = "https://azuremlschemas.azureedge.net/latest/model.schema.json"
    with_schema = parse_entity("model", {"$schema": schema, "name": "m", "path": "p"})
    assert with_schema.to_dict()["$schema"] == schema
    assert Model(schema_=schema, name="m", path="p") == with_schema


def test_environment_variants() -> None:
    built = Environment(name="e", build=BuildContext(path="https://example.org/context.tar.gz"))
    assert built.to_dict()["build"] == {
        "path": "https://example.org/context.tar.gz",
        "dockerfile_path": "Dockerfile",
    }
    with pytest.raises(SpecError, match="exactly one of 'image' or 'build'"):
        Environment(name="e", image="x", build={"path": "."})
    with pytest.raises(SpecError, match="field 'conda_file': must be a path"):
        Environment(name="e", image="x", conda_file=["numpy"])


def test_component_in_python() -> None:
    c = CommandComponent(
        name="train",
        command="python train.py --lr ${{inputs.lr}}",
        environment=Environment(image="python:3.11"),
        inputs={"lr": {"type": "number", "default": 0.1}, "data": {}},
        outputs={"model": {"type": "mlflow_model"}},
    )
    assert c.inputs["data"].type == "uri_folder"
    assert parse_entity("component", c.to_dict()) == c
    with pytest.raises(SpecError, match="'x' is not one of enum"):
        CommandComponent(
            name="t",
            command="x",
            environment="azureml:e:1",
            inputs={"s": {"type": "string", "enum": ["a"], "default": "x"}},
        )
    with pytest.raises(SpecError, match="field 'inputs.n.min': min \\(5\\) is larger than max \\(1\\)"):
        CommandComponent(
            name="t",
            command="x",
            environment="azureml:e:1",
            inputs={"n": {"type": "integer", "min": 5, "max": 1}},
        )
    string_default = CommandComponent(
        name="t", command="x", environment="azureml:e:1", inputs={"s": {"type": "string", "default": 10}}
    )
    assert string_default.inputs["s"].default == "10"
    with pytest.raises(SpecError, match="must be a reference"):
        CommandComponent(name="t", command="x", environment=5)


def test_workspace_and_identity() -> None:
    ws = Workspace(
        name="team-ws",
        identity=IdentityConfiguration(type="system_assigned"),
        public_network_access="enabled",
    )
    assert ws.public_network_access == "Enabled"
    assert ws.to_dict()["identity"] == {"type": "system_assigned"}
    with pytest.raises(SpecError, match="field 'identity.type'"):
        Workspace(name="team-ws", identity={"type": "managed"})


def test_constants() -> None:
    assert (AssetTypes.URI_FILE, AssetTypes.URI_FOLDER, AssetTypes.MLTABLE) == (
        "uri_file",
        "uri_folder",
        "mltable",
    )
    assert (AssetTypes.MLFLOW_MODEL, AssetTypes.CUSTOM_MODEL, AssetTypes.TRITON_MODEL) == (
        "mlflow_model",
        "custom_model",
        "triton_model",
    )
    assert InputOutputModes.RO_MOUNT == "ro_mount" and InputOutputModes.EVAL_DOWNLOAD == "eval_download"
    assert ListViewType.ACTIVE_ONLY == "ActiveOnly"
    assert ListViewType("ArchivedOnly") is ListViewType.ARCHIVED_ONLY
    assert ListViewType.ALL.value == "All"
