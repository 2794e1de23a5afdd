"""Shoal: a self-hosted Azure Machine Learning v2 workspace.

The public SDK surface mirrors azure-ai-ml::

    from shoal import MLClient, load_model, Model
    ml_client = MLClient()              # the local server of ~/.shoal, started when needed
    ml_client.models.create_or_update(load_model("model.yml"))

    from shoal import dsl               # pipelines as functions: @dsl.pipeline

Names are imported on first use so that ``import shoal`` (done by the server and the runner too)
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "MLClient": "shoal.client.ml_client",
    **{
        name: "shoal.entities"
        for name in (
            "load_workspace load_compute load_datastore load_model load_data load_environment "
            "load_component load_code load_job "
            "Workspace AmlCompute ComputeInstance KubernetesCompute VirtualMachineCompute "
            "SynapseSparkCompute AzureBlobDatastore AzureFileDatastore AzureDataLakeGen1Datastore "
            "AzureDataLakeGen2Datastore LocalDatastore S3Datastore AccountKeyConfiguration "
            "SasTokenConfiguration ServicePrincipalConfiguration CertificateConfiguration "
            "NoneCredentialConfiguration S3KeyConfiguration ConnectionStringConfiguration IdentityConfiguration "
            "Model Data "
            "Environment BuildContext CommandComponent PipelineComponent ParallelComponent "
            "SparkComponent Code Job CommandJob PipelineJob SweepJob SparkJob Input Output MpiDistribution "
            "PyTorchDistribution TensorFlowDistribution RayDistribution PipelineJobSettings "
            "UserIdentityConfiguration ManagedIdentityConfiguration AmlTokenConfiguration JobResources "
            "CommandJobLimits QueueSettings Component "
            "ManagedOnlineEndpoint ManagedOnlineDeployment CodeConfiguration OnlineRequestSettings ProbeSettings "
            "DefaultScaleSettings TargetUtilizationScaleSettings "
            "BatchEndpoint BatchDeployment ModelBatchDeployment PipelineComponentBatchDeployment BatchRetrySettings"
        ).split()
    },
    **{
        name: "shoal.entities.sweep"  # azure.ai.ml.sweep's classes (the search space, sampling, policies)
        for name in (
            "Choice Randint Uniform LogUniform QUniform QLogUniform Normal LogNormal QNormal QLogNormal "
            "RandomSamplingAlgorithm GridSamplingAlgorithm BayesianSamplingAlgorithm BanditPolicy "
            "MedianStoppingPolicy TruncationSelectionPolicy Objective SweepJobLimits"
        ).split()
    },
    **{
        name: "shoal.entities"  # schedules and connections (azure.ai.ml.entities, constants.TimeZone)
        for name in (
            "JobSchedule CronTrigger RecurrenceTrigger RecurrencePattern TimeZone load_schedule "
            "WorkspaceConnection PatTokenConfiguration UsernamePasswordConfiguration ApiKeyConfiguration "
            "AccessKeyConfiguration load_connection"
        ).split()
    },
    "command": "shoal.sdk_builders",
    "spark": "shoal.sdk_spark",
    "command_component": "shoal.dsl.component_function",  # mldesigner's; also shoal.mldesigner
    "dsl": "shoal.dsl",  # the module: `from shoal import dsl`, then `@dsl.pipeline`
    **{name: "shoal.constants" for name in ("AssetTypes", "InputOutputModes", "ListViewType")},
    **{
        name: "shoal.errors"
        for name in (
            "ShoalError UserError SpecError NotFoundError ConflictError InvalidStateError "
            "UnsupportedError AuthError PermissionDeniedError InfraError StorageFullError ServerUnavailableError "
            "InternalError"
        ).split()
    },
}

__all__ = ["__version__", *sorted(_EXPORTS)]

# The SDK modules that implement the entity layer's hooks (entities import no SDK module).
from shoal.entities import hooks as _hooks  # noqa: E402 - imports nothing but shoal.errors

_hooks.PROVIDERS[_hooks.COMPONENT_CALL] = "shoal.dsl"  # Component.__call__: a pipeline step


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
