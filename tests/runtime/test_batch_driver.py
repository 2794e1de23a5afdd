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


TABULAR = """\
import sys

def init():
    global SCALE
    SCALE = float(sys.argv[sys.argv.index("--scale") + 1])

def run(frame):
    frame["x"] = (frame["x"] * SCALE).astype(int)
    return frame
"""


def test_an_mltable_with_a_reader_comes_in_dataframes_of_about_the_batch_size(tmp_path: Path) -> None:
    """A parallel step's tabular input: the MLTable's rows as pandas DataFrames of about
    mini_batch_size bytes, the rows returned appended; the script's own arguments follow `--`."""
    (tmp_path / "table").mkdir()
    (tmp_path / "table" / "a.csv").write_text("x;name\n" + "".join(f"{i};n{i}\n" for i in range(6)))
    (tmp_path / "table" / "b.csv").write_text("x;name\n6;n6\n")
    (tmp_path / "table" / "MLTable").write_text(
        "paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited:\n      delimiter: ';'\n"
        "      header: all_files_same_headers\n"
    )
    (tmp_path / "score.py").write_text(TABULAR)
    proc = subprocess.run(
        [
            sys.executable,
            batch_driver.__file__,
            "--script",
            str(tmp_path / "score.py"),
            "--input",
            str(tmp_path / "table"),
            "--output",
            str(tmp_path / "out"),
            "--mini-batch-size",
            "15",
            "--output-file-name",
            "parallel_run_step.txt",
            "--",
            "--scale",
            "10",
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "7 rows in 3 mini batches" in proc.stdout  # rows of 5 bytes ("0,n0\n"): 3 a batch of 15 bytes
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert rows == [f"{i * 10},n{i}" for i in range(7)]


def test_an_mltable_without_a_reader_lists_its_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("a.txt", "b.txt", "skip.bin"):
        (tmp_path / "d" / name).write_text(name)
    (tmp_path / "d" / "MLTable").write_text("paths:\n  - file: ./b.txt\n  - pattern: ./*.txt  # both\n")
    assert [Path(p).name for p in batch_driver.input_files(str(tmp_path / "d"))] == ["b.txt", "a.txt", "b.txt"]
    assert batch_driver.size_in_bytes("10MB") == 10 * 1024 * 1024 and batch_driver.size_in_bytes("100") == 100
