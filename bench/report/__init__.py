"""Comparison reports of sweeps recorded in MLflow: one self-contained HTML file (sortable
tables, inline SVG figures; opens offline) with a Markdown file of its tables and a CSV of the
trials next to it (same stem).

    from bench.report import write_report
    write_report("sqlite:///mlflow/mlflow.db", ["resnet-cifar", "densenet-cifar"],
                 "reports/resnet-vs-densenet.html")

Modules: ``fetch`` reads runs as plain dicts (through ``bench.tracking``), ``model`` groups and
compares them, ``plots`` draws, ``tables`` formats, ``page`` assembles. ``build_report`` works
on plain run dicts, so a report can be made (and tested) without MLflow.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import ConfigError, ResbenchError

if TYPE_CHECKING:
    from bench.report.page import Report

SUFFIXES = (".html", ".md", ".csv")
ARTIFACT_DIR = "report"


def report_paths(out_path: str | Path) -> tuple[Path, Path, Path]:
    """The HTML file and its Markdown and CSV siblings."""
    out = Path(out_path)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"the report file must end in .html, got {str(out)!r}", "--out")
    return out, out.with_suffix(".md"), out.with_suffix(".csv")


def default_stem(experiments: Sequence[str]) -> str:
    """A file name stem for the experiments: 'a', or 'a-vs-b' (unsafe characters replaced)."""
    names = [re.sub(r"[^A-Za-z0-9._-]+", "_", e).strip("._") or "experiment"
             for e in dict.fromkeys(experiments)]
    return "-vs-".join(names)[:150]


def build_report(runs: Sequence[dict[str, Any]], experiments: Sequence[str],
                 tracking_uri: str = "") -> Report:
    """The rendered report (HTML, Markdown, CSV strings) of plain run dicts."""
    from bench.report.page import build_report as build

    return build(runs, experiments, tracking_uri)


def save_report(report: Report, out_path: str | Path) -> Path:
    """Write the three files atomically: each goes to a temporary file in the target folder,
    and only when all are written are they renamed into place (nothing half-written)."""
    paths = report_paths(out_path)
    for path in paths:
        if path.is_dir():
            raise ConfigError(f"{path} is a folder; choose another report file name", "--out")
    temps: list[str] = []
    try:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for path, content in zip(paths, (report.html, report.markdown, report.csv), strict=True):
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append(tmp)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for tmp, path in zip(temps, paths, strict=True):
            os.replace(tmp, path)
    except OSError as exc:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        raise ResbenchError(f"cannot write the report to {paths[0]}: {exc}") from exc
    return paths[0]


def write_report(tracking_uri: str, experiments: Sequence[str], out_path: str | Path,
                 sweeps: Sequence[str] = ()) -> Path:
    """Read the experiments' runs from MLflow and write the report; returns the HTML path.

    Never raises anything but ResbenchError: ConfigError for an unknown experiment (the message
    lists the existing ones), a missing local store or a bad ``out_path``; ResbenchError when
    MLflow cannot be read or the files cannot be written. ``sweeps`` keeps only those sweep ids.
    A figure that fails to draw is replaced by a note in the page, not an error."""
    report_paths(out_path)  # a bad name fails before anything is read
    experiments = list(experiments)
    try:
        from bench.report.fetch import fetch_experiment_runs

        runs = fetch_experiment_runs(tracking_uri, experiments, sweeps)
        report = build_report(runs, experiments, tracking_uri)
    except ResbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the sweep calling this must get one error type
        raise ResbenchError(f"could not build the report of {', '.join(experiments)}: "
                            f"{type(exc).__name__}: {exc}") from exc
    return save_report(report, out_path)


def log_report(tracking_uri: str, run_id: str, html_path: str | Path,
               artifact_dir: str = ARTIFACT_DIR) -> list[str]:
    """Attach a written report (HTML, Markdown, CSV) to a run, e.g. the sweep's parent, as
    artifacts under ``artifact_dir`` so it opens from the MLflow UI; returns the artifact paths.
    Raises ResbenchError when MLflow refuses."""
    from bench.tracking import Tracker

    tracker = Tracker(tracking_uri, "")
    logged = []
    try:
        for path in report_paths(html_path):
            if path.is_file():
                name = f"{artifact_dir}/{path.name}" if artifact_dir else path.name
                tracker.log_text(run_id, path.read_text(encoding="utf-8"), name)
                logged.append(name)
    except ResbenchError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ResbenchError(f"cannot attach the report to run {run_id}: "
                            f"{type(exc).__name__}: {exc}") from exc
    return logged


__all__ = ["build_report", "default_stem", "log_report", "report_paths", "save_report",
           "write_report"]
