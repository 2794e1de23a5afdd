"""The run spec a backend leaves in a runner's run folder (``RunnerAttempt.run_spec``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shoal.compute.base import RUN_SPEC_FILE, hand_over_run_spec
from shoal.runtime.__main__ import HANDED_SPEC, handed_run_spec


def args(job: str = "j", attempt: int = 2) -> argparse.Namespace:
    return argparse.Namespace(workspace="default", job=job, attempt=attempt)


def test_the_runner_reads_its_attempts_spec_once_and_removes_it(tmp_path: Path) -> None:
    assert HANDED_SPEC == RUN_SPEC_FILE
    spec = {"job": "j", "attempt": 2, "command": "echo hi", "inline": {"inputs": {}}}
    hand_over_run_spec(tmp_path, spec)
    path = tmp_path / RUN_SPEC_FILE
    assert path.stat().st_mode & 0o777 == 0o600  # the server's user only, as the run folder
    assert not list(tmp_path.glob(".*tmp"))  # written whole, then renamed into place
    assert handed_run_spec(tmp_path, args()) == spec
    assert not path.exists()  # gone before any job code runs
    assert handed_run_spec(tmp_path, args()) is None  # then the runner asks the server


def test_another_attempts_spec_or_a_broken_file_is_not_used(tmp_path: Path) -> None:
    hand_over_run_spec(tmp_path, {"job": "j", "attempt": 1})
    assert handed_run_spec(tmp_path, args(attempt=2)) is None
    (tmp_path / RUN_SPEC_FILE).write_text("{not json")
    assert handed_run_spec(tmp_path, args()) is None
    (tmp_path / RUN_SPEC_FILE).write_text(json.dumps(["a", "list"]))
    assert handed_run_spec(tmp_path, args()) is None
    hand_over_run_spec(tmp_path, None)  # nothing to hand over: nothing written
    assert not (tmp_path / RUN_SPEC_FILE).exists()
