"""Turn an azure-ai-ml notebook into a Python script that runs on Shoal, with only the mechanical
edits a user makes by hand (issue #16):

- ``azure.ai.ml`` becomes ``shoal`` in import lines (``from azure.ai.ml.entities import Model`` →
  ``from shoal.entities import Model``), ``mldesigner`` becomes ``shoal.mldesigner`` and
  ``mltable`` ``shoal.mltable`` (``import mltable`` → ``import shoal.mltable as mltable``);
- ``azure.identity`` imports go, credential objects become ``None`` and ``credential.get_token(…)``
  checks go;
- every ``MLClient(…)`` / ``MLClient.from_config(…)`` becomes ``MLClient()`` (the local workspace),
  and the workspace placeholders a user fills in on Azure too (``"<SUBSCRIPTION_ID>"``,
  ``"<RESOURCE_GROUP>"``, ``"<AML_WORKSPACE_NAME>"``) get the local workspace's values;
- web data the examples read (``iris.csv``, ``Titanic.csv``) is replaced by the copies in
  ``--data-dir`` (default ``tests/data/notebooks``);
- IPython magics and shell lines (``%pip …``, ``!ls``) are dropped, as are ``%%`` cells, except
  ``%%writefile PATH``, which becomes the Python that writes the cell's text to ``PATH``;
- with ``--sources``, the same import swap in the ``.py`` files of the notebook's folder (the
  component files a notebook imports, e.g. ``from mldesigner import command_component``); only
  their import lines change.

Nothing else changes: what the notebook does with the SDK is what the script does.

    python scripts/convert_notebook.py NOTEBOOK.ipynb [-o SCRIPT.py] [--data-dir DIR] [--sources]

The script is written beside the notebook unless ``-o`` says otherwise; run it from the notebook's
folder, since notebooks use paths relative to it.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "tests" / "data" / "notebooks"
MODULE_RENAMES = {"azure.ai.ml": "shoal", "mldesigner": "shoal.mldesigner", "mltable": "shoal.mltable"}
DROPPED_MODULES = ("azure.identity",)
CREDENTIAL_CLASSES = {
    "DefaultAzureCredential",
    "InteractiveBrowserCredential",
    "AzureCliCredential",
    "ManagedIdentityCredential",
    "ClientSecretCredential",
}
# The workspace details a user fills in (on Azure too): the local workspace's.
PLACEHOLDERS = {
    "<SUBSCRIPTION_ID>": "00000000-0000-0000-0000-000000000000",  # shoal.constants.SHOAL_SUBSCRIPTION_ID
    "<RESOURCE_GROUP>": "shoal",
    "<AML_WORKSPACE_NAME>": "default",
    "<ATTACHED_SPARK_POOL_NAME>": "spark-pool",  # the Synapse pool a user attaches (a synapsespark compute)
}
# Web data the examples read → the file in --data-dir that replaces it.
WEB_DATA = {
    "https://azuremlexamples.blob.core.windows.net/datasets/iris.csv": "iris.csv",
    "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv": "iris.csv",
    "wasbs://demo@dprepdata.blob.core.windows.net/Titanic.csv": "Titanic.csv",
}


def _renamed(module: str) -> str | None:
    """The Shoal module for ``module``; None to drop the import; the same name otherwise."""
    if module.startswith(DROPPED_MODULES):
        return None
    for old, new in MODULE_RENAMES.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return module


class _Edits(ast.NodeTransformer):
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        module = _renamed(node.module or "")
        if module is None:
            return None
        node.module = module
        return node

    def visit_Import(self, node: ast.Import) -> ast.AST | None:
        kept = []
        for alias in node.names:
            module = _renamed(alias.name)
            if module is not None:
                # `import mltable` → `import shoal.mltable as mltable`: the name the cells use
                asname = alias.asname or (alias.name if module != alias.name and "." not in alias.name else None)
                kept.append(ast.alias(name=module, asname=asname))
        if not kept:
            return None
        node.names = kept
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "get_token":
            return None  # a credential check: Shoal needs no Azure token
        self.generic_visit(node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in CREDENTIAL_CLASSES:
            return ast.copy_location(ast.Constant(None), node)
        is_client = isinstance(func, ast.Name) and func.id == "MLClient"
        from_config = (
            isinstance(func, ast.Attribute)
            and func.attr == "from_config"
            and isinstance(func.value, ast.Name)
            and func.value.id == "MLClient"
        )
        if is_client or from_config:
            return ast.copy_location(ast.Call(func=ast.Name("MLClient", ast.Load()), args=[], keywords=[]), node)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str) and node.value in WEB_DATA:
            return ast.copy_location(ast.Constant(str(self.data_dir / WEB_DATA[node.value])), node)
        if isinstance(node.value, str) and node.value in PLACEHOLDERS:
            return ast.copy_location(ast.Constant(PLACEHOLDERS[node.value]), node)
        return node


def _fill_empty_bodies(tree: ast.AST) -> None:
    """A ``try:`` whose only statements were credential lines needs a ``pass``."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and field == "body" and not block:
                block.append(ast.Pass())
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                if not handler.body:
                    handler.body.append(ast.Pass())


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _write_file(code: str) -> str:
    """``%%writefile [-a] PATH`` + text → the Python that writes it (IPython expands ``{name}``
    in the path from the notebook's variables, as an f-string does)."""
    first, _, text = code.lstrip().partition("\n")
    words = first.split()[1:]
    mode = "a" if words[:1] == ["-a"] or words[:1] == ["--append"] else "w"
    path = " ".join(w for w in words if w not in ("-a", "--append"))
    if path.endswith(".py"):  # a component file the notebook writes: the same import swap
        text = swap_imports(text)
    return f"with open(f{path!r}, {mode!r}, encoding='utf-8') as _file:\n    _file.write({text!r})"


def convert_source(code: str, data_dir: Path = DATA_DIR) -> str:
    """One code cell (or a whole script) with the edits above applied."""
    if code.lstrip().startswith("%%writefile"):
        return _write_file(code)
    if code.lstrip().startswith("%%"):
        return ""
    lines = [line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))]
    tree = ast.parse("\n".join(lines))
    tree = _Edits(data_dir).visit(tree)
    _fill_empty_bodies(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


def convert_notebook(notebook: Path, data_dir: Path = DATA_DIR) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    parts = [f'"""Converted from {notebook.name} by scripts/convert_notebook.py."""']
    for number, cell in enumerate(cells, 1):
        if cell.get("cell_type") != "code":
            continue
        converted = convert_source(cell_source(cell), data_dir)
        if converted.strip():
            parts.append(f"# -- cell {number}\n{converted}")
    return "\n\n".join(parts) + "\n"


# Job code keeps `import mltable`: a job's environment installs the real package.
_IMPORT_LINE = re.compile(r"^(\s*(?:from|import)\s+)(azure\.ai\.ml|mldesigner)\b")


def swap_imports(text: str) -> str:
    """``text`` (Python source) with only its import lines of azure.ai.ml / mldesigner swapped."""
    lines = text.splitlines(keepends=True)
    return "".join(_IMPORT_LINE.sub(lambda m: m.group(1) + MODULE_RENAMES[m.group(2)], line) for line in lines)


def convert_sources(folder: Path) -> list[Path]:
    """Swap the import lines of the ``.py`` files under ``folder``; returns the files changed."""
    changed = []
    for path in sorted(folder.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        swapped = swap_imports(text)
        if swapped != text:
            path.write_text(swapped, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="the script to write (default: beside the notebook)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="local copies of the examples' web data")
    parser.add_argument("--sources", action="store_true", help="swap the import lines of the folder's .py files too")
    args = parser.parse_args(argv)
    if args.sources:
        for path in convert_sources(args.notebook.parent):
            print(f"imports swapped: {path}", file=sys.stderr)
    out = args.output or args.notebook.with_suffix(".shoal.py")
    out.write_text(convert_notebook(args.notebook, args.data_dir.resolve()), encoding="utf-8")
    print(out, file=sys.stderr)


if __name__ == "__main__":
    main()
