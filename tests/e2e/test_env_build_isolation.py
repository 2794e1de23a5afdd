"""Building a job's environment runs code from its requirements: a source distribution's build
backend (``setup.py``, an in-tree PEP 517 backend) executes during ``uv pip install``. That is
job code too (the anchors' "env specs are attacker data", CVE-2025-15379), so it runs in the same
sandbox as the job's command: a requirement whose build backend tries to read the server's admin
token, keys and database, or to write into its home, finds nothing and changes nothing.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import textwrap
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

# The attacker's package must be reachable by the build: a local folder stands for the sdist an
# attacker would publish (the sandbox shows it only because the admin lists it as a read path).
PACKAGES = Path(tempfile.mkdtemp(prefix="shoal-evil-pkgs-"))
atexit.register(shutil.rmtree, PACKAGES, True)
SERVER_ENV = {"SHOAL_JOB_ISOLATION": "required", "SHOAL_JOB_READ_PATHS": str(PACKAGES)}

BACKEND = r"""
import json, os, sys
from pathlib import Path

HOME = Path({home!r})


def _attack():
    found = {{"shoal vars": sorted(k for k in os.environ if k.startswith("SHOAL_"))}}
    for name in ("token", "job-signing.key", "shoal.db"):
        try:
            (HOME / name).read_bytes()
            found[name] = "READ"
        except Exception as exc:
            found[name] = "denied:" + type(exc).__name__
    try:
        (HOME / "pwned-by-build").write_text("x")
        found["write home"] = "WROTE"
    except Exception as exc:
        found["write home"] = "denied:" + type(exc).__name__
    tokens = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            tokens += [v for v in env.split(b"\0") if v.startswith(b"SHOAL_JOB_TOKEN=")]
    found["job tokens in /proc"] = len(tokens)
    for key, value in found.items():
        print(f"RESULT {{key}}={{json.dumps(value)}}", file=sys.stderr, flush=True)


def get_requires_for_build_wheel(config_settings=None):
    _attack()
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _attack()
    raise RuntimeError("the evil build stops here")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _attack()
    raise RuntimeError("the evil build stops here")
"""


def test_a_requirements_build_backend_cannot_reach_the_server_home(jobs_cli: Cli, tmp_path):
    home = jobs_cli.home
    pkg = PACKAGES / "evilpkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]

            [project]
            name = "evilpkg"
            version = "0.1"
            """
        )
    )
    (pkg / "backend.py").write_text(BACKEND.format(home=str(home)))
    os.chmod(PACKAGES, 0o755)
    job = write_job(
        tmp_path,
        f"""
        command: echo never
        environment:
          image: python:3.11
          conda_file:
            dependencies:
              - python=3.11
              - pip:
                - evilpkg @ file://{pkg}
        """,
    )
    name = jobs_cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    done = wait_for(jobs_cli, name, timeout=180)
    log = jobs_cli("job", "stream", "-n", name, check=False).out + json.dumps(done)
    assert done["status"] == "Failed", log
    builds = list((home / "envs").rglob("build.log"))
    text = "".join(p.read_text(errors="replace") for p in builds)
    found = {}
    for line in text.splitlines():
        if "RESULT " in line:
            key, _, value = line.split("RESULT ", 1)[1].partition("=")
            found.setdefault(key, json.loads(value.strip()))
    assert found, f"the build backend never ran: {text[-3000:]} {log[-2000:]}"
    for private in ("token", "job-signing.key", "shoal.db"):
        assert found[private].startswith("denied:"), (private, found)
    assert found["write home"].startswith("denied:"), found
    assert found["shoal vars"] == [] and found["job tokens in /proc"] == 0, found
    assert not (home / "pwned-by-build").exists()


GOOD_BACKEND = r"""
import base64, hashlib, os, zipfile

NAME, VERSION = "goodpkg", "0.1"
DIST = f"{NAME}-{VERSION}.dist-info"
FILES = {
    f"{NAME}/__init__.py": b"VALUE = 'built in the sandbox'\n",
    f"{DIST}/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode(),
    f"{DIST}/WHEEL": b"Wheel-Version: 1.0\nGenerator: goodpkg\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        for path, data in FILES.items():
            whl.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{DIST}/RECORD,,")
        whl.writestr(f"{DIST}/RECORD", "\n".join(record) + "\n")
    return name
"""


def test_a_source_requirement_still_builds_in_the_sandbox(jobs_cli: Cli, tmp_path):
    """What needs building is built (in the sandbox) and the job uses it."""
    pkg = PACKAGES / "goodpkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "goodpkg"\nversion = "0.1"\n'
    )
    (pkg / "backend.py").write_text(GOOD_BACKEND)
    os.chmod(PACKAGES, 0o755)
    job = write_job(
        tmp_path,
        f"""
        command: python -c "import goodpkg; print('VALUE', goodpkg.VALUE)"
        environment:
          image: python:3.11
          conda_file:
            dependencies:
              - python=3.11
              - pip:
                - goodpkg @ file://{pkg}
        """,
    )
    name = jobs_cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    done = wait_for(jobs_cli, name, timeout=180)
    log = jobs_cli("job", "stream", "-n", name, check=False).out
    assert done["status"] == "Completed", log
    assert "VALUE built in the sandbox" in log
    assert "building them in the job sandbox" in log


PRELOAD = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Runs in every process the dynamic loader starts with LD_PRELOAD set. */
__attribute__((constructor)) static void attack(void) {
    FILE *token = fopen(HOME "/token", "r");
    if (token != NULL) {
        fclose(token);
        FILE *out = fopen(HOME "/pwned-by-preload", "w");
        if (out != NULL) { fputs("escaped\n", out); fclose(out); }
    }
    if (access("outputs", W_OK) == 0) {
        FILE *mine = fopen("outputs/preloaded", "w");
        if (mine != NULL) { fputs("inside\n", mine); fclose(mine); }
    }
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to build the preload library")
def test_loader_variables_of_a_job_apply_inside_the_sandbox_only(jobs_cli: Cli, tmp_path):
    """``environment_variables: {LD_PRELOAD: …}`` used to reach bwrap itself, which runs outside
    the sandbox with the server's rights: the library's code ran there and could read the token."""
    import subprocess

    home = jobs_cli.home
    lib = PACKAGES / "preload.so"
    src = tmp_path / "preload.c"
    src.write_text(PRELOAD)
    subprocess.run(["cc", "-shared", "-fPIC", f'-DHOME="{home}"', "-o", str(lib), str(src)], check=True)
    lib.chmod(0o755)
    job = write_job(
        tmp_path,
        f"""
        command: mkdir -p outputs && true && ls outputs
        environment:
          image: python:3.11
        environment_variables:
          LD_PRELOAD: {lib}
        """,
    )
    name = jobs_cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    done = wait_for(jobs_cli, name, timeout=120)
    log = jobs_cli("job", "stream", "-n", name, check=False).out
    assert done["status"] == "Completed", log
    assert not (home / "pwned-by-preload").exists(), "the preload library ran outside the sandbox"
    assert "preloaded" in log  # the job's own processes still get their LD_PRELOAD


def test_the_loaders_debug_output_cannot_write_outside_the_sandbox(jobs_cli: Cli, tmp_path):
    """No compiler needed: ``LD_DEBUG_OUTPUT`` makes the dynamic loader of every program it
    starts write files where it names. Set on bwrap, that was a write into the server's home."""
    home = jobs_cli.home
    job = write_job(
        tmp_path,
        f"""
        command: mkdir -p outputs && ls /proc/self/ > /dev/null && echo ran
        environment:
          image: python:3.11
        environment_variables:
          LD_DEBUG: files
          LD_DEBUG_OUTPUT: {home}/pwned-debug
        """,
    )
    name = jobs_cli("job", "create", "--file", str(job), "--query", "name", "-o", "tsv").out.strip()
    done = wait_for(jobs_cli, name, timeout=120)
    log = jobs_cli("job", "stream", "-n", name, check=False).out
    assert done["status"] == "Completed", log
    assert not list(home.glob("pwned-debug*")), "the loader wrote into the server's home"
