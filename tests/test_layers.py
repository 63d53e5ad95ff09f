"""The layer boundaries of docs/architecture.md, checked on the source: Ray's types are used in
bench/tune.py only and MLflow's in bench/tracking.py only (the launchers import neither)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWNER = {"ray": "bench/tune.py", "mlflow": "bench/tracking.py"}


def _imports(path: Path) -> set[str]:
    """Top-level package names a module imports, wherever the import statement is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(OWNER))
def test_one_module_imports_each_engine(package):
    sources = sorted([*(ROOT / "bench").rglob("*.py"), *(ROOT / "launchers").glob("*.py")])
    assert len(sources) > 40  # the walk found the library
    users = [str(p.relative_to(ROOT)) for p in sources if package in _imports(p)]
    assert users == [OWNER[package]], f"{package} is imported by {users}"
