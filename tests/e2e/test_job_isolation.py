"""Job code is isolated (issue 14, hole 1): a real server, real jobs trying to become admin.

A job that knows where the server's home is tries every way the attack took: read the admin
``token``, ``secret.key``, ``job-signing.key`` and the database; walk up from its working folder;
read its parent's and another running job's ``/proc/<pid>/environ``; leave a symlink to a key in
its outputs for the runner to upload. All fail, and a normal job (code, inputs, outputs, metrics
through the MLflow API) still works. ``SHOAL_JOB_ISOLATION=required`` fails clearly where bwrap
is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, wait_for, write_job

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("bwrap") is None and not os.environ.get("CI"),
        reason="bubblewrap is not installed (apt-get install bubblewrap); CI installs it",
    ),
]

# Isolation is on by default: these servers set nothing but insist that it really is on.
SERVER_ENV = {"SHOAL_JOB_ISOLATION": "required", "SHOAL_SYSTEM_METRICS_SECONDS": "0.5"}

ATTACK = r"""
import json, os, sys
from pathlib import Path

home, victim_pids = Path(sys.argv[1]), [int(p) for p in sys.argv[2].split(",") if p]
found = {}

def attempt(name, fn):
    try:
        found[name] = "READ:" + str(fn())[:200]
    except Exception as exc:
        found[name] = "denied:" + type(exc).__name__

for f in ("token", "secret.key", "job-signing.key", "shoal.db", "server.json"):
    attempt(f, lambda f=f: (home / f).read_bytes())
attempt("home listing", lambda: sorted(os.listdir(home)))
attempt("runs listing", lambda: sorted(os.listdir(home / "runs")))
# Walking up from the working folder: every folder above, and what each one holds.
walk, here = {}, Path.cwd()
for parent in [here, *here.parents]:
    try:
        walk[str(parent)] = sorted(os.listdir(parent))
    except OSError as exc:
        walk[str(parent)] = "denied:" + type(exc).__name__
found["walk"] = walk
attempt("parent environ", lambda: Path(f"/proc/{os.getppid()}/environ").read_bytes())
for pid in victim_pids:
    attempt(f"environ {pid}", lambda pid=pid: Path(f"/proc/{pid}/environ").read_bytes())
tokens = []
for entry in Path("/proc").iterdir():
    if entry.name.isdigit():
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        tokens += [v for v in env.split(b"\0") if v.startswith((b"SHOAL_JOB_TOKEN=", b"MLFLOW_TRACKING_TOKEN="))]
found["tokens seen in /proc"] = sorted({t.split(b"=", 1)[1].decode() for t in tokens})
found["my token"] = os.environ["MLFLOW_TRACKING_TOKEN"]
found["pids"] = sorted(int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit())
found["uid"] = os.getuid()
found["shoal vars"] = sorted(k for k in os.environ if k.startswith("SHOAL_"))
Path("outputs").mkdir(exist_ok=True)
os.symlink(home / "secret.key", "outputs/stolen.key")
os.symlink(home, "outputs/stolen-home")
print("RESULT " + json.dumps(found), flush=True)
"""

VICTIM = "python -c \"import time; print('victim up', flush=True); time.sleep(120)\""


def submit(cli: Cli, path: Path) -> str:
    return cli("job", "create", "--file", str(path), "--query", "name", "-o", "tsv").out.strip()


def host_pids_of(job: str) -> list[int]:
    """Processes on this machine (the test runs outside any sandbox) started for ``job``."""
    pids = []
    needle = f"AZUREML_RUN_ID={job}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def runner_pid_of(job: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"shoal.runtime" in cmd and job.encode() in cmd:
                return int(entry.name)
    return None


def test_job_code_cannot_reach_the_server_home_other_jobs_or_tokens(jobs_cli, tmp_path):
    home = jobs_cli.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for private in ("token", "job-signing.key", "shoal.db"):  # secret.key: made at the first secret
        assert stat.S_IMODE((home / private).stat().st_mode) == 0o600, private
    (home / "secret.key").write_bytes(os.urandom(32))  # there for the job to try, as a real key is

    victim = submit(jobs_cli, write_job(tmp_path / "v", f"command: {VICTIM}\nenvironment:\n  image: python:3.11\n"))
    deadline = time.monotonic() + 60
    while not (victim_pids := host_pids_of(victim)):
        assert time.monotonic() < deadline, "the victim job never started"
        time.sleep(0.2)
    runner = runner_pid_of(victim)
    assert runner is not None
    pids = ",".join(str(p) for p in [runner, *victim_pids])

    src = tmp_path / "src"
    src.mkdir()
    (src / "attack.py").write_text(ATTACK)
    job = write_job(
        tmp_path,
        f"""
        command: python attack.py {home} {pids}
        code: ./src
        environment:
          image: python:3.11
        """,
    )
    name = submit(jobs_cli, job)
    done = wait_for(jobs_cli, name)
    log = jobs_cli("job", "stream", "-n", name, check=False).out
    assert done["status"] == "Completed", log
    found = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])

    for private in ("token", "secret.key", "job-signing.key", "shoal.db", "server.json"):
        assert found[private].startswith("denied:"), (private, found[private])
    # What it sees of the home: the empty folders leading to its own (environments, its run).
    assert found["home listing"] in ("READ:['envs', 'runs']", "READ:['runs']"), found["home listing"]
    assert found["runs listing"] == "READ:['default']", found["runs listing"]
    # Up from its working folder the job sees only empty folders the sandbox made, never the
    # home's files, its run folder's (runner.log, user_pgids) nor other jobs' folders.
    names = {n for listing in found["walk"].values() if isinstance(listing, list) for n in listing}
    assert not names & {"token", "secret.key", "job-signing.key", "shoal.db", "runner.log", "user_pgids", victim}
    assert found["parent environ"].startswith("denied:") or "SHOAL_JOB_TOKEN" not in found["parent environ"]
    for pid in pids.split(","):
        assert found[f"environ {pid}"].startswith("denied:"), (pid, found[f"environ {pid}"])
    assert found["tokens seen in /proc"] in ([], [found["my token"]])
    assert max(found["pids"]) < 100  # its own PID namespace: a handful of processes
    assert found["shoal vars"] == []
    if os.geteuid() == 0:
        assert found["uid"] != 0  # a root server runs job code as an unprivileged user

    # The symlinks it left in ./outputs were not followed by the runner's upload.
    dl = tmp_path / "dl"
    jobs_cli("job", "download", "-n", name, "--all", "--download-path", str(dl))
    assert not [p for p in dl.rglob("*") if p.name.startswith("stolen") or p.name == "secret.key"]

    # Cancel still ends every process of a sandboxed job.
    jobs_cli("job", "cancel", "-n", victim)
    assert wait_for(jobs_cli, victim, timeout=60)["status"] == "Canceled"
    deadline = time.monotonic() + 20
    while host_pids_of(victim):
        assert time.monotonic() < deadline, f"processes of the canceled job remain: {host_pids_of(victim)}"
        time.sleep(0.2)


def test_a_normal_job_works_under_isolation(jobs_cli, tmp_path):
    """Code, a file input, a folder output, the job's HOME and /tmp, pip's layer, metrics through
    the MLflow REST API with the job's own token, and system metrics sampled from outside."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys, tempfile, time, urllib.request
            from pathlib import Path
            data, out = Path(sys.argv[1]), Path(sys.argv[2])
            rows = len(data.read_text().splitlines())
            (out / "model.txt").write_text(f"rows={rows}")
            Path("outputs").mkdir(exist_ok=True)
            Path("outputs/report.txt").write_text("fine")
            Path(os.environ["HOME"], ".cache").mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir="/tmp") as fh:
                fh.write(b"scratch")
            try:
                data.write_text("changed")
                print("input writable")
            except OSError:
                print("input read-only")
            uri, token = os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_TRACKING_TOKEN"]
            body = json.dumps({"run_id": os.environ["MLFLOW_RUN_ID"], "key": "rows", "value": rows,
                               "timestamp": int(time.time() * 1000), "step": 0}).encode()
            request = urllib.request.Request(f"{uri}/api/2.0/mlflow/runs/log-metric", data=body, method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            urllib.request.urlopen(request).read()
            x = 0
            for i in range(3_000_000):
                x += i
            time.sleep(1.2)
            print("done", rows)
            """
        )
    )
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    path = write_job(
        tmp_path,
        """
        command: python train.py ${{inputs.data}} ${{outputs.model}}
        code: ./src
        environment:
          image: python:3.11
        inputs:
          data:
            type: uri_file
            path: ./data.csv
        outputs:
          model:
        """,
    )
    name = submit(jobs_cli, path)
    job = wait_for(jobs_cli, name)
    log = jobs_cli("job", "stream", "-n", name, check=False).out
    assert job["status"] == "Completed", log
    assert "done 3" in log and "input read-only" in log
    assert job["metrics"]["rows"] == 3
    assert any(k.startswith("system/") for k in job["metrics"]), job["metrics"]
    dl = tmp_path / "dl"
    jobs_cli("job", "download", "-n", name, "--all", "--download-path", str(dl))
    assert [p.read_text() for p in dl.rglob("model.txt")] == ["rows=3"]
    assert [p.read_text() for p in dl.rglob("report.txt")] == ["fine"]


def test_required_isolation_refuses_to_start_without_bwrap(tmp_path):
    """Where bwrap cannot be found, ``required`` stops the server with the reason, and local mode
    (the CLI starting its server) shows that reason."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("setpriv", "bash", "sh"):  # a PATH with the usual tools but no bwrap
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env.update(SHOAL_HOME=str(tmp_path / "home"), PATH=str(bin_dir), SHOAL_JOB_ISOLATION="required")
    proc = subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "job", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert "SHOAL_JOB_ISOLATION=required" in proc.stderr and "bubblewrap is not installed" in proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in (tmp_path / "home" / "server.log").read_text()
