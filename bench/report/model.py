"""The report's analysis on plain run dicts (as ``bench.report.fetch`` returns them): trials,
groups of trials that differ only in their seed (mean and std over seeds), the evaluated
splits' sizes and Wilson intervals, the search objective, smoke detection, Pareto fronts,
matched-budget pairs and block ordering. No MLflow, no plotting.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.record import TrialRecord
from bench.spec.trial import EXECUTION_KEYS

# Parameters that do not change what a trial learns (where and how fast it ran): left out of the
# grouping key, like every ``*.seed``.
EXECUTION_PARAMS = EXECUTION_KEYS
# resbench.status when the tag is missing (runs logged by hand): from the MLflow status.
_FROM_MLFLOW = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "stopped",
                "RUNNING": "running", "SCHEDULED": "running"}
FINISHED = ("completed",)
# Trials that ran but were cut short (ASHA / a budget): drawn at their last epoch, marked.
STOPPED = ("stopped",)
# Images of an evaluated split: the metric the trial logs (``<split>_images``) when present.
SPLIT_SIZE_METRIC = "{split}_images"
# Smoke runs: this tag ("true") on a sweep's parent or a trial, or an experiment named so.
SMOKE_TAG = "resbench.smoke"
SMOKE_SUFFIX = "-smoke"
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def _int(text: str | None) -> int | None:
    try:
        return int(float(text)) if text not in (None, "") else None
    except ValueError:
        return None


@dataclass
class Trial(TrialRecord):
    """One trial's MLflow child run as a ``TrialRecord`` (its history: one row per logged
    step), with the run's identity and the architecture fields the report groups by."""

    run: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    name: str = ""
    experiment: str = ""
    sweep_id: str = ""
    family: str = ""  # resnet | densenet | timm | "" (unknown)
    depth: int | None = None
    skip: str = ""
    block: str = ""
    seed: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    lesion: dict[str, Any] | None = None

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> Trial:
        tags, params = run.get("tags", {}), run.get("params", {})
        family = params.get("arch.family", "")
        skip = params.get("arch.skip", "")
        blocks = sorted({v for k, v in params.items()
                         if k.startswith("arch.stages.") and k.endswith(".block")})
        depth = _int(params.get("arch.depth"))
        status = tags.get("resbench.status") or _FROM_MLFLOW.get(run.get("status", ""), "unknown")
        label = tags.get("resbench.label") or run.get("run_name") or run["run_id"][:8]
        kind = tags.get("resbench.kind") or ("reference" if family == "timm" else "search")
        return cls(
            trial_id=tags.get("resbench.trial_id", ""), kind=kind, config={}, label=label,
            status=status, metrics=dict(run.get("metrics", {})),
            message=tags.get("resbench.error", ""),
            history=_rows(run.get("history") or {}), role=params.get("trial", ""),
            measure_only=kind == "reference" and "test_acc" not in run.get("metrics", {}),
            run=run, run_id=run["run_id"], name=run.get("run_name") or label,
            experiment=run.get("experiment", ""), sweep_id=tags.get("resbench.sweep_id", ""),
            family=family, depth=depth if depth else None, skip=skip,
            block=blocks[0] if len(blocks) == 1 else ("mixed" if blocks else ""),
            seed=_int(params.get("train.seed")), params=dict(params), lesion=run.get("lesion"),
        )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def plain(self) -> bool:
        return self.family in ("resnet", "plain") and self.skip == "none"

    @property
    def reference(self) -> bool:
        return self.kind == "reference" or self.family == "timm"

    @property
    def trained(self) -> bool:
        """Has accuracies (a measurement-only reference has none)."""
        return "val_acc" in self.metrics or "test_acc" in self.metrics

    @property
    def variant(self) -> str:
        """The architecture family as the figures group it: plain, resnet-<skip>, densenet..."""
        if self.reference:
            return "timm reference"
        if self.family in ("resnet", "plain"):
            return "plain" if self.plain else f"resnet ({self.skip or '?'})"
        if self.family == "densenet":
            bc = self.params.get("arch.dense_bottleneck") == "True"
            c = (_float(self.params.get("arch.compression")) or 1.0) < 1.0
            return "densenet" + ("-" + ("b" if bc else "") + ("c" if c else "") if bc or c else "")
        return self.family or "other"

    @property
    def epochs(self) -> int:
        return int(self.metrics.get("epoch", 0) or 0)

    def group_key(self) -> tuple[str, ...]:
        keep = sorted((k, v) for k, v in self.params.items()
                      if k not in EXECUTION_PARAMS and k.rsplit(".", 1)[-1] != "seed")
        return (self.experiment, self.kind, self.label, *(f"{k}={v}" for k, v in keep))

    def curve(self, key: str) -> list[tuple[float, float]]:
        return [(float(row["epoch"]), float(row[key])) for row in self.history
                if key in row and _ok(row[key])]

    @property
    def curve_keys(self) -> set[str]:
        """The metrics with a per-step history."""
        return {k for row in self.history for k in row if k != "epoch"}

    @property
    def stopped(self) -> bool:
        """Cut short by the scheduler: its metrics are those of its last epoch."""
        return self.status in STOPPED

    def split_size(self, split: str) -> int | None:
        """Images in the evaluated ``split`` (val or test): the ``<split>_images`` metric, else
        what the data parameters imply (``data.subset`` x ``data.val_fraction``,
        ``data.test_subset``); None when neither says."""
        logged = self.metrics.get(SPLIT_SIZE_METRIC.format(split=split))
        if _ok(logged) and logged >= 1:
            return int(logged)
        p = self.params
        if split == "val":
            used, frac = _float(p.get("data.subset")), _float(p.get("data.val_fraction"))
            n = round(used * frac) if used and frac is not None else 0
        else:
            n = _int(p.get("data.test_subset")) or 0
        return int(n) if n >= 1 else None

    @property
    def smoke(self) -> bool:
        return (self.run.get("tags", {}).get(SMOKE_TAG, "").lower() == "true"
                or self.experiment.endswith(SMOKE_SUFFIX))


def _rows(series: dict[str, list[list[float]]]) -> list[dict[str, float]]:
    """MLflow's per-metric histories (``key -> [[step, value], ...]``) as one row per step
    (``{"epoch": step, key: value, ...}``), the record's history form."""
    rows: dict[float, dict[str, float]] = {}
    for key, points in series.items():
        for step, value in points:
            rows.setdefault(float(step), {"epoch": float(step)})[key] = value
    return [rows[step] for step in sorted(rows)]


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _ok(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


@dataclass
class Stat:
    """Mean, sample standard deviation (0 for one value) and count of a metric over seeds;
    for an accuracy, the 95% Wilson interval of the mean for the ``images`` of the evaluated
    split (None when the split's size is not known)."""

    mean: float
    std: float
    n: int
    lo: float | None = None
    hi: float | None = None
    images: int | None = None


def wilson(acc_percent: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (percent) of an accuracy measured on ``n`` images."""
    p = min(max(acc_percent / 100.0, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def with_interval(s: Stat | None, images: int | None) -> Stat | None:
    """``s`` with the Wilson interval of its mean on ``images`` images."""
    if s is None or not images:
        return s
    lo, hi = wilson(s.mean, images)
    return Stat(s.mean, s.std, s.n, lo, hi, images)


def stat(values: Iterable[float]) -> Stat | None:
    vals = [float(v) for v in values if _ok(v)]
    if not vals:
        return None
    return Stat(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals))


@dataclass
class Group:
    """Trials with the same architecture and training configuration except the seed."""

    trials: list[Trial] = field(default_factory=list)

    @property
    def first(self) -> Trial:
        return self.trials[0]

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.finished]

    def stat(self, metric: str) -> Stat | None:
        """Over the finished trials; an accuracy carries the interval of its split's size."""
        trials = [t for t in self.finished if metric in t.metrics]
        return with_interval(stat(t.metrics[metric] for t in trials),
                             _split_images(trials, metric))

    @property
    def stopped(self) -> list[Trial]:
        return [t for t in self.trials if t.stopped]

    def last_stat(self, metric: str) -> Stat | None:
        """Over the stopped trials, at their last epoch (for a group with no finished one)."""
        trials = [t for t in self.stopped if metric in t.metrics]
        return with_interval(stat(t.metrics[metric] for t in trials),
                             _split_images(trials, metric))

    def spread(self, metric: str) -> Stat | None:
        """A measurement over the group's trials (throughput measured under load): mean and
        std over the trials, or one trial's own ``<metric>_std`` when it logs one."""
        trials = [t for t in self.trials if _ok(t.metrics.get(metric))]
        s = stat(t.metrics[metric] for t in trials)
        if s is not None and s.n == 1:
            own = trials[0].metrics.get(f"{metric}_std")
            if _ok(own):
                s = Stat(s.mean, float(own), 1)
        return s

    def value(self, metric: str) -> float | None:
        """A metric that does not depend on the seed (cost), from any trial that has it."""
        for t in self.trials:
            if metric in t.metrics and _ok(t.metrics[metric]):
                return t.metrics[metric]
        return None

    def mean(self, metric: str) -> float | None:
        s = self.stat(metric)
        return s.mean if s else None

    def mean_curve(self, key: str) -> list[tuple[float, float]]:
        """Per-epoch mean over the group's finished (or stopped) trials."""
        by_step: dict[float, list[float]] = {}
        for t in self.trials:
            if t.status in ("completed", "stopped"):
                for step, v in t.curve(key):
                    by_step.setdefault(step, []).append(v)
        return [(s, statistics.fmean(vs)) for s, vs in sorted(by_step.items())]

    @property
    def seeds(self) -> list[int]:
        return sorted({t.seed for t in self.trials if t.seed is not None})


def _split_images(trials: Sequence[Trial], metric: str) -> int | None:
    split = metric.split("_", 1)[0]
    if split not in ("val", "test") or not metric.endswith("_acc"):
        return None
    sizes = {t.split_size(split) for t in trials}
    return sizes.pop() if len(sizes) == 1 else None  # unknown, or differing: no interval


def group_trials(trials: Sequence[Trial]) -> list[Group]:
    """Trials grouped by ``Trial.group_key`` in first-seen order."""
    groups: dict[tuple[str, ...], Group] = {}
    for t in trials:
        groups.setdefault(t.group_key(), Group()).trials.append(t)
    return list(groups.values())


def accuracy_metric(trials: Sequence[Trial]) -> str:
    """test_acc when some finished trial has it, else val_acc."""
    return "test_acc" if any(t.finished and "test_acc" in t.metrics for t in trials) else "val_acc"


def objective_metric(sweeps: Sequence[dict[str, Any]], trials: Sequence[Trial]) -> str:
    """The accuracy the search ranked by: the first maximised ``*_acc`` objective of the
    sweeps (their ``objectives`` parameter), else val_acc when trials have it, else test_acc."""
    import json

    for s in sweeps:
        try:
            objectives = json.loads(s.get("params", {}).get("objectives") or "{}")
        except ValueError:
            continue
        if isinstance(objectives, dict):
            for name, mode in objectives.items():
                if str(name).endswith("_acc") and mode == "max" and any(
                        name in t.metrics for t in trials):
                    return str(name)
    if any("val_acc" in t.metrics for t in trials if t.finished or t.stopped):
        return "val_acc"
    return "test_acc"


def smoke_sources(sweeps: Sequence[dict[str, Any]], trials: Sequence[Trial],
                  experiments: Sequence[str]) -> list[str]:
    """What marks the report's runs as smoke runs (empty when none is): experiments named
    ``*-smoke``, sweeps or trials tagged ``resbench.smoke=true``."""
    out = [f"experiment {e!r}" for e in experiments if e.endswith(SMOKE_SUFFIX)]
    tagged = [s for s in sweeps if s.get("tags", {}).get(SMOKE_TAG, "").lower() == "true"]
    if tagged:
        out.append(f"{len(tagged)} sweep{'s' if len(tagged) != 1 else ''} tagged {SMOKE_TAG}")
    runs = [t for t in trials if t.run.get("tags", {}).get(SMOKE_TAG, "").lower() == "true"]
    if runs:
        out.append(f"{len(runs)} trial{'s' if len(runs) != 1 else ''} tagged {SMOKE_TAG}")
    return out


def pareto_front(points: Sequence[tuple[float, float]], x_mode: str) -> list[int]:
    """Indices of the non-dominated points, accuracy ``y`` maximised and ``x`` minimised
    (``x_mode`` "min") or maximised ("max"); ordered along x."""
    from bench.pareto import nondominated_fronts

    sign = 1.0 if x_mode == "min" else -1.0
    oriented = [(float(y), -sign * float(x)) for x, y in points]
    first: dict[tuple[float, float], int] = {}  # a point drawn twice is one step of the line
    for i in (nondominated_fronts(oriented) or [[]])[0]:
        first.setdefault(oriented[i], i)
    return sorted(first.values(), key=lambda i: (sign * points[i][0], -points[i][1]))


_BLOCK_RE = re.compile(r"^stage(\d+)\.block(\d+)$")


def block_order(names: Iterable[str]) -> list[str]:
    """Gradient / lesion group names in forward order: stem, stageS.blockB, head; others
    (top-level children of non-resbench models) alphabetically in between."""
    def key(name: str) -> tuple[int, int, int, str]:
        if name == "stem":
            return (0, 0, 0, name)
        if name == "head":
            return (3, 0, 0, name)
        m = _BLOCK_RE.match(name)
        if m:
            return (1, int(m.group(1)), int(m.group(2)), name)
        return (2, 0, 0, name)

    return sorted(set(names), key=key)


def nearest(target: float, candidates: Sequence[Group], metric: str) -> Group | None:
    """The candidate whose ``metric`` is closest to ``target`` on a log scale."""
    best, dist = None, math.inf
    for g in candidates:
        v = g.value(metric)
        if v and v > 0 and target > 0:
            d = abs(math.log(v / target))
            if d < dist:
                best, dist = g, d
    return best


__all__ = [
    "Group",
    "Stat",
    "Trial",
    "accuracy_metric",
    "block_order",
    "display_names",
    "group_trials",
    "nearest",
    "objective_metric",
    "pareto_front",
    "smoke_sources",
    "stat",
    "wilson",
    "with_interval",
]


def display_names(groups: Sequence[Group], multi_experiment: bool) -> dict[int, str]:
    """A unique display name per group (``id(group)`` -> name): the architecture label, the
    experiment when several are compared, and the parameters that tell apart groups sharing a
    label (e.g. ``densenet16-k4 (lr=1e6)``)."""
    base = {id(g): g.first.label + (f" [{g.first.experiment}]" if multi_experiment else "")
            for g in groups}
    by_base: dict[str, list[Group]] = {}
    for g in groups:
        by_base.setdefault(base[id(g)], []).append(g)
    out: dict[int, str] = {}
    for name, gs in by_base.items():
        if len(gs) == 1:
            out[id(gs[0])] = name
            continue
        keys = sorted({k for g in gs for k in g.first.params
                       if not k.startswith("sample.") and k not in EXECUTION_PARAMS
                       and k.rsplit(".", 1)[-1] != "seed"})
        differ = [k for k in keys if len({g.first.params.get(k) for g in gs}) > 1]
        # the recipe first (the label already names the architecture), keys all groups share
        # before keys some lack
        differ.sort(key=lambda k: (any(k not in g.first.params for g in gs),
                                   k.startswith("arch."), k))
        for i, g in enumerate(gs):
            extra = ", ".join(f"{k.rsplit('.', 1)[-1]}={g.first.params.get(k, '-')}"
                              for k in differ[:3])
            out[id(g)] = f"{name} ({extra})" if extra else f"{name} #{i + 1}"
    return out
