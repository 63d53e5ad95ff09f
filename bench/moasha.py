"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021) as a Ray
Tune scheduler, ``scheduler: {type: mo_asha}`` in a space file.

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
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from bench.pareto import Point, TieBreak, oriented, rank


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


class MOASHAScheduler(FIFOScheduler):
    """MO-ASHA over ``objectives`` (metric -> "max" | "min"), by the ``time_attr`` epochs."""

    def __init__(self, objectives: Mapping[str, str], *, time_attr: str = "epoch",
                 max_t: int, grace_period: int = 1, reduction_factor: float = 2.0,
                 tie_break: TieBreak = "epsnet") -> None:
        if len(objectives) < 2:
            raise ValueError("MO-ASHA needs two or more objectives; use ASHA for one")
        if grace_period < 1 or max_t < grace_period or reduction_factor <= 1:
            raise ValueError("need 1 <= grace_period <= max_t and reduction_factor > 1")
        super().__init__()
        self.objectives = dict(objectives)
        self._metric = next(iter(self.objectives))  # what Tune checks every result reports
        self.time_attr = time_attr
        self.reduction_factor = reduction_factor
        self.tie_break = tie_break
        self.milestones = rung_levels(grace_period, max_t, reduction_factor)
        self.rungs: dict[float, dict[str, Point]] = {m: {} for m in self.milestones}
        self.decisions: list[Decision] = []

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the objectives come from the space file, never from TuneConfig

    def _point(self, result: Mapping[str, Any]) -> Point | None:
        if any(k not in result for k in self.objectives):
            return None
        point = oriented(result, self.objectives)
        return tuple(-math.inf if math.isnan(v) else v for v in point)  # NaN ranks last

    def _record(self, trial_id: str, result: Mapping[str, Any]) -> str:
        t = result.get(self.time_attr)
        point = self._point(result)
        if t is None or point is None:
            return TrialScheduler.CONTINUE
        reached = [m for m in self.milestones if float(t) >= m]
        if not reached or trial_id in self.rungs[reached[-1]]:
            return TrialScheduler.CONTINUE
        milestone = reached[-1]
        recorded = self.rungs[milestone]
        recorded[trial_id] = point
        keep = promoted(recorded, trial_id, self.reduction_factor, self.tie_break)
        action = TrialScheduler.CONTINUE if keep else TrialScheduler.STOP
        self.decisions.append(Decision(trial_id, milestone, len(recorded), action))
        return action

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._record(trial.trial_id, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if result:
            self._record(trial.trial_id, result)

    def debug_string(self) -> str:
        stopped = sum(d.action == TrialScheduler.STOP for d in self.decisions)
        rungs = " | ".join(f"epoch {m:g}: {len(r)} trials" for m, r in self.rungs.items())
        return f"Using MO-ASHA ({self.tie_break}): {stopped} stopped; {rungs}"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


__all__ = ["Decision", "MOASHAScheduler", "promoted", "rung_levels"]
