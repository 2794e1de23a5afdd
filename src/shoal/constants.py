"""Constants shared by the SDK, CLI and server, named like their azure-ai-ml counterparts."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

# Where MLflow's proxied artifacts live: a logged model's artifact_location starts with this, and
# what follows is its path in the workspace's artifact store.
MLFLOW_ARTIFACTS_URI_PREFIX = "mlflow-artifacts:/"


class AssetTypes:
    """Data and model asset types (``azure.ai.ml.constants.AssetTypes``)."""

    URI_FILE = "uri_file"
    URI_FOLDER = "uri_folder"
    MLTABLE = "mltable"
    MLFLOW_MODEL = "mlflow_model"
    CUSTOM_MODEL = "custom_model"
    TRITON_MODEL = "triton_model"


class InputTypes:
    """Primitive (parameter) input types."""

    INTEGER = "integer"
    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"


class InputOutputModes:
    """How a data input or output reaches the job process."""

    MOUNT = "mount"
    DOWNLOAD = "download"
    UPLOAD = "upload"
    RO_MOUNT = "ro_mount"
    RW_MOUNT = "rw_mount"
    EVAL_MOUNT = "eval_mount"
    EVAL_DOWNLOAD = "eval_download"
    DIRECT = "direct"


class ListViewType(StrEnum):
    """Which assets ``list`` returns with respect to archiving."""

    ACTIVE_ONLY = "ActiveOnly"
    ARCHIVED_ONLY = "ArchivedOnly"
    ALL = "All"


class WorkspaceKind:
    DEFAULT = "default"
    HUB = "hub"
    PROJECT = "project"
    FEATURE_STORE = "featurestore"


class ComputeType:
    AMLCOMPUTE = "amlcompute"
    COMPUTEINSTANCE = "computeinstance"
    KUBERNETES = "kubernetes"
    VIRTUALMACHINE = "virtualmachine"
    SYNAPSESPARK = "synapsespark"
    LOCAL = "local"


class DatastoreType:
    AZURE_BLOB = "azure_blob"
    AZURE_FILE = "azure_file"
    AZURE_DATA_LAKE_GEN1 = "azure_data_lake_gen1"
    AZURE_DATA_LAKE_GEN2 = "azure_data_lake_gen2"
    HDFS = "hdfs"
    ONE_LAKE = "one_lake"
    LOCAL = "local"
    S3 = "s3"


AZUREML_PREFIX = "azureml:"
DEFAULT_DATASTORE = "workspaceblobstore"
DEFAULT_ARTIFACT_OUTPUT = "artifacts"
LATEST_LABEL = "latest"
DEFAULT_LABEL = "default"

# Shoal has no Azure subscription; ARM-style ids use these fixed parts so that tools that
# parse `/subscriptions/<s>/resourceGroups/<rg>/...` ids keep working.
SHOAL_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
SHOAL_RESOURCE_GROUP = "shoal"

# Job properties that say where the code came from (set by the client as azure-ai-ml sets them,
# ``shoal.client.git_info``): the MLflow run shows them as tags too, and a pipeline's steps
# inherit them from the pipeline job.
PROVENANCE_PROPERTY_PREFIXES = ("mlflow.source.", "azureml.git.")


def _time_zone_member(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def __getattr__(name: str) -> Any:
    # ``TimeZone`` (azure.ai.ml.constants.TimeZone: "Pacific Standard Time"…) is built on first use
    # from tzlocal's copy of the CLDR Windows-zone table: importing tzlocal costs every CLI start
    # some 20 ms, and only schedules need it.
    if name == "TimeZone":
        from tzlocal.windows_tz import win_tz

        zones = StrEnum("TimeZone", {_time_zone_member(z): z for z in sorted(win_tz)})  # type: ignore[misc]
        zones.__doc__ = "Azure ML's time zone names (Windows names), as ``azure.ai.ml.constants.TimeZone``."
        globals()["TimeZone"] = zones
        return zones
    raise AttributeError(f"module 'shoal.constants' has no attribute {name!r}")
