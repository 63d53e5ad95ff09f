"""Project layout guarantees: the mlflow/ store folder never shadows the mlflow package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mlflow_folder_has_no_package_marker():
    assert (ROOT / "mlflow").is_dir()
    assert not (ROOT / "mlflow" / "__init__.py").exists()
    assert not list((ROOT / "mlflow").glob("*.py"))
    ignored = (ROOT / "mlflow" / ".gitignore").read_text()
    assert "mlflow.db" in ignored and "artifacts/" in ignored


def test_import_mlflow_from_repo_root_gets_installed_package():
    code = "import mlflow, sys; print(mlflow.__file__); print(mlflow.__version__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    path = Path(out[0]).resolve()
    assert ROOT / "mlflow" not in path.parents
    assert "site-packages" in str(path) and out[1][0].isdigit()


def test_search_spaces_ship_with_the_package():
    import search_spaces

    folder = Path(search_spaces.__file__).parent
    assert (folder / "quickstart.yaml").is_file()
