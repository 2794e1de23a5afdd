"""Environments: an Azure ML environment becomes a Python interpreter (ARCHITECTURE.md §6).

    spec = normalize_environment(job_environment)     # a reference string or a stored body
    env = EnvBuilder(cache_dir).prepare(spec, log=job_log)
    subprocess.run([env.python, "train.py"], env=env.environ())

Plain images run on the host Python; conda files and curated names become virtual environments
built once with uv and cached by the hash of the normalised spec.
"""

from shoal.envs.builder import EnvBuilder, PreparedEnv, default_host_python
from shoal.envs.conda import translate_conda
from shoal.envs.curated import known_names as known_curated_environments
from shoal.envs.errors import EnvironmentBuildError
from shoal.envs.spec import BUILDER_VERSION, EnvSpec, normalize_environment

__all__ = [
    "BUILDER_VERSION",
    "EnvBuilder",
    "EnvSpec",
    "EnvironmentBuildError",
    "PreparedEnv",
    "default_host_python",
    "known_curated_environments",
    "normalize_environment",
    "translate_conda",
]
