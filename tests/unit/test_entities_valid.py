"""Every valid YAML under tests/data/yaml/<kind>/ loads, round-trips and has the right fields."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from shoal.entities import (
    KINDS,
    AccountKeyConfiguration,
    AmlCompute,
    AzureBlobDatastore,
    AzureDataLakeGen1Datastore,
    AzureDataLakeGen2Datastore,
    AzureFileDatastore,
    CertificateConfiguration,
    CommandComponent,
    ComputeInstance,
    DataInput,
    Environment,
    KubernetesCompute,
    LocalCompute,
    LocalDatastore,
    OutputPort,
    ParallelComponent,
    ParameterInput,
    PipelineComponent,
    S3Datastore,
    S3KeyConfiguration,
    SasTokenConfiguration,
    ServicePrincipalConfiguration,
    SparkComponent,
    SynapseSparkCompute,
    VirtualMachineCompute,
    load_code,
    load_component,
    load_compute,
    load_data,
    load_datastore,
    load_entity,
    load_environment,
    load_model,
    load_workspace,
    parse_entity,
)
from shoal.errors import SpecError

from .conftest import YAML_DIR

VALID = sorted(p for p in YAML_DIR.glob("*/*.y*ml") if p.parent.name in KINDS)


def _abs(rel: str) -> str:
    return Path(os.path.abspath(YAML_DIR / rel)).as_posix()


def test_there_is_data_for_every_kind() -> None:
    assert {p.parent.name for p in VALID} == set(KINDS)


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_yaml_loads_and_round_trips(path: Path) -> None:
    kind = path.parent.name
    entity = load_entity(kind, path)
    assert isinstance(entity, KINDS[kind].entity_types)
    body = entity.to_dict()
    json.dumps(body)  # JSON-able
    assert parse_entity(kind, body) == entity
    assert parse_entity(kind, json.loads(json.dumps(body))) == entity
    assert KINDS[kind].adapter.validate_python(body) == entity


@pytest.mark.parametrize("path", [p for p in VALID if "$schema" in p.read_text()], ids=lambda p: p.name)
def test_kind_is_detected_from_schema(path: Path) -> None:
    assert load_entity(None, path) == load_entity(path.parent.name, path)


# --- compute ---------------------------------------------------------------------------------


def test_cluster_low_priority() -> None:
    c = load_compute(YAML_DIR / "compute/cluster-low-priority.yml")
    assert isinstance(c, AmlCompute)
    assert (c.name, c.size, c.tier) == ("lowpri-cluster", "STANDARD_DS3_v2", "low_priority")
    assert (c.min_instances, c.max_instances, c.idle_time_before_scale_down) == (0, 2, 120)
    assert c.tags == {"team": "vision", "cost-center": "4711"}
    assert c.schema_.endswith("amlCompute.schema.json")


def test_cluster_defaults() -> None:
    c = load_compute(YAML_DIR / "compute/cluster-minimal.yml")
    assert (c.size, c.tier, c.min_instances, c.max_instances) == ("Standard_DS3_v2", "dedicated", 0, 4)
    assert c.idle_time_before_scale_down == 120
    assert c.enable_node_public_ip is True
    assert c.identity is None and c.ssh_settings is None


def test_cluster_identity_and_ssh() -> None:
    c = load_compute(YAML_DIR / "compute/cluster-user-identity.yml")
    assert c.identity.type == "user_assigned"
    assert c.identity.user_assigned_identities[0].resource_id.endswith("/userAssignedIdentities/trainer")
    s = load_compute(YAML_DIR / "compute/cluster-ssh.yml")
    assert s.ssh_settings.admin_password == "not-a-real-password"
    assert s.network_settings.subnet == "training"
    assert s.ssh_public_access_enabled is True


def test_compute_instance_schedules() -> None:
    ci = load_compute(YAML_DIR / "compute/instance-schedule.yml")
    assert isinstance(ci, ComputeInstance)
    start, stop = ci.schedules.compute_start_stop
    assert (start.action, start.trigger["type"], start.trigger["expression"]) == (
        "start",
        "cron",
        "0 8 * * 1-5",
    )
    assert start.trigger["start_time"] == "2024-01-08T08:00:00"
    assert stop.trigger["schedule"] == {"hours": [19], "minutes": [0]}
    assert ci.idle_time_before_shutdown_minutes == 30
    assert (ci.enable_sso, ci.enable_root_access, ci.release_quota_on_stop) == (True, True, False)
    assert ci.setup_scripts["startup_script"]["timeout_minutes"] == 10
    assert "state" in ci.READ_ONLY_FIELDS


def test_other_compute_types() -> None:
    k = load_compute(YAML_DIR / "compute/kubernetes.yml")
    assert isinstance(k, KubernetesCompute) and k.namespace == "ml"
    assert KubernetesCompute(name="k8s").namespace == "default"
    vm = load_compute(YAML_DIR / "compute/vm-attach.yml")
    assert isinstance(vm, VirtualMachineCompute)
    assert vm.ssh_settings.ssh_port == 22
    syn = load_compute(YAML_DIR / "compute/synapse-spark.yml")
    assert isinstance(syn, SynapseSparkCompute) and syn.identity.type == "system_assigned"
    assert isinstance(load_compute(YAML_DIR / "compute/local.yml"), LocalCompute)


# --- datastores ------------------------------------------------------------------------------


def test_blob_datastores() -> None:
    key = load_datastore(YAML_DIR / "datastore/blob-account-key.yml")
    assert isinstance(key, AzureBlobDatastore)
    assert isinstance(key.credentials, AccountKeyConfiguration)
    assert (key.endpoint, key.protocol, key.is_default) == ("core.windows.net", "https", False)
    sas = load_datastore(YAML_DIR / "datastore/blob-sas.yml")
    assert isinstance(sas.credentials, SasTokenConfiguration)
    assert sas.credentials.sas_token.startswith("?sv=")
    assert sas.protocol == "wasbs"
    assert load_datastore(YAML_DIR / "datastore/blob-credless.yml").credentials is None


def test_file_and_lake_datastores() -> None:
    share = load_datastore(YAML_DIR / "datastore/file-share.yml")
    assert isinstance(share, AzureFileDatastore)
    assert (share.file_share_name, share.endpoint) == ("team-share", "core.chinacloudapi.cn")
    gen2 = load_datastore(YAML_DIR / "datastore/adls-gen2-sp.yml")
    assert isinstance(gen2, AzureDataLakeGen2Datastore)
    assert isinstance(gen2.credentials, ServicePrincipalConfiguration)
    assert gen2.credentials.client_secret == "sp-secret-value"
    cert = load_datastore(YAML_DIR / "datastore/adls-gen2-certificate.yml")
    assert isinstance(cert.credentials, CertificateConfiguration)
    gen1 = load_datastore(YAML_DIR / "datastore/adls-gen1-sp.yml")
    assert isinstance(gen1, AzureDataLakeGen1Datastore)
    assert gen1.store_name == "contosogen1"
    assert gen1.credentials.authority_url == "https://login.microsoftonline.com"
    assert load_datastore(YAML_DIR / "datastore/adls-gen1-credless.yml").credentials is None


def test_shoal_datastores() -> None:
    local = load_datastore(YAML_DIR / "datastore/local.yml")
    assert isinstance(local, LocalDatastore)
    assert local.path == _abs("datastore/scratch-space")
    s3 = load_datastore(YAML_DIR / "datastore/s3.yml")
    assert isinstance(s3, S3Datastore)
    assert (s3.bucket, s3.prefix, s3.endpoint_url, s3.region) == (
        "raw-data",
        "team-a/",
        "http://minio.internal:9000",
        "us-east-1",
    )
    assert isinstance(s3.credentials, S3KeyConfiguration)


# --- workspace -------------------------------------------------------------------------------


def test_workspaces() -> None:
    basic = load_workspace(YAML_DIR / "workspace/basic.yml")
    assert (basic.name, basic.location, basic.kind, basic.hbi_workspace) == (
        "team-ws",
        "local",
        "default",
        False,
    )
    cmk = load_workspace(YAML_DIR / "workspace/cmk.yml")
    assert cmk.customer_managed_key.key_uri.startswith("https://kv.vault.azure.net/keys/")
    assert cmk.public_network_access == "Disabled"
    assert cmk.identity.type == "system_assigned"
    net = load_workspace(YAML_DIR / "workspace/managed-network.yml")
    assert net.managed_network.isolation_mode == "allow_only_approved_outbound"
    rules = net.managed_network.outbound_rules
    assert [r["type"] for r in rules] == ["fqdn", "private_endpoint", "service_tag"]
    assert rules[0]["destination"] == "pypi.org"
    hub = load_workspace(YAML_DIR / "workspace/hub.yml")
    assert hub.kind == "hub" and hub.serverless_compute.no_public_ip is True
    assert "mlflow_tracking_uri" in hub.READ_ONLY_FIELDS


# --- assets ----------------------------------------------------------------------------------


def test_models() -> None:
    m = load_model(YAML_DIR / "model/local-file.yml")
    assert (m.name, m.version, m.type) == ("churn-model", "1", "custom_model")
    assert m.path == _abs("model/artifacts/model.pkl")
    ml = load_model(YAML_DIR / "model/mlflow-folder.yml")
    assert ml.type == "mlflow_model" and ml.stage == "Production"
    assert ml.path == _abs("model/mlflow-model") + "/"  # file: stripped, trailing slash kept
    assert ml.properties == {"auc": "0.91"}
    job = load_model(YAML_DIR / "model/job-output.yml")
    assert job.path == "azureml://jobs/blue_cat_x1y2z3/outputs/artifacts/paths/model/"
    assert load_model(YAML_DIR / "model/runs.yml").path == "runs:/blue_cat_x1y2z3/model"
    triton = load_model(YAML_DIR / "model/triton.yml")
    assert (triton.type, triton.version) == ("triton_model", "1.5")


def test_data() -> None:
    f = load_data(YAML_DIR / "data/uri-file.yml")
    assert (f.type, f.version, f.path) == ("uri_file", "1", _abs("data/sample-data/titanic.csv"))
    folder = load_data(YAML_DIR / "data/uri-folder.yml")
    assert folder.type == "uri_folder"
    assert folder.path == _abs("data/sample-data") + "/"
    table = load_data(YAML_DIR / "data/mltable.yml")
    assert table.type == "mltable" and table.path == _abs("data/tables/titanic")
    assert load_data(YAML_DIR / "data/https.yml").path.startswith("https://example.blob")
    assert load_data(YAML_DIR / "data/wasbs.yml").path.startswith("wasbs://datasets@")
    ds = load_data(YAML_DIR / "data/datastore-uri.yml")
    assert ds.path == "azureml://datastores/workspaceblobstore/paths/example-data/iris.csv"


def test_data_imports_keep_source() -> None:
    db = load_data(YAML_DIR / "data/import-database.yml")
    assert db.source.type == "database"
    assert db.source.connection == "azureml:orders_sql"
    assert db.path.endswith("/imports/${{name}}")
    fs = load_data(YAML_DIR / "data/import-s3.yml")
    assert (fs.source.type, fs.source.path, fs.path) == ("file_system", "landing/2024/", None)
    assert parse_entity("data", fs.to_dict()).source == fs.source


def test_environments() -> None:
    img = load_environment(YAML_DIR / "environment/docker-image.yml")
    assert (img.image, img.os_type, img.build, img.conda_file) == (
        "pytorch/pytorch:latest",
        "linux",
        None,
        None,
    )
    conda = load_environment(YAML_DIR / "environment/image-plus-conda.yml")
    expected = yaml.safe_load((YAML_DIR / "environment/conda/sklearn.yml").read_text())
    assert conda.conda_file == expected  # inlined
    assert conda.version == "4"
    inline = load_environment(YAML_DIR / "environment/inline-conda.yml")
    assert inline.conda_file["channels"] == ["conda-forge"]
    build = load_environment(YAML_DIR / "environment/docker-build.yml")
    assert build.build.path == _abs("environment/context")
    assert build.build.dockerfile_path == "docker/Dockerfile.gpu"
    byoc = load_environment(YAML_DIR / "environment/byoc-inference.yml")
    assert byoc.inference_config.liveness_route.port == 8000
    assert byoc.inference_config.scoring_route.path == "/"


def test_command_component() -> None:
    c = load_component(YAML_DIR / "component/train.yml")
    assert isinstance(c, CommandComponent)
    assert (c.name, c.version, c.type, c.is_deterministic) == ("train_model", "1", "command", True)
    assert "$[[--max_epochs ${{inputs.max_epochs}}]]" in c.command
    assert isinstance(c.inputs["training_data"], DataInput)
    assert c.inputs["training_data"].type == "uri_folder"
    epochs = c.inputs["max_epochs"]
    assert isinstance(epochs, ParameterInput)
    assert (epochs.type, epochs.optional, epochs.min, epochs.max) == ("integer", True, 1, 1000)
    assert c.inputs["learning_rate"].default == 0.01
    assert c.inputs["schedule"].enum == ["time-based", "step-based", "exponential"]
    assert c.inputs["early_stop"].default is False
    assert c.outputs["model_output"].type == "mlflow_model"
    assert c.outputs["metrics"].mode == "upload"
    assert c.code == _abs("component/train_src")
    assert c.additional_includes == [
        _abs("common_src"),
        "azureml://datastores/workspaceblobstore/paths/shared/utils.zip",
    ]
    assert c.environment == "azureml:sklearn-env:4"
    assert c.resources == {"instance_count": 1}


def test_numeric_defaults_yaml_reads_as_strings() -> None:
    # `default: 1e-3` has no dot, so YAML 1.1 reads a string; Azure ML takes it as the number
    # (azureml-examples' pipeline_with_hyperparameter_sweep/train.yml).
    tol = ParameterInput.model_validate({"type": "number", "default": "1e-3"})
    assert tol.default == 0.001
    assert ParameterInput.model_validate({"type": "integer", "default": "-1"}).default == -1
    with pytest.raises(ValueError, match="'ten' is not a valid integer"):
        ParameterInput.model_validate({"type": "integer", "default": "ten"})


def test_component_type_defaults_to_command() -> None:
    c = load_component(YAML_DIR / "component/no-type.yml")
    assert isinstance(c, CommandComponent)
    assert c.outputs == {"out_dir": OutputPort(type="uri_folder")}


def test_component_inline_environment() -> None:
    c = load_component(YAML_DIR / "component/inline-env.yml")
    assert isinstance(c.environment, Environment)
    assert c.environment.conda_file == yaml.safe_load((YAML_DIR / "environment/conda/sklearn.yml").read_text())
    assert c.code == _abs("component/scoring")
    assert c.inputs["model"].mode == "download"
    assert c.distribution == {"type": "pytorch", "process_count_per_instance": 2}


def test_pipeline_component_keeps_jobs() -> None:
    p = load_component(YAML_DIR / "component/pipeline.yml")
    assert isinstance(p, PipelineComponent)
    assert set(p.jobs) == {"prep", "train"}
    assert p.jobs["prep"]["code"] == _abs("component/prep_src")
    assert p.jobs["prep"]["outputs"] == {"clean": None}
    assert p.jobs["train"]["component"] == _abs("component/train.yml")
    assert p.jobs["train"]["inputs"]["training_data"] == "${{parent.jobs.prep.outputs.clean}}"
    assert p.inputs["epochs"].default == 10


def test_parallel_and_spark_components() -> None:
    par = load_component(YAML_DIR / "component/parallel.yml")
    assert isinstance(par, ParallelComponent)
    assert par.task["code"] == _abs("component/score_src")
    assert (par.mini_batch_size, par.logging_level, par.error_threshold) == ("10kb", "DEBUG", -1)
    assert par.inputs["job_data_path"].mode == "eval_mount"
    spark = load_component(YAML_DIR / "component/spark.yml")
    assert isinstance(spark, SparkComponent)
    assert spark.entry == {"file": "wrangle.py"}
    assert spark.code == _abs("component/spark_src")
    assert spark.py_files == ["utils.zip"]  # relative to code, left alone
    assert spark.conf["spark.driver.memory"] == "2g"


def test_code_asset() -> None:
    code = load_code(YAML_DIR / "code/code.yml")
    assert code.path == _abs("component/train_src")


def test_compute_instance_idle_time_before_shutdown() -> None:
    # Azure's ISO 8601 duration, or minutes; the SDK's _minutes spelling too.
    assert ComputeInstance(name="ci-a", idle_time_before_shutdown="PT30M").idle_seconds() == 1800
    assert ComputeInstance(name="ci-a", idle_time_before_shutdown="P1DT1H30S").idle_seconds() == 90030
    assert ComputeInstance(name="ci-a", idle_time_before_shutdown=20).idle_seconds() == 1200
    assert ComputeInstance(name="ci-a", idle_time_before_shutdown_minutes=15).idle_seconds() == 900
    assert ComputeInstance(name="ci-a").idle_seconds() is None
    for bad in ("PT", "P", "30 minutes", "PT-5M", "PT5MT"):
        with pytest.raises(SpecError, match="idle_time_before_shutdown"):
            ComputeInstance(name="ci-a", idle_time_before_shutdown=bad)
