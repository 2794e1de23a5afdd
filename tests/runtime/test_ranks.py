"""The runner's process layer, without a server: rank planning and the user's process groups."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from shoal.runtime import process
from shoal.runtime.process import Rank, UserProcesses, plan_ranks

# -- plan_ranks --------------------------------------------------------------------------------


def test_no_distribution_is_one_process_logging_to_std_log(tmp_path):
    for distribution in (None, {}, {"type": None}):
        ranks = plan_ranks(distribution, {"instance_count": 3}, tmp_path)
        assert ranks == [Rank({}, tmp_path / "std_log.txt")]


def test_pytorch_ranks(tmp_path):
    ranks = plan_ranks({"type": "pytorch", "process_count_per_instance": 2}, {"instance_count": 2}, tmp_path)
    assert len(ranks) == 4
    envs = [r.env for r in ranks]
    assert [e["RANK"] for e in envs] == ["0", "1", "2", "3"]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "0", "1"]
    assert [e["NODE_RANK"] for e in envs] == ["0", "0", "1", "1"]
    assert {e["WORLD_SIZE"] for e in envs} == {"4"}
    assert {e["LOCAL_WORLD_SIZE"] for e in envs} == {"2"}
    assert {e["MASTER_ADDR"] for e in envs} == {"127.0.0.1"}
    ports = {e["MASTER_PORT"] for e in envs}
    assert len(ports) == 1 and 0 < int(ports.pop()) < 65536
    assert [r.log for r in ranks] == [tmp_path / f"std_log_process_{i}.txt" for i in range(4)]


def test_pytorch_defaults_to_one_process_per_node(tmp_path):
    ranks = plan_ranks({"type": "pytorch"}, {}, tmp_path)
    assert [(r.env["RANK"], r.env["WORLD_SIZE"]) for r in ranks] == [("0", "1")]
    assert ranks[0].log == tmp_path / "std_log_process_0.txt"


def test_mpi_ranks(tmp_path):
    ranks = plan_ranks({"type": "mpi", "process_count_per_instance": 3}, {"instance_count": 2}, tmp_path)
    assert len(ranks) == 6
    envs = [r.env for r in ranks]
    assert [e["OMPI_COMM_WORLD_RANK"] for e in envs] == [str(i) for i in range(6)]
    assert [e["OMPI_COMM_WORLD_LOCAL_RANK"] for e in envs] == ["0", "1", "2"] * 2
    assert [e["OMPI_COMM_WORLD_NODE_RANK"] for e in envs] == ["0"] * 3 + ["1"] * 3
    assert {e["OMPI_COMM_WORLD_SIZE"] for e in envs} == {"6"}
    assert {e["OMPI_COMM_WORLD_LOCAL_SIZE"] for e in envs} == {"3"}
    assert all("RANK" not in e and "MASTER_PORT" not in e for e in envs)
    assert len(plan_ranks({"type": "mpi", "process_count_per_instance": None}, {"instance_count": 2}, tmp_path)) == 2


def test_tensorflow_workers_and_parameter_servers(tmp_path):
    ranks = plan_ranks(
        {"type": "tensorflow", "worker_count": 2, "parameter_server_count": 1}, {"instance_count": 1}, tmp_path
    )
    configs = [json.loads(r.env["TF_CONFIG"]) for r in ranks]
    assert [c["task"] for c in configs] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
        {"type": "ps", "index": 0},
    ]
    cluster = configs[0]["cluster"]
    assert all(c["cluster"] == cluster for c in configs)
    assert set(cluster) == {"worker", "ps"} and len(cluster["worker"]) == 2 and len(cluster["ps"]) == 1
    assert all(addr.startswith("127.0.0.1:") for addr in cluster["worker"] + cluster["ps"])
    assert {c["environment"] for c in configs} == {"cloud"}
    assert [r.log.name for r in ranks] == [f"std_log_process_{i}.txt" for i in range(3)]

    by_nodes = plan_ranks({"type": "tensorflow"}, {"instance_count": 3}, tmp_path)
    configs = [json.loads(r.env["TF_CONFIG"]) for r in by_nodes]
    assert [c["task"]["index"] for c in configs] == [0, 1, 2]
    assert "ps" not in configs[0]["cluster"]


@pytest.mark.parametrize("kind", ["ray", "horovod"])
def test_unknown_distribution_is_an_error(tmp_path, kind):
    with pytest.raises(ValueError, match="not supported"):
        plan_ranks({"type": kind}, {}, tmp_path)


# -- UserProcesses -----------------------------------------------------------------------------


def running(pid: int) -> bool:
    """Alive and not a zombie (in a container, PID 1 may never reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for_pids(path: Path, count: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = path.read_text().split()
            if len(pids) >= count:
                return [int(p) for p in pids]
        time.sleep(0.02)
    raise AssertionError(f"{path} never listed {count} pids")


def env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}


def run(command: str, tmp_path: Path, ranks: list[Rank], **wait) -> tuple[UserProcesses, int, float]:
    procs = UserProcesses(command, tmp_path, env(), ranks)
    started = time.monotonic()
    procs.start()
    code = procs.wait(timeout=wait.get("timeout"), should_stop=wait.get("stop") or threading.Event())
    return procs, code, time.monotonic() - started


def test_ranks_run_in_the_working_folder_with_their_environment(tmp_path):
    ranks = plan_ranks({"type": "pytorch", "process_count_per_instance": 2}, {}, tmp_path / "logs")
    procs, code, _ = run('echo "rank $RANK of $WORLD_SIZE in $(pwd)"; echo err >&2', tmp_path, ranks)
    assert code == 0 and procs.stop_reason is None
    for i in range(2):
        lines = (tmp_path / "logs" / f"std_log_process_{i}.txt").read_text().splitlines()
        assert lines == [f"rank {i} of 2 in {tmp_path}", "err"]


def test_a_single_failing_process_gives_its_exit_code(tmp_path):
    procs, code, _ = run("echo about to fail; exit 3", tmp_path, plan_ranks(None, {}, tmp_path))
    assert code == 3 and procs.stop_reason is None
    assert (tmp_path / "std_log.txt").read_text() == "about to fail\n"


def test_a_failing_rank_fails_the_job_and_stops_its_peers(tmp_path):
    ranks = plan_ranks({"type": "pytorch", "process_count_per_instance": 2}, {}, tmp_path / "logs")
    command = f'echo $$ >> {tmp_path}/pids; if [ "$RANK" = 0 ]; then sleep 0.3; exit 2; fi; exec sleep 30'
    procs, code, took = run(command, tmp_path, ranks)
    assert code == 2 and procs.stop_reason == "rank failed"
    assert took < 5
    time.sleep(0.1)
    assert not any(running(p) for p in wait_for_pids(tmp_path / "pids", 2))


def test_the_failing_ranks_exit_code_is_reported_not_its_stopped_peers(tmp_path):
    ranks = plan_ranks({"type": "pytorch", "process_count_per_instance": 2}, {}, tmp_path / "logs")
    procs, code, took = run('if [ "$RANK" = 1 ]; then exit 2; fi; sleep 30', tmp_path, ranks)
    assert procs.stop_reason == "rank failed" and took < 5
    assert code == 2


def test_timeout_stops_the_process_group(tmp_path):
    pids = tmp_path / "pids"
    command = f"sleep 30 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    procs, code, took = run(command, tmp_path, plan_ranks(None, {}, tmp_path), timeout=1.0)
    assert procs.stop_reason == "timeout"
    assert code != 0 and 0.9 < took < 5
    time.sleep(0.1)
    for pid in wait_for_pids(pids, 2):
        assert not running(pid), f"process {pid} outlived the timeout"


def test_children_that_ignore_sigterm_are_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(process, "GRACE_SECONDS", 0.5)
    pids = tmp_path / "pids"
    # The shell itself ignores SIGTERM too, so only the SIGKILL after the grace period ends it.
    command = f"trap '' TERM; sleep 30 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    procs, _, took = run(command, tmp_path, plan_ranks(None, {}, tmp_path), timeout=0.5)
    assert procs.stop_reason == "timeout" and took < 5
    time.sleep(0.1)
    for pid in wait_for_pids(pids, 2):
        assert not running(pid), f"process {pid} ignored SIGTERM and survived the SIGKILL"


def test_cancel_through_the_event(tmp_path):
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    try:
        ranks = plan_ranks({"type": "mpi", "process_count_per_instance": 2}, {}, tmp_path / "logs")
        procs, code, took = run(f"echo $$ >> {tmp_path}/pids; sleep 30", tmp_path, ranks, stop=stop)
    finally:
        timer.cancel()
    assert procs.stop_reason == "canceled" and code != 0 and took < 5
    time.sleep(0.1)
    assert not any(running(p) for p in wait_for_pids(tmp_path / "pids", 2))


def test_the_first_stop_reason_wins(tmp_path):
    procs = UserProcesses("sleep 30", tmp_path, env(), plan_ranks(None, {}, tmp_path))
    procs.start()
    procs.stop("timeout")
    procs.stop("canceled")
    assert procs.stop_reason == "timeout"
    assert procs.wait(timeout=None, should_stop=threading.Event()) != 0
