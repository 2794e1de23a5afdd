"""The job YAMLs of the public Azure/azureml-examples repository load unchanged through ``load_job``.

Covers every YAML under ``cli/jobs/basics/`` and ``cli/jobs/single-step/**/job*.yml``. Skipped
unless SHOAL_AZUREML_EXAMPLES points at a checkout (or an exported tree) of that repository::

    git -C <bare repo> archive HEAD cli/jobs | tar -x -C /tmp/aml
    SHOAL_AZUREML_EXAMPLES=/tmp/aml pytest tests/unit/test_job_azureml_examples.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.entities import KINDS, CommandJob, PipelineJob, SweepJob, load_job, load_yaml, parse_entity
from shoal.entities.expressions import check_command

ROOT = os.environ.get("SHOAL_AZUREML_EXAMPLES")


def _files() -> list:
    if not ROOT:
        return [pytest.param(None, marks=pytest.mark.skip(reason="SHOAL_AZUREML_EXAMPLES is not set"))]
    jobs = Path(ROOT) / "cli" / "jobs"
    files = sorted(p for p in (jobs / "basics").rglob("*.y*ml") if p.is_file())
    files += sorted(p for p in (jobs / "single-step").rglob("job*.y*ml") if p.is_file())
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no job YAML files under {jobs}"))]
    return [pytest.param(p, id=p.relative_to(jobs).as_posix()) for p in files]


def _unset(inputs: dict) -> list[str]:
    return [name for name, value in inputs.items() if value is None]


@pytest.mark.parametrize("path", _files())
def test_example_job_loads(path: Path) -> None:
    data, _ = load_yaml(path)
    job_type = data.get("type", "command")
    if job_type not in KINDS["job"].types:
        pytest.skip(f"a {job_type} job: not a type shoal.entities loads yet")
    job = load_job(path)
    assert job.type == job_type
    assert parse_entity("job", job.to_dict()) == job
    if isinstance(job, CommandJob):
        check_command(job.command, job.inputs, job.outputs, optional_inputs=_unset(job.inputs))
        for key, value in job.environment_variables.items():
            check_command(value, job.inputs, job.outputs, where=f"environment_variables.{key}")
    elif isinstance(job, SweepJob):
        trial = job.trial["command"]
        check_command(trial, job.inputs, job.outputs, search_space=job.search_space, where="trial.command")
    elif isinstance(job, PipelineJob):
        for name, step in job.jobs.items():
            if isinstance(step, dict) and "command" in step:
                inputs, outputs = step.get("inputs") or {}, step.get("outputs") or {}
                check_command(step["command"], inputs, outputs, where=f"jobs.{name}.command")
