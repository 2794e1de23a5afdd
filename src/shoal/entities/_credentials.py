"""``azure.ai.ml.entities._credentials`` under Shoal's name: some azure-ai-ml notebooks import the
credential configurations from there (``from azure.ai.ml.entities._credentials import …``), so the
same line with ``azure.ai.ml`` replaced by ``shoal`` works. The classes live in
:mod:`shoal.entities.credentials`, :mod:`~shoal.entities.connection` and
:mod:`~shoal.entities.job_parts`."""

from shoal.entities.connection import (
    AccessKeyConfiguration,
    ApiKeyConfiguration,
    PatTokenConfiguration,
    UsernamePasswordConfiguration,
)
from shoal.entities.credentials import (
    AccountKeyConfiguration,
    CertificateConfiguration,
    NoneCredentialConfiguration,
    SasTokenConfiguration,
    ServicePrincipalConfiguration,
)
from shoal.entities.job_parts import AmlTokenConfiguration, ManagedIdentityConfiguration, UserIdentityConfiguration

__all__ = [
    "AccessKeyConfiguration",
    "AccountKeyConfiguration",
    "AmlTokenConfiguration",
    "ApiKeyConfiguration",
    "CertificateConfiguration",
    "ManagedIdentityConfiguration",
    "NoneCredentialConfiguration",
    "PatTokenConfiguration",
    "SasTokenConfiguration",
    "ServicePrincipalConfiguration",
    "UserIdentityConfiguration",
    "UsernamePasswordConfiguration",
]
