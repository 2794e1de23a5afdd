"""A Spark job, component or pipeline step as the command that runs it here: ``spark-submit
--master local[N]`` from the pyspark of the job's environment, through the same runner, sandbox,
logs and outputs as any command job.

Azure runs Spark on a Synapse pool or serverless Spark; Shoal runs the driver and its executors
in one local JVM. What cannot be honoured that way (executor instances, dynamic allocation, the
instance type) is written into the job's log by the command itself, so nothing is silently
dropped. ``direct`` inputs and outputs are read as mounts: the script gets local paths, which
Spark reads and writes like any Hadoop path. Java is found through ``JAVA_HOME``, which the runner
sets (``shoal.compute.local``); a missing Java fails the job with what to install.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

# Spark's runtime version → the pyspark line installed for it (Java 17 needs Spark 3.3 or later).
DEFAULT_RUNTIME = "3.5"
SUPPORTED_RUNTIMES = ("3.3", "3.4", "3.5")
SPARK_ENVIRONMENT_PREFIX = "AzureML-spark-"
# Conf keys that only matter on a cluster: recorded in the log, not applied.
NOT_HONOURED = ("spark.executor.instances", "spark.dynamicAllocation.")
FILE_LISTS = (("py_files", "--py-files"), ("jars", "--jars"), ("files", "--files"), ("archives", "--archives"))
_MISSING_JAVA = (
    "Shoal: this Spark job needs Java 17 (or 11) and none was found at JAVA_HOME=$JAVA_HOME; install "
    "it on the server (Debian/Ubuntu: apt-get install default-jre-headless) or set SHOAL_JAVA_HOME"
)
_ADDING_PYSPARK = "Shoal: the job's environment has no pyspark; installing pyspark=={line}.* into the job's layer"
_MISSING_PYSPARK = (
    "Shoal: the job's environment has no spark-submit and pyspark could not be installed into it; add "
    "pyspark to its dependencies, or leave the environment out to run on the curated Spark environment"
)
_RUNTIME = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)")


def runtime_line(resources: Any) -> tuple[str, str | None]:
    """The pyspark line (``3.5``) for ``resources.runtime_version`` and a note when it differs."""
    given = str((resources or {}).get("runtime_version") or "") if isinstance(resources, Mapping) else ""
    match = _RUNTIME.match(given)
    if not match:
        return DEFAULT_RUNTIME, None
    line = f"{match['major']}.{match['minor']}"
    if line in SUPPORTED_RUNTIMES:
        return line, None
    return DEFAULT_RUNTIME, f"runtime_version {given} runs on pyspark {DEFAULT_RUNTIME} (Java 17 needs Spark 3.3+)"


def local_cores(conf: Mapping[str, Any], machine: int | None = None) -> int:
    """N of ``local[N]``: the driver's and one executor's cores, capped by the machine's."""
    wanted = 0
    for key in ("spark.driver.cores", "spark.executor.cores"):
        try:
            wanted = max(wanted, int(float(conf.get(key) or 0)))
        except (TypeError, ValueError):
            continue
    cap = machine or os.cpu_count() or 1
    return max(1, min(wanted or cap, cap))


def _files(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, list | tuple) else [value]) if str(v).strip()]


def as_command(
    spec: Mapping[str, Any], error: Callable[[str, str], None], where: str, machine: int | None = None
) -> dict[str, Any] | None:
    """The command spec (a job or component, as ``spec`` is) that runs ``spec`` (a spark one);
    None after reporting through ``error`` why not."""
    at = (lambda key: f"{where}.{key}") if where else (lambda key: key)
    entry = spec.get("entry") if isinstance(spec.get("entry"), Mapping) else {}
    entry_file = entry.get("file")
    class_name = entry.get("class_name")
    if not entry_file and not class_name:
        error(at("entry"), "a spark job needs entry.file (a Python script relative to code) or entry.class_name")
        return None
    if not isinstance(spec.get("conf") or {}, Mapping):
        error(at("conf"), "conf must be a mapping of Spark settings")
        return None
    # azure-ai-ml's spark() fields (driver_cores, ...) are the same settings as conf's keys.
    conf = {CONF_OF_FIELD[k]: v for k, v in spec.items() if k in CONF_OF_FIELD and v is not None}
    conf.update(spec.get("conf") or {})
    cores = local_cores(conf, machine)
    line, runtime_note = runtime_line(spec.get("resources"))
    notes: list[str] = []
    if runtime_note:
        notes.append(runtime_note)
    for key, value in conf.items():
        if str(key).startswith(NOT_HONOURED):
            notes.append(f"{key}={value} is not honoured locally (one local JVM with local[{cores}])")
    resources = spec.get("resources") if isinstance(spec.get("resources"), Mapping) else {}
    if resources.get("instance_type"):
        notes.append(f"resources.instance_type {resources['instance_type']} is not honoured locally")
    if spec.get("compute"):
        notes.append(f"compute {spec['compute']} is recorded; the job runs on this server with local[{cores}]")
    argv = ["spark-submit", "--master", f"local[{cores}]", "--name", str(spec.get("display_name") or "shoal")]
    if conf.get("spark.driver.memory"):
        argv += ["--driver-memory", str(conf["spark.driver.memory"])]
    for key, value in conf.items():
        if not str(key).startswith(NOT_HONOURED) and key not in ("spark.driver.memory", "spark.driver.cores"):
            argv += ["--conf", f"{key}={value}"]
    for field, flag in FILE_LISTS:
        files = _files(spec.get(field))
        if files:
            argv += [flag, ",".join(files)]
    if class_name:
        argv += ["--class", str(class_name)]
    primary = entry_file or next(iter(_files(spec.get("jars"))), None)
    if not primary:
        error(at("jars"), "entry.class_name needs the jar that holds it in jars")
        return None
    argv.append(str(primary))
    submit = " ".join(shlex.quote(a) for a in argv)
    args = str(spec.get("args") or "").strip()
    lines = [f"echo {shlex.quote('Shoal: ' + n)} >&2" for n in notes]
    lines += [
        'export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"',
        f'[ -x "$JAVA_HOME/bin/java" ] || {{ echo "{_MISSING_JAVA}" >&2; exit 1; }}',
        # An environment without pyspark gets it in the job's own layer (pip there installs into it).
        f"command -v spark-submit >/dev/null || {{ echo {shlex.quote(_ADDING_PYSPARK.format(line=line))} >&2; "
        f"pip install --quiet --disable-pip-version-check 'pyspark=={line}.*' >&2; }}",
        f"command -v spark-submit >/dev/null || {{ echo {shlex.quote(_MISSING_PYSPARK)} >&2; exit 1; }}",
        f"{submit} {args}".strip(),
    ]
    out: dict[str, Any] = {k: v for k, v in spec.items() if k not in SPARK_ONLY_FIELDS}
    out["type"] = "command"
    out["command"] = "\n".join(lines)
    out["environment"] = spec.get("environment") or f"azureml:{SPARK_ENVIRONMENT_PREFIX}{line}"
    out["inputs"] = _mounted(spec.get("inputs"), "ro_mount")
    out["outputs"] = _mounted(spec.get("outputs"), "rw_mount")
    if resources:
        out["resources"] = {k: v for k, v in resources.items() if k != "runtime_version"} or None
    tags = dict(spec.get("tags") or {}) if isinstance(spec.get("tags"), Mapping) else {}
    tags.setdefault("shoal.spark", f"local[{cores}]")
    out["tags"] = tags
    return {k: v for k, v in out.items() if v is not None}


CONF_OF_FIELD = {
    "driver_cores": "spark.driver.cores",
    "driver_memory": "spark.driver.memory",
    "executor_cores": "spark.executor.cores",
    "executor_memory": "spark.executor.memory",
    "executor_instances": "spark.executor.instances",
    "dynamic_allocation_enabled": "spark.dynamicAllocation.enabled",
    "dynamic_allocation_min_executors": "spark.dynamicAllocation.minExecutors",
    "dynamic_allocation_max_executors": "spark.dynamicAllocation.maxExecutors",
}
SPARK_ONLY_FIELDS = (
    *CONF_OF_FIELD,
    "entry",
    "py_files",
    "jars",
    "files",
    "archives",
    "conf",
    "args",
    "identity",
    "type",
)


def _mounted(ports: Any, mode: str) -> Any:
    """Ports with ``direct`` read as ``mode``: the local script gets a path, not a URI."""
    if not isinstance(ports, Mapping):
        return ports
    out: dict[str, Any] = {}
    for name, port in ports.items():
        if isinstance(port, Mapping) and port.get("mode") == "direct":
            port = {**port, "mode": mode}
        out[name] = port
    return out
