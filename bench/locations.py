"""Where things live by default, torch- and MLflow-free (a dry run and ``--help`` import only
this): the project checkout, the local MLflow store and its artifact folder, and the dataset /
cache folders a launcher takes from the environment (``RESBENCH_DATA``, ``RESBENCH_CACHE``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from bench.spec.trial import DataSpec

DATA_ENV = "RESBENCH_DATA"  # read by launchers only, through resolve_paths
CACHE_ENV = "RESBENCH_CACHE"


def repo_root() -> Path:
    """The project checkout holding this package (for the default store), else the cwd."""
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd().resolve()


def default_tracking_uri(root: Path | None = None) -> str:
    """``sqlite:///<repo>/mlflow/mlflow.db`` (absolute: Ray workers run in other cwds)."""
    return f"sqlite:///{(root or repo_root()) / 'mlflow' / 'mlflow.db'}"


def local_store(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


def default_artifact_location(uri: str) -> str | None:
    """Artifacts next to a local SQLite store (``<dir>/artifacts``); servers decide for others."""
    db = local_store(uri)
    return (db.parent / "artifacts").as_uri() if db is not None else None


def ui_command(uri: str) -> str:
    """The exact command that browses the store."""
    return f"mlflow ui --backend-store-uri {uri}"


def resolve_paths(spec: DataSpec, environ: Mapping[str, str]) -> DataSpec:
    """Fill the unset ``root`` from RESBENCH_DATA and ``cache_dir`` from RESBENCH_CACHE (else the
    XDG cache folder). For launchers: the library itself never reads the environment."""
    changes: dict[str, str] = {}
    if spec.root is None and environ.get(DATA_ENV):
        changes["root"] = environ[DATA_ENV]
    if spec.cache_dir is None:
        if environ.get(CACHE_ENV):
            changes["cache_dir"] = environ[CACHE_ENV]
        else:
            base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            changes["cache_dir"] = str(Path(base) / "resbench")
    return dataclasses.replace(spec, **changes) if changes else spec


__all__ = ["CACHE_ENV", "DATA_ENV", "default_artifact_location", "default_tracking_uri",
           "local_store", "repo_root", "resolve_paths", "ui_command"]
