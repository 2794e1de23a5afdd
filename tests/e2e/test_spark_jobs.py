"""Spark jobs and Spark pipeline steps run locally (issue #16): ``spark-submit --master local[N]``
from the curated Spark environment's pyspark, on the server's Java, through the runner, logs
and outputs of a command job. Settings that only mean something on a cluster are written into
the job's log. Skipped when Java is missing (failed under CI=true: .ci/run installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.e2e.conftest import SHOAL, Cli, write_job

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

SCRIPT = """\
import argparse

from pyspark.sql import SparkSession

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--out")
args = parser.parse_args()
spark = SparkSession.builder.appName("totals").getOrCreate()
frame = spark.read.csv(args.data, header=True, inferSchema=True)
totals = frame.groupBy("city").sum("amount").withColumnRenamed("sum(amount)", "total").orderBy("city")
totals.coalesce(1).write.csv(args.out, header=True, mode="overwrite")
print("cores", spark.sparkContext.defaultParallelism)
spark.stop()
"""
CSV = "city,amount\nOslo,2\nLima,5\nOslo,3\n"
JVM_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dspark.ui.enabled=false"
SPARK_FIELDS = """
code: ./src
entry:
  file: totals.py
args: --data ${{inputs.data}} --out ${{outputs.totals}}
conf:
  spark.driver.cores: 2
  spark.driver.memory: 1g
  spark.executor.cores: 1
  spark.executor.memory: 1g
  spark.executor.instances: 3
  spark.dynamicAllocation.enabled: true
resources:
  instance_type: standard_e4s_v3
  runtime_version: "3.5"
"""


@pytest.fixture(scope="module")
def spark_cli(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("java") is None and not os.path.exists("/usr/lib/jvm/default-java/bin/java"):
        message = "Spark jobs need Java (Debian: apt-get install default-jre-headless)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("spark-home")
    runner = Cli(home)
    if os.environ.get("SHOAL_ENV_CACHE"):  # the curated Spark environment, built once
        runner.env["SHOAL_ENV_CACHE"] = os.environ["SHOAL_ENV_CACHE"]
    # The jobs' driver JVMs (spark-submit adds SPARK_SUBMIT_OPTS; the runner passes the server's
    # environment on): a job of three rows ends before the C2 compiler and a parallel collector
    # pay for their threads, and nothing here reads the UI. Every job still runs spark-submit.
    runner.env["SPARK_SUBMIT_OPTS"] = JVM_OPTS
    runner("server", "start", "--detach")
    try:
        yield runner
    finally:
        runner("server", "stop", check=False)


def _wait(cli: Cli, name: str) -> dict:
    done = subprocess.run(
        [*SHOAL, "job", "stream", "-n", name],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    job = json.loads(cli("job", "show", "-n", name).out)
    assert job["status"] == "Completed", done.stdout[-4000:] + done.stderr[-2000:]
    return job


def _folder(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "totals.py").write_text(SCRIPT)
    (tmp_path / "sales.csv").write_text(CSV)


def _totals(folder) -> list[str]:
    parts = sorted(folder.rglob("part-*.csv"))
    assert parts, f"no part files under {folder}: {sorted(p.name for p in folder.rglob('*'))}"
    return parts[0].read_text().splitlines()


def test_spark_job_runs_locally_and_logs_what_it_cannot_honour(spark_cli, tmp_path):
    _folder(tmp_path)
    path = write_job(
        tmp_path,
        "type: spark\n"
        + SPARK_FIELDS
        + """
inputs:
  data:
    type: uri_file
    path: ./sales.csv
    mode: direct
outputs:
  totals:
    type: uri_folder
    mode: direct
identity:
  type: user_identity
""",
    )
    name = json.loads(spark_cli("job", "create", "-f", str(path), "-o", "json").out)["name"]
    _wait(spark_cli, name)
    out = tmp_path / "dl"
    spark_cli("job", "download", "-n", name, "--all", "--download-path", str(out))
    assert _totals(out / "named-outputs" / "totals") == ["city,total", "Lima,5", "Oslo,5"]
    log = (out / "artifacts" / "user_logs" / "std_log.txt").read_text()
    assert "cores 2" in log  # local[2]: the driver's cores, capped by the machine
    assert "spark.executor.instances=3 is not honoured locally" in log
    assert "spark.dynamicAllocation.enabled=True is not honoured locally" in log


def test_spark_step_feeds_a_command_step(spark_cli, tmp_path):
    _folder(tmp_path)
    write_job(
        tmp_path,
        "name: totals\ntype: spark\nversion: 1\n"
        + SPARK_FIELDS
        + """
inputs:
  data: {type: uri_file, mode: direct}
outputs:
  totals: {type: uri_folder, mode: direct}
""",
        name="spark_component.yml",
    )
    path = write_job(
        tmp_path,
        """
        type: pipeline
        inputs:
          sales: {type: uri_file, path: ./sales.csv}
        jobs:
          totals:
            type: spark
            component: ./spark_component.yml
            inputs: {data: "${{parent.inputs.sales}}"}
          show:
            command: cat ${{inputs.t}}/part-*.csv > ${{outputs.o}}/seen.csv
            environment: azureml:AzureML-minimal@latest
            inputs: {t: "${{parent.jobs.totals.outputs.totals}}"}
            outputs: {o: {type: uri_folder}}
        """,
    )
    name = json.loads(spark_cli("job", "create", "-f", str(path), "-o", "json").out)["name"]
    _wait(spark_cli, name)
    children = json.loads(spark_cli("job", "list", "--parent-job-name", name, "-o", "json").out)
    show = next(c for c in children if c.get("display_name") == "show")
    out = tmp_path / "dl"
    spark_cli("job", "download", "-n", show["name"], "--all", "--download-path", str(out))
    assert (out / "named-outputs" / "o" / "seen.csv").read_text().splitlines() == ["city,total", "Lima,5", "Oslo,5"]


def test_sdk_spark_builder_runs_as_a_job_and_as_a_pipeline_step(spark_cli, tmp_path):
    from shoal import Input, MLClient, Output, dsl, spark
    from shoal.config import ShoalSettings

    _folder(tmp_path)
    settings = {
        "code": str(tmp_path / "src"),
        "entry": {"file": "totals.py"},
        "driver_cores": 1,
        "driver_memory": "1g",
        "executor_instances": 2,
        "args": "--data ${{inputs.data}} --out ${{outputs.totals}}",
    }
    ml = MLClient(settings=ShoalSettings(home=spark_cli.home))
    try:
        job = spark(
            inputs={"data": Input(type="uri_file", path=str(tmp_path / "sales.csv"), mode="direct")},
            outputs={"totals": Output(type="uri_folder", mode="direct")},
            **settings,
        )
        standalone = ml.jobs.create_or_update(job)

        @dsl.pipeline()
        def totals_pipeline(sales):
            spark(inputs={"data": sales}, outputs={"totals": Output(type="uri_folder")}, **settings)

        sales = Input(type="uri_file", path=str(tmp_path / "sales.csv"))
        piped = ml.jobs.create_or_update(totals_pipeline(sales=sales))
        for name in (standalone.name, piped.name):
            _wait(spark_cli, name)
        out = tmp_path / "dl"
        ml.jobs.download(standalone.name, download_path=str(out), output_name="totals")
        assert _totals(out) == ["city,total", "Lima,5", "Oslo,5"]
    finally:
        ml.close()


def test_an_environment_without_pyspark_gets_it_in_the_jobs_layer(spark_cli, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "count.py").write_text(
        "import sys\nfrom pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print('rows', spark.range(int(sys.argv[1])).count())\n"
    )
    path = write_job(
        tmp_path,
        """
        type: spark
        code: ./src
        entry: {file: count.py}
        args: ${{inputs.n}}
        environment: azureml:AzureML-minimal@latest
        inputs: {n: 7}
        """,
    )
    name = json.loads(spark_cli("job", "create", "-f", str(path), "-o", "json").out)["name"]
    _wait(spark_cli, name)
    out = tmp_path / "dl"
    spark_cli("job", "download", "-n", name, "--all", "--download-path", str(out))
    log = (out / "artifacts" / "user_logs" / "std_log.txt").read_text()
    assert "installing pyspark==3.5.* into the job's layer" in log and "rows 7" in log
