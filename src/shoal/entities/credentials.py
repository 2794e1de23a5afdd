"""Datastore credentials.

Datastore YAML has no ``type`` key inside ``credentials``; the kind of credential is told by
its keys (``account_key``, ``sas_token``, ``client_secret``, ...). The classes mirror the
azure-ai-ml ones so ``AzureBlobDatastore(credentials=AccountKeyConfiguration(account_key=...))``
works.

Secret fields other than ``account_key``/``sas_token`` are optional so that a redacted spec
(see ``kinds.split_secrets``) still parses: its non-secret keys tell the credential kind.
A redacted account-key or SAS credential is an empty mapping, which parses as "none".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Discriminator, Tag

from shoal.entities.base import ShoalModel

SECRET_FIELDS = frozenset(
    {"account_key", "sas_token", "connection_string", "client_secret", "certificate", "secret_access_key"}
    | {"kerberos_password", "kerberos_keytab"}
)


class Credential(ShoalModel):
    KIND: ClassVar[str] = ""
    LABEL: ClassVar[str] = ""

    def __repr_args__(self) -> Any:
        # repr() and print() of a credential (or of a datastore holding one) never show a secret.
        for key, value in super().__repr_args__():
            yield key, ("***" if key in SECRET_FIELDS and value else value)

    def printable(self) -> dict[str, Any]:
        data = super().printable()
        return {k: ("***" if k in SECRET_FIELDS and v else v) for k, v in data.items()}


class AccountKeyConfiguration(Credential):
    KIND: ClassVar[str] = "account_key"
    LABEL: ClassVar[str] = "account key (account_key)"
    account_key: str


class SasTokenConfiguration(Credential):
    KIND: ClassVar[str] = "sas"
    LABEL: ClassVar[str] = "SAS token (sas_token)"
    sas_token: str


class ConnectionStringConfiguration(Credential):
    """Shoal only: an Azure storage connection string (``AccountName=...;AccountKey=...;
    BlobEndpoint=...``), the form the Azurite emulator and the portal hand out."""

    KIND: ClassVar[str] = "connection_string"
    LABEL: ClassVar[str] = "connection string (connection_string)"
    connection_string: str


class ServicePrincipalConfiguration(Credential):
    KIND: ClassVar[str] = "service_principal"
    LABEL: ClassVar[str] = "service principal (tenant_id, client_id, client_secret)"
    tenant_id: str
    client_id: str
    client_secret: str | None = None  # secret
    authority_url: str | None = None
    resource_url: str | None = None


class CertificateConfiguration(Credential):
    KIND: ClassVar[str] = "certificate"
    LABEL: ClassVar[str] = "certificate (tenant_id, client_id, thumbprint, certificate)"
    tenant_id: str
    client_id: str
    thumbprint: str
    certificate: str | None = None  # secret
    authority_url: str | None = None
    resource_url: str | None = None


class S3KeyConfiguration(Credential):
    KIND: ClassVar[str] = "s3_keys"
    LABEL: ClassVar[str] = "S3 keys (access_key_id, secret_access_key)"
    access_key_id: str
    secret_access_key: str | None = None  # secret


class KerberosPasswordConfiguration(Credential):
    KIND: ClassVar[str] = "kerberos_password"
    LABEL: ClassVar[str] = "kerberos password"
    kerberos_realm: str
    kerberos_kdc_address: str
    kerberos_principal: str
    kerberos_password: str | None = None  # secret


class KerberosKeytabConfiguration(Credential):
    KIND: ClassVar[str] = "kerberos_keytab"
    LABEL: ClassVar[str] = "kerberos keytab"
    kerberos_realm: str
    kerberos_kdc_address: str
    kerberos_principal: str
    kerberos_keytab: str | None = None  # secret


class NoneCredentialConfiguration(Credential):
    """Identity-based access: no stored secret (``credentials: {}``)."""

    KIND: ClassVar[str] = "none"
    LABEL: ClassVar[str] = "none (identity-based)"


CREDENTIAL_TYPES: tuple[type[Credential], ...] = (
    AccountKeyConfiguration,
    SasTokenConfiguration,
    ConnectionStringConfiguration,
    ServicePrincipalConfiguration,
    CertificateConfiguration,
    S3KeyConfiguration,
    KerberosPasswordConfiguration,
    KerberosKeytabConfiguration,
    NoneCredentialConfiguration,
)

# Checked in order: the first key present decides the credential kind.
_KEY_TO_KIND = (
    ("account_key", "account_key"),
    ("sas_token", "sas"),
    ("connection_string", "connection_string"),
    ("thumbprint", "certificate"),
    ("certificate", "certificate"),
    ("client_secret", "service_principal"),
    ("tenant_id", "service_principal"),
    ("client_id", "service_principal"),
    ("access_key_id", "s3_keys"),
    ("secret_access_key", "s3_keys"),
    ("kerberos_keytab", "kerberos_keytab"),
    ("kerberos_password", "kerberos_password"),
    ("kerberos_principal", "kerberos_password"),
)


def credential_kind(value: Any) -> str | None:
    """The credential kind of a dict or credential object; None when it cannot be told."""
    if isinstance(value, Credential):
        return value.KIND
    if not isinstance(value, Mapping):
        return None
    if not value:
        return "none"
    for key, kind in _KEY_TO_KIND:
        if key in value:
            return kind
    return None


CredentialUnion = Annotated[
    Annotated[AccountKeyConfiguration, Tag("account_key")]
    | Annotated[SasTokenConfiguration, Tag("sas")]
    | Annotated[ConnectionStringConfiguration, Tag("connection_string")]
    | Annotated[ServicePrincipalConfiguration, Tag("service_principal")]
    | Annotated[CertificateConfiguration, Tag("certificate")]
    | Annotated[S3KeyConfiguration, Tag("s3_keys")]
    | Annotated[KerberosPasswordConfiguration, Tag("kerberos_password")]
    | Annotated[KerberosKeytabConfiguration, Tag("kerberos_keytab")]
    | Annotated[NoneCredentialConfiguration, Tag("none")],
    Discriminator(
        credential_kind,
        custom_error_type="credentials",
        custom_error_message=(
            "cannot tell the kind of credentials: give account_key, sas_token, connection_string, "
            "tenant_id/client_id/client_secret, tenant_id/client_id/thumbprint, "
            "access_key_id/secret_access_key, or an empty mapping for identity-based access"
        ),
    ),
]
