"""Replaying search algorithms and schedulers against a finished exhaustive sweep.

``load_recorded`` reads a sweep's MLflow runs back into a table: per sampled configuration its
per-epoch ``val_acc`` / ``val_loss`` curve, its cost and its zero-cost proxy scores, with the
sweep's resolved space (from the parent run's ``space.resolved.json``). ``replay`` then runs a
real Ray Tune experiment (``bench.tune.run_replay``) whose trainable reports the recorded epochs
instead of training, so the real Optuna samplers (``bench.tune.make_searcher``) and the real
schedulers (``bench.tune.make_scheduler``: ASHA, MO-ASHA) decide, under a budget of epochs: a stopper ends
the experiment once the trials have reported that many epochs in all. One trial runs at a time,
so a replay is a deterministic function of its variant and seed.

Measured per run: the best final ``val_acc`` among the trials trained to their last epoch
(``regret`` to the exhaustive best), the hypervolume of their (``val_acc``, ``macs``) points
relative to the exhaustive front's, and the best-so-far against the epochs consumed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.pareto import hypervolume_2d
from bench.space import Scheduler, SearchSpace, from_dict, sample_of

CURVE = ("val_acc", "val_loss")
COST = ("params", "macs")
OBJECTIVES = {"val_acc": "max", "macs": "min"}
# variant -> (search algorithm, scheduler type, multi-objective)
VARIANTS: dict[str, tuple[str, str, bool]] = {
    "random": ("random", "none", False),
    "grid": ("grid", "none", False),
    "tpe": ("optuna_tpe", "none", False),
    "tpe+asha": ("optuna_tpe", "asha", False),
    "nsga2": ("optuna_nsga2", "none", True),
    "nsga2+asha": ("optuna_nsga2", "asha", True),
    "nsga2+mo_asha": ("optuna_nsga2", "mo_asha", True),
}
PRESCREEN = "prescreen:"  # "prescreen:<proxy>": the best-scoring configs by a recorded proxy


def key(sample: Mapping[str, Any]) -> str:
    return json.dumps({k: sample[k] for k in sorted(sample)}, default=str)


@dataclass(frozen=True)
class Recorded:
    """One configuration of the exhaustive sweep."""

    sample: dict[str, Any]
    label: str
    curve: tuple[dict[str, float], ...]  # epoch 1..E
    cost: dict[str, float]
    proxies: dict[str, float]

    @property
    def final_acc(self) -> float:
        return self.curve[-1]["val_acc"]


@dataclass
class Table:
    """A finished exhaustive sweep: its space and every configuration's record."""

    experiment: str
    space: SearchSpace
    epochs: int
    trials: dict[str, Recorded] = field(default_factory=dict)
    space_data: dict[str, Any] = field(default_factory=dict)  # the resolved space, as recorded

    @property
    def total_epochs(self) -> int:
        return self.epochs * len(self.trials)

    @property
    def best_acc(self) -> float:
        return max(r.final_acc for r in self.trials.values())

    def reference(self) -> tuple[float, float]:
        """The hypervolume reference point (val_acc, -macs): just below the worst of each."""
        accs = [r.final_acc for r in self.trials.values()]
        macs = [r.cost["macs"] for r in self.trials.values()]
        da, dm = (max(accs) - min(accs)) or 1.0, (max(macs) - min(macs)) or 1.0
        return (min(accs) - 0.01 * da, -max(macs) - 0.01 * dm)

    def hypervolume(self, records: Sequence[Recorded]) -> float:
        return hypervolume_2d([(r.final_acc, -r.cost["macs"]) for r in records],
                              self.reference())

    def reports(self, config: Mapping[str, Any]) -> list[dict[str, float]]:
        """What a replayed trial of ``config`` reports: its recorded epochs, one report each,
        or, when the configuration is not in the table (e.g. over the sweep's budget), one
        report of the worst values and no epochs."""
        rec = self.trials.get(key(sample_of(config)))
        if rec is None:
            return [{"epoch": 0.0, "val_acc": -1.0, "val_loss": 1e30, "macs": 1e30,
                     "params": 1e30, "replay_missing": 1.0}]
        return [{"epoch": float(epoch), **metrics, **rec.cost}
                for epoch, metrics in enumerate(rec.curve, 1)]


def _typed(space: SearchSpace, name: str, text: str) -> Any:
    """An MLflow param string back to the axis value it was (finite axes only)."""
    axis = space.space.get(name)
    values = axis.values if axis is not None else None
    if values is None:
        raise ConfigError(f"axis {name!r} is not finite; replay needs choice / grid axes",
                          f"space.{name}")
    for v in values:
        if str(v) == text:
            return v
    raise ConfigError(f"recorded value {text!r} is not a value of axis {name!r}", f"space.{name}")


def table_from_runs(runs: Sequence[dict[str, Any]], experiment: str,
                    space_data: Mapping[str, Any]) -> Table:
    """A ``Table`` from ``bench.report.fetch`` run dicts of one sweep and its resolved space."""
    from bench.report.fetch import is_sweep

    space = from_dict(dict(space_data))
    table = Table(experiment, space, space.train.epochs, space_data=dict(space_data))
    for run in runs:
        tags = run["tags"]
        if is_sweep(run) or tags.get("resbench.kind") == "reference":
            continue
        if tags.get("resbench.status") != "completed":
            continue
        sample = {k[len("sample."):]: _typed(space, k[len("sample."):], v)
                  for k, v in run["params"].items() if k.startswith("sample.")}
        steps = {int(s): v for s, v in run["history"].get("val_acc", [])}
        if sorted(steps) != list(range(1, table.epochs + 1)):
            continue  # not every epoch recorded: not replayable
        losses = {int(s): v for s, v in run["history"].get("val_loss", [])}
        curve = tuple({"val_acc": steps[e], "val_loss": losses.get(e, math.nan)}
                      for e in range(1, table.epochs + 1))
        metrics = run["metrics"]
        table.trials.setdefault(key(sample), Recorded(
            sample, tags.get("resbench.label", run["run_id"][:8]), curve,
            {k: float(metrics[k]) for k in COST if k in metrics},
            {k[len("proxy/"):]: float(v) for k, v in metrics.items() if k.startswith("proxy/")}))
    if not table.trials:
        raise ConfigError(f"experiment {experiment!r} has no completed trial with all "
                          f"{table.epochs} epochs recorded", "--experiment")
    return table


def load_recorded(uri: str, experiment: str) -> Table:
    """The latest completed sweep of ``experiment`` as a ``Table``."""
    from bench.report.fetch import fetch_experiment_runs, is_sweep
    from bench.tracking import Tracker

    runs = fetch_experiment_runs(uri, [experiment])
    sweeps = [r for r in runs if is_sweep(r) and r["tags"].get("resbench.status") == "completed"]
    if not sweeps:
        raise ConfigError(f"experiment {experiment!r} has no completed sweep", "--experiment")
    parent = max(sweeps, key=lambda r: r["start_time"] or 0)
    sweep_id = parent["tags"].get("resbench.sweep_id")
    client = Tracker(uri, experiment).client
    with tempfile.TemporaryDirectory(prefix="resbench-replay-") as d:
        path = client.download_artifacts(parent["run_id"], "space.resolved.json", d)
        with open(path, encoding="utf-8") as f:
            space_data = json.load(f)
    mine = [r for r in runs if r["tags"].get("resbench.sweep_id") == sweep_id]
    return table_from_runs(mine, experiment, space_data)


TABLE_FORMAT = "resbench.replay.table/1"


def table_to_dict(table: Table) -> dict[str, Any]:
    """The table as plain data (``save_table``): enough to replay without the MLflow store."""
    return {"format": TABLE_FORMAT, "experiment": table.experiment, "epochs": table.epochs,
            "space": table.space_data,
            "trials": [{"sample": r.sample, "label": r.label, "curve": list(r.curve),
                        "cost": r.cost, "proxies": r.proxies} for r in table.trials.values()]}


def table_from_dict(data: Mapping[str, Any], source: str = "--recorded") -> Table:
    """The inverse of ``table_to_dict``; a file of another format is refused by name."""
    if not isinstance(data, Mapping) or data.get("format") != TABLE_FORMAT:
        got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        raise ConfigError(f"not a recorded replay table (format {got!r}, expected "
                          f"{TABLE_FORMAT!r})", source)
    try:
        space = from_dict(dict(data["space"]))
        table = Table(str(data["experiment"]), space, int(data["epochs"]),
                      space_data=dict(data["space"]))
        for t in data["trials"]:
            sample = {k: _typed(space, k, str(v)) for k, v in t["sample"].items()}
            curve = tuple({k: math.nan if v is None else float(v) for k, v in e.items()}
                          for e in t["curve"])  # JSON holds NaN as null
            if len(curve) != table.epochs:
                raise ConfigError(f"trial {t.get('label')!r} has {len(curve)} epochs, the "
                                  f"table {table.epochs}", source)
            table.trials[key(sample)] = Recorded(
                sample, str(t["label"]), curve, {k: float(v) for k, v in t["cost"].items()},
                {k: float(v) for k, v in t["proxies"].items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"malformed recorded replay table: {type(exc).__name__}: {exc}",
                          source) from None
    if not table.trials:
        raise ConfigError("the recorded replay table holds no trials", source)
    return table


def load_table_file(path: str) -> Table:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", "--recorded") from None
    return table_from_dict(data)


# --- the replay ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One replay: a variant under a seed and a budget, and what it found."""

    variant: str
    seed: int
    budget: int
    epochs: int  # consumed
    trials: int
    full: int  # trials trained to their last epoch
    best_val_acc: float
    regret: float
    hv_ratio: float
    trace: list[tuple[int, float]]  # (epochs consumed, best fully-trained val_acc so far)


def variant_space(table: Table, variant: str, seed: int, reduction_factor: float
                   ) -> tuple[SearchSpace, list[dict[str, Any]] | None]:
    """The space a variant replays (and the grid configs, for grid and prescreened runs)."""
    space = table.space
    n = len(table.trials)
    if variant.startswith(PRESCREEN):
        proxy = variant[len(PRESCREEN):]
        missing = [r.label for r in table.trials.values() if proxy not in r.proxies]
        if missing:
            raise ConfigError(f"proxy {proxy!r} was not recorded for {len(missing)} trials "
                              f"(e.g. {missing[0]})", "--variant")
        recs = list(table.trials.values())
        random.Random(seed).shuffle(recs)  # ties keep a seeded order
        recs.sort(key=lambda r: -r.proxies[proxy])
        configs = [{"sample": r.sample} for r in recs]
        search = dataclasses.replace(space.search, algorithm="grid", num_samples=None,
                                     prescreen=None, seed=seed)
        return dataclasses.replace(space, search=search, scheduler=Scheduler()), configs
    if variant not in VARIANTS:
        valid = [*VARIANTS, f"{PRESCREEN}<proxy>"]
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(valid)}", "--variant")
    algorithm, sched, multi = VARIANTS[variant]
    objectives = dict(OBJECTIVES) if multi else {"val_acc": "max"}
    grace = 1
    scheduler = Scheduler(type=sched, grace_period=grace, reduction_factor=reduction_factor) \
        if sched != "none" else Scheduler()
    search = dataclasses.replace(
        space.search, algorithm=algorithm, objectives=objectives, seed=seed, prescreen=None,
        num_samples=None if algorithm == "grid" else 20 * n, max_concurrent=1,
        population_size=max(2, min(n, 8)) if algorithm == "optuna_nsga2" else None)
    axes = space.space if algorithm == "grid" else \
        {name: axis.as_choice() for name, axis in space.space.items()}
    replayed = dataclasses.replace(space, space=axes, search=search, scheduler=scheduler)
    configs = None
    if algorithm in ("grid", "random"):
        from bench.space import search_configs

        configs = search_configs(replayed)
        if algorithm == "grid":
            configs = [{"sample": c["sample"]} for c in configs]
    return replayed, configs


def replay(table: Table, variant: str, seed: int, budget: int, storage: str,
           reduction_factor: float = 3.0) -> Run:
    """One replay of ``variant`` with ``seed`` under ``budget`` epochs (on a running Ray)."""
    from bench.tune import run_replay

    space, configs = variant_space(table, variant, seed, reduction_factor)
    replayed = run_replay(table, space, configs, budget, storage,
                          f"replay-{variant.replace(':', '-')}-{seed}")
    return summarize(table, variant, seed, budget, replayed)


def summarize(table: Table, variant: str, seed: int, budget: int, replayed: Any) -> Run:
    """What a replay found (``bench.tune.Replayed``), from its ordered log of results, checked
    against each trial's last result."""
    last, used = replayed.last, replayed.used
    if sum(last.values()) != used:
        raise RuntimeError(f"budget accounting differs: {sum(last.values())} epochs in the "
                           f"results, {used} counted")
    full = [t for t, e in last.items() if e == table.epochs]
    best, trace, spent, seen = -math.inf, [], 0, {}
    for trial_id, epoch, acc in replayed.log:
        spent += max(0, epoch - seen.get(trial_id, 0))
        seen[trial_id] = max(epoch, seen.get(trial_id, 0))
        if epoch == table.epochs and acc > best:
            best = acc
        trace.append((spent, best))
    records = [table.trials[key(sample_of(replayed.configs[t]))] for t in full]
    hv_all = table.hypervolume(list(table.trials.values()))
    return Run(variant, seed, budget, used, len(last), len(full), best,
               table.best_acc - best, table.hypervolume(records) / hv_all if hv_all else 0.0,
               _thin(trace))


def _thin(trace: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """One point per change of the best value (and the last)."""
    out: list[tuple[int, float]] = []
    for used, best in trace:
        if not out or best != out[-1][1]:
            out.append((used, best))
    if trace and out[-1] != trace[-1]:
        out.append(trace[-1])
    return out


def aggregate(runs: Sequence[Run]) -> dict[str, dict[str, float]]:
    """Mean and std over seeds of regret, hypervolume ratio and epochs, per variant."""
    out: dict[str, dict[str, float]] = {}
    for variant in dict.fromkeys(r.variant for r in runs):
        mine = [r for r in runs if r.variant == variant]
        row: dict[str, float] = {"seeds": float(len(mine))}
        for k in ("regret", "hv_ratio", "epochs", "trials", "full"):
            vals = [float(getattr(r, k)) for r in mine if math.isfinite(getattr(r, k))]
            row[f"{k}_mean"] = statistics.fmean(vals) if vals else math.nan
            row[f"{k}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out[variant] = row
    return out


def proxy_correlations(table: Table) -> list[dict[str, Any]]:
    """Each recorded proxy's rank correlations with the final val_acc over the whole table
    (Spearman's rho, Kendall's tau-b, 95% percentile bootstrap intervals)."""
    from bench.report.proxies import correlations

    metrics = [{"val_acc": r.final_acc, **{f"proxy/{k}": v for k, v in r.proxies.items()}}
               for r in table.trials.values()]
    return [dataclasses.asdict(c) for c in correlations(metrics, "val_acc")]


def markdown(table: Table, budget: int, summary: Mapping[str, Mapping[str, float]],
             proxies: Sequence[Mapping[str, Any]] = ()) -> str:
    """The replay table: each variant's regret and hypervolume ratio (mean ± std over seeds),
    then each proxy's rank correlation with the final val_acc over the table."""
    lines = [f"Replay of `{table.experiment}`: {len(table.trials)} architectures x "
             f"{table.epochs} epochs = {table.total_epochs} epochs exhaustive, best val_acc "
             f"{table.best_acc:.2f}; budget {budget} epochs per replay.", "",
             "| variant | seeds | regret (val_acc points) | hypervolume ratio | epochs used | "
             "trials | trained to the end |", "|---|---|---|---|---|---|---|"]
    for variant, row in summary.items():
        lines.append(
            f"| {variant} | {row['seeds']:.0f} | {row['regret_mean']:.2f} ± "
            f"{row['regret_std']:.2f} | {row['hv_ratio_mean']:.3f} ± {row['hv_ratio_std']:.3f}"
            f" | {row['epochs_mean']:.0f} | {row['trials_mean']:.1f} | {row['full_mean']:.1f} |")
    if proxies:
        lines += ["", f"Zero-cost proxies against the final val_acc of all {len(table.trials)} "
                  "architectures (95% bootstrap intervals):", "",
                  "| proxy | Spearman ρ | Kendall τ-b |", "|---|---|---|"]
        for c in proxies:
            lo, hi = c["spearman_ci"]
            tlo, thi = c["kendall_ci"]
            lines.append(f"| {c['proxy']} | {c['spearman']:.2f} [{lo:.2f}, {hi:.2f}] | "
                         f"{c['kendall']:.2f} [{tlo:.2f}, {thi:.2f}] |")
    return "\n".join(lines) + "\n"





def merge_results(paths: Sequence[str], experiment: str, budget: int,
                  reduction_factor: float) -> tuple[list[dict[str, Any]], float]:
    """The runs of earlier replays' results files (same experiment, budget and reduction
    factor), one per (variant, seed), and their summed wall time; ConfigError (``--merge``)
    naming the file that disagrees."""
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    wall = 0.0
    for name in paths:
        try:
            with open(name, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {name}: {exc}", "--merge") from None
        for k, want in (("experiment", experiment), ("budget_epochs", budget),
                        ("reduction_factor", reduction_factor)):
            if data.get(k) != want:
                raise ConfigError(f"{name} has {k} {data.get(k)!r}, this replay {want!r}",
                                  "--merge")
        wall += float(data.get("wall_time_s") or 0.0)
        for r in data.get("runs", []):
            # JSON holds non-finite numbers as null: back to what a Run holds
            r = {**r, **{k: math.nan for k in ("best_val_acc", "regret", "hv_ratio")
                         if r.get(k) is None},
                 "trace": [(int(u), -math.inf if b is None else float(b)) for u, b in r["trace"]]}
            at = (r["variant"], int(r["seed"]))
            if at in runs and runs[at] != r:
                raise ConfigError(f"{name}: {at[0]} seed {at[1]} differs from an earlier file",
                                  "--merge")
            runs[at] = r
    if not runs:
        raise ConfigError("the files hold no replay runs", "--merge")
    return list(runs.values()), wall


def write_results(experiment: str, table: Any, uri: str, budget: int, reduction_factor: float,
                  runs: list[dict[str, Any]], wall_s: float, out: Path, md: Path) -> str:
    """Aggregate ``runs`` (dicts of ``Run``), write the JSON (``out``), the Markdown table
    (``md``) and its HTML figure beside it; returns the Markdown."""
    from bench.jsonio import finite, write_atomic
    from bench.report.replay import page

    summary = aggregate([Run(**r) for r in runs])
    proxies = proxy_correlations(table)
    text = markdown(table, budget, summary, proxies)
    seeds = max((sum(1 for r in runs if r["variant"] == v) for v in summary), default=0)
    data = {"experiment": experiment, "tracking_uri": uri, "budget_epochs": budget,
            "exhaustive": {"architectures": len(table.trials), "epochs": table.epochs,
                           "total_epochs": table.total_epochs, "best_val_acc": table.best_acc},
            "reduction_factor": reduction_factor, "seeds": seeds,
            "wall_time_s": wall_s, "summary": summary, "proxies": proxies, "runs": runs}
    write_atomic(out, json.dumps(finite(data), indent=2))
    write_atomic(md, text)
    write_atomic(md.with_suffix(".html"), page(data))
    return text


__all__ = ["PRESCREEN", "Recorded", "Run", "Table", "VARIANTS", "aggregate", "merge_results", "write_results", "variant_space",
           "load_recorded", "load_table_file", "markdown", "proxy_correlations", "replay", "table_from_dict",
           "table_from_runs", "table_to_dict"]
