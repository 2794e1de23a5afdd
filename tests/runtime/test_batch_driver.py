"""The batch driver alone (no server): mini batches, append_row rows, retries, error_threshold,
and AZUREML_MODEL_DIR laid out as on Azure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shoal.runtime import batch_driver

SCORE = """\
import os
calls = 0

def init():
    global factor
    factor = float(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "f.txt")).read())

def run(mini_batch):
    if any("bad" in p for p in mini_batch):
        raise ValueError("a bad file")
    return [f"{os.path.basename(p)},{float(open(p).read()) * factor}" for p in mini_batch]
"""


def _setup(tmp_path: Path, bad: bool = False) -> list[str]:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "f.txt").write_text("3")
    (tmp_path / "data").mkdir()
    for i in range(5):
        (tmp_path / "data" / f"{'bad' if bad and i == 4 else 'x'}{i}.txt").write_text(str(i))
    (tmp_path / "score.py").write_text(SCORE)
    return [
        sys.executable, batch_driver.__file__, "--script", str(tmp_path / "score.py"),
        "--input", str(tmp_path / "data"), "--output", str(tmp_path / "out"), "--model", str(tmp_path / "model"),
        "--model-name", "m", "--model-version", "2", "--mini-batch-size", "2", "--max-retries", "1",
    ]  # fmt: skip


def test_rows_from_every_mini_batch(tmp_path: Path) -> None:
    argv = _setup(tmp_path)
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "5 files in 3 mini batches" in done.stdout
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert sorted(rows) == [f"x{i}.txt,{i * 3.0}" for i in range(5)]
    assert (tmp_path / "azureml-models" / "m" / "2" / "model" / "f.txt").is_file()


def test_error_threshold(tmp_path: Path) -> None:
    argv = _setup(tmp_path, bad=True)
    tolerant = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    # The bad file's mini batch (the first, sorted) fails twice (one retry); its 2 files count as failed.
    assert tolerant.returncode == 0 and "3 files scored, 2 failed" in tolerant.stdout
    assert "mini batch 0 failed (attempt 2)" in tolerant.stdout
    strict = subprocess.run(
        [*argv, "--error-threshold", "1"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert strict.returncode == 1 and "over error_threshold 1" in strict.stdout
