"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021),
``scheduler: {type: mo_asha}`` in a space file: its rungs and its ranking, with no Ray (the Ray
Tune scheduler that applies them is ``bench.tune.MOASHAScheduler``).

Rungs are ASHA's: ``grace_period * reduction_factor**k`` epochs, up to the epoch before the last
(a rung at the last epoch would save nothing). When a trial reaches a rung, its values of all the
objectives are recorded there, and every trial recorded at that rung (itself included) is
ranked: first by non-dominated sorting, then inside a front by the tie-break (``epsnet``, the
paper's default: a greedy epsilon-net seeded with the best primary value; or ``crowding``,
NSGA-II's crowding distance). The trial continues when it ranks within the first
``ceil(n / reduction_factor)`` of the ``n`` recorded trials, so the first trial at a rung always
continues, as in ASHA. Cost objectives (``params``, ``macs``) are in every report from the first
epoch on, so a cheap trial that learns slowly is kept when it is on the accuracy-vs-cost front.

The decision uses only what the trainable reports, so it works under every search algorithm
(grid, random, Optuna TPE or NSGA-II); each decision is kept in ``decisions`` for inspection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from bench.pareto import Point, TieBreak, rank


def rung_levels(grace_period: int, max_t: int, reduction_factor: float) -> list[float]:
    """The rung milestones, ascending (ASHA's formula with one bracket)."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [grace_period * reduction_factor ** k for k in range(count)]


def promoted(recorded: Mapping[str, Point], trial_id: str, reduction_factor: float,
             tie_break: TieBreak = "epsnet") -> bool:
    """Whether ``trial_id`` ranks within the top ``ceil(n / reduction_factor)`` of the ``n``
    trials recorded at a rung (``recorded`` includes it; points are larger-is-better)."""
    ids = list(recorded)
    order = rank([recorded[i] for i in ids], tie_break)
    keep = max(1, math.ceil(len(ids) / reduction_factor))
    return ids.index(trial_id) in order[:keep]


@dataclass(frozen=True)
class Decision:
    """One rung decision: which trial, at which milestone, among how many, and the verdict."""

    trial_id: str
    milestone: float
    rung_size: int
    action: str


__all__ = ["Decision", "promoted", "rung_levels"]
