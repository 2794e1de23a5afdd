"""EnvBuilder: host environments need nothing, venvs are built once, cached, and failures leave no trace."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from shoal.envs import EnvBuilder, EnvironmentBuildError, EnvSpec, default_host_python, normalize_environment
from shoal.envs.builder import MARKER
from shoal.envs.uvtool import find_uv, run_streaming
from shoal.errors import InfraError

SIX = EnvSpec(requirements=("six==1.16.0",), source="test six")


def run_in(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH: the built interpreter must see its own packages only.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, timeout=60)


# --- host --------------------------------------------------------------------------------------


def test_host_images_get_a_clean_venv_of_the_host_python_built_once(cache_dir: Path) -> None:
    # Shoal's own venv Python as the host: httpx, fastapi... are installed there, and must not leak.
    builder = EnvBuilder(cache_dir, host_python=sys.executable)
    lines: list[str] = []
    prepared = builder.prepare(normalize_environment({"name": "e", "image": "python:3.11"}), log=lines.append)
    version = ".".join(map(str, sys.version_info[:3]))
    assert lines == [f"environment: image python:3.11 -> a clean venv of {sys.executable} ({version}); "
                     f"nothing installed ({prepared.bin_dir.parent.parent})"]  # fmt: skip
    assert prepared.bin_dir is not None and prepared.bin_dir.parent.parent.name.startswith("clean-")
    assert prepared.reused is False and builder.builds_started == 1
    result = run_in(prepared.python, "import json, sqlite3\nimport httpx")
    assert result.returncode != 0 and "ModuleNotFoundError: No module named 'httpx'" in result.stderr
    # Every host environment of that interpreter shares it: built once, reused at once.
    again = EnvBuilder(cache_dir, host_python=sys.executable).prepare(EnvSpec.host("AzureML-Minimal"))
    assert again.reused is True and again.python == prepared.python


def test_host_images_can_run_on_the_host_itself(cache_dir: Path) -> None:
    builder = EnvBuilder(cache_dir, isolate_host=False)
    lines: list[str] = []
    prepared = builder.prepare(normalize_environment({"name": "e", "image": "python:3.11"}), log=lines.append)
    assert prepared.python == builder.host_python
    assert prepared.bin_dir is None
    assert prepared.reused is True
    assert prepared.build_log_path is None
    assert not cache_dir.exists()
    assert builder.builds_started == 0
    assert "host Python" in lines[0]


def test_a_jobs_pip_install_works_over_a_clean_host_venv(cache_dir: Path, tmp_path: Path) -> None:
    prepared = EnvBuilder(cache_dir, host_python=sys.executable).prepare(EnvSpec.host("image python:3.11"))
    layer = prepared.layered(tmp_path / "job" / "pyenv")
    env = layer.environ({k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    wheel = _wheel(tmp_path, "shoaltestpkg", "1.2.3")
    pip = subprocess.run(
        ["pip", "install", "--no-index", str(wheel)], capture_output=True, text=True, env=env, timeout=300
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert run_in(layer.python, "import shoaltestpkg; print(shoaltestpkg.__version__)").stdout.strip() == "1.2.3"
    assert run_in(prepared.python, "import shoaltestpkg").returncode != 0  # the shared clean venv stays clean


def test_default_host_python_is_the_base_interpreter_not_shoals_venv() -> None:
    host = default_host_python()
    if sys.prefix != sys.base_prefix:
        assert Path(sys.prefix) not in host.parents
    result = run_in(host, "import importlib.util as u; print(u.find_spec('fastapi') is None)")
    assert result.stdout.strip() == "True", result


def test_host_python_can_be_chosen(cache_dir: Path) -> None:
    chosen = EnvBuilder(cache_dir, host_python=sys.executable, isolate_host=False)
    assert chosen.prepare(EnvSpec()).python == Path(sys.executable)


def test_python_only_spec_met_by_the_host_builds_nothing(builder: EnvBuilder, cache_dir: Path) -> None:
    here = f"=={sys.version_info.major}.{sys.version_info.minor}.*"
    spec = normalize_environment({"image": "python:3", "conda_file": {"dependencies": [f"python{here}", "pip"]}})
    assert spec.kind == "venv"
    # Nothing to install: the shared clean venv of the host Python, no environment of its own.
    assert builder.prepare(spec).bin_dir.parent.parent.name.startswith("clean-")
    assert not builder.path_for(spec).exists()


# --- building and reuse --------------------------------------------------------------------------


def test_build_once_then_reuse(builder: EnvBuilder, cache_dir: Path) -> None:
    log = io.StringIO()
    first = builder.prepare(SIX, log=log)
    assert first.reused is False
    assert first.python == cache_dir / SIX.spec_hash() / "venv" / "bin" / "python"
    assert first.bin_dir == first.python.parent
    assert first.build_log_path is not None and "six==1.16.0" in first.build_log_path.read_text()
    assert "six==1.16.0" in log.getvalue()  # streamed to the caller as well
    marker = json.loads((cache_dir / SIX.spec_hash() / MARKER).read_text())
    assert marker["hash"] == SIX.spec_hash()

    started = time.monotonic()
    again = builder.prepare(EnvSpec(requirements=("SIX == 1.16.0",)))
    assert time.monotonic() - started < 1.0
    assert again.reused is True
    assert again.python == first.python
    assert builder.builds_started == 1


def test_built_python_sees_its_packages_and_not_shoals(builder: EnvBuilder) -> None:
    prepared = builder.prepare(SIX)
    code = textwrap.dedent(
        """
        import importlib.util, six
        print(six.__version__)
        print([m for m in ("shoal", "fastapi", "pydantic") if importlib.util.find_spec(m)])
        """
    )
    result = run_in(prepared.python, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["1.16.0", "[]"]


def test_environ_puts_the_venv_first(builder: EnvBuilder) -> None:
    prepared = builder.prepare(SIX)
    env = prepared.environ({"PATH": "/usr/bin", "PYTHONHOME": "/x"})
    assert env["PATH"].split(os.pathsep)[0] == str(prepared.bin_dir)
    assert env["VIRTUAL_ENV"] == str(prepared.bin_dir.parent)
    assert "PYTHONHOME" not in env
    on_host = EnvBuilder(builder.cache_dir, isolate_host=False)
    host = on_host.prepare(EnvSpec()).environ({"PATH": "/usr/bin", "VIRTUAL_ENV": "/shoal/.venv"})
    assert host["PATH"].split(os.pathsep)[0] == str(on_host.host_python.parent)
    assert "VIRTUAL_ENV" not in host


def test_ten_threads_one_build(builder: EnvBuilder, cache_dir: Path) -> None:
    spec = EnvSpec(requirements=("iniconfig", "idna"))
    barrier = threading.Barrier(10)
    results: list = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(builder.prepare(spec))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert builder.builds_started == 1
    assert sorted(r.reused for r in results) == [False] + [True] * 9
    assert len({r.python for r in results}) == 1
    assert (cache_dir / spec.spec_hash() / "build.log").read_text().count("# shoal: building environment") == 1


def test_processes_build_once(cache_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from shoal.envs import EnvBuilder, EnvSpec
        p = EnvBuilder({str(cache_dir)!r}).prepare(EnvSpec(requirements=("tomli", "six")))
        print(p.reused, p.python)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    lines = [out.strip().split(" ", 1) for out, _ in outs]
    assert sorted(reused for reused, _ in lines) == ["False", "True", "True", "True"]
    assert len({python for _, python in lines}) == 1


def test_waiters_get_the_build_log(builder: EnvBuilder, cache_dir: Path) -> None:
    # A second builder sharing the cache stands in for another job that waited on the lock.
    builder.prepare(SIX)
    root = cache_dir / SIX.spec_hash()
    lines: list[str] = []
    assert EnvBuilder(cache_dir).prepare(SIX, log=lines.append).reused is True
    assert str(root) in lines[0]


# --- failures and recovery -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "words"),
    [("six==999", "no version of six==999"), ("nonexistent-package-shoal-xyz==0.0.1", "nonexistent-package-shoal-xyz")],
)
def test_unsatisfiable_spec_fails_with_the_resolvers_words(
    builder: EnvBuilder, cache_dir: Path, requirement: str, words: str
) -> None:
    bad = EnvSpec(requirements=(requirement,), source="bad env")
    with pytest.raises(EnvironmentBuildError) as err:
        builder.prepare(bad)
    assert isinstance(err.value, InfraError)
    assert err.value.code == "INFRA_ERROR"
    message = str(err.value)
    assert "bad env" in message
    assert words in message
    assert "unsatisfiable" in message
    root = cache_dir / bad.spec_hash()
    assert not (root / MARKER).exists()
    assert words in (root / "build.log").read_text()
    assert err.value.details["build_log"] == str(root / "build.log")

    # A corrected spec builds, and the failed one is retried (not cached as a failure).
    assert builder.prepare(SIX).reused is False
    with pytest.raises(EnvironmentBuildError):
        builder.prepare(bad)
    assert builder.builds_started == 3


def test_half_build_is_rebuilt_from_scratch(builder: EnvBuilder, cache_dir: Path) -> None:
    root = cache_dir / SIX.spec_hash()
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").write_text("not a python")
    (root / "leftover").write_text("from a crashed build")
    prepared = builder.prepare(SIX)
    assert prepared.reused is False
    assert not (root / "leftover").exists()
    assert run_in(prepared.python, "import six").returncode == 0


def test_marker_without_a_python_is_rebuilt(builder: EnvBuilder, cache_dir: Path) -> None:
    first = builder.prepare(SIX)
    first.python.unlink()
    assert builder.prepare(SIX).reused is False
    assert builder.builds_started == 2


def test_python_that_cannot_be_found_fails_clearly(cache_dir: Path) -> None:
    spec = normalize_environment({"image": "python:2", "conda_file": {"dependencies": ["python=2.7", "six"]}})
    with pytest.raises(EnvironmentBuildError) as err:
        EnvBuilder(cache_dir, install_python=False).prepare(spec)
    message = str(err.value)
    assert "Python ==2.7.*" in message
    assert ".".join(map(str, sys.version_info[:3])) in message  # says what the host has
    assert not (cache_dir / spec.spec_hash() / MARKER).exists()


def test_python_mismatch_can_fall_back_to_the_host(cache_dir: Path) -> None:
    spec = EnvSpec(requirements=("six",), python="==2.7.*")
    lines: list[str] = []
    prepared = EnvBuilder(cache_dir, python_mismatch="host").prepare(spec, log=lines.append)
    assert prepared.reused is False
    assert any("warning" in line and "2.7" in line for line in lines)


# --- uv ------------------------------------------------------------------------------------------


def test_find_uv(monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_uv("/opt/uv") == ["/opt/uv"]
    monkeypatch.setattr("shutil.which", lambda name: None)
    # uv is a dependency: the binary its package installed is found without PATH.
    import uv

    found = find_uv()
    assert found == [uv.find_uv_bin()]
    assert subprocess.run([*found, "--version"], capture_output=True, check=True).stdout.startswith(b"uv ")


def test_find_uv_reports_when_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(InfraError, match="pip install uv"):
        find_uv()


def test_run_streaming_times_out() -> None:
    lines: list[str] = []
    started = time.monotonic()
    result = run_streaming(["sh", "-c", "echo start; sleep 30"], sink=lines.append, timeout_s=0.5)
    assert result.timed_out
    assert result.returncode != 0
    assert lines == ["start"]
    assert time.monotonic() - started < 10


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A one-module wheel, built by hand (no network, no build backend)."""
    import zipfile

    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"__version__ = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist}/RECORD"])
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for member, text in files.items():
            whl.writestr(member, text)
    return path


def test_a_jobs_pip_installs_into_its_layer_not_the_shared_environment(builder: EnvBuilder, tmp_path: Path) -> None:
    prepared = builder.prepare(SIX)
    layer = prepared.layered(tmp_path / "job" / "pyenv")
    env = layer.environ({k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    assert env["PATH"].split(os.pathsep)[:2] == [str(layer.bin_dir), str(prepared.bin_dir)]
    # The layer sees the shared packages, and is its own prefix.
    result = run_in(layer.python, "import six, sys; print(six.__version__, sys.prefix)")
    assert result.stdout.split() == ["1.16.0", str(tmp_path / "job" / "pyenv")], result.stderr
    # `pip` on the job's PATH is the layer's (bootstrapped on first use), never one further along.
    wheel = _wheel(tmp_path, "six", "9.9.9")
    pip = subprocess.run(
        ["pip", "install", "--no-index", str(wheel)], capture_output=True, text=True, env=env, timeout=300
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert run_in(layer.python, "import six; print(six.__version__)").stdout.strip() == "9.9.9"
    assert run_in(prepared.python, "import six; print(six.__version__)").stdout.strip() == "1.16.0"
    assert builder.prepare(SIX).bin_dir == prepared.bin_dir  # the cache is untouched and still whole
