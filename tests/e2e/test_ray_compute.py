"""Compute clusters on Ray, end to end: a real Ray cluster (a head and two worker nodes, each a
``ray start`` of its own), a real ``shoal server --ray-address …`` and the real CLI, all inside a
network namespace this test module makes (``tests/raycluster.py``).

The worker nodes offer 1 CPU and 4 GiB each; ``cpu-cluster`` is ``Standard_DS1_v2`` (1 vCPU,
3.5 GiB: one job per node), ``big-cluster`` the README's ``Standard_DS3_v2`` (4 vCPUs, 14 GiB),
which no node offers. Each node has its own Shoal home (``SHOAL_RAY_NODE_HOME``): a job's run
folder there tells which node ran it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SHOAL, Cli, wait_for, write_job
from tests.raycluster import RayCluster, enter_network_namespace, require_ray

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CPU_CLUSTER = """
$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
name: cpu-cluster
type: amlcompute
size: Standard_DS1_v2
min_instances: 0
max_instances: 2
"""
BIG_CLUSTER = """
name: big-cluster
type: amlcompute
size: Standard_DS3_v2
max_instances: 4
"""


class RayShoal:
    def __init__(self, cluster: RayCluster, cli: Cli) -> None:
        self.cluster, self.cli = cluster, cli

    def json(self, *args: str) -> object:
        return json.loads(self.cli(*args, "-o", "json").out)

    def submit(self, path: Path, *extra: str) -> str:
        return self.cli("job", "create", "--file", str(path), "--query", "name", "-o", "tsv", *extra).out.strip()

    def node_of(self, job: str) -> str | None:
        """The worker node whose Shoal home holds a run folder of ``job``."""
        for home in self.cluster.root.glob("worker*-home"):
            if any(p.name == job for p in home.glob("runs/*/*/*")):
                return home.name.removesuffix("-home")
        return None


@pytest.fixture(scope="module")
def ray_shoal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayShoal]:
    require_ray()
    netns = enter_network_namespace()
    # A killed node is declared dead after 5 missed health checks: one a second here (Ray's default
    # is one every 3 s), so the lost-node tests wait ~5 s for it rather than ~15 s. A node that only
    # stalls still has 5 × (1 s + the check's 10 s timeout) before it counts as lost.
    cluster = RayCluster(workers=2, cpus=1, memory_gib=4, env={"RAY_health_check_period_ms": "1000"})
    cli = Cli(tmp_path_factory.mktemp("ray-home"))
    # Long enough for Ray to declare a killed node dead before the heartbeat timeout fails the job.
    cli.env["SHOAL_HEARTBEAT_TIMEOUT"] = "30"
    # The head-loss test (last) need not wait the default 10 s before the head counts as lost.
    cli.env["SHOAL_RAY_HEAD_GRACE"] = "5"
    try:
        cluster.start()
        out = cli("server", "start", "--detach", "--ray-address", cluster.address).out
        assert "started" in out
        folder = tmp_path_factory.mktemp("computes")
        cli("compute", "create", "--file", str(write_job(folder, CPU_CLUSTER, "cpu.yml")))
        cli("compute", "create", "--file", str(write_job(folder, BIG_CLUSTER, "big.yml")))
        yield RayShoal(cluster, cli)
    finally:
        cli("server", "stop", check=False)
        cluster.stop()
        netns.leave()


def test_a_command_job_runs_on_a_ray_node_with_code_and_inputs(ray_shoal, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.py").write_text(
        "import os, sys\n"
        "print('rows', len(open(sys.argv[1]).read().splitlines()), 'lr', sys.argv[2])\n"
        "print('ran in', os.getcwd())\n"
    )
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    path = write_job(
        tmp_path,
        """
        command: python hello.py ${{inputs.data}} ${{inputs.lr}}
        code: ./src
        compute: azureml:cpu-cluster
        environment:
          image: library/python:3.11
        inputs:
          data:
            type: uri_file
            path: ./data.csv
          lr: 0.5
        """,
    )
    result = ray_shoal.cli("job", "create", "--file", str(path), "--stream", check=False)
    assert result.code == 0, result.out + result.err
    assert "rows 3 lr 0.5" in result.out, result.out
    assert "Status: Completed" in result.out
    name = next(line.split()[1] for line in result.out.splitlines() if line.startswith("RunId:"))
    # It ran on a worker node, in that node's own home, not on the server's machine.
    assert ray_shoal.node_of(name) in ("worker0", "worker1")
    assert "shray-" in result.out and "-home/runs/" in result.out
    assert not (ray_shoal.cli.home / "runs" / "default" / name / "1" / "wd").exists()
    # The runner's own log came back to the server's home.
    assert (ray_shoal.cli.home / "runs" / "default" / name / "1" / "runner.log").exists()


def _queue_reason(ray_shoal: RayShoal, name: str, timeout: float = 30) -> tuple[dict, str | None]:
    """The job and the reason it is queued, once the dispatcher has given one (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        job = ray_shoal.json("job", "show", "-n", name)
        reason = job["properties"].get("shoal.queue_reason")
        if reason or time.monotonic() > deadline:
            return job, reason  # type: ignore[return-value]
        time.sleep(0.5)


def test_a_job_no_node_can_fit_stays_queued_saying_why(ray_shoal, tmp_path):
    path = write_job(
        tmp_path, "command: echo never\ncompute: azureml:big-cluster\nenvironment:\n  image: python:3.11\n"
    )
    name = ray_shoal.submit(path)
    job, reason = _queue_reason(ray_shoal, name)
    assert job["status"] == "Queued"
    assert reason == "no Ray node offers 4 CPUs and 14 GiB (Standard_DS3_v2)"
    time.sleep(2)
    assert ray_shoal.json("job", "show", "-n", name)["status"] == "Queued"
    ray_shoal.cli("job", "cancel", "-n", name)
    assert wait_for(ray_shoal.cli, name, timeout=30)["status"] == "Canceled"


def test_a_node_without_the_environments_python_fails_the_job_with_a_build_error(ray_shoal, tmp_path):
    # No node has Python 2.7 and none can download one (the cluster has no network beyond
    # loopback): the build on the node fails, and the job says which Python it could not find.
    path = write_job(
        tmp_path,
        """
        command: python -c "print('never')"
        compute: azureml:cpu-cluster
        environment:
          image: python:2.7
          conda_file:
            dependencies: [python=2.7, six]
        """,
    )
    name = ray_shoal.submit(path)
    job = wait_for(ray_shoal.cli, name, timeout=180)
    assert job["status"] == "Failed", job
    assert job["error"]["code"] == "ENVIRONMENT_BUILD_FAILED", job["error"]
    message = job["error"]["message"]
    assert "Python ==2.7.*" in message and "the host Python is 3." in message, message
    assert ray_shoal.node_of(name) in ("worker0", "worker1")  # built on a node, not on the server


def _user_processes(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (as one argument, or as its words)."""
    forms = (marker.encode(), marker.replace(" ", "\0").encode())
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                if any(form in cmdline for form in forms):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_logs_stream_live_and_cancel_stops_the_user_processes_on_the_node(ray_shoal, tmp_path):
    marker = f"sleep 3{os.getpid() % 1000:03d}"
    path = write_job(
        tmp_path,
        f"""
        command: echo started-on-ray; {marker}
        compute: azureml:cpu-cluster
        environment:
          image: python:3.11
        """,
    )
    name = ray_shoal.submit(path)
    # `job stream` follows the log while the job runs: its line arrives before the job ends.
    stream = subprocess.Popen(
        [*SHOAL, "job", "stream", "-n", name], env=ray_shoal.cli.env, stdout=subprocess.PIPE, text=True
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(stream.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        deadline = time.monotonic() + 120
        while not any("started-on-ray" in line for line in lines):
            assert time.monotonic() < deadline, "the job's log never arrived while it ran"
            time.sleep(0.3)
    finally:
        stream.kill()
        stream.wait()
    assert ray_shoal.json("job", "show", "-n", name)["status"] == "Running"
    assert _user_processes(marker), "the job's command runs"
    ray_shoal.cli("job", "cancel", "-n", name)
    assert wait_for(ray_shoal.cli, name, timeout=60)["status"] == "Canceled"
    deadline = time.monotonic() + 15
    while _user_processes(marker):
        assert time.monotonic() < deadline, "the canceled job's command is still running"
        time.sleep(0.3)


STAMPED = "import time; print('start', time.time(), flush=True); time.sleep(4); print('end', time.time(), flush=True)"


def _stamps(ray_shoal: RayShoal, name: str) -> tuple[float, float]:
    log = ray_shoal.cli("job", "stream", "-n", name).out
    found = dict(line.split()[:2] for line in log.splitlines() if line.startswith(("start ", "end ")))
    return float(found["start"]), float(found["end"])


def test_jobs_fill_both_nodes_max_instances_caps_them_and_the_next_is_prepared_ahead(ray_shoal, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "stamp.py").write_text(STAMPED)
    job = "command: python stamp.py\ncode: ./src\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n"
    names = [ray_shoal.submit(write_job(tmp_path, job, f"job{i}.yml")) for i in range(3)]
    shown = {name: wait_for(ray_shoal.cli, name, timeout=180) for name in names}
    assert all(job["status"] == "Completed" for job in shown.values()), shown
    ahead_of = {
        n: job["properties"]["shoal.runs_after"] for n, job in shown.items() if "shoal.runs_after" in job["properties"]
    }
    runs = {name: _stamps(ray_shoal, name) for name in names}
    # max_instances 2: never more than two commands at once, whatever was prepared meanwhile.
    for name, (start, _) in runs.items():
        running = [n for n, (s, e) in runs.items() if s <= start < e]
        assert len(running) <= 2, (name, runs)
    assert {ray_shoal.node_of(n) for n in names} == {"worker0", "worker1"}
    # The third job, prepared on a busy node while the compute was full, says which job it ran
    # after, ran on that job's node and started its command once that job's had ended. (Under CI
    # load it was once started on a free node instead, cause not found yet: the cancel test below,
    # whose jobs run long, is the one that requires a job to be prepared ahead.)
    third = names[2]
    if third in ahead_of:
        before = ahead_of[third]
        assert before in names[:2], ahead_of
        assert ray_shoal.node_of(third) == ray_shoal.node_of(before)
        assert runs[before][1] <= runs[third][0] < runs[before][1] + 5, runs


def test_a_job_prepared_ahead_is_canceled_before_its_turn(ray_shoal, tmp_path):
    marker = f"sleep 6{os.getpid() % 1000:03d}"
    long = f"command: {marker}\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n"
    holders = [ray_shoal.submit(write_job(tmp_path, long, f"hold{i}.yml")) for i in range(2)]
    try:
        for name in holders:
            wait_for(ray_shoal.cli, name, ("Running",), timeout=120)
        never = "command: echo never\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n"
        waiting = ray_shoal.submit(write_job(tmp_path, never))
        deadline = time.monotonic() + 60
        while (job := ray_shoal.json("job", "show", "-n", waiting))["properties"].get("shoal.runs_after") is None:
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "Preparing" and job["properties"]["shoal.runs_after"] in holders
        ray_shoal.cli("job", "cancel", "-n", waiting)
        assert wait_for(ray_shoal.cli, waiting, timeout=60)["status"] == "Canceled"
        log = ray_shoal.cli("job", "stream", "-n", waiting, check=False).out
        assert "Preparing the environment" in log and "never" not in log.replace("echo never", ""), log
        # The jobs it waited for were left alone.
        assert all(ray_shoal.json("job", "show", "-n", n)["status"] == "Running" for n in holders)
    finally:
        for name in holders:
            ray_shoal.cli("job", "cancel", "-n", name, check=False)
        for name in holders:
            assert wait_for(ray_shoal.cli, name, timeout=60)["status"] == "Canceled"


def test_a_pipeline_and_a_sweep_run_on_the_cluster(ray_shoal, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "make.py").write_text("import sys, pathlib\npathlib.Path(sys.argv[1], 'n.txt').write_text('21')\n")
    (src / "double.py").write_text(
        "import sys, pathlib\nprint('doubled', 2 * int(pathlib.Path(sys.argv[1], 'n.txt').read_text()))\n"
    )
    pipeline = write_job(
        tmp_path,
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        settings:
          default_compute: azureml:cpu-cluster
        jobs:
          make:
            command: python make.py ${{outputs.out}}
            code: ./src
            environment:
              image: python:3.11
            outputs:
              out:
                type: uri_folder
          double:
            command: python double.py ${{inputs.n}}
            code: ./src
            environment:
              image: python:3.11
            inputs:
              n: ${{parent.jobs.make.outputs.out}}
        """,
        "pipeline.yml",
    )
    sweep_src = tmp_path / "sweep"
    sweep_src.mkdir()
    # The trial's environment has no mlflow: it logs its metric through MLflow's REST API.
    (sweep_src / "train.py").write_text(
        "import json, os, sys, time, urllib.request\n"
        "body = {'run_id': os.environ['MLFLOW_RUN_ID'], 'key': 'score', 'value': float(sys.argv[1]),\n"
        "        'timestamp': int(time.time() * 1000), 'step': 0}\n"
        "url = os.environ['MLFLOW_TRACKING_URI'].rstrip('/') + '/api/2.0/mlflow/runs/log-metric'\n"
        "headers = {'Content-Type': 'application/json',\n"
        "           'Authorization': 'Bearer ' + os.environ['MLFLOW_TRACKING_TOKEN']}\n"
        "urllib.request.urlopen(urllib.request.Request(url, json.dumps(body).encode(), headers)).read()\n"
        "print('lr', sys.argv[1])\n"
    )
    sweep = write_job(
        tmp_path,
        """
        $schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
        type: sweep
        compute: azureml:cpu-cluster
        trial:
          command: python train.py ${{search_space.lr}}
          code: ./sweep
          environment:
            image: python:3.11
        search_space:
          lr:
            type: choice
            values: [0.1, 0.2]
        sampling_algorithm: grid
        objective:
          goal: maximize
          primary_metric: score
        limits:
          max_total_trials: 2
          max_concurrent_trials: 2
        """,
        "sweep.yml",
    )
    pipe_name = ray_shoal.submit(pipeline)
    sweep_name = ray_shoal.submit(sweep)
    assert wait_for(ray_shoal.cli, pipe_name, timeout=300)["status"] == "Completed"
    steps = ray_shoal.json("job", "list", "--parent-job-name", pipe_name)
    assert len(steps) == 2
    for step in steps:
        assert ray_shoal.node_of(step["name"]) in ("worker0", "worker1"), step["name"]
    double = next(s for s in steps if s["display_name"] == "double")
    assert "doubled 42" in ray_shoal.cli("job", "stream", "-n", double["name"]).out
    assert wait_for(ray_shoal.cli, sweep_name, timeout=300)["status"] == "Completed"
    trials = ray_shoal.json("job", "list", "--parent-job-name", sweep_name)
    assert len(trials) == 2 and all(t["status"] == "Completed" for t in trials)
    assert all(ray_shoal.node_of(t["name"]) in ("worker0", "worker1") for t in trials)


def test_the_server_restarting_reattaches_to_a_running_job(ray_shoal, tmp_path):
    # Long enough that both nodes are still held when the server stops, on a loaded machine too
    # (with 12 s, a node came free first once and the late job ran as its first attempt).
    body = (
        "command: echo before; sleep 25; echo after\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n"
    )
    name, filler = (ray_shoal.submit(write_job(tmp_path, body, f"job{i}.yml")) for i in range(2))
    for job_name in (name, filler):
        wait_for(ray_shoal.cli, job_name, ("Running",), timeout=120)
    # A job of another compute while both nodes are busy: claimed, its share asked for, no node
    # to start its runner on yet when the server stops.
    other = "name: other-cluster\ntype: amlcompute\nsize: Standard_DS1_v2\nmax_instances: 2\n"
    ray_shoal.cli("compute", "create", "--file", str(write_job(tmp_path, other, "other.yml")))
    late = ray_shoal.submit(
        write_job(tmp_path, "command: echo late\ncompute: azureml:other-cluster\nenvironment:\n  image: python:3.11\n")
    )
    wait_for(ray_shoal.cli, late, ("Preparing",), timeout=60)
    agents = _agents(ray_shoal)
    assert set(agents.values()) == {"worker0", "worker1"}, agents  # one per node, made ahead of the jobs
    ray_shoal.cli("server", "stop")
    time.sleep(1)
    ray_shoal.cli("server", "start", "--detach", "--ray-address", ray_shoal.cluster.address)
    job = wait_for(ray_shoal.cli, name, timeout=120)
    assert job["status"] == "Completed", job
    log = ray_shoal.cli("job", "stream", "-n", name).out
    assert "before" in log and "after" in log
    # The restarted server found the nodes' agents by name: the same processes.
    assert _agents(ray_shoal) == agents
    # The job whose runner had not started yet was queued again (nothing of it had run), not
    # failed, and ran as its second attempt once a node was free.
    shown = wait_for(ray_shoal.cli, late, timeout=120)
    assert shown["status"] == "Completed", shown
    assert "late" in ray_shoal.cli("job", "stream", "-n", late).out
    assert [p.name for p in ray_shoal.cluster.root.glob(f"worker*-home/runs/*/*/{late}/*")] == ["2"]
    assert wait_for(ray_shoal.cli, filler, timeout=60)["status"] == "Completed"


# -- one-node jobs on the nodes' agents (no Ray worker started per job) ------------------------

# Run by a job: the runner it runs under (the process whose command line is ``-m shoal.runtime``),
# whether the agent's warm runner forked it, and the agent (a Ray worker titled ``ray::NodeAgent``).
PARENTS = """
import os
def parent(pid):
    return int(next(l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("PPid:")))
def argv(pid):
    return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
pid = os.getpid()
while pid > 1 and b"shoal.runtime" not in argv(pid):
    pid = parent(pid)
up = parent(pid)
warm = b"shoal.runtime.warm" in argv(up)
agent = parent(up) if warm else up
print("runner", pid, "warm", int(warm), "agent", agent, "title", argv(agent)[0].decode(), flush=True)
"""


def _agents(ray_shoal: RayShoal) -> dict[int, str]:
    """This cluster's agent processes (pid -> the worker node's home they serve)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not (proc / "cmdline").read_bytes().startswith(b"ray::NodeAgent"):
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(b"SHOAL_RAY_NODE_HOME=") and str(ray_shoal.cluster.root).encode() in entry:
                found[int(proc.name)] = Path(entry.split(b"=", 1)[1].decode()).name.removesuffix("-home")
    return found


def _ray_resources(ray_shoal: RayShoal) -> dict:
    """The cluster's free CPUs and the shares (placement groups) of Shoal's one-node attempts,
    asked by a driver of its own."""
    code = (
        "import json, ray\n"
        f"ray.init(address={ray_shoal.cluster.address!r}, namespace='shoal', logging_level='ERROR', "
        "log_to_driver=False)\n"
        "slots = {p['name']: p['state'] for p in ray.util.placement_group_table().values() "
        "if p['name'].endswith('#slot')}\n"
        "print(json.dumps({'cpus': ray.available_resources().get('CPU', 0), 'slots': slots}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_jobs_start_on_one_agent_per_node_that_outlives_them_and_frees_the_node_after(ray_shoal, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "parents.py").write_text(PARENTS)
    path = write_job(
        tmp_path,
        "command: python parents.py\ncode: ./src\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n",
    )
    seen: dict[str, set[int]] = {}
    names = []
    for _ in range(3):  # one after the other: two of them on one node
        result = ray_shoal.cli("job", "create", "--file", str(path), "--stream", check=False)
        assert result.code == 0 and "Status: Completed" in result.out, result.out + result.err
        name = next(line.split()[1] for line in result.out.splitlines() if line.startswith("RunId:"))
        line = next(line for line in result.out.splitlines() if line.startswith("runner "))
        _, _runner, _, warm, _, agent, _, title = line.split()
        # The runner was forked by the warm runner of its node's agent, not started by a Ray
        # worker made for the job.
        assert title.startswith("ray::NodeAgent") and warm == "1", line
        seen.setdefault(ray_shoal.node_of(name), set()).add(int(agent))
        names.append(name)
    # One agent per node, the same for every job there, still running once the jobs are done.
    assert all(len(pids) == 1 for pids in seen.values()), seen
    agents = _agents(ray_shoal)
    assert {node: next(iter(pids)) for node, pids in seen.items()} == {
        node: pid for pid, node in agents.items() if node in seen
    }, agents
    # Each attempt's share of its node (a one-bundle placement group) is given back once it ends.
    deadline = time.monotonic() + 60
    while True:
        found = _ray_resources(ray_shoal)
        held = [n for n, state in found["slots"].items() if state != "REMOVED" and n.split("/")[2] in names]
        if not held and found["cpus"] == 2:
            break
        assert time.monotonic() < deadline, found
        time.sleep(1)


# -- distributed jobs on separate nodes (a placement group, one runner per node) -------------

ALLREDUCE = """
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")  # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from Azure's variables
value = torch.tensor([float(int(os.environ["RANK"]) + 1)])
dist.all_reduce(value)
print("rank", os.environ["RANK"], "node", os.environ["NODE_RANK"], "local", os.environ["LOCAL_RANK"],
      "of", os.environ["WORLD_SIZE"], "sum", int(value.item()), flush=True)
dist.destroy_process_group()
"""


def _require_torch() -> None:
    """The CPU build of torch in Shoal's venv (.ci/run installs it); skipped without, failed in CI."""
    try:
        import torch  # noqa: F401
    except ImportError:
        message = "torch is not installed (pip install torch==2.13.0, the CPU build): the gloo test does not run"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _rank_logs(ray_shoal: RayShoal, name: str, tmp_path: Path) -> dict[str, str]:
    out = tmp_path / ("dl-" + name)
    ray_shoal.cli("job", "download", "-n", name, "--download-path", str(out))
    return {p.name: p.read_text() for p in (out / "artifacts" / "user_logs").glob("std_log_process_*.txt")}


def _nodes_of(ray_shoal: RayShoal, job: str) -> set[str]:
    """Every worker node whose Shoal home holds a run folder of ``job``."""
    return {
        home.name.removesuffix("-home")
        for home in ray_shoal.cluster.root.glob("worker*-home")
        if any(p.name == job for p in home.glob("runs/*/*/*"))
    }


def test_a_pytorch_job_all_reduces_with_gloo_across_two_ray_nodes(ray_shoal, tmp_path):
    _require_torch()
    src = tmp_path / "src"
    src.mkdir()
    (src / "allreduce.py").write_text(ALLREDUCE)
    # The job runs the test's own interpreter (it has torch): a host environment is a clean venv.
    # GLOO_SOCKET_IFNAME: the test's network namespace has loopback only.
    path = write_job(
        tmp_path,
        f"""
        command: {sys.executable} allreduce.py
        code: ./src
        compute: azureml:cpu-cluster
        environment:
          image: python:3.11
        environment_variables:
          GLOO_SOCKET_IFNAME: lo
        distribution:
          type: pytorch
          process_count_per_instance: 1
        resources:
          instance_count: 2
        """,
    )
    name = ray_shoal.submit(path)
    job = wait_for(ray_shoal.cli, name, timeout=240)
    assert job["status"] == "Completed", job
    # One process per node (two per node would double torch's imports on the test's two cores;
    # tests/runtime/test_node_group.py checks the rank numbering of several per node).
    logs = _rank_logs(ray_shoal, name, tmp_path)
    lines = sorted(text.strip().splitlines()[-1] for text in logs.values())
    assert lines == ["rank 0 node 0 local 0 of 2 sum 3", "rank 1 node 1 local 0 of 2 sum 3"], logs
    # One runner per node: both worker nodes hold a run folder of the job.
    assert _nodes_of(ray_shoal, name) == {"worker0", "worker1"}


def test_tensorflow_workers_see_every_node_and_too_many_nodes_stay_queued(ray_shoal, tmp_path):
    # max_instances 4: the compute allows three nodes; the Ray cluster has two that fit.
    wide = "name: wide-cluster\ntype: amlcompute\nsize: Standard_DS1_v2\nmax_instances: 4\n"
    ray_shoal.cli("compute", "create", "--file", str(write_job(tmp_path, wide, "wide.yml")))
    three = write_job(
        tmp_path / "three",
        """
        command: echo never
        compute: azureml:wide-cluster
        environment:
          image: python:3.11
        distribution:
          type: pytorch
        resources:
          instance_count: 3
        """,
    )
    tf = write_job(
        tmp_path / "tf",
        """
        command: echo "config $TF_CONFIG"
        compute: azureml:cpu-cluster
        environment:
          image: python:3.11
        distribution:
          type: tensorflow
        resources:
          instance_count: 2
        """,
    )
    queued, tf_name = ray_shoal.submit(three), ray_shoal.submit(tf)
    job, reason = _queue_reason(ray_shoal, queued)
    assert job["status"] == "Queued"
    assert reason == "no 3 Ray nodes each offer 1 CPU and 3.5 GiB (Standard_DS1_v2); the cluster has 2"
    ray_shoal.cli("job", "cancel", "-n", queued)
    assert wait_for(ray_shoal.cli, tf_name, timeout=240)["status"] == "Completed"
    configs = {}
    for log in _rank_logs(ray_shoal, tf_name, tmp_path).values():
        config = json.loads(log.strip().split("config ", 1)[1])
        configs[config["task"]["index"]] = config
    assert sorted(configs) == [0, 1]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 2 and all(":" in w for w in workers), workers
    assert configs[1]["cluster"] == configs[0]["cluster"]
    assert _nodes_of(ray_shoal, tf_name) == {"worker0", "worker1"}
    assert wait_for(ray_shoal.cli, queued, timeout=30)["status"] == "Canceled"


def test_a_rank_failing_on_node_1_fails_the_job_naming_it(ray_shoal, tmp_path):
    marker = f"sleep 5{os.getpid() % 1000:03d}"
    path = write_job(
        tmp_path,
        f"""
        command: if [ "$NODE_RANK" = 1 ]; then sleep 1; exit 3; fi; {marker}
        compute: azureml:cpu-cluster
        environment:
          image: python:3.11
        distribution:
          type: pytorch
        resources:
          instance_count: 2
        """,
    )
    name = ray_shoal.submit(path)
    job = wait_for(ray_shoal.cli, name, timeout=240)
    assert job["status"] == "Failed", job
    assert job["error"]["code"] == "USER_ERROR", job["error"]
    assert job["error"]["message"].startswith("rank 1 on node 1 ("), job["error"]
    assert "exited with code 3" in job["error"]["message"]
    # Node 0's rank was stopped rather than left to sleep.
    deadline = time.monotonic() + 20
    while _user_processes(marker):
        assert time.monotonic() < deadline, "node 0's rank still runs after node 1 failed"
        time.sleep(0.3)


def test_an_mpi_job_on_two_nodes_sees_its_ranks_and_cancel_stops_both(ray_shoal, tmp_path):
    """Canceled by a server restarted meanwhile: it finds node 0's actor and the other node's by name."""
    marker = f"sleep 6{os.getpid() % 1000:03d}"
    path = write_job(
        tmp_path,
        f"""
        command: echo "ompi $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE node $OMPI_COMM_WORLD_NODE_RANK"; {marker}
        compute: azureml:cpu-cluster
        environment:
          image: python:3.11
        distribution:
          type: mpi
          process_count_per_instance: 1
        resources:
          instance_count: 2
        """,
    )
    name = ray_shoal.submit(path)
    deadline = time.monotonic() + 180
    while len(_user_processes(marker)) < 2:
        assert time.monotonic() < deadline, "the job's two ranks never both ran"
        time.sleep(0.3)
    assert _nodes_of(ray_shoal, name) == {"worker0", "worker1"}
    ray_shoal.cli("server", "stop")
    ray_shoal.cli("server", "start", "--detach", "--ray-address", ray_shoal.cluster.address)
    assert ray_shoal.json("job", "show", "-n", name)["status"] == "Running"
    ray_shoal.cli("job", "cancel", "-n", name)
    assert wait_for(ray_shoal.cli, name, timeout=60)["status"] == "Canceled"
    deadline = time.monotonic() + 20
    while _user_processes(marker):
        assert time.monotonic() < deadline, "a canceled node's rank still runs"
        time.sleep(0.3)
    lines = sorted(log.strip() for log in _rank_logs(ray_shoal, name, tmp_path).values())
    assert lines == ["ompi 0 of 2 node 0", "ompi 1 of 2 node 1"]


def test_outputs_written_on_every_node_end_up_in_the_jobs_output(ray_shoal, tmp_path):
    """As on Azure ML, where every node mounts the output: node 1's file is uploaded too."""
    path = write_job(
        tmp_path,
        """
        command: echo "written by rank $RANK" > ${{outputs.out}}/rank_$RANK.txt
        compute: azureml:cpu-cluster
        environment:
          image: python:3.11
        distribution:
          type: pytorch
        resources:
          instance_count: 2
        outputs:
          out:
            type: uri_folder
        """,
    )
    name = ray_shoal.submit(path)
    job = wait_for(ray_shoal.cli, name, timeout=240)
    assert job["status"] == "Completed", job
    assert _nodes_of(ray_shoal, name) == {"worker0", "worker1"}
    out = tmp_path / "dl"
    ray_shoal.cli("job", "download", "-n", name, "--output-name", "out", "--download-path", str(out))
    files = {p.name: p.read_text().strip() for p in (out / "named-outputs" / "out").iterdir()}
    assert files == {"rank_0.txt": "written by rank 0", "rank_1.txt": "written by rank 1"}, files


# Azure/azureml-examples (SHOAL_AZUREML_EXAMPLES, as tests/e2e/test_azureml_example_pipelines.py).
EXAMPLES = os.environ.get("SHOAL_AZUREML_EXAMPLES")
GPU_CLUSTER = "name: gpu-cluster\ntype: amlcompute\nsize: Standard_DS1_v2\nmax_instances: 2\n"


@pytest.mark.parametrize(
    ("example", "step", "expected"),
    [
        (
            "6a_tf_hello_world",
            "tf_job",
            {f"std_log_process_{i}.txt": f'"task": {{"type": "worker", "index": {i}}}' for i in range(2)},
        ),
        ("6b_pytorch_hello_world", "pytorch_job", {f"std_log_process_{r}.txt": f"RANK: {r}" for r in range(4)}),
    ],
)
def test_the_distributed_example_pipelines_print_their_ranks_on_two_nodes(ray_shoal, tmp_path, example, step, expected):
    """The examples' YAML unchanged but for the environment: their curated TensorFlow 2.16 and
    PyTorch 2.8 images would be built on the nodes from PyPI, which this module's network
    namespace cannot reach, and their commands only echo the variables Shoal sets."""
    if not EXAMPLES:
        pytest.skip("SHOAL_AZUREML_EXAMPLES is not set (a checkout of Azure/azureml-examples)")
    folder = Path(EXAMPLES) / "cli" / "jobs" / "pipelines-with-components" / "basics" / example
    # The examples name gpu-cluster; here it is a cluster of the module's CPU nodes.
    if "gpu-cluster" not in {c["name"] for c in ray_shoal.json("compute", "list")}:  # type: ignore[union-attr]
        ray_shoal.cli("compute", "create", "--file", str(write_job(tmp_path, GPU_CLUSTER, "gpu.yml")))
    pipeline = ray_shoal.cli(
        "job", "create", "--file", "pipeline.yml", "--query", "name", "-o", "tsv",
        "--set", "settings.force_rerun=True",
        "--set", f"jobs.{step}.environment=azureml:AzureML-Minimal@latest",
        cwd=folder,
    ).out.strip()  # fmt: skip
    job = wait_for(ray_shoal.cli, pipeline, timeout=300)
    children = ray_shoal.json("job", "list", "--parent-job-name", pipeline)
    assert job["status"] == "Completed", (job.get("error"), [(c["status"], c.get("error")) for c in children])
    [child] = children
    assert _nodes_of(ray_shoal, child["name"]) == {"worker0", "worker1"}
    logs = _rank_logs(ray_shoal, child["name"], tmp_path)
    assert set(logs) == set(expected), logs
    for log, text in expected.items():
        assert text in logs[log], (log, logs[log])


def test_a_worker_node_lost_mid_job_fails_the_job_naming_the_node(ray_shoal, tmp_path):
    """Last in this module: it takes a worker node away."""
    marker = f"sleep 4{os.getpid() % 1000:03d}"
    path = write_job(tmp_path, f"command: {marker}\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n")
    name = ray_shoal.submit(path)
    wait_for(ray_shoal.cli, name, ("Running",), timeout=120)
    node = ray_shoal.node_of(name)
    assert node in ("worker0", "worker1")
    ray_shoal.cluster.kill_node(ray_shoal.cluster.groups[1 + int(node[-1])])
    try:
        job = wait_for(ray_shoal.cli, name, timeout=120)
        assert job["status"] == "Failed", job
        assert job["error"]["code"] == "NODE_LOST", job["error"]
        node_id = (ray_shoal.cli.home / "runs" / "default" / name / "1" / "ray_node").read_text().strip()
        assert node_id in job["error"]["message"]
    finally:
        # On a real machine they went with it; here the job's command outlives its "node".
        for pid in _user_processes(marker):
            os.kill(pid, 9)


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _run_folders(ray_shoal: RayShoal, job: str) -> dict[str, Path]:
    """Each worker node's run folder of ``job`` (its first attempt), by the node's label."""
    found = {}
    for home in ray_shoal.cluster.root.glob("worker*-home"):
        for folder in home.glob(f"runs/*/*/{job}/1"):
            found[home.name.removesuffix("-home")] = folder
    return found


def test_a_worker_node_lost_mid_job_fails_a_two_node_job_naming_that_node(ray_shoal, tmp_path):
    """After the one-node case above: a node of its own joins first, so two nodes can hold the job
    whichever of the module's nodes that test took away (and one is left for the tests after)."""
    ray_shoal.cluster.add_worker("worker2")
    marker = f"sleep 7{os.getpid() % 1000:03d}"
    path = write_job(
        tmp_path,
        f"""
        command: echo "node $NODE_RANK up"; {marker}
        compute: azureml:cpu-cluster
        environment:
          image: python:3.11
        distribution:
          type: pytorch
        resources:
          instance_count: 2
        """,
    )
    name = ray_shoal.submit(path)
    try:
        deadline = time.monotonic() + 180
        while len(_user_processes(marker)) < 2:
            assert time.monotonic() < deadline, "the job's two ranks never both ran"
            time.sleep(0.3)
        # Node 1 of the job: the worker whose run folder holds rank 1's log.
        folders = _run_folders(ray_shoal, name)
        label = next(n for n, f in folders.items() if (f / "user_logs" / "std_log_process_1.txt").exists())
        table = json.loads((folders[label] / "group.json").read_text())["nodes"]
        node_id = table[1]["node_id"]
        ray_shoal.cluster.kill_worker(label)
        lost_at = time.monotonic()
        job = wait_for(ray_shoal.cli, name, timeout=120)
        assert job["status"] == "Failed", job
        assert job["error"]["code"] == "NODE_LOST", job["error"]
        message = job["error"]["message"]
        assert message.startswith("node 1 (") and f"Ray node id {node_id}" in message, message
        print(f"the lost node failed the job {time.monotonic() - lost_at:.1f} s after it went")
        # Node 0's rank was stopped, not left running for a peer that will never come back.
        deadline = time.monotonic() + 20
        while any(_environ(pid).get("NODE_RANK") == "0" for pid in _user_processes(marker)):
            assert time.monotonic() < deadline, "node 0's rank still runs after node 1 was lost"
            time.sleep(0.3)
    finally:
        # On a real machine the lost node's rank went with it; here it outlives its "node".
        for pid in _user_processes(marker):
            os.kill(pid, 9)


def test_list_nodes_shows_the_ray_nodes_holding_the_clusters_jobs(ray_shoal, tmp_path):
    marker = f"sleep 5{os.getpid() % 1000:03d}"
    path = write_job(tmp_path, f"command: {marker}\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n")
    name = ray_shoal.submit(path)
    try:
        wait_for(ray_shoal.cli, name, ("Running",), timeout=120)
        nodes = ray_shoal.json("compute", "list-nodes", "-n", "cpu-cluster")
        node_id = (ray_shoal.cli.home / "runs" / "default" / name / "1" / "ray_node").read_text().strip()
        assert [n["node_id"] for n in nodes] == [node_id], nodes
        node = nodes[0]
        assert node["node_state"] == "running" and node["run_id"] == name and node["run_ids"] == [name]
        assert node["private_ip_address"] == "127.0.0.1" and isinstance(node["port"], int)
        assert node["resources"] == {"cpus": 1.0, "memory_gib": 4.0, "gpus": 0.0}
        table = ray_shoal.cli("compute", "list-nodes", "-n", "cpu-cluster", "-o", "table").out
        assert node_id in table and name in table and "running" in table
        # No autoscaler in this cluster (plain `ray start`): the hints are recorded, and said so.
        shown = ray_shoal.json("compute", "show", "-n", "cpu-cluster")
        assert shown["min_instances"] == 0 and shown["idle_time_before_scale_down"] == 120
        assert shown["properties"]["shoal.autoscaler"].startswith("none (min_instances"), shown
    finally:
        ray_shoal.cli("job", "cancel", "-n", name, check=False)
    assert wait_for(ray_shoal.cli, name, timeout=60)["status"] == "Canceled"
    assert ray_shoal.json("compute", "list-nodes", "-n", "cpu-cluster") == []


def _mlflow(cli: Cli, path: str, body: dict) -> dict:
    info = json.loads((cli.home / "server.json").read_text())
    token = (cli.home / "token").read_text().strip()
    response = httpx.post(
        f"{info['url']}/api/v1/workspaces/default/mlflow/api/2.0/mlflow/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def test_the_ray_head_lost_fails_ray_jobs_and_the_server_serves_the_rest(ray_shoal, tmp_path):
    """Last in this module: it takes the Ray head away."""
    marker = f"sleep 6{os.getpid() % 1000:03d}"
    running = ray_shoal.submit(
        write_job(
            tmp_path / "a", f"command: {marker}\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n"
        )
    )
    wait_for(ray_shoal.cli, running, ("Running",), timeout=120)
    ray_shoal.cluster.kill_node(ray_shoal.cluster.groups[0])
    lost_at = time.monotonic()
    time.sleep(1.5)  # the server's probe sees the head gone (every 0.5 s) before the next job comes
    try:
        queued = ray_shoal.submit(
            write_job(
                tmp_path / "b",
                "command: echo never\ncompute: azureml:cpu-cluster\nenvironment:\n  image: python:3.11\n",
            )
        )
        job = wait_for(ray_shoal.cli, running, timeout=90)
        assert job["status"] == "Failed", job
        assert job["error"]["code"] == "RAY_HEAD_LOST", job["error"]
        assert ray_shoal.cluster.address in job["error"]["message"]
        assert time.monotonic() - lost_at < 60
        # The queued Ray job waits, saying why.
        shown = ray_shoal.json("job", "show", "-n", queued)
        assert shown["status"] == "Queued"
        assert shown["properties"]["shoal.queue_reason"].startswith(
            f"cannot reach the Ray cluster at {ray_shoal.cluster.address}"
        ), shown["properties"]
        # Everything else still works: listing, a job on this machine, MLflow.
        assert {j["name"] for j in ray_shoal.json("job", "list", "--all-results")} >= {running, queued}
        local = write_job(tmp_path / "c", "command: echo still-serving\nenvironment:\n  image: python:3.11\n")
        result = ray_shoal.cli("job", "create", "--file", str(local), "--stream", check=False)
        assert result.code == 0 and "still-serving" in result.out, result.out + result.err
        run = _mlflow(ray_shoal.cli, "runs/create", {"experiment_id": "0"})["run"]["info"]["run_id"]
        _mlflow(ray_shoal.cli, "runs/log-metric", {"run_id": run, "key": "k", "value": 1.0, "timestamp": 0, "step": 0})
        # The running job's command was ended through its actor (no head needed for that).
        deadline = time.monotonic() + 30
        while _user_processes(marker):
            assert time.monotonic() < deadline, "the lost job's command still runs"
            time.sleep(0.5)
        ray_shoal.cli("job", "cancel", "-n", queued)
        assert wait_for(ray_shoal.cli, queued, timeout=30)["status"] == "Canceled"
    finally:
        for pid in _user_processes(marker):
            os.kill(pid, 9)
