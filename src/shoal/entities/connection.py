"""Workspace connections (``_schema/workspace/connections/``): a target outside the workspace and
the credentials to reach it. The secrets are split off by the kind registry
(``kinds.split_secrets``) and encrypted at rest exactly as a datastore's; a stored connection is
shown without them.

Connection YAML names its credential kind with ``credentials.type`` (datastore YAML does not);
the credential classes are the datastores' where azure-ai-ml shares them
(``entities/credentials.py``), plus the connection-only ones below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, SerializeAsAny, field_validator

from shoal.entities.base import Entity
from shoal.entities.credentials import (
    AccountKeyConfiguration,
    Credential,
    NoneCredentialConfiguration,
    SasTokenConfiguration,
    ServicePrincipalConfiguration,
)
from shoal.entities.job_parts import ManagedIdentityConfiguration
from shoal.entities.validation import NameRule

CONNECTION_NAME = NameRule(
    "connection name",
    r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}",
    "it must start with a letter or digit, contain only letters, digits, '_' and '-', "
    "and be at most 255 characters long",
)

# Secret fields are optional so that a stored connection, shown without its secrets, still parses.
CONNECTION_SECRET_FIELDS = ("pat", "password", "key", "secret_access_key", "sas_token", "client_secret", "account_key")


class _ConnectionCredential(Credential):
    def __repr_args__(self) -> Any:
        # repr() and print() of a connection credential never show a secret either.
        for key, value in super().__repr_args__():
            yield key, ("***" if key in CONNECTION_SECRET_FIELDS and value else value)


class PatTokenConfiguration(_ConnectionCredential):
    KIND: ClassVar[str] = "pat"
    LABEL: ClassVar[str] = "personal access token (pat)"
    pat: str | None = None  # secret


class UsernamePasswordConfiguration(_ConnectionCredential):
    KIND: ClassVar[str] = "username_password"
    LABEL: ClassVar[str] = "username and password"
    username: str
    password: str | None = None  # secret


class ApiKeyConfiguration(_ConnectionCredential):
    KIND: ClassVar[str] = "api_key"
    LABEL: ClassVar[str] = "API key (key)"
    key: str | None = None  # secret


class AccessKeyConfiguration(_ConnectionCredential):
    KIND: ClassVar[str] = "access_key"
    LABEL: ClassVar[str] = "access key (access_key_id, secret_access_key)"
    access_key_id: str
    secret_access_key: str | None = None  # secret


class StoredSasTokenConfiguration(SasTokenConfiguration):
    """A SAS credential as a stored connection is shown: its token left out."""

    sas_token: str | None = None  # type: ignore[assignment]


class StoredAccountKeyConfiguration(AccountKeyConfiguration):
    """An account-key credential as a stored connection is shown: its key left out."""

    account_key: str | None = None  # type: ignore[assignment]


# ``credentials.type`` → class. Azure's names; "sas" and "account_key" as in its connection YAML;
# "managed_identity" is job_parts.ManagedIdentityConfiguration (handled apart: not a Credential).
CONNECTION_CREDENTIALS: dict[str, type[Credential]] = {
    "pat": PatTokenConfiguration,
    "username_password": UsernamePasswordConfiguration,
    "api_key": ApiKeyConfiguration,
    "access_key": AccessKeyConfiguration,
    "sas": SasTokenConfiguration,
    "service_principal": ServicePrincipalConfiguration,
    "account_key": AccountKeyConfiguration,
    "none": NoneCredentialConfiguration,
}
# Without their secret (a shown connection), these two parse as their Stored… subclasses.
_REDACTED = {
    "sas": ("sas_token", StoredSasTokenConfiguration),
    "account_key": ("account_key", StoredAccountKeyConfiguration),
}


def credential_type(value: Credential) -> str | None:
    """The ``credentials.type`` of a credential object; None when connections do not take it."""
    return next((name for name, cls in CONNECTION_CREDENTIALS.items() if type(value) is cls), None) or next(
        (name for name, (_, cls) in _REDACTED.items() if type(value) is cls), None
    )


# Azure ML's connection categories (the YAML ``type``), lower snake case as its YAML writes them.
CONNECTION_TYPES = (
    "git",
    "python_feed",
    "container_registry",
    "feature_store",
    "s3",
    "snowflake",
    "azure_sql_db",
    "azure_synapse_analytics",
    "azure_my_sql_db",
    "azure_postgres_db",
    "adls_gen_2",
    "azure_one_lake",
    "azure_blob",
    "azure_open_ai",
    "azure_ai_services",
    "cognitive_search",
    "azure_ai_search",
    "cognitive_service",
    "serverless",
    "api_key",
    "custom",
    "open_ai",
    "serp",
    "pinecone",
)


class WorkspaceConnection(Entity):
    """``WorkspaceConnection(name=…, type="git", target=…, credentials=PatTokenConfiguration(pat=…))``."""

    KIND: ClassVar[str] = "connection"
    PRINT_HIDDEN: ClassVar[tuple[str, ...]] = tuple(f"credentials.{key}" for key in CONNECTION_SECRET_FIELDS)

    name: str  # type: ignore[assignment]
    type: str
    target: str | None = None
    # Dumped as its own class, not the base; a managed identity is the jobs' class (azure-ai-ml has one).
    credentials: SerializeAsAny[Credential] | ManagedIdentityConfiguration | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    is_shared: bool = True

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return CONNECTION_NAME.check(value)

    @field_validator("type", mode="before")
    @classmethod
    def _check_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in CONNECTION_TYPES:
                raise ValueError(f"unknown connection type {value!r}; one of: {', '.join(CONNECTION_TYPES)}")
        return value

    @field_validator("credentials", mode="before")
    @classmethod
    def _credentials(cls, value: Any) -> Any:
        if isinstance(value, ManagedIdentityConfiguration):
            return value
        if value is None or isinstance(value, Credential):
            if value is not None and credential_type(value) is None:
                raise ValueError(f"{value.LABEL} credentials are not valid for a connection")
            return value
        if not isinstance(value, Mapping):
            raise ValueError("credentials must be a mapping with a 'type'")
        fields = dict(value)
        kind = fields.pop("type", None)
        if kind is None:
            kind = "none" if not fields else None
        if str(kind).lower() in ("managed_identity", "managed"):
            return ManagedIdentityConfiguration(**fields)
        credential_class = CONNECTION_CREDENTIALS.get(str(kind).lower()) if kind is not None else None
        if credential_class is None:
            known = ", ".join([*CONNECTION_CREDENTIALS, "managed_identity"])
            raise ValueError(f"credentials.type {kind!r} is not known; one of: {known}")
        secret, redacted = _REDACTED.get(str(kind).lower(), (None, None))
        if redacted is not None and secret not in fields:
            credential_class = redacted
        return credential_class.model_validate(fields)

    def to_dict(self) -> dict[str, Any]:
        """As the YAML writes it: ``credentials.type`` names the credential kind."""
        out = super().to_dict()
        credential = self.credentials
        if isinstance(credential, ManagedIdentityConfiguration):
            fields = {"client_id": credential.client_id, "resource_id": credential.resource_id}
            out["credentials"] = {"type": "managed_identity", **{k: v for k, v in fields.items() if v is not None}}
        elif credential is not None:
            out["credentials"] = {"type": credential_type(credential), **out.get("credentials", {})}
        return out
