"""A model batch deployment's job: the user's scoring script over the input's files in mini batches.

Run as a *file* by the deployment's interpreter inside a command job (``python batch_driver.py
…``), so it uses the standard library only. The contract is Azure ML's batch one: ``init()`` once,
then ``run(mini_batch)`` with a list of ``mini_batch_size`` file paths, returning a list (one
row per item) or a pandas DataFrame; with ``output_action: append_row`` every row is appended to
``<output>/<output_file_name>``. A mini batch whose ``run()`` raises is retried ``max_retries``
times; its files then count as failed, and more than ``error_threshold`` failed files (``-1``:
no limit) fails the job. ``AZUREML_MODEL_DIR`` is laid out as on Azure (the parent of the model's
folder)."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import logging
import os
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
    found = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        found += [os.path.join(folder, f) for f in sorted(files)]
    return found


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
    p = argparse.ArgumentParser(prog="batch_driver")
    p.add_argument("--script", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--model")
    p.add_argument("--model-name", default="model")
    p.add_argument("--model-version", default="1")
    p.add_argument("--model-folder")
    p.add_argument("--mini-batch-size", type=int, default=10)
    p.add_argument("--output-action", default="append_row")
    p.add_argument("--output-file-name", default="predictions.csv")
    p.add_argument("--error-threshold", type=int, default=-1)
    p.add_argument("--max-retries", type=int, default=3)
    p.add_argument("--logging-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.logging_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.model:
        os.environ["AZUREML_MODEL_DIR"] = model_dir(
            args.model, args.model_name, args.model_version, args.model_folder, os.getcwd()
        )
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    spec = importlib.util.spec_from_file_location("batch_score", args.script)
    if spec is None or spec.loader is None:
        print(f"batch driver: cannot load the scoring script {args.script}", file=sys.stderr)
        return 1
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "init"):
        module.init()
    files = input_files(args.input)
    batches = [files[i : i + args.mini_batch_size] for i in range(0, len(files), args.mini_batch_size)]
    print(f"batch driver: {len(files)} files in {len(batches)} mini batches of at most {args.mini_batch_size}")
    os.makedirs(args.output, exist_ok=True)
    out_path = os.path.join(args.output, args.output_file_name)
    failed = succeeded = 0
    started = time.monotonic()
    with open(out_path, "a", encoding="utf-8") if args.output_action == "append_row" else io.StringIO() as out:
        for index, batch in enumerate(batches):
            for attempt in range(args.max_retries + 1):
                try:
                    rows = rows_of(module.run(list(batch)))
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
                if 0 <= args.error_threshold < failed:
                    print(f"batch driver: {failed} files failed, over error_threshold {args.error_threshold}")
                    return 1
    if hasattr(module, "shutdown"):
        module.shutdown()
    seconds = time.monotonic() - started
    print(f"batch driver: done in {seconds:.2f} s: {succeeded} files scored, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
