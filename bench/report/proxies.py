"""How well each zero-cost proxy ranked a sweep's architectures: Spearman's rho and Kendall's
tau-b between every ``proxy/<name>`` metric and the final validation accuracy of the completed
searched trials, with percentile bootstrap intervals (resampling trials, seeded so a report is
reproducible). Plain numbers in, plain numbers out: no MLflow, no plotting.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PREFIX = "proxy/"
BOOTSTRAP = 1000
LEVEL = 0.95
MIN_TRIALS = 3


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    v = np.asarray(values, dtype=float)
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    return float(dx @ dy) / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (Pearson correlation of the average ranks); NaN when one side is
    constant."""
    return _pearson(ranks(x), ranks(y))


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties corrected); NaN when one side is constant."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    upper = np.triu_indices(len(a), k=1)
    sx = np.sign(a[:, None] - a[None, :])[upper]
    sy = np.sign(b[:, None] - b[None, :])[upper]
    denom = math.sqrt(float(np.count_nonzero(sx)) * float(np.count_nonzero(sy)))
    return float((sx * sy).sum()) / denom if denom > 0 else math.nan


@dataclass(frozen=True)
class Correlation:
    """One proxy against accuracy over ``n`` trials: point values and bootstrap intervals."""

    proxy: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]


def _interval(values: list[float], level: float) -> tuple[float, float]:
    vals = sorted(v for v in values if math.isfinite(v))
    if not vals:
        return (math.nan, math.nan)
    lo = vals[int(math.floor((1 - level) / 2 * (len(vals) - 1)))]
    hi = vals[int(math.ceil((1 + level) / 2 * (len(vals) - 1)))]
    return (lo, hi)


def correlate(proxy: str, scores: Sequence[float], accuracy: Sequence[float],
              samples: int = BOOTSTRAP, level: float = LEVEL, seed: int = 0) -> Correlation:
    """Rank correlations of ``scores`` with ``accuracy`` (paired, finite values only) and their
    percentile bootstrap intervals over ``samples`` resamples of the pairs."""
    pairs = [(s, a) for s, a in zip(scores, accuracy, strict=True)
             if math.isfinite(s) and math.isfinite(a)]
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    rng = random.Random(seed)
    rhos, taus = [], []
    for _ in range(samples if len(pairs) >= MIN_TRIALS else 0):
        idx = [rng.randrange(len(pairs)) for _ in pairs]
        bx, by = [x[i] for i in idx], [y[i] for i in idx]
        rhos.append(spearman(bx, by))
        taus.append(kendall(bx, by))
    enough = len(pairs) >= 2
    return Correlation(proxy, len(pairs), spearman(x, y) if enough else math.nan,
                       _interval(rhos, level), kendall(x, y) if enough else math.nan,
                       _interval(taus, level))


def proxy_names(metrics: Sequence[dict[str, float]]) -> list[str]:
    """The proxies any of the trials logged, sorted."""
    return sorted({k[len(PREFIX):] for m in metrics for k in m if k.startswith(PREFIX)})


def correlations(metrics: Sequence[dict[str, float]], target: str,
                 samples: int = BOOTSTRAP) -> list[Correlation]:
    """One ``Correlation`` per proxy over the trials (metric dicts) that have both."""
    out = []
    for name in proxy_names(metrics):
        key = PREFIX + name
        both = [m for m in metrics if key in m and target in m]
        out.append(correlate(name, [m[key] for m in both], [m[target] for m in both], samples))
    return out


__all__ = ["Correlation", "correlate", "correlations", "kendall", "proxy_names", "ranks",
           "spearman"]
