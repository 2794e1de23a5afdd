"""A parallel step as the command step that runs it: Azure's ParallelRunStep contract
(``init()`` once, ``run(mini_batch)`` per mini batch of the ``input_data`` input's files, or of
an MLTable's rows as DataFrames), run by ``runtime/batch_driver.py`` in one process of the step's
job. ``instance_count`` and ``max_concurrency_per_instance`` are accepted and not spread over
processes: the mini batches run one after another (the results are the same; only the wall
time differs). ``retry_settings.timeout`` (per mini batch) is not enforced; the job's
``limits.timeout`` is."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

DRIVER_INPUT = "shoal_parallel_driver"
# The driver's path until submission, which puts the driver's datastore URI in its place.
DRIVER_PLACEHOLDER = "azureml://datastores/workspaceblobstore/paths/shoal-parallel-driver/batch_driver.py"
APPEND_ROW_FILE = "parallel_run_step.txt"  # Azure's default append_row file name
_PORT = re.compile(r"^\$\{\{\s*(inputs|outputs)\.([A-Za-z_][\w]*)\s*\}\}$")


def _port(text: Any, kind: str) -> str | None:
    match = _PORT.match(str(text or "").strip())
    return match.group(2) if match and match.group(1) == kind else None


def input_name(component: Mapping[str, Any]) -> str | None:
    """The input ``input_data`` names (``${{inputs.<name>}}``)."""
    return _port(component.get("input_data"), "inputs")


def as_command(component: Mapping[str, Any], error: Callable[[str, str], None], where: str) -> dict[str, Any] | None:
    """The command component that runs ``component`` (a parallel one); None after reporting why not."""
    task = dict(component.get("task") or {})
    at = f"{where}.task" if where else "task"
    if (task.get("type") or "run_function") != "run_function":
        error(f"{at}.type", f"a parallel task of type {task.get('type')!r} is not supported (run_function is)")
        return None
    entry = task.get("entry_script")
    if not entry:
        error(f"{at}.entry_script", "a parallel task needs an entry_script (with init() and run(mini_batch))")
        return None
    inputs = dict(component.get("inputs") or {})
    outputs = dict(component.get("outputs") or {})
    data = input_name(component)
    if data is None or data not in inputs:
        error(f"{where}.input_data", "input_data must be ${{inputs.<name>}} of a declared input")
        return None
    append = task.get("append_row_to")
    append_to = _port(append, "outputs") if append else None
    if append and append_to not in outputs:
        error(f"{at}.append_row_to", "append_row_to must be ${{outputs.<name>}} of a declared output")
        return None
    retry = component.get("retry_settings") or {}
    args = [
        "python", f"${{{{inputs.{DRIVER_INPUT}}}}}",
        "--script", str(entry),
        "--input", f"${{{{inputs.{data}}}}}",
        "--output", f"${{{{outputs.{append_to}}}}}" if append_to else "logs/parallel_run",
        "--output-action", "append_row" if append_to else "summary_only",
        "--output-file-name", APPEND_ROW_FILE,
        "--error-threshold", str(component.get("error_threshold", -1)),
        "--mini-batch-error-threshold", str(component.get("mini_batch_error_threshold", -1)),
        "--max-retries", str(retry.get("max_retries", 3)),
        "--logging-level", str(component.get("logging_level") or "INFO").lower(),
    ]  # fmt: skip
    if component.get("mini_batch_size") is not None:
        args += ["--mini-batch-size", str(component["mini_batch_size"])]
    command = " ".join(a if a.startswith("${{") else shlex.quote(a) for a in args)
    if task.get("program_arguments"):
        command += " -- " + str(task["program_arguments"]).strip()
    out: dict[str, Any] = {
        "type": "command",
        "name": component.get("name"),
        "version": component.get("version"),
        "display_name": component.get("display_name"),
        "is_deterministic": component.get("is_deterministic", True),
        "command": command,
        "code": task.get("code"),
        "environment": task.get("environment"),
        "environment_variables": task.get("environment_variables"),
        "resources": component.get("resources"),
        "inputs": {**inputs, DRIVER_INPUT: {"type": "uri_file"}},
        "outputs": outputs,
    }
    return {k: v for k, v in out.items() if v is not None}
