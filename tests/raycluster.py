"""A real Ray cluster for the tests: a head and worker nodes as separate ``ray start`` processes,
inside a network namespace this test process makes for itself.

Ray ignores ``--node-ip-address 127.0.0.1`` for a multi-node cluster and talks over the
machine's primary address; in a namespace whose only interface is loopback it falls back to
127.0.0.1, so no traffic of the cluster (nor of the Shoal server the test starts in the same
namespace) uses any other address. ``enter_network_namespace`` moves this process (its main
thread and every process or thread started from it afterwards) into a new namespace with
loopback up; ``leave`` moves it back, so the test modules after it see the machine's network.

Every Ray process of a node is in the process group of its ``ray start --block`` (Ray's own
processes share their parent's fate), which the cluster ends by that group's id: never with
``ray stop``, which would stop other Ray clusters on the machine too.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CLONE_NEWNET = 0x40000000
GIB = 1024**3


def ray_installed() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def require_ray() -> None:
    """Skip with a message where Ray is not installed; under CI=true that is a failure."""
    if ray_installed():
        return
    message = "Ray is not installed (pip install 'shoal[ray]'): the Ray backend tests do not run"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class NetworkNamespace:
    """This process in a new network namespace with loopback up, until ``leave``."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        if self._libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            os.close(self._home_fd)
            raise OSError(errno, f"unshare(CLONE_NEWNET) failed: {os.strerror(errno)}")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    def leave(self) -> None:
        if self._libc.setns(self._home_fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns back to the machine's network failed: {os.strerror(errno)}")
        os.close(self._home_fd)


def enter_network_namespace() -> NetworkNamespace:
    try:
        return NetworkNamespace()
    except OSError as exc:
        message = f"cannot make a network namespace for the Ray cluster ({exc}); it needs CAP_SYS_ADMIN"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


# ``ray start`` with more patience for a loaded machine (see that file).
RAY_START = Path(__file__).with_name("ray_start.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """``ray start --head`` (no CPUs: jobs never land on it) and ``workers`` worker nodes."""

    def __init__(self, workers: int = 2, cpus: float = 1, memory_gib: float = 4, env: dict[str, str] | None = None):
        # Unix socket paths must stay short: a folder right under /tmp.
        self.root = Path(tempfile.mkdtemp(prefix="shray-", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.client_port = 0
        self.workers, self.cpus, self.memory_gib = workers, cpus, memory_gib
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            **(env or {}),
        }
        self.groups: list[int] = []
        self.nodes: dict[str, int] = {}  # a node's label ("head", "worker0", …) -> its process group
        self._starters: list[subprocess.Popen[bytes]] = []

    def start(self) -> RayCluster:
        head = ["--head", "--port", str(self.port), "--num-cpus", "0", "--temp-dir", str(self.root / "t")]
        self.client_port = _free_port()
        head += [
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--ray-client-server-port",
            str(self.client_port),
        ]
        self._start_node("head", head)
        for i in range(self.workers):
            self.add_worker(f"worker{i}")
        self.wait_for_nodes(self.workers + 1)
        return self

    def add_worker(self, label: str) -> int:
        # One log monitor per host, as Ray advises: the head's. Shoal ships its runners' logs
        # itself, and each worker node's monitor would cost CPU the tests share.
        return self._start_node(
            label,
            ["--address", self.address, "--num-cpus", str(self.cpus), "--memory", str(int(self.memory_gib * GIB)),
             "--include-log-monitor=false"],
        )  # fmt: skip

    def _start_node(self, label: str, args: list[str], tries: int = 5) -> int:
        """``ray start`` returns once its node is up; the node's processes stay in the process
        group it led (its id is returned, and ended by ``stop``). Ray gives a raylet 30 s to
        register, and a raylet 15 s for its agents to write their ports (not configurable in
        Ray 2.60), which a loaded machine can miss while the agents import: a node that did not
        come up is ended and started again (the imports are faster once the files are cached).
        ``ray_start.py`` starts it at a higher CPU priority, and exits as soon as its raylet did."""
        for attempt in range(1, tries + 1):
            with open(self.root / f"{label}.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, str(RAY_START), "start", "--node-ip-address", "127.0.0.1", *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**self.env, "SHOAL_RAY_NODE_HOME": str(self.root / f"{label}-home")},
                    start_new_session=True,
                )
            self.groups.append(proc.pid)  # ended by stop() even if the test ends while it starts
            self._starters.append(proc)
            try:
                code = proc.wait(timeout=240)
            except subprocess.TimeoutExpired:
                code = None
            if code == 0:
                self.nodes[label] = proc.pid
                _usual_priority(proc.pid)
                return proc.pid
            self.kill_node(proc.pid)
            proc.wait()  # reaped: no zombie left in the test process (the contract tests count them)
            self.groups.remove(proc.pid)
            if attempt == tries:
                raise AssertionError(f"ray start of the {label} node failed ({code})\n{self.logs()}")
        raise AssertionError("unreachable")

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        code = (
            "import ray, sys, time\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"deadline = time.monotonic() + {timeout}\n"
            f"while sum(1 for n in ray.nodes() if n['Alive']) < {count}:\n"
            "    if time.monotonic() > deadline: sys.exit('nodes did not join')\n"
            "    time.sleep(0.2)\n"
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                done = subprocess.run(
                    [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired as exc:
                raise AssertionError(f"the Ray cluster did not come up\n{self.logs()}") from exc
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the Ray cluster did not come up: {done.stderr[-2000:]}\n{self.logs()}")
            time.sleep(1)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.root.glob("*.log"))

    def kill_node(self, group: int, sig: int = signal.SIGKILL) -> None:
        """End one node: every process of its group (its raylet, its workers)."""
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass

    def kill_worker(self, label: str) -> None:
        """A worker node lost as a machine is: its raylet and every process of its group, SIGKILL."""
        self.kill_node(self.nodes.pop(label))

    def stop(self) -> None:
        """Every process of the cluster, SIGKILL: its nodes' process groups, and the Ray workers,
        which sit in sessions of their own (found by their environment). A
        cluster of the tests has nothing to save: SIGTERM first, as this did, cost every stop
        10 to 15 s (a raylet takes ~10 s to end its workers, and the GCS outlived 13 s)."""
        for group in reversed(self.groups):
            self.kill_node(group)
        for pid in _of_cluster(self.root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self._starters:  # our own children: reaped, never left as zombies
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def _of_cluster(root: Path) -> list[int]:
    """The processes started with one of this cluster's node homes in their environment (every
    process of its nodes: Ray renames its workers, so their command lines do not say)."""
    marker = f"SHOAL_RAY_NODE_HOME={root}/".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes() and int(environ.parent.name) != os.getpid():
                found.append(int(environ.parent.name))
        except (OSError, ValueError):
            continue
    return found


def _usual_priority(group: int) -> None:
    """A node up: its processes, and their session, back to the usual priority (``ray_start.py``
    raised both for its start)."""
    try:
        os.setpriority(os.PRIO_PGRP, group, 0)
    except OSError:
        pass
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == group:
                (stat.parent / "autogroup").write_text("0")  # the session's, one member is enough
                return
        except (OSError, ValueError):
            continue
