"""How fast does the ``shoal`` CLI start? Wall time of a fresh process, median of N runs.

    .venv/bin/python benchmarks/cli_startup.py [--samples 15] [--baseline-src DIR] [--no-peers]

Measured with ``subprocess`` (the interpreter's start included), in interleaved rounds:
``python -c pass`` (the floor), ``shoal --help``, ``shoal version``, ``shoal model list`` against a
warm server this script starts on 127.0.0.1 in a temporary SHOAL_HOME (one model registered), and
``shoal model list -o table``. ``--baseline-src DIR`` runs the same commands with another
checkout's ``src`` first on PYTHONPATH (e.g. ``git archive <commit> src | tar -x -C /tmp/base``).
Peers' start-up where found: ``mlflow --version`` and ``ray --version`` (--mlflow/--ray,
$SHOAL_BENCH_MLFLOW/$SHOAL_BENCH_RAY, beside this Python, PATH); skipped with a note when absent.
Targets: ``--help`` and ``version`` under 150 ms, a read command under 300 ms. The run prints a
table and rewrites only its own section of ``docs/benchmarks.md`` (``--out`` for another file).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    DOCS,
    REPO,
    find_mlflow,
    find_ray,
    load_average,
    machine,
    median,
    ms,
    p95,
    scratch,
    shoal_server,
    today,
)
from _common import write_section as write

TARGETS = {"shoal --help": 0.150, "shoal version": 0.150, "shoal model list": 0.300}


def wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src/, measured the same way")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--mlflow")
    parser.add_argument("--ray")
    parser.add_argument("--out", type=Path, default=DOCS, help="markdown file to update")
    args = parser.parse_args()

    notes: list[str] = []
    with scratch("shoal-cli-startup-") as tmp, shoal_server(tmp) as server:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        base_env |= {"SHOAL_HOME": str(server.home), "XDG_CONFIG_HOME": str(tmp / "config")}
        envs = {"this checkout": {**base_env, "PYTHONPATH": str(REPO / "src")}}
        if args.baseline_src:
            envs["baseline"] = {**base_env, "PYTHONPATH": str(args.baseline_src.resolve())}
        shoal = [sys.executable, "-m", "shoal.cli.main"]
        model = str(tmp / "model.txt")
        Path(model).write_text("weights\n")
        subprocess.run(
            [*shoal, "model", "create", "-n", "m", "-v", "1", "-p", model, "-o", "none"],
            env=envs["this checkout"],
            check=True,
        )
        commands: dict[str, list[str]] = {
            "shoal --help": ["--help"],
            "shoal version": ["version"],
            "shoal model list": ["model", "list"],
            "shoal model list -o table": ["model", "list", "-o", "table"],
        }
        paths: dict[str, tuple[list[str], dict[str, str]]] = {
            "`python -c pass` (floor)": ([sys.executable, "-c", "pass"], base_env)
        }
        for label, env in envs.items():
            for name, argv in commands.items():
                paths[f"`{name}` ({label})"] = ([*shoal, *argv], env)
        if args.peers:
            for peer, exe in (("mlflow", find_mlflow(args.mlflow)), ("ray", find_ray(args.ray))):
                if exe:
                    paths[f"`{peer} --version` (peer)"] = ([exe, "--version"], base_env)
                else:
                    notes.append(
                        f"{peer} not found (--{peer}, $SHOAL_BENCH_{peer.upper()}, beside Python, PATH): skipped"
                    )
        samples: dict[str, list[float]] = {label: [] for label in paths}
        for cmd, env in paths.values():  # one warm-up each (page cache, .pyc)
            wall(cmd, env)
        for _ in range(args.samples):
            for label, (cmd, env) in paths.items():
                samples[label].append(wall(cmd, env))

    rows = []
    for label, values in samples.items():
        target = next((t for name, t in TARGETS.items() if f"`{name}` (this" in label), None)
        verdict = "" if target is None else ("yes" if median(values) <= target else "no") + f" (< {ms(target)} ms)"
        rows.append(f"| {label} | {ms(median(values))} | {ms(p95(values))} | {verdict} |")
    table = "\n".join(["| command | median ms | p95 ms | meets target |", "|---|---|---|---|", *rows])
    print(table)
    for note in notes:
        print("note:", note)
    body = f"""## CLI start-up

`benchmarks/cli_startup.py --samples {args.samples}`: wall time of a fresh `shoal` process (`subprocess`,
interpreter start included), median and p95 of {args.samples} interleaved rounds; `model list` against a
warm local server (SQLite, one model). {machine()}; {today()}; load average {load_average()}.

{table}

`shoal --help` builds only the root's commands (`shoal.cli.app.light_app`), prints plain help
(`TYPER_USE_RICH=1` brings Typer's boxes back) and `shoal version` answers before Typer is imported;
a read command builds only the entity classes and operation group of the kind it reads (the kind
table and `MLClient` import them on first use), and skips httpx's own CLI and the TLS context a
plain-http server never needs. The baseline rows are the checkout given with `--baseline-src`.
{"".join(f"{chr(10)}- {note}" for note in notes)}
"""
    write("cli_startup", body, args.out)


if __name__ == "__main__":
    main()
