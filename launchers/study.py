"""``python -m launchers.study``: run a turnkey study (``bench.studies``) and judge its claim.

    python -m launchers.study list                              # the studies and GPU budgets
    python -m launchers.study degradation --smoke               # tiny CPU form (digits)
    python -m launchers.study degradation --tarball cifar10-jpeg.tar.gz   # GPU form
    python -m launchers.study all --form cpu --tarball cifar10-jpeg.tar.gz  # 2-core CPU forms
    python -m launchers.study all --data-root DIR --out results/
    python -m launchers.study import results/degradation.json [--tracking-uri URI]

A study is a search space that lists its trials plus a verdict. ``--backend ray`` (the default
where Ray is installed) runs that space through the sweep driver (``bench.sweep``): Ray Tune
locally, one trial at a time on all of the host's CPUs (timings as in-process), MLflow
recording the parent and a child per trial live (``--tracking-uri``, ``--experiment``; default
experiment ``study-NAME``), ``--resume`` (on by default) continuing an unfinished run of the same
trials; once every trial has ended the verdict goes onto the parent run and into the results
JSON. ``--backend sequential`` (the default where Ray is missing, e.g. a bare GPU host) runs the
trials one after another in-process through the same trainer, with a progress line per epoch,
and writes the same JSON (rewritten after every trial, so an interrupted run keeps what
finished) for ``import`` elsewhere. Either way the output ends with a table of the trials and
the verdict (claim, paper number, measured number). ``--max-minutes`` (default 8 for the GPU
form, 10 for the CPU form; sequential backend) skips the trials that would start after that
much time; they are recorded as ``skipped``.

Forms (``--form``): ``gpu`` (the paper-scale claim, about 8 minutes on one H100), ``cpu`` (the
claim at a 2-core CPU's budget: at most 10 minutes a study, 60 for all eight), ``smoke`` (tiny
stand-ins: the code path only; ``--smoke`` is short for it). A CPU-form run first measures this
CPU's ResNet-20 training img/s (fp32, and the precision ``auto`` picks), records it beside the
results with the CPU model, and estimates each trial's time from it.

The GPU form needs the JPEG CIFAR-10 tree (``train/`` + ``test/``): ``--data-root DIR``,
``--tarball FILE`` (extracted to a temporary folder) or the RESBENCH_DATA environment variable.
The smoke form uses scikit-learn's digits unless a data root is given.

``import`` logs a results JSON into MLflow (experiment ``study-<name>``: one parent run, one
child run per trial with its per-epoch metrics) so ``launchers.report`` can show it; importing
the same file again adds nothing.

The sequential backend needs only torch, timm, torchvision, numpy, PyYAML, Pillow and pydantic
(no Ray, no MLflow, no scikit-learn unless the digits are used); ``import`` needs MLflow.
Exit codes: 0 ran (whatever the verdict), 1 a trial failed (crash, out of memory) or MLflow
could not be written, 2 bad input (one message; ``--debug`` shows the traceback), 130
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import plugins
from bench.errors import ResbenchError
from bench.studies import FORMS, STUDY_ORDER
from bench.study_run import run
from launchers.sweep import build_parser as build_sweep_parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launchers.study",
        description="Run a resbench study (a paper's claim as a set of trials) and judge it, "
                    "or import a study's results into MLflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"studies: {', '.join(STUDY_ORDER)}; exit codes: 0 ran, 1 a trial failed or "
               "MLflow could not be written, 2 bad input, 130 interrupted",
    )
    p.add_argument("name", metavar="NAME|all|list|import",
                   help="a study, 'all' (every study in order), 'list', or 'import FILE'")
    p.add_argument("file", nargs="?", metavar="FILE", help="import: the results JSON")
    p.add_argument("--form", choices=FORMS, default=None,
                   help="gpu (default; the paper-scale claim), cpu (the claim on a 2-core CPU, "
                        "<= 10 min a study) or smoke (tiny stand-ins: the code path only)")
    p.add_argument("--smoke", action="store_true", help="short for --form smoke")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"),
                   help="train.device of every trial (default: the form's; GPU form: auto)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data-root", metavar="DIR", help="the JPEG CIFAR-10 tree (train/, test/)")
    src.add_argument("--tarball", metavar="PATH",
                     help="cifar10-jpeg.tar.gz, extracted to a temporary folder")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="decoded-dataset cache (default: RESBENCH_CACHE, else the user cache)")
    p.add_argument("--out", metavar="PATH",
                   help="results JSON (default results/NAME.json, results/NAME.smoke.json); "
                        "an existing folder, or with 'all': the folder that holds them")
    p.add_argument("--max-minutes", type=float, metavar="M",
                   help="skip trials that would start after M minutes (default 8 for the GPU "
                        "form, 10 for the CPU form, no limit for --smoke); with 'all' per study")
    p.add_argument("--dry-run", action="store_true",
                   help="parse every trial and print the plan with estimates; train nothing")
    p.add_argument("--trials", metavar="ROLE,...", help="only these trials (roles; see 'list')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key of every trial, e.g. train.compile=true (repeatable)")
    p.add_argument("--backend", choices=("auto", "ray", "sequential"), default="auto",
                   help="ray: the sweep machinery (Ray Tune locally, MLflow live, resumable); "
                        "sequential: in-process, the results JSON only (import it later); "
                        "auto (default): ray when Ray is installed")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="ray: continue an unfinished run of the same trials (default on)")
    p.add_argument("--storage", metavar="PATH",
                   help="ray: Ray's results and checkpoints (default <repo>/.ray_results)")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=False,
                   help="ray: also write the sweep's HTML report (default off)")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="ray and import: MLflow URI (default MLFLOW_TRACKING_URI, else the "
                        "repo store)")
    p.add_argument("--experiment", metavar="NAME",
                   help="ray and import: experiment (default study-NAME)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    plugins.add_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke and args.form not in (None, "smoke"):
        parser.error(f"--smoke contradicts --form {args.form}")
    args.form = "smoke" if args.smoke else (args.form or "gpu")
    args.argv = argv
    args.sweep_parser = build_sweep_parser  # the ray backend runs the sweep driver
    try:
        plugins.import_plugins(args.plugin, "--plugin")
        return run(args)
    except ResbenchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the results JSON holds the trials that finished)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
