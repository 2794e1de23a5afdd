"""A spark job as the command that runs it locally (``shoal.entities.spark``)."""

from __future__ import annotations

import pytest

from shoal.entities import spark
from shoal.entities.kinds import parse_entity
from shoal.errors import SpecError

SPEC = {
    "type": "spark",
    "code": "./src",
    "entry": {"file": "main.py"},
    "py_files": ["utils.zip"],
    "jars": ["a.jar", "b.jar"],
    "args": "--data ${{inputs.data}} --out ${{outputs.out}}",
    "conf": {
        "spark.driver.cores": 2,
        "spark.driver.memory": "2g",
        "spark.executor.cores": 4,
        "spark.executor.instances": 3,
        "spark.dynamicAllocation.enabled": True,
        "spark.sql.shuffle.partitions": 8,
    },
    "inputs": {"data": {"type": "uri_file", "path": "./d.csv", "mode": "direct"}},
    "outputs": {"out": {"type": "uri_folder", "mode": "direct"}},
    "resources": {"instance_type": "standard_e4s_v3", "runtime_version": "3.4.0"},
    "identity": {"type": "user_identity"},
}


def convert(spec, machine=16):
    problems: list[tuple[str, str]] = []
    out = spark.as_command(spec, lambda where, why: problems.append((where, why)), "", machine)
    return out, problems


def test_spark_submit_command_with_files_conf_and_local_cores():
    out, problems = convert(SPEC)
    assert problems == []
    assert out["type"] == "command" and out["code"] == "./src"
    last = out["command"].splitlines()[-1]
    assert last.startswith("spark-submit --master 'local[4]' --name shoal --driver-memory 2g")
    assert "--conf spark.sql.shuffle.partitions=8" in last and "--py-files utils.zip --jars a.jar,b.jar" in last
    assert "spark.executor.instances" not in last and "dynamicAllocation" not in last
    assert last.endswith("main.py --data ${{inputs.data}} --out ${{outputs.out}}")
    # What one local JVM cannot honour is said in the job's log, not dropped.
    assert "spark.executor.instances=3 is not honoured locally" in out["command"]
    assert "instance_type standard_e4s_v3 is not honoured locally" in out["command"]
    assert "AzureML-spark-3.4" in out["environment"]
    assert out["inputs"]["data"]["mode"] == "ro_mount" and out["outputs"]["out"]["mode"] == "rw_mount"
    assert out["resources"] == {"instance_type": "standard_e4s_v3"}
    assert not set(spark.SPARK_ONLY_FIELDS) & set(out) - {"type"}


def test_cores_are_capped_by_the_machine_and_sdk_fields_are_conf():
    out, _ = convert({"entry": {"file": "m.py"}, "driver_cores": 8, "executor_instances": 2}, machine=2)
    assert "'local[2]'" in out["command"] and "spark.executor.instances=2 is not honoured" in out["command"]


def test_missing_java_and_pyspark_fail_the_job_with_what_to_install():
    out, _ = convert({"entry": {"file": "m.py"}})
    assert "apt-get install default-jre-headless" in out["command"]
    assert "add pyspark to its dependencies" in out["command"] and "pip install" in out["command"]


def test_a_spark_job_without_an_entry_is_refused():
    _, problems = convert({"type": "spark", "code": "."})
    assert problems and problems[0][0] == "entry"
    with pytest.raises(SpecError, match="entry"):
        parse_entity("job", {"type": "spark", "entry": {}})


def test_the_runner_finds_java(tmp_path):
    from shoal.compute.local import java_home

    assert java_home({"SHOAL_JAVA_HOME": "/opt/jdk", "PATH": ""}) == "/opt/jdk"  # the server's setting wins
    jdk = tmp_path / "jdk"
    (jdk / "bin").mkdir(parents=True)
    (jdk / "bin" / "java").write_text("#!/bin/sh\n")
    (jdk / "bin" / "java").chmod(0o755)
    assert java_home({"JAVA_HOME": str(jdk), "PATH": ""}) == str(jdk)
    assert java_home({"PATH": str(jdk / "bin")}) in (str(jdk), "/usr/lib/jvm/default-java")


def test_a_job_without_java_fails_naming_what_to_install(tmp_path):
    import subprocess

    out, _ = convert({"entry": {"file": "m.py"}})
    env = {"JAVA_HOME": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", out["command"]], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and "apt-get install default-jre-headless" in done.stderr
