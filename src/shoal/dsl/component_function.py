"""``@command_component``: a Python function as a command component, mldesigner's contract.

    from shoal.mldesigner import command_component, Input, Output   # was: from mldesigner import …

    @command_component(name="prep_data", version="1", environment=dict(image="python:3.11",
                       conda_file=Path(__file__).parent / "conda.yaml"))
    def prepare_data(input_data: Input(type="uri_folder"), training_data: Output(type="uri_folder"),
                     ratio: float = 0.2):
        ...                                   # the body runs in the job, with paths as strings

Calling the decorated function inside a ``@dsl.pipeline`` function adds a step (outside one, it
is a step to submit on its own, as any component call); ``.component`` is the CommandComponent,
which ``ml_client.components.create_or_update`` registers.

Why not the real ``mldesigner`` package: it imports azure-ai-ml (and through it the Azure
identity and storage clients) and builds Azure's entities, and its job command is
``mldesigner execute``, which needs mldesigner in the job's environment. Shoal's decorator makes
the same component from the same function: its code is the function's folder and its command a
small launcher, written into the command line itself, that imports the function's file and calls
the function with the inputs' values and the outputs' paths. The launcher needs nothing but the
job's Python: it puts stand-ins for the decorator and ``Input``/``Output`` in place of
``mldesigner`` and ``shoal.mldesigner`` (and of ``shoal`` itself where the job's environment
cannot import Shoal's SDK) before importing the file, since only the function's body runs there.
"""

from __future__ import annotations

import base64
import functools
import inspect
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.entities.component import CommandComponent
from shoal.entities.environment import Environment
from shoal.entities.io import Input, Output
from shoal.entities.loader import load_environment
from shoal.entities.ports import PRIMITIVE_TYPES
from shoal.entities.refs import is_local_path
from shoal.errors import UserError

_PY_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}

# What the job runs (``python -c``): parse --input/--output name=value pairs, make the SDK
# importable (or stand in for it), import the function's file, call the function.
LAUNCHER = """
import argparse, importlib.util, os, sys, types
p = argparse.ArgumentParser(prog="shoal command_component")
p.add_argument("--source", required=True)
p.add_argument("--function", required=True)
p.add_argument("--input", action="append", default=[])
p.add_argument("--output", action="append", default=[])
p.add_argument("--type", action="append", default=[])
p.add_argument("--returns")
a = p.parse_args()
def stand_in(*args, **kwargs):
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f
def port(*args, **kwargs):
    return None
def usable(name):
    try:
        importlib.import_module(name)
        return True
    except Exception:
        return False
sdk = usable("shoal.entities.io")
if not sdk:
    for key in [k for k in sys.modules if k == "shoal" or k.startswith("shoal.")]:
        del sys.modules[key]
for name in ("mldesigner",) + (() if sdk else ("shoal", "shoal.dsl")) + ("shoal.mldesigner",):
    module = types.ModuleType(name)
    module.__path__ = []
    module.command_component = stand_in
    module.Input = module.Output = port
    sys.modules[name] = module
    if "." in name:
        setattr(sys.modules["shoal"], name.split(".")[1], module)
types_of = dict(t.split("=", 1) for t in a.type)
def value(name, text):
    kind = types_of.get(name)
    if kind == "integer":
        return int(text)
    if kind == "number":
        return float(text)
    if kind == "boolean":
        return text.strip().lower() in ("true", "1", "yes")
    return text
kwargs = {}
for pair in a.input:
    name, _, text = pair.partition("=")
    kwargs[name] = value(name, text)
for pair in a.output:
    name, _, path = pair.partition("=")
    kwargs[name] = path
sys.path.insert(0, os.getcwd())
spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(a.source))[0], a.source)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
func = getattr(module, a.function)
while hasattr(func, "__wrapped__"):
    func = func.__wrapped__
result = func(**kwargs)
if a.returns and result is not None:
    with open(a.returns, "w", encoding="utf-8") as fh:
        fh.write(("true" if result else "false") if isinstance(result, bool) else str(result))
""".strip()


def _launcher_command(
    source: str, function: str, inputs: dict[str, Any], outputs: dict[str, Any], returns: str | None
) -> str:
    code = base64.b64encode(zlib.compress(LAUNCHER.encode(), 9)).decode()
    parts = [
        f"python -c \"import base64, zlib; exec(zlib.decompress(base64.b64decode('{code}')))\"",
        f"--source '{source}' --function {function}",
    ]
    for name, port in inputs.items():
        if port["type"] in PRIMITIVE_TYPES and port["type"] != "string":
            parts.append(f"--type {name}={port['type']}")
    for name, port in inputs.items():
        flag = f"--input '{name}=${{{{inputs.{name}}}}}'"
        parts.append(f"$[[{flag}]]" if port.get("optional") else flag)
    for name, port in outputs.items():
        if port["type"] not in PRIMITIVE_TYPES:
            parts.append(f"--output '{name}=${{{{outputs.{name}}}}}'")
    if returns is not None:  # the return value goes to this control output's file
        parts.append(f"--returns '${{{{outputs.{returns}}}}}'")
    return " ".join(parts)


def _port(param: inspect.Parameter, where: str) -> tuple[str, dict[str, Any]]:
    """``("input"|"output", port)`` for one parameter of the function."""
    annotation = param.annotation
    has_default = param.default is not inspect.Parameter.empty
    default = param.default if has_default else None
    if annotation is Output or isinstance(annotation, Output):
        spec = annotation if isinstance(annotation, Output) else Output()
        out = {"type": spec.type}
        if spec.description:
            out["description"] = spec.description
        return "output", out
    if annotation is Input or isinstance(annotation, Input):
        spec = annotation if isinstance(annotation, Input) else Input()
        port = spec.model_dump(mode="json", exclude_none=True)
        for key in ("path", "mode", "datastore", "path_on_compute"):
            port.pop(key, None)
    elif annotation in _PY_TYPES:
        port = {"type": _PY_TYPES[annotation]}
    elif annotation is inspect.Parameter.empty and type(default) in _PY_TYPES:
        port = {"type": _PY_TYPES[type(default)]}
    else:
        raise UserError(
            f"{where}: parameter {param.name!r} needs an annotation: Input(type=...), Output(type=...), "
            "int, float, bool or str"
        )
    if has_default:
        if default is None:
            port["optional"] = True
        elif port["type"] in PRIMITIVE_TYPES:
            port["default"] = default
    return "input", port


def _return_port(annotation: Any, where: str) -> dict[str, Any] | None:
    """The output a return annotation declares: ``-> str`` or ``-> Output(type="boolean",
    is_control=True)`` (a primitive: a control output); None without one."""
    if annotation is inspect.Signature.empty or annotation is None:
        return None
    if isinstance(annotation, type) and annotation in _PY_TYPES:
        return {"type": _PY_TYPES[annotation]}
    if isinstance(annotation, Output) and annotation.type in PRIMITIVE_TYPES:
        port: dict[str, Any] = {"type": annotation.type}
        if annotation.is_control is not None:
            port["is_control"] = annotation.is_control
        if annotation.description:
            port["description"] = annotation.description
        return port
    if isinstance(annotation, Output):
        raise UserError(
            f"{where}: the return annotation is a {annotation.type} output; only a primitive one (string, "
            "number, integer, boolean) can be returned: write data to an Output(...) parameter"
        )
    return None  # another annotation (a class, a string) declares nothing, as in mldesigner


def _without_mldesigner(env: Environment) -> Environment:
    """The environment without the ``mldesigner`` pip requirement mldesigner's examples add: the
    job runs the function through Shoal's launcher, and mldesigner would pull in azure-ai-ml."""
    conda = env.conda_file
    if not isinstance(conda, dict) or not isinstance(conda.get("dependencies"), list):
        return env

    def keep(req: Any) -> bool:
        return not (isinstance(req, str) and req.strip().lower().split("=")[0].split("[")[0].strip() == "mldesigner")

    deps = []
    for dep in conda["dependencies"]:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            dep = {**dep, "pip": [r for r in dep["pip"] if keep(r)]}
        deps.append(dep)
    return env.model_copy(update={"conda_file": {**conda, "dependencies": deps}})


def _environment(value: Any, folder: Path) -> Any:
    """mldesigner's ``environment=``: an Environment, a dict of its keywords, a reference, or the
    path of an environment YAML relative to the function's file."""
    if isinstance(value, os.PathLike) or (
        isinstance(value, str) and is_local_path(value) and value.lower().endswith((".yml", ".yaml"))
    ):
        value = load_environment(folder / os.fspath(value))
    elif isinstance(value, dict):
        value = Environment(**value)  # a conda_file here is read now, relative to the working folder
    return _without_mldesigner(value) if isinstance(value, Environment) else value


class ComponentFunction:
    """What ``@command_component`` makes of a function: calling it (in a pipeline) is a step."""

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        where = f"@command_component {func.__name__}"
        source = Path(inspect.getfile(func)).resolve()
        code = Path(os.fspath(options.get("code") or source.parent)).resolve()
        try:
            relative = source.relative_to(code).as_posix()
        except ValueError:
            raise UserError(f"{where}: its file {source} is not inside its code folder {code}") from None
        inputs: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        for param in inspect.signature(func, eval_str=False).parameters.values():
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise UserError(f"{where}: *args and **kwargs cannot be component ports; name each one")
            kind, port = _port(param, where)
            (inputs if kind == "input" else outputs)[param.name] = port
        returns = _return_port(inspect.signature(func).return_annotation, where)
        if returns is not None:
            if "output" in outputs:
                raise UserError(f"{where}: a parameter is named 'output', the name of the return value's output")
            # mldesigner declares a primitive return value as the output "output" (a control
            # output): the job writes the value returned, and later steps can be bound to it.
            outputs["output"] = returns
        doc = inspect.getdoc(func)
        body: dict[str, Any] = {
            "type": "command",
            "name": options.get("name") or func.__name__,
            "version": options.get("version"),
            "display_name": options.get("display_name"),
            "description": options.get("description") or (doc.strip() if doc else None),
            "tags": options.get("tags"),
            "is_deterministic": options.get("is_deterministic"),
            "inputs": inputs,
            "outputs": outputs,
            "code": code.as_posix(),
            "command": _launcher_command(relative, func.__name__, inputs, outputs, "output" if returns else None),
            "environment": _environment(options.get("environment") or "azureml:AzureML-minimal@latest", source.parent),
            "distribution": options.get("distribution"),
            "resources": options.get("resources"),
            "additional_includes": options.get("additional_includes"),
        }
        self.component = CommandComponent(**{k: v for k, v in body.items() if v is not None})

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        if args:
            raise UserError(f"component {self.component.name}: pass inputs by name, e.g. {self.func.__name__}(x=…)")
        return self.component(**inputs)

    def to_component(self) -> CommandComponent:
        """The component (``ml_client.components.create_or_update(func)`` registers it)."""
        return self.component

    def __repr__(self) -> str:
        return f"<command_component {self.component.name}>"

    def __str__(self) -> str:
        """``print(func)`` shows the component's YAML, as mldesigner's component functions do."""
        return str(self.component)


def command_component(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    is_deterministic: bool | None = None,
    tags: dict[str, str] | None = None,
    environment: Any = None,
    distribution: Any = None,
    resources: Any = None,
    code: str | os.PathLike[str] | None = None,
    additional_includes: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    """mldesigner's ``@command_component``: the function becomes a command component whose job runs
    the function's body. Parameters annotated ``Input(type=...)`` (or int, float, bool, str) are its
    inputs, ``Output(type=...)`` its outputs; the body gets input values and output paths.
    ``environment`` is an Environment, a reference, a dict of Environment's keywords, or the path
    of an environment YAML next to the function's file (default: ``AzureML-minimal``, the
    server's Python); a ``mldesigner`` pip requirement in its conda file is left out (the job does
    not need it). ``code`` defaults to the function's folder. A primitive return annotation
    (``-> str``, or ``-> Output(type="boolean", is_control=True)``) declares the output ``output``, as
    mldesigner does: the value returned is recorded when the job completes, and a later step's
    input bound to ``step.outputs.output`` gets it (a control output)."""
    options = {
        "name": name,
        "version": version,
        "display_name": display_name,
        "description": description,
        "is_deterministic": is_deterministic,
        "tags": tags,
        "environment": environment,
        "distribution": distribution,
        "resources": resources,
        "code": code,
        "additional_includes": additional_includes,
    }
    del kwargs  # mldesigner's other keywords (repository, …) describe Azure registration only

    def wrap(function: Callable[..., Any]) -> ComponentFunction:
        if not callable(function):
            raise UserError(f"@command_component decorates a function, got {function!r}")
        return ComponentFunction(function, options)

    return wrap(func) if func is not None else wrap
