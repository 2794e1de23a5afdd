"""Serving one sklearn model: Shoal's online endpoint vs ``mlflow models serve`` vs a bare FastAPI app.

    .venv/bin/python benchmarks/serving.py [--seconds 3] [--rounds 3] [--mlflow PATH]

One model, trained once in the peer's environment (a logistic regression on 20 features, saved
with ``mlflow.sklearn.save_model``: ``model.pkl``, ``MLmodel``, ``conda.yaml``), served by:

1. Shoal, through the router: an online endpoint with key auth on, one deployment
   (``instance_count: 1``; a ``score.py`` that loads ``model.pkl`` and predicts; an environment
   from a conda file pinning the same scikit-learn), called on its scoring URI with the key;
2. the same Shoal instance called directly on its own port (no router): the router's share is
   (1) − (2);
3. ``mlflow models serve -m <model> --env-manager local`` (MLflow's own scoring server, one
   worker), in the peer's environment;
4. a bare FastAPI app (uvicorn, one worker, uvloop and httptools) that loads the same
   ``model.pkl`` and predicts in an ``async def`` route, in the peer's environment.

Every system gets the same bytes: ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``
with 1 or 100 rows (the input MLflow documents; the score.py and the bare app read ``data``).
The load is one client process with raw keep-alive HTTP/1.1 connections (asyncio, uvloop where
installed): 1 or 8 connections, each sending its next request when the last answer arrived, for
``--seconds`` per cell, the cells interleaved over ``--rounds`` rounds; throughput and latency
are medians over rounds. Then a blue→green rollout under load: 4 connections stream requests at
the endpoint while a green deployment is created, traffic moves 50/50 then 0/100 and blue is
deleted; every answer that is not a 200 is a failure (target: zero).

The peer environment needs ``mlflow``, ``scikit-learn``, ``fastapi`` and ``uvicorn[standard]``
(see benchmarks/README.md); without it the section says so. Rewrites only its own section of
``docs/benchmarks.md`` (``<!-- serving:begin -->`` … ``<!-- serving:end -->``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from _common import (
    DOCS,
    find_mlflow,
    free_port,
    load_average,
    machine,
    median,
    mlflow_version,
    ms,
    ratio,
    scratch,
    shoal_server,
    today,
    wait_until_answers,
)
from _common import _stop as stop_process
from _common import write_section as write

FEATURES = 20
TRAIN = f"""
import sys, numpy as np, mlflow.sklearn
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(0)
X = rng.normal(size=(2000, {FEATURES}))
y = (X @ rng.normal(size={FEATURES}) > 0).astype(int)
mlflow.sklearn.save_model(LogisticRegression(max_iter=500).fit(X, y), sys.argv[1], serialization_format="pickle")
import sklearn; print(sklearn.__version__, np.__version__)
"""
SCORE = """\
import json, os, pickle
import numpy as np

def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.pkl"), "rb") as fh:
        model = pickle.load(fh)

def run(raw_data):
    rows = json.loads(raw_data)["dataframe_split"]["data"]
    return model.predict(np.asarray(rows, dtype=float)).tolist()
"""
BARE_APP = """\
import os, pickle
import numpy as np
from fastapi import FastAPI, Request

app = FastAPI()
with open(os.path.join(os.environ["MODEL_DIR"], "model.pkl"), "rb") as fh:
    model = pickle.load(fh)

@app.post("/score")
async def score(request: Request):
    body = await request.json()
    return model.predict(np.asarray(body["dataframe_split"]["data"], dtype=float)).tolist()

@app.get("/health")
async def health():
    return "ok"
"""

SHOAL = "Shoal endpoint (router, key auth)"
DIRECT = "Shoal instance, direct (no router)"
MLFLOW = "`mlflow models serve`"
BARE = "bare FastAPI app"
ROWS = (1, 100)
CONCURRENCY = (1, 8)


@dataclass
class Target:
    name: str
    port: int
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    # CPU accounting: a part's name -> (root pids, with their descendants or not).
    cpu: dict[str, tuple[list[int], bool]] = field(default_factory=dict)


@dataclass
class Cell:
    requests: int = 0
    failures: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used by each part in the cell


def cpu_seconds(pids: list[int], descendants: bool) -> float:
    """User + system CPU seconds of the processes so far (what a busy machine cannot blur)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *(root.children(recursive=True) if descendants else [])]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
    return total


# -- the load: raw keep-alive HTTP/1.1 ----------------------------------------------------------


def request_bytes(target: Target, body: bytes) -> bytes:
    head = f"POST {target.path} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\nContent-Type: application/json\r\n"
    for name, value in target.headers.items():
        head += f"{name}: {value}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_answer(reader: asyncio.StreamReader) -> int:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = int(head[9:12])
    if "transfer-encoding: chunked" in head:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return status
    length = 0
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    await reader.readexactly(length)
    return status


async def connection(port: int, payload: bytes, until: float, cell: Cell, errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(payload)
            try:
                status = await read_answer(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                cell.failures += 1
                errors.append(f"connection: {exc}")
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            cell.latencies.append(time.perf_counter() - started)
            cell.requests += 1
            if status != 200:
                cell.failures += 1
                errors.append(f"status {status}")
    finally:
        writer.close()


def drive(target: Target, body: bytes, concurrency: int, seconds: float) -> tuple[Cell, list[str]]:
    cell, errors = Cell(), []
    payload = request_bytes(target, body)
    before = {part: cpu_seconds(*group) for part, group in target.cpu.items()}

    async def main() -> None:
        until = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(connection(target.port, payload, until, cell, errors) for _ in range(concurrency)))
        cell.seconds = time.perf_counter() - started

    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run  # type: ignore[assignment]
    runner(main())
    cell.cpu = {part: cpu_seconds(*group) - before[part] for part, group in target.cpu.items()}
    return cell, errors


def body_of(rows: int) -> bytes:
    rng = random.Random(rows)
    data = [[round(rng.gauss(0, 1), 6) for _ in range(FEATURES)] for _ in range(rows)]
    return json.dumps({"dataframe_split": {"columns": [f"f{i}" for i in range(FEATURES)], "data": data}}).encode()


# -- the systems --------------------------------------------------------------------------------


def peer_python(mlflow_exe: str | None) -> str | None:
    if not mlflow_exe:
        return None
    python = Path(mlflow_exe).parent / "python"
    check = "import mlflow, sklearn, fastapi, uvicorn"
    ok = python.exists() and subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0
    return str(python) if ok else None


@contextlib.contextmanager
def process(
    argv: list[str], tmp: Path, name: str, health: str, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True)
        try:
            wait_until_answers(proc, health, name, log, limit=180)
            yield proc
        finally:
            stop_process(proc, group=True)


def deploy_shoal(
    ml: object, tmp: Path, model_dir: Path, versions: tuple[str, str], name: str, per_instance: int
) -> None:
    sklearn_version, numpy_version = versions
    from shoal import CodeConfiguration, Environment, ManagedOnlineDeployment, Model, OnlineRequestSettings

    (tmp / "code").mkdir(exist_ok=True)
    (tmp / "code" / "score.py").write_text(SCORE)
    (tmp / "conda.yml").write_text(
        textwrap.dedent(f"""\
        name: serving
        dependencies:
          - python=3.11
          - pip:
            - scikit-learn=={sklearn_version}
            - numpy=={numpy_version}
        """)
    )
    deployment = ManagedOnlineDeployment(
        name=name,
        endpoint_name="bench",
        model=Model(path=str(model_dir)),
        code_configuration=CodeConfiguration(code=str(tmp / "code"), scoring_script="score.py"),
        environment=Environment(image="python:3.11", conda_file=str(tmp / "conda.yml")),
        instance_type="Standard_DS3_v2",
        instance_count=1,
        request_settings=OnlineRequestSettings(
            max_concurrent_requests_per_instance=per_instance, request_timeout_ms=30000, max_queue_wait_ms=5000
        ),
    )
    state = ml.online_deployments.begin_create_or_update(deployment).result().provisioning_state  # type: ignore[attr-defined]
    if state != "Succeeded":
        raise RuntimeError(f"deployment {name}: {state}")


def set_traffic(ml: object, traffic: dict[str, int]) -> None:
    endpoint = ml.online_endpoints.get("bench")  # type: ignore[attr-defined]
    endpoint.traffic = traffic
    ml.online_endpoints.begin_create_or_update(endpoint).result()  # type: ignore[attr-defined]


def rollout_under_load(
    ml: object, target: Target, tmp: Path, model_dir: Path, versions: tuple[str, str], per_instance: int
) -> dict:
    body = body_of(1)
    result: dict = {}
    stop_at = [time.perf_counter() + 3600]
    cells: list[Cell] = []
    errors: list[str] = []

    async def main() -> None:
        async def one() -> None:
            cell = Cell()
            cells.append(cell)
            payload = request_bytes(target, body)
            while time.perf_counter() < stop_at[0]:
                await connection(target.port, payload, min(stop_at[0], time.perf_counter() + 0.5), cell, errors)

        await asyncio.gather(*(one() for _ in range(4)))

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    started = time.perf_counter()
    thread.start()
    time.sleep(1.0)
    deploy_shoal(ml, tmp, model_dir, versions, "green", per_instance)
    set_traffic(ml, {"blue": 50, "green": 50})
    time.sleep(1.0)
    set_traffic(ml, {"blue": 0, "green": 100})
    time.sleep(0.5)
    ml.online_deployments.begin_delete("blue", "bench").result()  # type: ignore[attr-defined]
    time.sleep(1.0)
    stop_at[0] = time.perf_counter()
    thread.join(30)
    result["seconds"] = time.perf_counter() - started
    result["requests"] = sum(c.requests for c in cells)
    result["failures"] = sum(c.failures for c in cells)
    result["errors"] = sorted(set(errors))[:5]
    return result


# -- the run ------------------------------------------------------------------------------------


def measure(targets: list[Target], seconds: float, rounds: int) -> dict[tuple[str, int, int], list[Cell]]:
    bodies = {rows: body_of(rows) for rows in ROWS}
    out: dict[tuple[str, int, int], list[Cell]] = {}
    for target in targets:  # warm every system up (first requests, lazy imports)
        drive(target, bodies[1], 1, 0.5)
    for r in range(rounds):
        for rows in ROWS:
            for conc in CONCURRENCY:
                order = targets if r % 2 == 0 else list(reversed(targets))
                for target in order:
                    cell, errors = drive(target, bodies[rows], conc, seconds)
                    if errors:
                        print(f"  {target.name} rows={rows} c={conc}: {len(errors)} failures, e.g. {errors[0]}")
                    out.setdefault((target.name, rows, conc), []).append(cell)
        print(f"round {r + 1}/{rounds} done", flush=True)
    return out


def cpu_per_request(cells: list[Cell], part: str | None = None) -> float:
    """Median over rounds of CPU seconds per request (one part, or all parts summed)."""
    values = [
        (c.cpu.get(part, 0.0) if part else sum(c.cpu.values())) / c.requests for c in cells if c.requests and c.cpu
    ]
    return median(values)


def summary(cells: list[Cell]) -> tuple[float, float, float, int]:
    """Throughput (req/s), p50 and p99 latency (s): medians over rounds; failures summed."""
    rates = [c.requests / c.seconds for c in cells if c.seconds]
    p50s, p99s = [], []
    for c in cells:
        ordered = sorted(c.latencies)
        if ordered:
            p50s.append(ordered[len(ordered) // 2])
            p99s.append(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))])
    return median(rates), median(p50s), median(p99s), sum(c.failures for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mlflow", help="the peer's mlflow executable (its venv needs sklearn, fastapi, uvicorn)")
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=8,
        help="the deployment's max_concurrent_requests_per_instance (Azure's default is 1; the peers take 8 at once)",
    )
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()

    exe = find_mlflow(args.mlflow)
    peer = peer_python(exe)
    if peer is None:
        raise SystemExit(
            "serving.py needs a peer environment with mlflow, scikit-learn, fastapi and uvicorn "
            "(see benchmarks/README.md) to train the model; none found"
        )
    load_before = load_average()
    with scratch("shoal-serving-") as tmp:
        model_dir = tmp / "model"
        versions = subprocess.run(
            [peer, "-c", TRAIN, str(model_dir)], capture_output=True, text=True, check=True
        ).stdout.split()
        sklearn_version = versions[-2]
        versions = (versions[-2], versions[-1])
        (tmp / "bare_app.py").write_text(BARE_APP)
        peer_env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOAL_", "PYTHONPATH"))}
        # `mlflow models serve` starts `uvicorn` from PATH: the peer's own.
        peer_env["PATH"] = f"{Path(peer).parent}{os.pathsep}{peer_env.get('PATH', '')}"
        mlflow_port, bare_port = free_port(), free_port()
        mlflow_argv = [exe, "models", "serve", "-m", str(model_dir), "--env-manager", "local", "-h", "127.0.0.1",
                       "-p", str(mlflow_port), "-w", "1"]  # fmt: skip
        bare_argv = [peer, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", str(bare_port),
                     "--workers", "1", "--no-access-log", "--log-level", "warning"]  # fmt: skip
        with (
            shoal_server(tmp) as server,
            process(mlflow_argv, tmp, "mlflow-serve", f"http://127.0.0.1:{mlflow_port}/ping", peer_env) as mlflow_proc,
            process(bare_argv, tmp, "bare-app", f"http://127.0.0.1:{bare_port}/health",
                    {**peer_env, "MODEL_DIR": str(model_dir)}) as bare_proc,
        ):  # fmt: skip
            from shoal import ManagedOnlineEndpoint, MLClient

            ml = MLClient(base_url=server.url, token=server.headers["Authorization"].split()[1])
            ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="bench", auth_mode="key")).result()
            built = time.perf_counter()
            deploy_shoal(ml, tmp, model_dir, versions, "blue", args.max_concurrent)
            print(f"Shoal deployment ready in {time.perf_counter() - built:.1f} s", flush=True)
            set_traffic(ml, {"blue": 100})
            key = ml.online_endpoints.get_keys("bench").primary_key
            uri = ml.online_endpoints.get("bench").scoring_uri
            instance = ml.online_deployments.get("blue", "bench").to_dict()["instances"][0]
            server_port = int(server.url.rsplit(":", 1)[1])
            # CPU by part: the router is the server process alone; an instance with what it runs
            # (a sandboxed one is bwrap and the python inside).
            router_cpu, instance_cpu = ([server.pid], False), ([instance["pid"]], True)
            targets = [
                Target(SHOAL, server_port, uri.split(str(server_port), 1)[1], {"Authorization": f"Bearer {key}"},
                       {"router": router_cpu, "instance": instance_cpu}),
                Target(DIRECT, instance["port"], "/score", {}, {"instance": instance_cpu}),
                Target(MLFLOW, mlflow_port, "/invocations", {}, {"server": ([mlflow_proc.pid], True)}),
                Target(BARE, bare_port, "/score", {}, {"server": ([bare_proc.pid], True)}),
            ]  # fmt: skip
            results = measure(targets, args.seconds, args.rounds)
            rollout = rollout_under_load(ml, targets[0], tmp, model_dir, versions, args.max_concurrent)
    report(results, rollout, args, exe, sklearn_version, load_before)


def report(results: dict, rollout: dict, args: argparse.Namespace, exe: str | None, sk: str, load: str) -> None:
    rows_md = []
    figures: dict[tuple[str, int, int], tuple[float, float, float, int]] = {}
    for (name, rows, conc), cells in results.items():
        figures[(name, rows, conc)] = summary(cells)
    for rows in ROWS:
        for conc in CONCURRENCY:
            for name in (SHOAL, DIRECT, MLFLOW, BARE):
                rate, p50, p99, failed = figures[(name, rows, conc)]
                rows_md.append(f"| {rows} | {conc} | {name} | {rate:,.0f} | {ms(p50)} | {ms(p99)} | {failed} |")
    ratios = []
    for rows in ROWS:
        for conc in CONCURRENCY:
            shoal, direct = figures[(SHOAL, rows, conc)], figures[(DIRECT, rows, conc)]
            mlflow, bare = figures[(MLFLOW, rows, conc)], figures[(BARE, rows, conc)]
            ratios.append(
                f"| {rows} | {conc} | {ratio(shoal[0], mlflow[0])} | {ratio(shoal[0], bare[0])} | "
                f"{(shoal[1] - direct[1]) * 1000:.2f} |"
            )
    cpu_rows = []
    for rows in ROWS:
        for conc in CONCURRENCY:
            shoal = results[(SHOAL, rows, conc)]
            router, total = cpu_per_request(shoal, "router"), cpu_per_request(shoal)
            direct = cpu_per_request(results[(DIRECT, rows, conc)])
            mlflow, bare = cpu_per_request(results[(MLFLOW, rows, conc)]), cpu_per_request(results[(BARE, rows, conc)])
            cpu_rows.append(
                f"| {rows} | {conc} | {ms(router)} | {ms(total - router)} | {ms(total)} | {ms(direct)} | {ms(mlflow)} "
                f"| {ms(bare)} | {ratio(bare, total)} | {ratio(mlflow, total)} |"
            )
    cpu_header = (
        "| rows | connections | Shoal router | Shoal instance | Shoal total | instance direct | MLflow | bare app "
        "| bare ÷ Shoal | MLflow ÷ Shoal |"
    )
    failures = sum(f[3] for f in figures.values())
    title = "## Serving a model: online endpoint vs `mlflow models serve` vs a bare app (`benchmarks/serving.py`)"
    header = (
        "| rows | connections | Shoal ÷ MLflow (target ≥ 2×) | Shoal ÷ bare app (target ≥ 0.90×) "
        "| router's share of p50, ms (target < 1) |"
    )
    examples = "; e.g. " + ", ".join(rollout["errors"]) if rollout["errors"] else ""
    body = f"""{title}

{today()}; {machine()}; load average before the run {load} (the 2 cores are shared: client and
servers run on them together). MLflow {mlflow_version(exe) if exe else "—"}, scikit-learn {sk}; one
logistic regression on {FEATURES} features; each system one process (Shoal: the server plus one
instance, `max_concurrent_requests_per_instance: {args.max_concurrent}`). {args.rounds} rounds of
{args.seconds:g} s per cell, interleaved; medians over rounds. Every system gets the same
`dataframe_split` body; raw keep-alive HTTP/1.1 connections.

| rows | connections | system | requests/s | p50 ms | p99 ms | failed |
|---:|---:|---|---:|---:|---:|---:|
{chr(10).join(rows_md)}

{header}
|---:|---:|---:|---:|---:|
{chr(10).join(ratios)}

CPU per request (ms of user + system time, from `/proc`: what a busy machine does not blur; the
client's own is not counted). On a machine where the servers have the cores to themselves,
throughput follows the inverse of these: the last two columns are the throughput ratios CPU
alone allows.

{cpu_header}
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(cpu_rows)}

Failed requests in the cells above: {failures}. Blue→green rollout under load (4 connections,
green created, traffic 50/50 then 0/100, blue deleted): {rollout["requests"]:,} requests in
{rollout["seconds"]:.1f} s, **{rollout["failures"]} failed**{examples}.

The router's share is the endpoint's p50 minus the same instance's p50 called directly: the key
check, the traffic draw, the slot, and the second HTTP hop (client → server → instance). With a
load average far above the core count, the p50s of the 8-connection and 100-row cells are mostly
waits for a core (a request through the router needs two processes scheduled, not one), and can
come out negative; the single-row, single-connection cell and the CPU table are the steadier
measures.
"""
    print(body)
    write("serving", body, args.out)


if __name__ == "__main__":
    main()
