"""What a finished sweep prints and attaches: the top trials, the Pareto set, the per-seed
means of repeated configurations, and the CSV of every outcome."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from bench.plan import text_table

# --- the final report ------------------------------------------------------------------------------


def pareto(points: list[Any], objectives: dict[str, str]) -> list[Any]:
    """The non-dominated outcomes (every objective present), in their order."""
    from bench.pareto import nondominated_fronts, oriented

    pts = [o for o in points if all(k in o.metrics for k in objectives)]
    fronts = nondominated_fronts([oriented(o.metrics, objectives) for o in pts])
    return [pts[i] for i in sorted(fronts[0])] if fronts else []


def summarize(space: Any, found: list[Any], top: int) -> tuple[list[str], dict[str, float], str]:
    from bench.space import human
    from bench.tune import MESSAGE_KEY, fmt, placeholders

    objectives = space.search.objectives
    metric, mode = space.search.primary
    counts: dict[str, int] = {}
    for o in found:
        counts[o.status] = counts.get(o.status, 0) + 1
    search = [o for o in found if o.kind == "search"]
    stand_ins = {o.trial_id: placeholders(o.metrics) for o in found}

    def has(o: Any, k: str) -> bool:
        return k in o.metrics and k not in stand_ins[o.trial_id]

    ranked = [o for o in search if o.status in ("completed", "stopped") and has(o, metric)]
    ranked.sort(key=lambda o: o.metrics[metric], reverse=(mode == "max"))
    cols = list(dict.fromkeys([*objectives, "val_acc", "test_acc", "params", "macs"]))

    def row(o: Any) -> list[str]:
        cells = [o.trial_id, o.label, o.status, str(o.epochs)]
        for k in cols:
            v = o.metrics.get(k) if has(o, k) else None
            cells.append("-" if v is None else (human(v) if k in ("params", "macs") else fmt(v)))
        return cells

    headers = ["trial", "arch", "status", "epochs", *cols]
    state = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [f"\n{len(found)} trials: {state or 'none'}"]
    if ranked:
        lines.append(f"\ntop {min(top, len(ranked))} by {metric} ({mode}):")
        lines += text_table(headers, [row(o) for o in ranked[:top]])
    front: list[Any] = []
    if len(objectives) > 1:
        full = [o for o in search if o.status == "completed"
                and all(has(o, k) for k in objectives)]
        front = pareto(full, dict(objectives))
        front.sort(key=lambda o: o.metrics[metric], reverse=(mode == "max"))
        lines.append(f"\nPareto set ({', '.join(f'{k} {m}' for k, m in objectives.items())}; "
                     f"fully trained trials only): {len(front)} of {len(full)}")
        if front:
            lines += text_table(headers, [row(o) for o in front])
    if space.search.repeats > 1:
        lines += repeats_table(space, search, has)
    refs = [o for o in found if o.kind == "reference"]
    if refs:
        ref_cols = [c for c in ["val_acc", "test_acc", "params", "macs", "infer_img_per_s",
                                "latency_ms_p50"] if any(has(o, c) for o in refs)]
        lines.append("\nreferences:")
        lines += text_table(["trial", "arch", "status", *ref_cols], [
            [o.trial_id, o.label, o.status] + [
                "-" if not has(o, k) else (human(o.metrics[k]) if k in ("params", "macs")
                                           else fmt(o.metrics[k])) for k in ref_cols]
            for o in refs])
    bad = [o for o in found if o.status in ("failed", "diverged")]
    for o in bad[:5]:
        first = (o.message or str(o.metrics.get(MESSAGE_KEY, ""))).splitlines()
        lines.append(f"  {o.status}: {o.trial_id} {o.label}: {first[0] if first else '?'}")
    metrics = {
        "trials_total": float(len(found)),
        "rejected_trials": float(counts.get("rejected", 0)),
        **{f"trials_{s}": float(counts.get(s, 0))
           for s in ("completed", "stopped", "diverged", "failed")},
    }
    best = ""
    if ranked:
        metrics[f"best_{metric}"] = float(ranked[0].metrics[metric])
        best = ranked[0].trial_id
    if len(objectives) > 1:
        metrics["pareto_size"] = float(len(front))
    return lines, metrics, best


def repeats_table(space: Any, search: list[Any], has: Any) -> list[str]:
    """``search.repeats``: each configuration's completed seeds as mean +- std (sample std) of
    the primary objective and the test accuracy, beside the noise of one evaluation: the
    binomial standard error of an accuracy on the split's size."""
    import statistics

    from bench.estimate import split_sizes
    from bench.space import REPEAT_KEY, sample_of
    from bench.tune import fmt

    metric, mode = space.search.primary
    groups: dict[str, list[Any]] = {}
    labels: dict[str, str] = {}
    for o in search:
        rest = {k: v for k, v in sample_of(o.config).items() if k != REPEAT_KEY}
        key = json.dumps(rest, sort_keys=True, default=str)
        labels[key] = f"{o.label} ({', '.join(f'{k}={v}' for k, v in rest.items())})" \
            if any(not space.is_arch_axis(k) for k in rest if k in space.space) else o.label
        if o.status == "completed":
            groups.setdefault(key, []).append(o)
        else:
            groups.setdefault(key, [])
    d = space.dataset
    train_n, test_n = split_sizes(d)
    used = d.subset or train_n
    n_split = {"val_acc": round(d.val_fraction * used), "test_acc": d.test_subset or test_n}
    cols = list(dict.fromkeys([metric, "test_acc"]))

    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        if len(values) == 1:
            return f"{fmt(values[0])} (1 seed)"
        return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"

    def se(key: str, values: list[float]) -> str:
        n = n_split.get(key)
        if not values or not n or not key.endswith("_acc"):
            return ""
        p = min(max(statistics.fmean(values) / 100.0, 0.0), 1.0)
        return f"{100.0 * (p * (1 - p) / n) ** 0.5:.2f}"

    def mean_of(key: str) -> float:
        values = [o.metrics[metric] for o in groups[key] if has(o, metric)]
        if not values:
            return float("-inf")
        return statistics.fmean(values) * (1 if mode == "max" else -1)

    rows = []
    for key in sorted(groups, key=mean_of, reverse=True):
        row = [labels[key], f"{len(groups[key])}/{space.search.repeats}"]
        for c in cols:
            values = [float(o.metrics[c]) for o in groups[key] if has(o, c)]
            row += [cell(values), se(c, values)]
        rows.append(row)
    headers = ["configuration", "seeds"]
    for c in cols:
        headers += [f"{c} mean ± std", f"{c} SE (n={n_split.get(c, '?')})"]
    out = [f"\nper configuration over {space.search.repeats} seeds (completed trials; SE: the "
           "binomial standard error of one accuracy on that many images, the noise of a single "
           "evaluation):"]
    return out + text_table(headers, rows)


def _csv(space: Any, found: list[Any]) -> str:
    keys = sorted({k for o in found for k, v in o.metrics.items() if isinstance(v, (int, float))
                   and not isinstance(v, bool)})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial_id", "kind", "arch", "status", *keys])
    for o in found:
        w.writerow([o.trial_id, o.kind, o.label, o.status, *[o.metrics.get(k, "") for k in keys]])
    return buf.getvalue()

