"""``python -m launchers.report``: an HTML comparison report of one or more MLflow experiments.

    python -m launchers.report --experiment quickstart
    python -m launchers.report --experiment resnet-cifar --experiment densenet-cifar \\
        --out reports/resnet-vs-densenet.html
    python -m launchers.report --experiment quickstart --tracking-uri http://mlflow:5000

Writes NAME.html (self-contained: open it offline or from the MLflow UI), NAME.md (its tables)
and NAME.csv (one row per trial); default ``<repo>/reports/<experiment>[-vs-<experiment>].html``.

Exit codes: 0 written, 1 MLflow could not be read or the files not written, 2 bad input (an
unknown experiment: the message lists the existing ones).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bench import plugins
from bench.errors import ConfigError, ResbenchError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launchers.report",
        description="Write an HTML comparison report (plus .md and .csv) of MLflow experiments.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 written, 1 MLflow or file error, 2 bad input",
    )
    p.add_argument("--experiment", action="append", required=True, metavar="NAME",
                   help="an MLflow experiment (a sweep's tracking.experiment); repeatable")
    p.add_argument("--out", metavar="FILE.html",
                   help="the HTML file (default <repo>/reports/<experiments>.html); the .md and "
                        ".csv go next to it")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else "
                        "sqlite:///<repo>/mlflow/mlflow.db)")
    p.add_argument("--sweep", action="append", default=[], metavar="SWEEP_ID",
                   help="only this sweep's runs (resbench.sweep_id tag); repeatable")
    plugins.add_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bench.report import default_stem, report_paths, write_report
    from bench.tracking import default_tracking_uri, quiet_store_logs, repo_root

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    out = args.out or str(repo_root() / "reports" / f"{default_stem(args.experiment)}.html")
    quiet_store_logs()
    try:
        plugins.import_plugins(args.plugin, "--plugin")
        path = write_report(uri, args.experiment, out, sweeps=args.sweep)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ResbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    html, md, csv = report_paths(path)
    print(f"wrote {html}\n      {md}\n      {csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
