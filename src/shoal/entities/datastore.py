"""Datastores (``_schema/_datastore/*.py``) plus Shoal's own ``local`` and ``s3`` types."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator

from shoal.entities.base import Entity, ShoalModel
from shoal.entities.credentials import (
    SECRET_FIELDS,
    AccountKeyConfiguration,
    CertificateConfiguration,
    ConnectionStringConfiguration,
    Credential,
    CredentialUnion,
    KerberosKeytabConfiguration,
    KerberosPasswordConfiguration,
    NoneCredentialConfiguration,
    S3KeyConfiguration,
    SasTokenConfiguration,
    ServicePrincipalConfiguration,
)
from shoal.entities.validation import DATASTORE_NAME

# Module-level alias: inside the classes below, `type` is a field name and shadows the builtin.
CredentialClasses = tuple[type[Credential], ...]


class Datastore(Entity):
    KIND: ClassVar[str] = "datastore"
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Entity.READ_ONLY_FIELDS + ("is_default",)
    PRINT_HIDDEN: ClassVar[tuple[str, ...]] = tuple(sorted(f"credentials.{key}" for key in SECRET_FIELDS))
    # The credential classes a datastore type accepts; ``None`` (absent) is always accepted.
    ALLOWED_CREDENTIALS: ClassVar[CredentialClasses] = (NoneCredentialConfiguration,)

    name: str
    type: str
    credentials: CredentialUnion | None = None
    is_default: bool = False

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return DATASTORE_NAME.check(value)

    @field_validator("credentials")
    @classmethod
    def _check_credentials(cls, value: Credential | None) -> Credential | None:
        if value is not None and not isinstance(value, cls.ALLOWED_CREDENTIALS):
            allowed = ", ".join(c.LABEL for c in cls.ALLOWED_CREDENTIALS)
            type_name = cls.model_fields["type"].default
            raise ValueError(f"{value.LABEL} credentials are not valid for datastore type {type_name}; use {allowed}")
        return value


class _AzureStorageDatastore(Datastore):
    account_name: str
    endpoint: str = "core.windows.net"
    protocol: str = "https"


class AzureBlobDatastore(_AzureStorageDatastore):
    ALLOWED_CREDENTIALS: ClassVar[CredentialClasses] = (
        AccountKeyConfiguration,
        SasTokenConfiguration,
        ConnectionStringConfiguration,
        NoneCredentialConfiguration,
    )
    type: Literal["azure_blob"] = "azure_blob"
    container_name: str


class AzureFileDatastore(_AzureStorageDatastore):
    ALLOWED_CREDENTIALS: ClassVar[CredentialClasses] = AzureBlobDatastore.ALLOWED_CREDENTIALS
    type: Literal["azure_file"] = "azure_file"
    file_share_name: str


_AAD_CREDENTIALS: tuple[type[Credential], ...] = (
    ServicePrincipalConfiguration,
    CertificateConfiguration,
    NoneCredentialConfiguration,
)


class AzureDataLakeGen2Datastore(_AzureStorageDatastore):
    ALLOWED_CREDENTIALS: ClassVar[CredentialClasses] = _AAD_CREDENTIALS
    type: Literal["azure_data_lake_gen2"] = "azure_data_lake_gen2"
    filesystem: str


class AzureDataLakeGen1Datastore(Datastore):
    ALLOWED_CREDENTIALS: ClassVar[CredentialClasses] = _AAD_CREDENTIALS
    type: Literal["azure_data_lake_gen1"] = "azure_data_lake_gen1"
    store_name: str


class OneLakeArtifact(ShoalModel):
    name: str
    type: Literal["lake_house"] = "lake_house"


class OneLakeDatastore(Datastore):
    ALLOWED_CREDENTIALS: ClassVar[CredentialClasses] = (
        ServicePrincipalConfiguration,
        NoneCredentialConfiguration,
    )
    type: Literal["one_lake"] = "one_lake"
    one_lake_workspace_name: str
    endpoint: str
    artifact: OneLakeArtifact


class HdfsDatastore(Datastore):
    ALLOWED_CREDENTIALS: ClassVar[CredentialClasses] = (
        KerberosPasswordConfiguration,
        KerberosKeytabConfiguration,
    )
    type: Literal["hdfs"] = "hdfs"
    name_node_address: str
    protocol: str = "http"
    hdfs_server_certificate: str | None = None


class LocalDatastore(Datastore):
    """Shoal only: a folder on the server machine (made absolute by the loader)."""

    type: Literal["local"] = "local"
    path: str


class S3Datastore(Datastore):
    """Shoal only: an S3 (or S3-compatible, via ``endpoint_url``) bucket."""

    ALLOWED_CREDENTIALS: ClassVar[CredentialClasses] = (
        S3KeyConfiguration,
        NoneCredentialConfiguration,
    )
    type: Literal["s3"] = "s3"
    bucket: str
    prefix: str | None = None
    endpoint_url: str | None = None
    region: str | None = None


DATASTORE_TYPES: tuple[type[Datastore], ...] = (
    AzureBlobDatastore,
    AzureFileDatastore,
    AzureDataLakeGen2Datastore,
    AzureDataLakeGen1Datastore,
    OneLakeDatastore,
    HdfsDatastore,
    LocalDatastore,
    S3Datastore,
)


def datastore_class(type_name: Any) -> type[Datastore] | None:
    return next((c for c in DATASTORE_TYPES if c.model_fields["type"].default == type_name), None)
