"""What an instance of a deployment runs from, laid out once per rollout (``generation``):

    <home>/endpoints/<ws>/<endpoint>/<deployment>/g<N>/
        azureml-models/<model>/<version>/<model folder or file>   AZUREML_MODEL_DIR = …/<version>
        code/                                                     the code_configuration folder
        build.log                                                 the environment's build log
        instance-<i>/instance.log, port, pid                     one folder per instance

``AZUREML_MODEL_DIR`` is the parent of the registered model's folder, as on Azure
(``./azureml-models/$MODEL_NAME/$VERSION``), so ``os.path.join(AZUREML_MODEL_DIR, "model/x.pkl")``
in an Azure score.py finds ``x.pkl``."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.compute.sandbox import Sandbox
from shoal.entities.refs import parse_path
from shoal.envs import EnvBuilder
from shoal.envs.spec import normalize_environment
from shoal.errors import UserError
from shoal.services.context import ServiceContext
from shoal.services.endpoints import mlflow_env
from shoal.services.storage import files
from shoal.storage.paths import join_inside, safe_relpath

# A no-code MLflow deployment's score.py; a file of the runtime, run by the deployment's interpreter.
MLFLOW_SCORING = Path(__file__).resolve().parents[2] / "runtime" / "mlflow_scoring.py"


@dataclass(frozen=True)
class InstanceFiles:
    root: Path
    python: str
    env: dict[str, str]  # the environment's own variables (PATH of its venv…)
    model_dir: Path | None
    code_dir: Path | None
    script: Path | None
    env_cache: Path  # the built environments (shown read-only to a sandboxed instance)


def endpoints_root(ctx: ServiceContext) -> Path:
    return ctx.settings.resolved_home() / "endpoints"


def generation_dir(ctx: ServiceContext, workspace: str, endpoint: str, deployment: str, generation: int) -> Path:
    return endpoints_root(ctx) / workspace / endpoint / deployment / f"g{generation}"


def _copy_uri(ctx: ServiceContext, workspace: str, uri: str, dest: Path) -> str:
    """Copy the files under a datastore URI into ``dest``; returns the URI's last name."""
    ref = parse_path(uri)
    if ref.scheme != "datastore":
        raise UserError(f"{uri!r} is not in a datastore of this workspace; Shoal serves models and code from there")
    store = files.store_for(ctx, workspace, ref.datastore)
    rel = ref.path.strip("/")
    listed = store.list_files(rel)
    single = store.isfile(rel)
    for item in listed:
        target = join_inside(dest, safe_relpath(item.path)) if not single else dest / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        source = f"{rel}/{item.path}" if not single else rel
        with store.open_read(source) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    return rel.rsplit("/", 1)[-1]


def prepare(
    ctx: ServiceContext,
    workspace: str,
    endpoint: str,
    deployment: str,
    generation: int,
    resolved: dict[str, Any],
    sandbox: Sandbox | None = None,
) -> InstanceFiles:
    """Lay out generation ``generation`` of a deployment and build (or reuse) its environment
    (a requirement's build backend runs in ``sandbox``, as the scoring script will).
    Raises on a missing model, code or a failed environment build (the log is in build.log)."""
    root = generation_dir(ctx, workspace, endpoint, deployment, generation)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    model_dir = None
    model = resolved.get("model")
    if model:
        model_dir = root / "azureml-models" / model["name"] / str(model["version"])
        model_dir.mkdir(parents=True)
        listed_root = model_dir
        # A folder model keeps its folder name under AZUREML_MODEL_DIR (Azure's layout).
        ref = parse_path(model["uri"])
        if ref.scheme == "datastore" and files.store_for(ctx, workspace, ref.datastore).isdir(ref.path.strip("/")):
            listed_root = model_dir / ref.path.strip("/").rsplit("/", 1)[-1]
        _copy_uri(ctx, workspace, model["uri"], listed_root)
    code_dir = script = None
    code = resolved.get("code")
    if resolved.get("mlflow"):  # no-code MLflow: Shoal's MLflow scoring script is the code
        code_dir = root / "code"
        code_dir.mkdir()
        script = code_dir / "score.py"
        shutil.copyfile(MLFLOW_SCORING, script)
    elif code:
        code_dir = root / "code"
        code_dir.mkdir()
        _copy_uri(ctx, workspace, code["uri"], code_dir)
        script = join_inside(code_dir, safe_relpath(resolved["scoring_script"]))
        if not script.is_file():
            raise UserError(
                f"the scoring script {resolved['scoring_script']!r} is not in the code folder "
                f"(it has: {', '.join(sorted(p.name for p in code_dir.iterdir())) or 'nothing'})"
            )
    env_source = resolved["environment"]
    if env_source.get("from_model"):
        if model_dir is None:
            raise UserError("a no-code MLflow deployment needs a model")
        source = mlflow_env.environment_of(model_dir)
    else:
        source = env_source.get("curated") or env_source.get("inline") or env_source.get("spec")
    # The same cache and settings as the runner's (runtime/__main__.prepare_environment).
    cache = (
        Path(os.environ["SHOAL_ENV_CACHE"])
        if os.environ.get("SHOAL_ENV_CACHE")
        else ctx.settings.resolved_home() / "envs"
    )
    mismatch = "host" if os.environ.get("SHOAL_PYTHON_MISMATCH") == "host" else "error"
    with open(root / "build.log", "a", encoding="utf-8") as log:
        confine = sandbox.confine_build if sandbox is not None else None
        builder = EnvBuilder(cache, python_mismatch=mismatch, confine=confine)
        prepared = builder.prepare(normalize_environment(source), log=log)
    env = prepared.environ({k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")})
    return InstanceFiles(root, str(prepared.python), env, model_dir, code_dir, script, cache)
