"""``python -m launchers.replay``: replay search algorithms and schedulers against the per-epoch
curves a finished exhaustive sweep recorded in MLflow (``bench.replay``).

    python -m launchers.replay --experiment exhaustive_cifar               # every variant, 20 seeds
    python -m launchers.replay --experiment NAME --variant tpe --variant nsga2+mo_asha --seeds 5
    python -m launchers.replay --experiment NAME --variant prescreen:synflow --budget 160
    python -m launchers.replay --experiment NAME --merge a.json b.json   # shards run apart
    python -m launchers.replay --experiment NAME --save-recorded table.json --seeds 1
    python -m launchers.replay --recorded results/recorded-exhaustive_cifar.json  # no store needed

Shards: replays of disjoint variant sets (e.g. one process per core, each with its own --out)
combine with ``--merge`` into one result; they must share the experiment, budget and reduction
factor. ``--save-recorded FILE`` writes the recorded table (every configuration's curve, cost
and proxy scores, with the resolved space) as JSON; ``--recorded FILE`` replays from such a file
instead of MLflow, so a committed table reproduces a replay without the sweep's store.

Writes ``results/replay-<experiment>.json`` (every run: variant, seed, epochs used, trials, best
val_acc, regret, hypervolume ratio, the best-so-far trace against epochs) and
``docs/results/replay-<experiment>.md`` (mean ± std per variant) with an HTML page beside it
(the table and the mean regret against the epochs consumed), and prints the table.
Exit codes: 0 done, 2 bad input (unknown experiment or variant, nothing replayable).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import plugins
from bench.errors import ConfigError, ResbenchError

DEFAULT_VARIANTS = ("random", "grid", "tpe", "tpe+asha", "nsga2", "nsga2+asha", "nsga2+mo_asha")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m launchers.replay", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", help="MLflow experiment of the exhaustive sweep (required "
                   "unless --recorded names a saved table)")
    p.add_argument("--recorded", metavar="FILE",
                   help="replay from a table saved with --save-recorded instead of MLflow")
    p.add_argument("--save-recorded", metavar="FILE",
                   help="also write the recorded table (curves, costs, proxies, space) as JSON")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="default: MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow/mlflow.db")
    p.add_argument("--variant", action="append", metavar="NAME",
                   help=f"repeatable; default: {', '.join(DEFAULT_VARIANTS)} and "
                        "prescreen:<proxy> for each recorded proxy")
    p.add_argument("--seeds", type=int, default=20, help="replay seeds per variant (default 20)")
    p.add_argument("--budget", type=int, metavar="EPOCHS",
                   help="epochs per replay (default: --budget-fraction of the exhaustive epochs)")
    p.add_argument("--budget-fraction", type=float, default=1 / 3,
                   help="budget as a fraction of the exhaustive epochs (default 1/3)")
    p.add_argument("--reduction-factor", type=float, default=3.0,
                   help="ASHA / MO-ASHA reduction factor (default 3; grace period 1 epoch)")
    p.add_argument("--out", metavar="FILE", help="default results/replay-<experiment>.json")
    p.add_argument("--markdown", metavar="FILE",
                   help="default docs/results/replay-<experiment>.md")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="combine the results files of earlier replays (shards) instead of "
                        "replaying; a (variant, seed) present twice must not differ")
    p.add_argument("--debug", action="store_true", help="tracebacks on errors")
    plugins.add_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plugins.import_plugins(args.plugin, "--plugin")
        return run(args)
    except ResbenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import os

    from launchers.sweep import configure_environment, quiet_libraries

    configure_environment(local=True)
    from bench import replay as rp
    from bench import tune as rt
    from bench.locations import default_tracking_uri, repo_root

    if args.seeds < 1:
        raise ConfigError(f"must be >= 1, got {args.seeds}", "--seeds")
    if args.recorded:
        if args.tracking_uri:
            raise ConfigError("give --recorded or --tracking-uri, not both", "--recorded")
        table = rp.load_table_file(args.recorded)
        if args.experiment and args.experiment != table.experiment:
            raise ConfigError(f"{args.recorded} records experiment {table.experiment!r}, not "
                              f"{args.experiment!r}", "--experiment")
        args.experiment = table.experiment
        uri = f"recorded:{Path(args.recorded).name}"
    elif not args.experiment:
        raise ConfigError("name the exhaustive sweep's experiment, or a saved table with "
                          "--recorded FILE", "--experiment")
    else:
        uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
        table = rp.load_recorded(uri, args.experiment)
    if args.save_recorded:
        from bench.jsonio import finite, write_atomic

        write_atomic(Path(args.save_recorded), json.dumps(finite(rp.table_to_dict(table)),
                                                          indent=1))
        print(f"recorded table: {args.save_recorded} ({len(table.trials)} configurations)")
    budget = args.budget or max(1, round(args.budget_fraction * table.total_epochs))
    if budget < 1:
        raise ConfigError(f"must be >= 1, got {budget}", "--budget")
    proxies = sorted(set.intersection(*(set(r.proxies) for r in table.trials.values())))
    variants = args.variant or [*DEFAULT_VARIANTS, *(rp.PRESCREEN + p for p in proxies)]
    for v in variants:  # unknown names fail before Ray starts
        rp.variant_space(table, v, 0, args.reduction_factor)
    quiet_libraries(optuna=True)
    root = repo_root()
    out = Path(args.out or root / "results" / f"replay-{args.experiment}.json")
    md = Path(args.markdown or root / "docs" / "results" / f"replay-{args.experiment}.md")
    if args.merge:
        return write(args, table, uri, budget, *merged(args, budget), out, md)
    print(f"replay of {args.experiment}: {len(table.trials)} architectures x {table.epochs} "
          f"epochs, best val_acc {table.best_acc:.2f}; budget {budget} epochs; "
          f"{len(variants)} variants x {args.seeds} seeds", flush=True)
    owns_ray = not rt.ray_initialized()  # a caller's Ray session is joined, not shut down
    temp = tempfile.mkdtemp(prefix="rb-replay-")
    started = time.perf_counter()
    runs = []
    try:
        rt.init_ray(None, temp, log_to_driver=args.debug)
        for variant in variants:
            seeds = range(1) if variant == "grid" else range(args.seeds)  # grid ignores seeds
            for seed in seeds:
                runs.append(rp.replay(table, variant, seed, budget, temp, args.reduction_factor))
            print(f"  {variant}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        if owns_ray:
            rt.shutdown()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)
    return write(args, table, uri, budget, [dataclasses.asdict(r) for r in runs],
                 time.perf_counter() - started, out, md)


def merged(args: argparse.Namespace, budget: int) -> tuple[list[dict[str, Any]], float]:
    from bench.replay import merge_results

    return merge_results(args.merge, args.experiment, budget, args.reduction_factor)


def write(args: argparse.Namespace, table: Any, uri: str, budget: int,
          runs: list[dict[str, Any]], wall_s: float, out: Path, md: Path) -> int:
    from bench.replay import write_results

    text = write_results(args.experiment, table, uri, budget, args.reduction_factor, runs,
                         wall_s, out, md)
    print(text)
    print(f"results: {out}\ntable: {md} (figure: {md.with_suffix('.html')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
