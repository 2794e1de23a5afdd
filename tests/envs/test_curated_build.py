"""Real curated builds: slow on a cold uv cache (hundreds of MB), a few seconds on a warm one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from shoal.envs import EnvBuilder, normalize_environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_curated_sklearn_15_builds_with_the_pins_scripts_expect(cache_dir: Path) -> None:
    spec = normalize_environment("azureml://registries/azureml/environments/sklearn-1.5/labels/latest")
    prepared = EnvBuilder(cache_dir).prepare(spec)
    code = (
        "import json, numpy, pandas, sklearn, scipy, mlflow, matplotlib, joblib;"
        "print(json.dumps({'pandas': pandas.__version__, 'sklearn': sklearn.__version__, 'numpy': numpy.__version__}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(prepared.python), "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    versions = json.loads(result.stdout.strip().splitlines()[-1])
    assert versions["pandas"] < "2", versions
    assert versions["sklearn"].startswith("1.5."), versions
    assert versions["numpy"] < "2", versions
    assert EnvBuilder(cache_dir).prepare(normalize_environment("AzureML-sklearn-1.5")).reused is True
