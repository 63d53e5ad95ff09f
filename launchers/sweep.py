"""``python -m launchers.sweep``: run a search-space file as a Ray Tune sweep tracked in MLflow.

    python -m launchers.sweep --space search_spaces/quickstart.yaml
    python -m launchers.sweep --space FILE --dry-run          # trials, params and MACs; no training
    python -m launchers.sweep --space FILE --smoke            # every trial tiny: 1 epoch, small subset,
                                                              # into the experiment <name>-smoke
    python -m launchers.sweep --space FILE --resume           # continue the latest interrupted sweep
    python -m launchers.sweep --space FILE --resume auto      # continue it if there is one, else start
    python -m launchers.sweep --space FILE --address auto --storage s3://bucket/tune  # on a cluster
    python -m launchers.sweep --space FILE --set train.epochs=3 --set search.num_samples=4
    python -m launchers.sweep --space FILE --register NAME    # best model(s) into the registry
    python -m launchers.sweep --space FILE --set 'space["train.lr"].choice=[0.05,0.1]' --unset space.skip
    python -m launchers.sweep --schema > search-space.schema.json

Exit codes: 0 success, 1 the sweep failed (a trial crashed or Ray failed), 2 bad input (one
message, nothing written), 130 interrupted (Ctrl-C; continue with --resume).

Where things go: Ray's experiment state and checkpoints under ``--storage`` (default
``<repo>/.ray_results/<sweep id>/``; ``s3://`` works), Ray's session files in a temporary folder,
MLflow runs in ``--tracking-uri`` / ``MLFLOW_TRACKING_URI`` / the file's ``tracking.uri`` (default
``sqlite:///<repo>/mlflow/mlflow.db``, artifacts in ``<repo>/mlflow/artifacts/``).

One preflight runs before anything is written (no parent run, no storage folder), exit 2 on
the first problem: the storage scheme and folder, the tracking store (its scheme, an http(s)
server answering within 5 s, a database driver installed and its server reachable, a SQLite
file that is a database, writable store and artifact folders), the dataset, a ``--address``
answering within 15 s, and the per-trial CPUs and GPUs against the largest node. On a running cluster (``--address``)
trials spread over the nodes by their resources; with more than one node, ``--storage`` must be
``s3://...`` (or gs://...) or a shared filesystem (``--shared-storage``). At the end the sweep's
HTML report is written to ``<repo>/reports/<experiment>.html`` (``--report-dir``,
``--no-report``) and attached to the parent run under ``report/``.

MLflow layout: a parent run per sweep and a nested child per trial (see ``bench.tracking``).
Architectures over the ``constraints`` budget are never trained; each is recorded as a KILLED
child with ``resbench.status=rejected`` and the reason in ``resbench.error``, and counted in the
parent metric ``rejected_trials`` (grid / random reject them before Ray starts; under Optuna the
trial reports the worst objective values at once so the sampler learns).
"""


from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from bench import plugins
from bench.errors import ResbenchError
from bench.plan import plan  # noqa: F401 - re-exported
from bench.preflight import ADDRESS_TIMEOUT_S  # noqa: F401 - re-exported
from bench.sweep import configure_environment, quiet_libraries, run  # noqa: F401 - re-exported
from bench.sweep_state import (  # noqa: F401 - re-exported
    STATE_FILE,
    find_latest,
    find_resumable,
    read_state,
    write_state,
)

# --- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launchers.sweep",
        description="Run a search-space YAML as a Ray Tune sweep tracked in MLflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 ok, 1 sweep failed, 2 bad input, 130 interrupted",
    )
    p.add_argument("--space", metavar="FILE", help="search-space YAML (see search_spaces/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the file, e.g. train.epochs=3 (repeatable); a name "
                        "with dots is quoted: 'space[\"train.lr\"].choice=[0.1,0.2]'")
    p.add_argument("--unset", action="append", default=[], metavar="KEY",
                   help="remove a key of the file before the --set overrides, e.g. "
                        "space.skip or 'space[\"train.warmup_epochs\"]' (repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the trials (or the space) with params and MACs; train nothing")
    p.add_argument("--estimate", action=argparse.BooleanOptionalAction, default=True,
                   help="--dry-run: estimate each trial's time from a short, cached "
                        "calibration of its architecture (default on)")
    p.add_argument("--smoke", action="store_true",
                   help="shrink every trial (1 epoch, small subset) to check a space quickly; "
                        "its runs go to the experiment <experiment>-smoke (tagged "
                        "resbench.smoke=true) unless --experiment or --set "
                        "tracking.experiment=... names one")
    p.add_argument("--experiment", metavar="NAME",
                   help="MLflow experiment of the sweep (default: the file's tracking.experiment, "
                        "else its name; with --smoke, that name + '-smoke')")
    p.add_argument("--resume", nargs="?", const="latest", metavar="SWEEP_DIR|auto",
                   help="continue an interrupted sweep: the latest one of this space, SWEEP_DIR, "
                        "or 'auto' (continue the latest unfinished sweep of this space under "
                        "--storage if there is one, else start a new sweep)")
    p.add_argument("--address", metavar="ADDR",
                   help="join a running Ray cluster: auto, HOST:PORT or ray://host:10001 "
                        "(default: start a local one)")
    p.add_argument("--storage", metavar="PATH",
                   help="Ray results and checkpoints: a folder or s3://bucket/prefix "
                        "(default <repo>/.ray_results); a multi-node cluster needs s3://... or "
                        "a shared filesystem (--shared-storage)")
    p.add_argument("--shared-storage", action="store_true",
                   help="the local --storage path is a filesystem every Ray node shares "
                        "(NFS, a ReadWriteMany volume): allow it on a multi-node cluster")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, the file's "
                        "tracking.uri, else sqlite:///<repo>/mlflow/mlflow.db)")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write the sweep's HTML report at the end and attach it to the parent "
                        "run (default on)")
    p.add_argument("--report-dir", metavar="DIR",
                   help="folder of the report (default <repo>/reports); the file is "
                        "<experiment>.html")
    p.add_argument("--top", type=int, default=10, help="rows of the final table (default 10)")
    p.add_argument("--register", metavar="NAME",
                   help="also register the best trial(s)' models in the MLflow model registry "
                        "as versions of NAME (they are logged as models either way)")
    p.add_argument("--progress-interval", type=float, default=15.0, metavar="S",
                   help="seconds between progress tables (default 15)")
    p.add_argument("--schema", action="store_true",
                   help="print the JSON Schema of the search-space format and exit")
    p.add_argument("--debug", action="store_true",
                   help="tracebacks on errors, worker logs on the console, keep Ray's temp files")
    plugins.add_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ResbenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
