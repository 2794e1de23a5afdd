"""The local backend's warm runner (``runtime/warm.py``): what a forked runner must share with a cold
one, and what happens when the warm process is gone. Real processes; the runner is a script given
as ``RunnerAttempt.argv`` (as in test_backend_contract.py), started the way the real one is."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.compute import RunnerAttempt
from shoal.compute.local import LocalBackend
from tests.compute.test_backend_contract import ended, parent_of, wait_until

SCRIPT = r"""
import json, os, subprocess, sys, time
from pathlib import Path
group = subprocess.Popen(["sleep", "120"], start_new_session=True)
Path(os.environ["SHOAL_RUN_DIR"], "user_pgids").write_text(str(group.pid))
seen = {"env": dict(os.environ), "cwd": os.getcwd(), "sid": os.getsid(0), "pid": os.getpid(), "argv": sys.argv,
        "fds": sorted(int(f) for f in os.listdir("/proc/self/fd"))}
print("SEEN " + json.dumps(seen), flush=True)
time.sleep(float(os.environ.get("LIFE", "120")))
"""


def _warm_backend(home: Path) -> LocalBackend:
    """A backend whose warm process started with WARM_ONLY set, which the jobs' environment lacks."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARM_ONLY", "set when the warm process started")
        b = LocalBackend(home=home, isolation_mode="off", warm=True)
        assert b.warm_up(timeout=60)
    return b


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    """One warm process for the tests that leave it alive (each costs seconds of imports)."""
    b = _warm_backend(tmp_path_factory.mktemp("warm") / "home")
    yield b
    b.close()


def _ending(b: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBackend]:
    monkeypatch.setenv("SHOAL_LEAK", "server-only")  # a setting of the "server" only
    started: list[tuple[str, RunnerAttempt]] = []
    b.started = started  # type: ignore[attr-defined]
    try:
        yield b
    finally:
        for handle, attempt in started:
            b.cancel(handle, attempt, force=True)
        for handle, _ in started:
            wait_until(lambda h=handle: not b.poll(h), what="the runner to end")


@pytest.fixture
def backend(shared: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBackend]:
    yield from _ending(shared, monkeypatch)


@pytest.fixture
def own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBackend]:
    """A backend of the test's own, for tests that kill or stop its warm process."""
    b = _warm_backend(tmp_path / "home")
    try:
        yield from _ending(b, monkeypatch)
    finally:
        b.close()


def submit(b: LocalBackend, life: float = 120) -> tuple[str, RunnerAttempt]:
    job = f"job_{len(b.started) + 1}_{time.monotonic_ns()}"  # type: ignore[attr-defined]
    argv = (sys.executable, "-c", SCRIPT, "-m", "shoal.runtime", "--workspace", "ws", "--job", job, "--attempt", "1")
    env = {"LIFE": str(life)}
    attempt = RunnerAttempt("ws", job, 1, server_url="http://127.0.0.1:9/", token="t", env=env, argv=argv)
    handle = b.submit(attempt)
    b.started.append((handle, attempt))  # type: ignore[attr-defined]
    return handle, attempt


def seen(b: LocalBackend, attempt: RunnerAttempt) -> dict:
    log = b.logs_location(attempt)
    wait_until(lambda: log.exists() and "SEEN " in log.read_text(), timeout=30, what="the runner's report")
    line = next(x for x in log.read_text().splitlines() if x.startswith("SEEN "))
    return json.loads(line[5:])


def test_a_forked_runner_is_what_a_cold_start_makes(backend: LocalBackend) -> None:
    warm = backend._warm
    assert warm is not None
    handle, attempt = submit(backend)
    assert parent_of(int(handle)) == warm.proc.pid, "forked by the warm process"
    got = seen(backend, attempt)
    run_dir = backend.run_dir(attempt)
    assert got["pid"] == int(handle) and got["sid"] == int(handle), "a session of its own"
    assert got["cwd"] == str(run_dir)
    assert got["fds"] == [0, 1, 2, 3], "nothing of the warm process's left open (3: the listing itself)"
    env = got["env"]
    assert env["SHOAL_RUN_DIR"] == str(run_dir) and env["SHOAL_JOB_TOKEN"] == "t" and env["LIFE"] == "120"
    assert "SHOAL_LEAK" not in env, "the server's own SHOAL_* settings must not reach the runner"
    assert "WARM_ONLY" not in env, "the runner's environment is the job's, not the warm process's"
    # ps and the backend see a runner: its command line is the runner's.
    cmdline = Path(f"/proc/{handle}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:2] == [sys.executable.encode(), b"-c"] and attempt.job.encode() in cmdline
    assert backend.poll(handle) and LocalBackend(home=backend.home, warm=False).poll(handle)


def test_the_warm_process_is_fork_safe_and_never_taken_for_a_runner(backend: LocalBackend) -> None:
    warm = backend._warm
    assert warm is not None
    submit(backend)  # it has forked once
    pid = warm.proc.pid
    assert len(os.listdir(f"/proc/{pid}/task")) == 1, "no threads when it forks"
    links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not [x for x in links if x.startswith("socket:")], "no sockets when it forks"
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [x for x in environ if x.startswith(b"SHOAL_")]
    assert b"shoal.runtime.warm" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert not backend.poll(str(pid)), "a recycled runner pid naming the warm process is no runner"


def test_a_killed_warm_process_loses_no_job(own: LocalBackend) -> None:
    backend = own
    warm = backend._warm
    assert warm is not None
    os.kill(warm.proc.pid, signal.SIGKILL)
    warm.proc.wait()
    handle, attempt = submit(backend)  # starts cold, and a new warm process for the next ones
    assert parent_of(int(handle)) == os.getpid()
    assert seen(backend, attempt)["env"]["SHOAL_JOB_TOKEN"] == "t"
    assert backend.warm_up(timeout=60)
    assert backend._warm is not None and backend._warm.proc.pid != warm.proc.pid
    handle, attempt = submit(backend)
    assert parent_of(int(handle)) == backend._warm.proc.pid
    assert seen(backend, attempt)["pid"] == int(handle)


def test_a_forked_runner_outlives_its_warm_process_and_server(own: LocalBackend) -> None:
    backend = own
    warm = backend._warm
    assert warm is not None
    handle, attempt = submit(backend)
    seen(backend, attempt)
    group = int(backend.run_dir(attempt).joinpath("user_pgids").read_text())
    # The server goes away: its end of the pipe closes, the warm process exits; the runner lives.
    backend.close()
    wait_until(lambda: ended(warm.proc.pid), what="the warm process to exit")
    time.sleep(0.2)
    restarted = LocalBackend(home=backend.home, isolation_mode="off")  # what a restarted server builds
    assert restarted.poll(handle), "a forked runner is found again after a restart"
    restarted.cancel(handle, attempt, force=True)
    wait_until(lambda: not restarted.poll(handle), what="the runner to end")
    wait_until(lambda: ended(group), what="its process group to end")


def test_interpreter_start_up_variables_that_differ_start_the_runner_cold(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read at interpreter start: a fork cannot give it.
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::DeprecationWarning")
    handle, attempt = submit(backend)
    assert parent_of(int(handle)) == os.getpid(), "started cold"
    assert seen(backend, attempt)["env"]["PYTHONWARNINGS"] == "ignore::DeprecationWarning"
    monkeypatch.delenv("PYTHONWARNINGS")
    handle, _ = submit(backend)
    assert parent_of(int(handle)) == backend._warm.proc.pid, "the warm process still serves the others"  # type: ignore[union-attr]


def test_warm_starts_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_WARM_RUNNER", "0")
    off = LocalBackend(home=tmp_path, isolation_mode="off")
    assert not off.warm_up(timeout=1) and off._warm is None


def test_a_warm_process_that_cannot_start_leaves_runners_cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its interpreter finds a shoal package that cannot be imported (the runners here need none).
    broken = tmp_path / "broken" / "shoal"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(broken.parent), os.environ.get("PYTHONPATH", "")]))
    b = LocalBackend(home=tmp_path / "home", isolation_mode="off", warm=True)
    b.started = []  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        while b.warm:
            assert time.monotonic() < deadline, "the backend kept starting warm processes that die"
            handle, attempt = submit(b, life=30)
            assert parent_of(int(handle)) == os.getpid(), "started cold"
            assert seen(b, attempt)["pid"] == int(handle)
            time.sleep(0.3)
        assert "broken on purpose" in (b.home / "warm-runner.log").read_text()
        assert not b.warm_up(timeout=1)
    finally:
        for handle, attempt in b.started:  # type: ignore[attr-defined]
            b.cancel(handle, attempt, force=True)
        b.close()


def test_a_runner_forked_to_die_with_the_warm_process_does_and_keeps_it_up_till_then(tmp_path: Path) -> None:
    """What a Ray node's agent asks (``die_with_parent``): the warm process, told to end, waits for
    such runners; killed (its agent gone), it takes them with it."""
    from shoal.compute.local import WarmRunner

    warm = WarmRunner.spawn(sys.executable, tmp_path)
    try:
        wait_until(warm.ready, timeout=60, what="the warm process to get ready")
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        argv = [sys.executable, "-c", "import time; time.sleep(120)", "-m", "shoal.runtime", "--job", "j"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        request = {"argv": argv, "env": env, "cwd": str(run_dir), "log": str(run_dir / "log"), "die_with_parent": True}
        pid, usable = warm.fork(request)
        assert usable and pid is not None
        assert parent_of(pid) == warm.proc.pid
        assert warm.proc.stdin is not None
        warm.proc.stdin.close()  # told to end: it waits for its runner
        time.sleep(1.5)
        assert warm.alive() and not ended(pid)
        warm.proc.send_signal(signal.SIGKILL)  # gone: its runner with it
        wait_until(lambda: ended(pid), what="the runner to die with the warm process")
    finally:
        if warm.alive():
            warm.proc.kill()
        warm.proc.wait()


def test_a_server_with_a_ray_address_warms_and_stops_its_local_warm_runner(tmp_path: Path) -> None:
    """Behind ``RoutedBackend`` (a server with a Ray address) the local backend's warm runner is
    still started by ``warm_up`` and stopped by ``close`` (the dispatcher's stop)."""
    from shoal.compute.routing import RoutedBackend

    local = LocalBackend(home=tmp_path / "home", isolation_mode="off", warm=True)
    routed = RoutedBackend(default=local, by_type={})
    assert routed.warm_up(timeout=60)
    warm = local._warm
    assert warm is not None and warm.alive()
    routed.close()
    assert local._warm is None and not warm.alive()
