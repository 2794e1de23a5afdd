"""The job sandbox (``shoal.compute.sandbox``) with the real bwrap: what job code can and cannot see.

The end-to-end attack through a real server is in tests/e2e/test_job_isolation.py; these check
the settings and the view itself, in a few milliseconds each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.compute.local import LocalBackend
from shoal.compute.sandbox import IsolationUnavailable, Sandbox, job_user, resolve
from shoal.runtime.materialize import files_within

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None and not os.environ.get("CI"),
    reason="bubblewrap is not installed (apt-get install bubblewrap); CI installs it",
)


def test_settings_are_checked_with_clear_errors():
    assert resolve("off") is None
    with pytest.raises(IsolationUnavailable, match="SHOAL_JOB_ISOLATION='sometimes' is not one of off, auto, required"):
        resolve("sometimes")
    with pytest.raises(IsolationUnavailable, match="must not run as root"):
        job_user("root")
    with pytest.raises(IsolationUnavailable, match="no such user"):
        job_user("no-such-user-here")
    assert job_user("1234:5678") == (1234, 5678)


def test_job_network_settings_are_checked(monkeypatch, tmp_path):
    with pytest.raises(IsolationUnavailable, match="SHOAL_JOB_NETWORK='none' is not one of host, server"):
        resolve("auto", network="none")
    with pytest.raises(IsolationUnavailable, match="SHOAL_JOB_NETWORK=server needs job isolation"):
        resolve("off", network="server")
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, no nsenter: server mode refuses, never falls back
    with pytest.raises(IsolationUnavailable, match="nsenter"):
        resolve("auto", network="server")


@needs_bwrap
def test_the_network_setting_reaches_the_runner(tmp_path):
    sandbox = resolve("required", network="server", hide=[tmp_path])
    assert sandbox is not None and sandbox.network == "server"
    assert Sandbox.from_env({"SHOAL_SANDBOX": sandbox.to_env()}) == sandbox


def test_required_without_bwrap_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without bwrap
    with pytest.raises(IsolationUnavailable, match="required.*bubblewrap is not installed"):
        resolve("required")
    assert resolve("auto") is None  # auto runs jobs unconfined there (with a warning)


def test_the_backend_tells_its_runners_and_off_means_off(tmp_path):
    off = LocalBackend(home=tmp_path, isolation_mode="off")
    assert off.sandbox is None
    if shutil.which("bwrap"):
        on = LocalBackend(home=tmp_path, isolation_mode="auto")
        assert on.sandbox is not None and str(tmp_path.resolve()) in on.sandbox.hide
        assert Sandbox.from_env({"SHOAL_SANDBOX": on.sandbox.to_env()}) == on.sandbox


@needs_bwrap
def test_the_view_shows_the_job_its_folders_only(tmp_path):
    """A home inside a read path stays hidden; the job's folder is writable; its own PIDs only."""
    shared = tmp_path / "shared"
    home = shared / "home"
    wd = home / "runs" / "ws" / "job" / "1" / "wd"
    wd.mkdir(parents=True)
    (home / "token").write_text("admin")
    (shared / "dataset.csv").write_text("a,b\n")
    sandbox = resolve("required", read_paths=str(shared), hide=[home])
    assert sandbox is not None
    sandbox.give([wd])
    script = (
        f"cat {shared}/dataset.csv; cat {home}/token || echo no-token; ls {home}; "
        "echo x > out.txt && echo wrote; ls /proc | grep -c '^[0-9]'; id -u"
    )
    argv = sandbox.argv(["bash", "-c", script], cwd=wd, writable=[wd])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/")
    lines = done.stdout.split()
    assert done.returncode == 0, done.stderr
    assert lines[0] == "a,b" and "no-token" in lines and "token" not in lines
    assert "wrote" in lines and (wd / "out.txt").read_text() == "x\n"
    assert int(lines[-2]) <= 4  # bwrap's init, bash, ls, grep: no process of the host
    if os.geteuid() == 0:
        assert lines[-1] == str(sandbox.uid) != "0"


def test_uploads_never_follow_a_symlink_out_of_the_folder(tmp_path):
    outputs = tmp_path / "wd" / "outputs"
    (outputs / "sub").mkdir(parents=True)
    (outputs / "sub" / "a.txt").write_text("a")
    secret = tmp_path / "secret.key"
    secret.write_text("k")
    (outputs / "stolen").symlink_to(secret)
    (outputs / "stolen-dir").symlink_to(tmp_path)
    (outputs / "alias.txt").symlink_to(outputs / "sub" / "a.txt")  # inside: fine
    assert [p.relative_to(outputs).as_posix() for p in files_within(outputs)] == ["alias.txt", "sub/a.txt"]
    swapped = tmp_path / "wd" / "logs"
    swapped.symlink_to(tmp_path)  # the folder itself replaced by a link
    assert files_within(swapped) == []
    assert files_within(Path(tmp_path / "missing")) == []
