"""The shape of the server-side core, beyond what `lint-imports` checks (see [tool.importlinter]
in pyproject.toml): services are small modules by area that use one another's public names only,
and the core never imports inside a function to get round an import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import shoal

SRC = Path(shoal.__file__).parent
CORE = ("services", "store", "compute", "entities")
MAX_MODULE_LINES = 600
# Function-level imports kept on purpose, and why.
LAZY_ON_PURPOSE = {
    # The runner resolves commands with expressions.py; pydantic (io.py) is not on its path.
    ("entities/expressions.py", "shoal.entities.io"),
}


def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (SRC / pkg).rglob("*.py") if "migrations" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def test_the_core_imports_at_module_level():
    inner = []
    for path in _modules(*CORE):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shoal"):
                    if (_rel(path), node.module) not in LAZY_ON_PURPOSE:
                        inner.append(f"{_rel(path)}:{node.lineno} {ast.unparse(node)}")
                elif isinstance(node, ast.Import) and any(a.name.startswith("shoal") for a in node.names):
                    inner.append(f"{_rel(path)}:{node.lineno} {ast.unparse(node)}")
    assert not inner, "imports inside functions:\n" + "\n".join(inner)


def test_modules_are_small():
    """A module a newcomer can read: split by area before one grows past this."""
    big = {_rel(p): n for p in sorted(SRC.rglob("*.py")) if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_modules_use_each_others_public_names_only():
    """`other._helper(...)` across modules is how the old circles grew; shared helpers get a
    public name in the module that owns them."""
    found = []
    for path in _modules(*CORE, "server"):
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shoal"):
                imported.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                imported.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("shoal"))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shoal"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                found += [f"{_rel(path)}:{node.lineno} imports {node.module}.{n}" for n in private]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{_rel(path)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_services_are_grouped_by_area():
    """A newcomer finds things by name: no loose modules beyond the shared floor."""
    loose = {p.name for p in (SRC / "services").glob("*.py")} - {"__init__.py"}
    assert loose <= {"context.py", "records.py", "workspaces.py"}, loose
    areas = {p.name for p in (SRC / "services").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert {"jobs", "tracking", "registry", "assets", "compute", "references", "access", "storage"} <= areas


def test_queries_live_in_the_store():
    """The store is the repository layer: services and routes ask it, they build no SQL."""
    found = []
    for path in _modules("services", "server"):
        for node in ast.walk(ast.parse(path.read_text())):
            allowed = {"sqlalchemy.exc": None, "sqlalchemy.orm": {"Session"}}  # errors, and the type
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[0] == "sqlalchemy"
                and (
                    node.module not in allowed
                    or (allowed[node.module] is not None and {a.name for a in node.names} - allowed[node.module])
                )
            ):
                found.append(f"{_rel(path)}:{node.lineno} {ast.unparse(node)}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "scalar", "scalars", "get", "query")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "session"
            ):
                found.append(f"{_rel(path)}:{node.lineno} session.{node.func.attr}(…)")
    assert not found, "queries outside store/:\n" + "\n".join(found)
