"""A model batch deployment's job, and a pipeline's parallel step: the user's scoring (entry)
script over the input's files, or an MLTable's rows, in mini batches.

Run as a *file* by the deployment's interpreter inside a command job (``python batch_driver.py
…``), so it uses the standard library only. The contract is Azure ML's batch one: ``init()`` once,
then ``run(mini_batch)`` with a list of ``mini_batch_size`` file paths, returning a list (one
row per item) or a pandas DataFrame; with ``output_action: append_row`` every row is appended to
``<output>/<output_file_name>``. An input folder holding an ``MLTable`` file is read through it:
its paths are the files, and with a reader (``read_delimited``, ``read_parquet``,
``read_json_lines``) ``run`` gets pandas DataFrames of about ``mini_batch_size`` bytes instead
(``100KB``, ``1MB``). The entry script's own arguments follow ``--`` and are its ``sys.argv``. A
mini batch whose ``run()`` raises is retried ``max_retries``
times; its files then count as failed, and more than ``error_threshold`` failed files (``-1``:
no limit) fails the job. ``AZUREML_MODEL_DIR`` is laid out as on Azure (the parent of the model's
folder)."""

from __future__ import annotations

import argparse
import csv
import glob
import importlib.util
import io
import logging
import os
import re
import sys
import time
import traceback
from typing import Any


def model_dir(model: str, name: str, version: str, folder: str | None, work: str) -> str:
    """``<work>/azureml-models/<name>/<version>/`` holding the model's folder (or file) by its name."""
    root = os.path.join(work, "azureml-models", name, version)
    os.makedirs(root, exist_ok=True)
    link = os.path.join(root, folder or os.path.basename(model.rstrip("/")))
    if not os.path.lexists(link):
        os.symlink(os.path.abspath(model), link)
    return root


def input_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    table = os.path.join(path, "MLTable")
    if os.path.isfile(table):  # an MLTable folder: the files its paths name
        return mltable_files(path, read_mltable(table))
    return walk_files(path)


def walk_files(path: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        found += [os.path.join(folder, f) for f in sorted(files)]
    return found


# -- MLTable (stdlib only: the job's environment may have no YAML parser) -------------------

_PATH_LINE = re.compile(r"^\s*-?\s*(file|folder|pattern)\s*:\s*(.+?)\s*$")
_READER_LINE = re.compile(r"^\s*-?\s*(read_delimited|read_parquet|read_json_lines|read_delta_lake)\s*:")
_OPTION_LINE = re.compile(r"^\s*(delimiter|header|encoding)\s*:\s*(.+?)\s*$")


def read_mltable(file: str) -> dict[str, Any]:
    """What a parallel job needs of an ``MLTable`` file: its paths, and its reader with the
    reader's delimiter, header and encoding (a table without a reader is a list of files)."""
    paths: list[tuple[str, str]] = []
    reader: str | None = None
    options: dict[str, str] = {}
    with open(file, encoding="utf-8") as fh:
        for line in fh:
            line = line.split(" #", 1)[0].rstrip()
            if m := _PATH_LINE.match(line):
                paths.append((m.group(1), m.group(2).strip("'\"")))
            elif m := _READER_LINE.match(line):
                reader = m.group(1)
            elif reader and (m := _OPTION_LINE.match(line)):
                options[m.group(1)] = m.group(2).strip("'\"")
    return {"paths": paths, "reader": reader, "options": options}


def mltable_files(base: str, table: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for kind, value in table["paths"]:
        if "://" in value:
            raise ValueError(f"MLTable path {value!r}: a parallel job reads the files of its input folder only")
        where = os.path.normpath(os.path.join(base, value))
        if kind == "file":
            found.append(where)
        elif kind == "folder":
            found += [f for f in walk_files(where) if os.path.basename(f) != "MLTable"]
        else:
            found += sorted(p for p in glob.glob(where, recursive=True) if os.path.isfile(p))
    return found


def size_in_bytes(text: str) -> int:
    """A tabular mini batch's size: ``100``, ``100KB``, ``10MB``, ``1GB`` (Azure's forms)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?B?)\s*", text.upper())
    if m is None:
        raise ValueError(f"mini_batch_size {text!r} is not a size such as 100, 100KB, 10MB")
    unit = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3}
    return int(m.group(1)) * unit[m.group(2)]


def table_batches(base: str, table: dict[str, Any], size: int) -> list[Any]:
    """A tabular input's rows as pandas DataFrames of about ``size`` bytes of text each."""
    import pandas as pd  # a tabular parallel job's environment has pandas, as on Azure

    opts = table["options"]
    frames = []
    for file in mltable_files(base, table):
        if table["reader"] == "read_parquet":
            frames.append(pd.read_parquet(file))
        elif table["reader"] == "read_json_lines":
            frames.append(pd.read_json(file, lines=True))
        elif table["reader"] == "read_delimited":
            header = 0 if opts.get("header", "all_files_same_headers") != "no_header" else None
            frames.append(pd.read_csv(file, sep=opts.get("delimiter", ","), header=header))
        else:
            raise ValueError(f"MLTable reader {table['reader']!r} is not read by Shoal's parallel jobs")
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        return []
    row_bytes = max(1, len(frame.to_csv(index=False, header=False)) // len(frame))
    rows = max(1, size // row_bytes)
    return [frame.iloc[i : i + rows].reset_index(drop=True) for i in range(0, len(frame), rows)]


def rows_of(result: Any) -> list[str]:
    if hasattr(result, "to_csv"):  # a pandas DataFrame
        text = result.to_csv(header=False, index=False)
        return [line for line in text.splitlines() if line]
    if result is None:
        return []
    if not isinstance(result, list | tuple):
        raise TypeError(f"run() must return a list or a pandas DataFrame, got {type(result).__name__}")
    out = []
    for item in result:
        if isinstance(item, list | tuple):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(item)
            out.append(buf.getvalue())
        else:
            out.append(str(item))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # After `--`: the entry script's own arguments (a parallel job's program_arguments), which
    # its init() reads from sys.argv as on Azure.
    script_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="batch_driver")
    p.add_argument("--script", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--model")
    p.add_argument("--model-name", default="model")
    p.add_argument("--model-version", default="1")
    p.add_argument("--model-folder")
    p.add_argument("--mini-batch-size", default=None, help="files per batch (10), or a tabular batch's size (1MB)")
    p.add_argument("--output-action", default="append_row")
    p.add_argument("--output-file-name", default="predictions.csv")
    p.add_argument("--error-threshold", type=int, default=-1)
    p.add_argument("--mini-batch-error-threshold", type=int, default=-1)
    p.add_argument("--max-retries", type=int, default=3)
    p.add_argument("--logging-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.logging_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.model:
        os.environ["AZUREML_MODEL_DIR"] = model_dir(
            args.model, args.model_name, args.model_version, args.model_folder, os.getcwd()
        )
    table_file = os.path.join(args.input, "MLTable")
    table = read_mltable(table_file) if os.path.isfile(table_file) else None
    if table is not None and table["reader"]:
        batches: list[Any] = table_batches(args.input, table, size_in_bytes(args.mini_batch_size or "1MB"))
        what = "rows"
    else:
        files = input_files(args.input)
        size = int(args.mini_batch_size or 10)
        batches = [files[i : i + size] for i in range(0, len(files), size)]
        what = "files"
    sys.argv = [args.script, *script_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    spec = importlib.util.spec_from_file_location("batch_score", args.script)
    if spec is None or spec.loader is None:
        print(f"batch driver: cannot load the entry script {args.script}", file=sys.stderr)
        return 1
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "init"):
        module.init()
    items = sum(len(b) for b in batches)
    print(f"batch driver: {items} {what} in {len(batches)} mini batches (mini_batch_size {args.mini_batch_size})")
    os.makedirs(args.output, exist_ok=True)
    out_path = os.path.join(args.output, args.output_file_name)
    failed = succeeded = failed_batches = 0
    started = time.monotonic()
    with open(out_path, "a", encoding="utf-8") if args.output_action == "append_row" else io.StringIO() as out:
        for index, batch in enumerate(batches):
            for attempt in range(args.max_retries + 1):
                try:
                    rows = rows_of(module.run(batch if what == "rows" else list(batch)))
                except Exception:  # noqa: BLE001 - the user's run(): retried, then counted as failed
                    traceback.print_exc()
                    print(f"batch driver: mini batch {index} failed (attempt {attempt + 1})", flush=True)
                    continue
                for row in rows:
                    out.write(row + "\n")
                succeeded += len(batch)
                break
            else:
                failed += len(batch)
                failed_batches += 1
                if 0 <= args.error_threshold < failed:
                    print(f"batch driver: {failed} {what} failed, over error_threshold {args.error_threshold}")
                    return 1
                if 0 <= args.mini_batch_error_threshold < failed_batches:
                    print(
                        f"batch driver: {failed_batches} mini batches failed, over mini_batch_error_threshold "
                        f"{args.mini_batch_error_threshold}"
                    )
                    return 1
    if hasattr(module, "shutdown"):
        module.shutdown()
    seconds = time.monotonic() - started
    print(f"batch driver: done in {seconds:.2f} s: {succeeded} {what} scored, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
