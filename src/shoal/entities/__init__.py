"""Shoal's entity model: the Azure ML v2 resources and assets, their YAML loading and refs.

Names load on first use: the runner imports one small module of this package per job, and
should not pay for every pydantic model."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Asset": "shoal.entities.base",
    "Entity": "shoal.entities.base",
    "ShoalModel": "shoal.entities.base",
    "Code": "shoal.entities.code",
    "IdentityConfiguration": "shoal.entities.common",
    "UserAssignedIdentity": "shoal.entities.common",
    "CommandComponent": "shoal.entities.component",
    "Component": "shoal.entities.component",
    "ParallelComponent": "shoal.entities.component",
    "PipelineComponent": "shoal.entities.component",
    "SparkComponent": "shoal.entities.component",
    "AmlCompute": "shoal.entities.compute",
    "Compute": "shoal.entities.compute",
    "ComputeInstance": "shoal.entities.compute",
    "ComputeSchedules": "shoal.entities.compute",
    "ComputeStartStopSchedule": "shoal.entities.compute",
    "KubernetesCompute": "shoal.entities.compute",
    "LocalCompute": "shoal.entities.compute",
    "NetworkSettings": "shoal.entities.compute",
    "SshSettings": "shoal.entities.compute",
    "SynapseSparkCompute": "shoal.entities.compute",
    "VirtualMachineCompute": "shoal.entities.compute",
    "AccountKeyConfiguration": "shoal.entities.credentials",
    "CertificateConfiguration": "shoal.entities.credentials",
    "ConnectionStringConfiguration": "shoal.entities.credentials",
    "Credential": "shoal.entities.credentials",
    "KerberosKeytabConfiguration": "shoal.entities.credentials",
    "KerberosPasswordConfiguration": "shoal.entities.credentials",
    "NoneCredentialConfiguration": "shoal.entities.credentials",
    "S3KeyConfiguration": "shoal.entities.credentials",
    "SasTokenConfiguration": "shoal.entities.credentials",
    "ServicePrincipalConfiguration": "shoal.entities.credentials",
    "Data": "shoal.entities.data",
    "DataImportSource": "shoal.entities.data",
    "AzureBlobDatastore": "shoal.entities.datastore",
    "AzureDataLakeGen1Datastore": "shoal.entities.datastore",
    "AzureDataLakeGen2Datastore": "shoal.entities.datastore",
    "AzureFileDatastore": "shoal.entities.datastore",
    "Datastore": "shoal.entities.datastore",
    "HdfsDatastore": "shoal.entities.datastore",
    "LocalDatastore": "shoal.entities.datastore",
    "OneLakeDatastore": "shoal.entities.datastore",
    "S3Datastore": "shoal.entities.datastore",
    "BuildContext": "shoal.entities.environment",
    "Environment": "shoal.entities.environment",
    "InferenceConfig": "shoal.entities.environment",
    "Route": "shoal.entities.environment",
    "bind_inputs": "shoal.entities.expressions",
    "check_command": "shoal.entities.expressions",
    "find_references": "shoal.entities.expressions",
    "format_literal": "shoal.entities.expressions",
    "resolve_command": "shoal.entities.expressions",
    "resolve_output_path": "shoal.entities.expressions",
    "Input": "shoal.entities.io",
    "Output": "shoal.entities.io",
    "CommandJob": "shoal.entities.job",
    "CommandJobLimits": "shoal.entities.job",
    "Job": "shoal.entities.job",
    "JobIdentity": "shoal.entities.job",
    "JobResources": "shoal.entities.job",
    "MpiDistribution": "shoal.entities.job",
    "PipelineJob": "shoal.entities.job",
    "PyTorchDistribution": "shoal.entities.job",
    "QueueSettings": "shoal.entities.job",
    "RayDistribution": "shoal.entities.job",
    "SweepJob": "shoal.entities.job",
    "TensorFlowDistribution": "shoal.entities.job",
    "LineMap": "shoal.entities.loader",
    "apply_overrides": "shoal.entities.loader",
    "load_code": "shoal.entities.loader",
    "load_component": "shoal.entities.loader",
    "load_compute": "shoal.entities.loader",
    "load_data": "shoal.entities.loader",
    "load_datastore": "shoal.entities.loader",
    "load_entity": "shoal.entities.loader",
    "load_environment": "shoal.entities.loader",
    "load_job": "shoal.entities.loader",
    "load_model": "shoal.entities.loader",
    "load_workspace": "shoal.entities.loader",
    "load_yaml": "shoal.entities.loader",
    "Model": "shoal.entities.model",
    "generate_job_name": "shoal.entities.names",
    "DataInput": "shoal.entities.ports",
    "OutputPort": "shoal.entities.ports",
    "ParameterInput": "shoal.entities.ports",
    "AssetRef": "shoal.entities.refs",
    "PathRef": "shoal.entities.refs",
    "format_asset_id": "shoal.entities.refs",
    "format_datastore_uri": "shoal.entities.refs",
    "format_job_output_uri": "shoal.entities.refs",
    "is_local_path": "shoal.entities.refs",
    "parse_asset_ref": "shoal.entities.refs",
    "parse_path": "shoal.entities.refs",
    "KINDS": "shoal.entities.kinds",
    "KindSpec": "shoal.entities.kinds",
    "kind_of_schema": "shoal.entities.kinds",
    "merge_secrets": "shoal.entities.kinds",
    "parse_entity": "shoal.entities.kinds",
    "redact": "shoal.entities.kinds",
    "split_secrets": "shoal.entities.kinds",
    "CustomerManagedKey": "shoal.entities.workspace",
    "ManagedNetwork": "shoal.entities.workspace",
    "Workspace": "shoal.entities.workspace",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal.entities' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
