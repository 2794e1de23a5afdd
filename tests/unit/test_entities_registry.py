"""KINDS, parse_entity dispatch, secrets and $schema lookup."""

from __future__ import annotations

import copy

import pytest

from shoal.entities import (
    KINDS,
    AmlCompute,
    AzureBlobDatastore,
    CommandComponent,
    NoneCredentialConfiguration,
    S3KeyConfiguration,
    ServicePrincipalConfiguration,
    kind_of_schema,
    load_datastore,
    merge_secrets,
    parse_entity,
    redact,
    split_secrets,
)
from shoal.errors import SpecError

from .conftest import YAML_DIR

LATEST = "https://azuremlschemas.azureedge.net/latest/"


def test_kinds_table() -> None:
    assert {k: (s.plural, s.versioned) for k, s in KINDS.items()} == {
        "workspace": ("workspaces", False),
        "compute": ("computes", False),
        "datastore": ("datastores", False),
        "model": ("models", True),
        "data": ("data", True),
        "environment": ("environments", True),
        "component": ("components", True),
        "code": ("codes", True),
        "job": ("jobs", False),
        "schedule": ("schedules", False),
        "connection": ("connections", False),
        "online_endpoint": ("onlineEndpoints", False),
        "online_deployment": ("deployments", False),
        "batch_endpoint": ("batchEndpoints", False),
        "batch_deployment": ("batchDeployments", False),
    }
    assert KINDS["component"].default_type == "command"
    assert KINDS["compute"].default_type is None
    assert set(KINDS["compute"].types) == {
        "amlcompute",
        "computeinstance",
        "kubernetes",
        "virtualmachine",
        "synapsespark",
        "local",
    }
    assert "s3" in KINDS["datastore"].types and "local" in KINDS["datastore"].types


def test_adapter_discriminates() -> None:
    c = KINDS["compute"].adapter.validate_python({"name": "cpu", "type": "amlcompute"})
    assert isinstance(c, AmlCompute)
    d = KINDS["datastore"].adapter.validate_python(
        {"name": "b", "type": "azure_blob", "account_name": "a", "container_name": "c"}
    )
    assert isinstance(d, AzureBlobDatastore)


def test_parse_entity_defaults_component_type() -> None:
    c = parse_entity("component", {"name": "step", "command": "echo", "environment": "azureml:e:1"})
    assert isinstance(c, CommandComponent) and c.type == "command"


def test_parse_entity_errors() -> None:
    with pytest.raises(SpecError, match="unknown entity kind 'widget'"):
        parse_entity("widget", {})
    with pytest.raises(SpecError, match="must be a mapping, got list"):
        parse_entity("model", [])  # type: ignore[arg-type]
    with pytest.raises(SpecError) as info:
        parse_entity("compute", {"name": "cpu", "type": ["amlcompute"]}, source="body")
    assert "body: field 'type': unknown compute type ['amlcompute']" in str(info.value)
    with pytest.raises(SpecError) as info:
        parse_entity("model", {"name": "m", "path": "p", "pathh": "x"})
    assert str(info.value) == "unknown field 'pathh' (did you mean 'path'?)"
    assert info.value.details["errors"] == [
        {"path": "pathh", "line": None, "message": "unknown field 'pathh' (did you mean 'path'?)"}
    ]
    assert info.value.code == "INVALID_SPEC" and info.value.http_status == 422


def test_read_only_fields_are_accepted_and_listed() -> None:
    body = {
        "name": "m",
        "version": "1",
        "path": "azureml://datastores/d/paths/m.pkl",
        "id": "/subscriptions/x/models/m/versions/1",
        "creation_context": {"created_by": "me"},
        "latest_version": "3",
        "archived": True,
        "job_name": "job-1",
    }
    model = parse_entity("model", body)
    assert set(model.READ_ONLY_FIELDS) >= {"id", "creation_context", "latest_version", "archived", "job_name"}
    assert model.to_dict() == {**body, "type": "custom_model"}
    clean = model.without_read_only()
    assert (clean.id, clean.archived, clean.job_name, clean.latest_version) == (None, False, None, None)
    assert clean.to_dict() == {"name": "m", "version": "1", "path": body["path"], "type": "custom_model"}


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "secret", "kept"),
    [
        ("blob-account-key.yml", {"account_key": "ZmFrZS1hY2NvdW50LWtleS1mb3ItdGVzdHM="}, {}),
        (
            "blob-sas.yml",
            {"sas_token": "?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig=ZmFrZQ%3D%3D"},
            {},
        ),
        (
            "adls-gen2-sp.yml",
            {"client_secret": "sp-secret-value"},
            {
                "tenant_id": "11111111-2222-3333-4444-555555555555",
                "client_id": "66666666-7777-8888-9999-000000000000",
            },
        ),
        (
            "adls-gen2-certificate.yml",
            {"certificate": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"},
            {
                "tenant_id": "11111111-2222-3333-4444-555555555555",
                "client_id": "66666666-7777-8888-9999-000000000000",
                "thumbprint": "0123456789ABCDEF0123456789ABCDEF01234567",
            },
        ),
        ("s3.yml", {"secret_access_key": "s3-secret-example"}, {"access_key_id": "AKIAEXAMPLEEXAMPLE"}),
    ],
)
def test_split_and_merge_datastore_secrets(file: str, secret: dict, kept: dict) -> None:
    data = load_datastore(YAML_DIR / "datastore" / file).to_dict()
    original = copy.deepcopy(data)
    public, secrets = split_secrets("datastore", data)
    assert data == original  # input untouched
    assert secrets == {"credentials": secret}
    assert public["credentials"] == kept
    for value in secret.values():
        assert value not in repr(public)
    assert merge_secrets("datastore", public, secrets) == data
    assert redact("datastore", data) == public
    # The public part still parses (for show/list): SP keeps its kind, key-only kinds become "none".
    parsed = parse_entity("datastore", public)
    if kept:
        assert type(parsed.credentials) is type(parse_entity("datastore", data).credentials)
    else:
        assert isinstance(parsed.credentials, NoneCredentialConfiguration)


def test_secrets_of_typed_credentials() -> None:
    sp = parse_entity(
        "datastore",
        split_secrets("datastore", load_datastore(YAML_DIR / "datastore/adls-gen1-sp.yml").to_dict())[0],
    )
    assert isinstance(sp.credentials, ServicePrincipalConfiguration) and sp.credentials.client_secret is None
    s3 = parse_entity("datastore", redact("datastore", load_datastore(YAML_DIR / "datastore/s3.yml").to_dict()))
    assert isinstance(s3.credentials, S3KeyConfiguration) and s3.credentials.secret_access_key is None


def test_credential_less_datastore_has_no_secrets() -> None:
    data = load_datastore(YAML_DIR / "datastore/blob-credless.yml").to_dict()
    assert split_secrets("datastore", data) == (data, {})


def test_hdfs_kerberos_secrets() -> None:
    data = {
        "name": "onprem",
        "type": "hdfs",
        "name_node_address": "namenode.corp:8020",
        "credentials": {
            "kerberos_realm": "CORP.EXAMPLE",
            "kerberos_kdc_address": "kdc.corp",
            "kerberos_principal": "ml@CORP.EXAMPLE",
            "kerberos_keytab": "a2V5dGFi",
        },
    }
    parse_entity("datastore", data)
    public, secrets = split_secrets("datastore", data)
    assert secrets == {"credentials": {"kerberos_keytab": "a2V5dGFi"}}
    assert merge_secrets("datastore", public, secrets) == data


def test_compute_admin_password() -> None:
    compute = parse_entity(
        "compute",
        {
            "name": "ssh-cluster",
            "type": "amlcompute",
            "ssh_settings": {"admin_username": "u", "admin_password": "pw"},
        },
    ).to_dict()
    public, secrets = split_secrets("compute", compute)
    assert public["ssh_settings"] == {"admin_username": "u"}
    assert secrets == {"ssh_settings": {"admin_password": "pw"}}
    assert merge_secrets("compute", public, secrets) == compute
    assert split_secrets("model", {"name": "m", "path": "p"}) == ({"name": "m", "path": "p"}, {})


# --- $schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (LATEST + "workspace.schema.json", "workspace"),
        (LATEST + "amlCompute.schema.json", "compute"),
        (LATEST + "computeInstance.schema.json", "compute"),
        (LATEST + "vmCompute.schema.json", "compute"),
        (LATEST + "kubernetesCompute.schema.json", "compute"),
        (LATEST + "azureBlob.schema.json", "datastore"),
        (LATEST + "azureFile.schema.json", "datastore"),
        (LATEST + "azureDataLakeGen1.schema.json", "datastore"),
        (LATEST + "azureDataLakeGen2.schema.json", "datastore"),
        (LATEST + "model.schema.json", "model"),
        (LATEST + "data.schema.json", "data"),
        (LATEST + "environment.schema.json", "environment"),
        (LATEST + "commandComponent.schema.json", "component"),
        (LATEST + "pipelineComponent.schema.json", "component"),
        (LATEST + "parallelComponent.schema.json", "component"),
        (LATEST + "commandJob.schema.json", "job"),
        (LATEST + "managedOnlineEndpoint.schema.json", "online_endpoint"),
        ("https://azuremlschemas.azureedge.net/development/model.schema.json", "model"),
        ("http://azureml/sdk-2-0/DataImport.json", "data"),
        ("  http://azureml/sdk-2-0/Schedule.json", "schedule"),
        ("https://example.org/whatever.json", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_kind_of_schema(url: object, kind: str | None) -> None:
    assert kind_of_schema(url) == kind
