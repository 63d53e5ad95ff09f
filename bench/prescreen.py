"""``search.prescreen``: score a pool of untrained networks with one zero-cost proxy and keep the
best, before any training.

The pool is ``pool`` distinct configurations drawn with the search seed: for ``grid`` a sample
of the grid's combinations (all of them when the grid is smaller), otherwise draws from every
axis (``grid`` axes drawn like ``choice``). Configurations over the constraints budget are
never kept. The rest are ranked by the proxy (larger first; ties by draw order) and the first
``keep`` are the ones trained: the whole search under grid / random, the first trials Optuna is
given otherwise. ``Screening.rows`` records every configuration with its score, so the sweep
logs the ones not trained too (``prescreen.json`` on the parent run).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bench.space import SearchSpace, decode, draw, enumerate_samples

ARTIFACT = "prescreen.json"


@dataclass
class Screened:
    """One pool member: its sampled axes, architecture, cost, score and verdict."""

    index: int
    sample: dict[str, Any]
    label: str
    params: int
    macs: int
    score: float | None
    kept: bool = False
    reason: str = ""  # why not kept: over budget, or below the best ``keep``


@dataclass
class Screening:
    """The result of a prescreen (JSON-able through ``as_dict`` / ``from_dict``)."""

    proxy: str
    pool: int
    keep: int
    seconds: float
    rows: list[Screened] = field(default_factory=list)

    @property
    def kept(self) -> list[Screened]:
        """The kept configurations, best first."""
        return sorted((r for r in self.rows if r.kept), key=_order)

    def as_dict(self) -> dict[str, Any]:
        return {"proxy": self.proxy, "pool": self.pool, "keep": self.keep,
                "seconds": self.seconds, "rows": [dataclasses.asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Screening:
        rows = [Screened(**r) for r in data.get("rows", [])]
        return cls(data["proxy"], int(data["pool"]), int(data["keep"]),
                   float(data.get("seconds", 0.0)), rows)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    def lines(self) -> list[str]:
        """A printable table, best score first."""
        from bench.space import human

        out = [f"prescreen: {self.proxy} on {len(self.rows)} configurations, kept "
               f"{len(self.kept)} ({self.seconds:.1f} s)"]
        for r in sorted(self.rows, key=_order):
            score = "-" if r.score is None else f"{r.score:.4g}"
            verdict = "kept" if r.kept else f"not trained: {r.reason}"
            axes = ", ".join(f"{k}={v}" for k, v in r.sample.items())
            out.append(f"  {r.label:28s} {score:>11s}  {human(r.params):>6s} params  "
                       f"{human(r.macs):>6s} MACs  {verdict}  ({axes})")
        return out


def _order(r: Screened) -> tuple[float, int]:
    return (-(r.score if r.score is not None and math.isfinite(r.score) else -math.inf), r.index)


def pool_samples(space: SearchSpace) -> list[dict[str, Any]]:
    """``prescreen.pool`` distinct sampled configurations (see the module docstring)."""
    pre = space.search.prescreen
    assert pre is not None
    rng = random.Random(space.search.seed)
    if space.search.algorithm == "grid":
        combos = enumerate_samples(space)
        return combos if len(combos) <= pre.pool else rng.sample(combos, pre.pool)
    axes = [(name, axis.as_choice()) for name, axis in space.space.items()]
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(pre.pool * 20):  # a small discrete space may hold fewer than pool configs
        sample = draw(axes, rng)
        seen.setdefault(json.dumps(sample, sort_keys=True, default=str), sample)
        if len(seen) == pre.pool:
            break
    return list(seen.values())


def screen(space: SearchSpace) -> Screening:
    """Draw the pool, score every in-budget member with the proxy and mark the best ``keep``."""
    from bench.data import load_dataset
    from bench.models import cost
    from bench.proxies import arch_scores

    pre = space.search.prescreen
    assert pre is not None
    start = time.perf_counter()
    splits = load_dataset(space.dataset, "cpu")
    scores: dict[Any, float] = {}  # one score per architecture (the proxy ignores the recipe)
    rows = []
    for i, sample in enumerate(pool_samples(space)):
        spec = decode(space, {"sample": sample})
        c = cost(spec.arch)
        reason = space.constraints.violation(c.params, c.macs)
        value = None
        if not reason:
            if spec.arch not in scores:
                scores[spec.arch] = arch_scores(spec.arch, splits, space.proxies,
                                                [pre.proxy])[pre.proxy]
            value = scores[spec.arch]
        rows.append(Screened(i, sample, spec.arch.label, c.params, c.macs, value,
                             reason=f"over budget: {reason}" if reason else ""))
    ranked = sorted((r for r in rows if not r.reason), key=_order)
    for r in ranked[: pre.keep]:
        r.kept = True
    for r in ranked[pre.keep:]:
        r.reason = f"below the best {pre.keep} by {pre.proxy}"
    return Screening(pre.proxy, pre.pool, pre.keep, time.perf_counter() - start, rows)


def record(tracker: Any, run_id: str, screening: Screening) -> None:
    """Log a screening on a sweep's parent run: ``prescreen.json`` (every pool member with its
    score, kept or why not) and the metrics ``prescreen_pool``, ``prescreen_kept`` and
    ``prescreen_time_s``."""
    tracker.log_text(run_id, screening.to_json(), ARTIFACT)
    tracker.log_metrics(run_id, {"prescreen_pool": float(len(screening.rows)),
                                 "prescreen_kept": float(len(screening.kept)),
                                 "prescreen_time_s": screening.seconds})


__all__ = ["ARTIFACT", "record", "Screened", "Screening", "pool_samples", "screen"]
