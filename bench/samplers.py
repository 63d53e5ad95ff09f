"""Optuna samplers that survive pickling.

Ray Tune pickles the search algorithm with the experiment (``tuner.pkl``, and again on
``--resume``), so every sampler resbench hands to ``OptunaSearch`` must pickle. Optuna 5's
genetic samplers (NSGA-II) hold a ``threading.Lock`` and do not: a multi-objective sweep died
with "cannot pickle '_thread.lock' object" before its first trial. The subclass here drops its
locks from the pickled state and makes fresh ones when it is loaded; every other attribute, the
random state included, travels unchanged. On an Optuna whose sampler has no lock it is the plain
sampler.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class NSGAIISampler(optuna.samplers.NSGAIISampler):
    """``optuna.samplers.NSGAIISampler`` that pickles (its locks are re-made, not copied)."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_resbench_locks"] = {k: isinstance(v, type(threading.RLock()))
                                    for k, v in state.items() if isinstance(v, _LOCK_TYPES)}
        for k in state["_resbench_locks"]:
            del state[k]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        locks = state.pop("_resbench_locks", {})
        self.__dict__.update(state)
        for k, reentrant in locks.items():
            setattr(self, k, threading.RLock() if reentrant else threading.Lock())


__all__ = ["NSGAIISampler"]
