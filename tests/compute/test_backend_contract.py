"""The compute backend contract (``shoal.compute.base``), checked on every registered backend.

Real processes, no mocks and no server: each attempt is submitted with ``RunnerAttempt.argv``
set to a runner-like script (``FAKE_RUNNER``) that the backend starts in place of
``python -m shoal.runtime`` with the same environment, run folder and log. Like the real runner,
the script starts its job's commands in process groups of their own and writes their ids to
``user_pgids`` in ``$SHOAL_RUN_DIR``; it also prints what it sees to its log. The tests use the
contract only (submit, poll, cancel, end_user_processes, reap, logs_location, capabilities), so
a new backend joins by being registered; ``BACKEND_CONFIG`` holds what it needs besides ``home``.

The ``ray`` backend runs against a real Ray cluster (a head and two worker nodes, in a network
namespace of this test process: ``tests/raycluster.py``), started once for this module; without
Ray installed its tests are skipped with a message (a failure under CI=true).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.compute import (
    AttemptKey,
    Capabilities,
    ComputeBackend,
    RunnerAttempt,
    available_backends,
    get_backend,
)
from shoal.errors import UnsupportedError
from tests.raycluster import RayCluster, enter_network_namespace, require_ray

# Per backend, constructor settings besides ``home`` (every backend takes ``home``).
BACKEND_CONFIG: dict[str, dict[str, Any]] = {}

FAKE_RUNNER = r"""
import os, signal, subprocess, sys, time
from pathlib import Path

if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("runner-like started", " ".join(sys.argv[1:]), flush=True)
for key in ("SHOAL_SERVER_URL", "SHOAL_JOB_TOKEN", "FAKE_EXTRA", "SHOAL_LEAK"):
    print(f"{key}={os.environ.get(key, '')}", flush=True)
handed = Path(os.environ["SHOAL_RUN_DIR"], "run_spec.json")
print("RUN_SPEC=" + (handed.read_text() if handed.exists() else ""), flush=True)
groups = [subprocess.Popen(["sleep", "120"], start_new_session=True) for _ in range(int(os.environ["FAKE_GROUPS"]))]
Path(os.environ["SHOAL_RUN_DIR"], "user_pgids").write_text("\n".join(str(g.pid) for g in groups))
print("groups", *[g.pid for g in groups], flush=True)
time.sleep(float(os.environ["FAKE_LIFE"]))
print("runner-like done", flush=True)
"""


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ended(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie that init has yet to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def zombie_children() -> list[int]:
    """This test process's children that exited and were never reaped."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(proc.name))
    return found


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


class Harness:
    """One backend, with the attempts a test submitted: ended (forced) when the test ends.

    ``local`` runs twice: ``warm`` (every runner forked by its warm process, checked at each
    submit) and ``cold`` (``warm=False``: every runner a new process)."""

    def __init__(self, name: str, home: Path, variant: str = "") -> None:
        self.name = name
        self.home = home
        self.variant = variant
        self.backend: ComputeBackend = self.new_backend()
        if variant == "warm":
            assert self.backend.warm_up(timeout=60), "the warm runner did not get ready"  # type: ignore[attr-defined]
        self.submitted: list[tuple[str, RunnerAttempt]] = []
        self._count = 0

    def new_backend(self) -> ComputeBackend:
        """A fresh instance, as a restarted server would build it."""
        config = dict(BACKEND_CONFIG.get(self.name, {}))
        if self.variant:
            config["warm"] = self.variant == "warm"
        return get_backend(self.name, home=self.home, **config)

    def submit(
        self,
        *,
        groups: int = 1,
        life: float = 120,
        ignore_term: bool = False,
        nodes: int = 1,
        run_spec: dict[str, Any] | None = None,
    ) -> tuple[str, RunnerAttempt]:
        self._count += 1
        job = f"job_{self._count}"
        env = {"FAKE_GROUPS": str(groups), "FAKE_LIFE": str(life), "FAKE_EXTRA": "extra-value"}
        if ignore_term:
            env["FAKE_IGNORE_TERM"] = "1"
        # The runner's usual arguments follow the script, so it looks like a runner to `ps`.
        argv = (sys.executable, "-c", FAKE_RUNNER, "-m", "shoal.runtime", "--workspace", "ws", "--job", job)
        attempt = RunnerAttempt(
            "ws",
            job,
            1,
            server_url="http://127.0.0.1:9/",
            token=f"token-for-{job}",
            env=env,
            nodes=nodes,
            argv=(*argv, "--attempt", "1"),
            run_spec=run_spec,
        )
        handle = self.backend.submit(attempt)
        self.submitted.append((handle, attempt))
        if self.variant:
            warm = self.backend._warm  # type: ignore[attr-defined]
            forked = warm is not None and parent_of(int(handle)) == warm.proc.pid
            assert forked == (self.variant == "warm"), f"{self.variant} start expected"
        return handle, attempt

    def log(self, attempt: AttemptKey) -> str:
        try:
            return Path(self.backend.logs_location(attempt)).read_text()
        except FileNotFoundError:
            return ""

    def groups(self, attempt: AttemptKey, count: int) -> list[int]:
        """The process groups the runner-like script started, once it has started them."""
        # A log copied from another node arrives as the backend sees it grow (poll).
        wait_until(
            lambda: self.backend.poll(self.handle_of(attempt)) and "groups" in self.log(attempt),
            timeout=60,
            what="the runner's process groups",
        )
        line = next(line for line in self.log(attempt).splitlines() if line.startswith("groups"))
        pgids = [int(p) for p in line.split()[1:]]
        assert len(pgids) == count
        return pgids

    def handle_of(self, attempt: AttemptKey) -> str:
        return next(h for h, a in self.submitted if a.key() == attempt.key())

    def close(self) -> None:
        for handle, attempt in self.submitted:
            self.backend.cancel(handle, attempt, force=True)
            self.backend.end_user_processes(attempt)
        for handle, _ in self.submitted:
            wait_until(lambda h=handle: not self.backend.poll(h), what="the runner to end")
        self.backend.reap()
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """One small Ray cluster for this module's ``ray`` tests, in a network namespace."""
    require_ray()
    netns = enter_network_namespace()
    cluster = RayCluster(workers=2, cpus=1)
    try:
        cluster.start()
        yield cluster
    finally:
        import ray

        ray.shutdown()
        cluster.stop()
        netns.leave()


# Backends by name; ``local`` as its two ways of starting runners.
VARIANTS = {"local": ("warm", "cold")}


# A Ray cluster takes minutes to start on a loaded machine: the first ``ray`` test pays for it.
@pytest.fixture(
    params=[
        pytest.param((n, v), id=f"{n}-{v}" if v else n, marks=pytest.mark.timeout(900) if n == "ray" else ())
        for n in available_backends()
        for v in VARIANTS.get(n, ("",))
    ]
)
def harness(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    name, variant = request.param
    if name == "ray":
        BACKEND_CONFIG["ray"] = {"address": request.getfixturevalue("ray_cluster").address}
    # A setting of the "server" that must not reach its runners.
    monkeypatch.setenv("SHOAL_LEAK", "server-only")
    h = Harness(name, tmp_path / "home", variant)
    try:
        yield h
    finally:
        h.close()


def test_every_backend_meets_the_contract_and_states_sane_capabilities(harness: Harness) -> None:
    backend = harness.backend
    assert isinstance(backend, ComputeBackend)
    assert backend.name == harness.name
    caps = backend.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.max_nodes is None or (isinstance(caps.max_nodes, int) and caps.max_nodes >= 1)
    assert isinstance(caps.multi_node, bool) and isinstance(caps.survives_restart, bool)
    if caps.multi_node:
        assert caps.max_nodes is None or caps.max_nodes > 1


def test_a_submitted_runner_lives_logs_and_gets_its_environment(harness: Harness) -> None:
    # Two nodes where the backend allows them (ranks on one host, or separate nodes).
    handle, attempt = harness.submit(nodes=2 if (harness.backend.capabilities.max_nodes or 2) >= 2 else 1)
    assert isinstance(handle, str)
    assert harness.backend.poll(handle)
    log_path = Path(harness.backend.logs_location(attempt))
    wait_until(
        lambda: harness.backend.poll(handle) and "FAKE_EXTRA" in harness.log(attempt),
        timeout=60,
        what="the runner's output in its log",
    )
    assert log_path.is_file()
    log = harness.log(attempt)
    assert "runner-like started -m shoal.runtime --workspace ws --job job_1 --attempt 1" in log
    assert "SHOAL_SERVER_URL=http://127.0.0.1:9/" in log
    assert "SHOAL_JOB_TOKEN=token-for-job_1" in log
    assert "FAKE_EXTRA=extra-value" in log
    assert "SHOAL_LEAK=\n" in log, "the server's own SHOAL_* settings must not reach the runner"
    # Another attempt of another job has a log of its own.
    _, other = harness.submit()
    assert Path(harness.backend.logs_location(other)) != log_path


def test_the_run_spec_handed_with_an_attempt_waits_in_its_run_folder(harness: Harness) -> None:
    # The dispatcher hands each attempt's run spec to its backend: the runner finds it in its run
    # folder and starts without asking the server (shoal.runtime reads it, then removes it).
    spec = {"job": "job_1", "attempt": 1, "command": "echo handed", "inline": {"inputs": {}}}
    _, attempt = harness.submit(run_spec=spec)
    harness.groups(attempt, 1)  # its output is in its log (copied as the backend polls)
    line = next(x for x in harness.log(attempt).splitlines() if x.startswith("RUN_SPEC="))
    assert json.loads(line.removeprefix("RUN_SPEC=")) == spec
    # Without one, there is no file: the runner asks the server.
    _, other = harness.submit()
    harness.groups(other, 1)
    assert "RUN_SPEC=\n" in harness.log(other)


def test_a_runner_that_reported_its_outcome_gives_back_its_share_and_lives_on(harness: Harness) -> None:
    # After its job's outcome a runner only tidies up (at the lowest priority): a backend that
    # holds something other jobs wait for gives it back then (Ray: the node's share, a placement
    # group), while the runner itself lives on, still polled, its log still copied.
    handle, attempt = harness.submit()
    harness.groups(attempt, 1)
    reported = getattr(harness.backend, "outcome_reported", None)
    if harness.name != "ray":
        assert reported is None  # the local backend reserves nothing per runner
        return
    assert reported is not None
    import ray

    name = str(handle).split(":", 1)[1]
    slot = harness.backend.agents.find_slot(name)  # type: ignore[attr-defined]
    assert slot is not None and ray.util.placement_group_table(slot)["state"] == "CREATED"
    reported(handle)
    assert ray.util.placement_group_table(slot)["state"] == "REMOVED"
    assert harness.backend.poll(handle)  # the runner lives on
    reported(handle)  # said twice: nothing more happens
    assert harness.backend.poll(handle)


def test_cancel_stops_the_runner_and_end_user_processes_ends_what_it_left(harness: Harness) -> None:
    handle, attempt = harness.submit(groups=2)
    pgids = harness.groups(attempt, 2)
    harness.backend.cancel(handle, attempt)  # SIGTERM: this runner-like script does not trap it
    wait_until(lambda: not harness.backend.poll(handle), what="the canceled runner to end")
    # A plain cancel leaves the job's process groups to the runner; this one left them behind.
    assert not any(ended(p) for p in pgids)
    harness.backend.end_user_processes(attempt)
    wait_until(lambda: all(ended(p) for p in pgids), what="the groups a dead runner left to end")
    harness.backend.cancel(handle, attempt)  # a runner already gone: no error
    harness.backend.cancel(handle, attempt, force=True)


def test_force_cancel_ends_a_runner_that_ignores_sigterm_and_its_process_groups(harness: Harness) -> None:
    handle, attempt = harness.submit(groups=2, ignore_term=True)
    pgids = harness.groups(attempt, 2)
    harness.backend.cancel(handle, attempt)
    time.sleep(0.5)
    assert harness.backend.poll(handle), "SIGTERM ignored: the runner must still be alive"
    harness.backend.cancel(handle, attempt, force=True)
    wait_until(lambda: not harness.backend.poll(handle), what="the force-canceled runner to end")
    wait_until(lambda: all(ended(p) for p in pgids), what="the runner's process groups to end")


def test_a_runner_that_exits_is_reported_dead_and_reaped(harness: Harness) -> None:
    handle, attempt = harness.submit(groups=0, life=0)
    wait_until(lambda: not harness.backend.poll(handle), timeout=60, what="the finished runner to be reported dead")
    assert "runner-like done" in harness.log(attempt), "its whole log is there once it is reported dead"
    harness.backend.end_user_processes(attempt)  # nothing left behind: no error


def test_reap_leaves_no_zombies(harness: Harness) -> None:
    submitted = [harness.submit(groups=0, life=0) for _ in range(3)]
    for handle, _ in submitted:
        wait_until(lambda h=handle: not harness.backend.poll(h), timeout=60, what="the runners to finish")
    time.sleep(0.3)  # their exits reach this process
    harness.backend.reap()
    assert zombie_children() == []


def test_a_process_that_is_no_runner_is_reported_dead(harness: Harness) -> None:
    """A handle the backend did not issue, naming a live process that is no runner (a pid
    recycled after a restart), is dead; so is a number that names no process at all."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        assert not harness.new_backend().poll(str(other.pid))
        assert not harness.backend.poll(str(other.pid))
        assert not harness.backend.poll(f"{harness.name}:no-such-runner")
    finally:
        other.kill()
        other.wait()
    assert not harness.backend.poll(str(other.pid))


def test_a_runner_outlives_its_backend_where_the_backend_says_so(harness: Harness) -> None:
    if not harness.backend.capabilities.survives_restart:
        pytest.skip(f"{harness.name}: runners do not survive a server restart")
    handle, attempt = harness.submit(groups=1)
    pgids = harness.groups(attempt, 1)
    restarted = harness.new_backend()  # what a restarted server builds; it started nothing
    assert restarted.poll(handle)
    restarted.cancel(handle, attempt, force=True)
    wait_until(lambda: not harness.backend.poll(handle), what="the runner to end")
    wait_until(lambda: all(ended(p) for p in pgids), what="its process groups to end")
    assert not restarted.poll(handle)


def test_an_unknown_backend_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError) as caught:
        get_backend("no-such-backend", home=tmp_path)
    message = str(caught.value)
    assert "no-such-backend" in message
    for name in available_backends():
        assert name in message
    assert "local" in available_backends()


def test_backends_never_import_the_store_or_the_services() -> None:
    """Compute sits below the services: loading every backend pulls in neither layer."""
    code = (
        "import sys, shoal.compute as c\n"
        "for name in c.available_backends(): c.backend_class(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('shoal.store', 'shoal.services'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
