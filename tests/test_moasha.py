"""MO-ASHA: non-dominated sorting and tie-breaks on hand-built points, the promotion rule on
hand-built rung results with a known front (against Ray's own ASHA on the same results), the
space-file checks, and real Ray Tune sweeps whose stop decisions are recomputed from MLflow."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import test_sweep
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from test_sweep import TINY, history, space_file

from bench.errors import ConfigError
from bench.moasha import promoted, rung_levels
from bench.pareto import (
    crowding_distance,
    epsnet_order,
    hypervolume_2d,
    nondominated_fronts,
    oriented,
    rank,
)
from bench.space import from_dict
from bench.tune import MOASHAScheduler

# The sweep tests' fixtures: one local Ray, one MLflow store, the in-process launcher.
ray_session, store, sweep = test_sweep.ray_session, test_sweep.store, test_sweep.sweep
OBJ = {"val_acc": "max", "macs": "min"}
# One rung, in arrival order: the front is A, B, C (accuracy against MACs); D is dominated by A,
# E by C, F by everything.
RUNG = {
    "A": {"val_acc": 90.0, "macs": 100e6},
    "B": {"val_acc": 80.0, "macs": 10e6},
    "C": {"val_acc": 70.0, "macs": 1e6},
    "D": {"val_acc": 85.0, "macs": 200e6},
    "E": {"val_acc": 60.0, "macs": 5e6},
    "F": {"val_acc": 50.0, "macs": 300e6},
}


def test_fronts_crowding_epsnet_and_hypervolume_on_known_points():
    pts = [oriented(v, OBJ) for v in RUNG.values()]
    assert nondominated_fronts(pts) == [[0, 1, 2], [3, 4], [5]]
    front = [pts[i] for i in (0, 1, 2)]
    assert crowding_distance(front)[0] == crowding_distance(front)[2] == math.inf
    assert math.isfinite(crowding_distance(front)[1])
    assert epsnet_order(front) == [0, 2, 1]  # best accuracy, then the farthest (cheapest) one
    assert rank(pts, "epsnet")[:3] == [0, 2, 1] and rank(pts, "crowding")[:3] == [0, 2, 1]
    assert set(rank(pts)[3:5]) == {3, 4} and rank(pts)[5] == 5
    # staircase of (2, 1) and (1, 2) over the origin: 2 + 2 - 1
    assert hypervolume_2d([(2, 1), (1, 2), (0.5, 0.5)], (0, 0)) == pytest.approx(3.0)


def test_tie_breaks_order_a_large_front():
    # five points on one front (both axes span 0..10, so normalising divides by 10).
    # epsnet: (10, 0) first (best first objective), then the farthest, (0, 10); then (7, 6.5),
    # whose nearest chosen point is 0.72 away (against 0.51 for (9, 5) and 0.63 for (8, 6));
    # then (9, 5), 0.25 from (7, 6.5) (against 0.11 for (8, 6)).
    # crowding: the two extremes (infinite), then (7, 6.5) (0.8 + 0.4), (9, 5) (0.2 + 0.6),
    # (8, 6) (0.2 + 0.15).
    front = [(10.0, 0.0), (9.0, 5.0), (8.0, 6.0), (7.0, 6.5), (0.0, 10.0)]
    assert nondominated_fronts(front) == [[0, 1, 2, 3, 4]]
    assert epsnet_order(front) == rank(front, "epsnet") == [0, 4, 3, 1, 2]
    assert crowding_distance(front)[1:4] == pytest.approx([0.8, 0.35, 1.2])
    assert rank(front, "crowding") == [0, 4, 3, 1, 2]
    # a dominated point never ranks above a front member, whatever its spread
    assert rank([*front, (6.0, 6.0)], "epsnet")[-1] == 5


def test_promotion_keeps_exactly_the_known_front():
    recorded = {k: oriented(v, OBJ) for k, v in RUNG.items()}
    kept = {k for k in recorded if promoted(recorded, k, reduction_factor=2)}
    assert kept == {"A", "B", "C"}  # ceil(6 / 2) = 3 = the front
    assert {k for k in recorded if promoted(recorded, k, reduction_factor=3)} == {"A", "C"}
    assert promoted({"A": recorded["A"]}, "A", reduction_factor=4)  # the first always continues


def _feed(scheduler, results):
    actions = {}
    for trial_id, result in results:
        trial = SimpleNamespace(trial_id=trial_id)
        if hasattr(scheduler, "_trial_info"):
            scheduler.on_trial_add(None, trial)
        actions[trial_id] = scheduler.on_trial_result(None, trial, result)
    return actions


def test_scheduler_stops_dominated_late_arrivals_where_asha_stops_the_cheap_one():
    order = ["A", "D", "F", "C", "B", "E"]  # asynchronous arrivals at the first rung
    results = [(k, {"epoch": 1, **RUNG[k]}) for k in order]
    mo = MOASHAScheduler(OBJ, max_t=3, grace_period=1, reduction_factor=2)
    assert mo.milestones == rung_levels(1, 3, 2) == [1, 2]
    got = _feed(mo, results)
    # each decision ranks the trials seen so far at the rung and keeps ceil(n / 2): D is
    # second of 2 (A dominates it), F third of 3; cheap C is on the front with A (top 2 of 4),
    # B completes the front (top 3 of 5), E is dominated by C (fifth of 6)
    assert got == {"A": "CONTINUE", "D": "STOP", "F": "STOP", "C": "CONTINUE",
                   "B": "CONTINUE", "E": "STOP"}
    assert [(d.trial_id, d.rung_size) for d in mo.decisions] == [
        (k, i + 1) for i, k in enumerate(order)]
    asha = ASHAScheduler(time_attr="epoch", metric="val_acc", mode="max", max_t=3,
                         grace_period=1, reduction_factor=2, stop_last_trials=False)
    by_acc = _feed(asha, results)
    assert by_acc["C"] == TrialScheduler.STOP  # single-objective ASHA drops the cheap net
    # a second report at the same rung is not re-decided; the next rung ranks again
    assert mo.on_trial_result(None, SimpleNamespace(trial_id="E"), {"epoch": 1, **RUNG["E"]}) \
        == "CONTINUE"
    assert mo.on_trial_result(None, SimpleNamespace(trial_id="C"), {"epoch": 2, **RUNG["C"]}) \
        == "CONTINUE" and mo.rungs[2] == {"C": oriented(RUNG["C"], OBJ)}


def _space(**changes):
    data = {**TINY, "space": {"depth": {"choice": [8, 14]}}, **changes}
    return from_dict(data)


def test_space_file_checks():
    with pytest.raises(ConfigError, match=r"scheduler\.type.*use type asha") as exc:
        _space(train={**TINY["train"], "epochs": 3}, scheduler={"type": "mo_asha"})
    assert "search.objectives has one (val_acc)" in str(exc.value)
    with pytest.raises(ConfigError, match=r"search\.objectives\.test_acc.*only known after"):
        _space(train={**TINY["train"], "epochs": 3}, scheduler={"type": "mo_asha"},
               search={"algorithm": "grid", "objectives": {"val_acc": "max", "test_acc": "max"}})
    with pytest.raises(ConfigError, match=r"tie_break"):
        _space(train={**TINY["train"], "epochs": 3},
               scheduler={"type": "mo_asha", "tie_break": "random"},
               search={"algorithm": "grid", "objectives": OBJ})
    with pytest.raises(ConfigError, match=r"grace_period 3 must be below train.epochs"):
        _space(train={**TINY["train"], "epochs": 3}, scheduler={"type": "mo_asha", "grace_period": 3},
               search={"algorithm": "grid", "objectives": OBJ})
    ok = _space(train={**TINY["train"], "epochs": 3},
                scheduler={"type": "mo_asha", "tie_break": "crowding"},
                search={"algorithm": "optuna_tpe", "objectives": OBJ, "num_samples": 2})
    from bench.tune import make_scheduler

    sched = make_scheduler(ok)
    assert isinstance(sched, MOASHAScheduler) and sched.tie_break == "crowding"
    assert sched.milestones == [1, 2] and sched.metric == "val_acc"


def test_real_sweep_stops_exactly_the_trials_the_rule_names(ray_session, sweep, tmp_path):
    """One trial at a time, so each reaches a rung after every earlier one: the rule, replayed
    on the per-epoch values MLflow recorded, must name exactly the stopped trials."""
    space = space_file(
        tmp_path, "moasha",
        train={**TINY["train"], "epochs": 3},
        space={"depth": {"grid": [8, 14]}, "skip": {"grid": ["identity", "none"]},
               "train.lr": {"grid": [0.002, 0.2]}},
        search={"algorithm": "grid", "objectives": {"val_loss": "min", "params": "min"},
                "max_concurrent": 1},
        scheduler={"type": "mo_asha", "grace_period": 1, "reduction_factor": 2},
    )
    rc, out, err = sweep(space, "--dry-run")
    assert rc == 0 and "scheduler: mo_asha (grace 1, reduction 2, tie-break epsnet)" in out, err
    rc, out, err = sweep(space)
    assert rc == 0, err
    _, children = sweep.runs("moasha")
    assert len(children) == 8
    rows = [r for _, r in children.sort_values("tags.resbench.trial_id").iterrows()]
    curves = {r.run_id: dict(zip(history(sweep.uri, r.run_id, "val_loss"),
                                 _values(sweep.uri, r.run_id, "val_loss"), strict=True))
              for r in rows}
    objectives = {"val_loss": "min", "params": "min"}
    rungs: dict[int, dict[str, tuple[float, ...]]] = {1: {}, 2: {}}
    expected = {}
    for r in rows:
        expected[r.run_id] = "completed"
        for epoch in (1, 2):
            point = {"val_loss": curves[r.run_id][epoch], "params": r["metrics.params"]}
            rungs[epoch][r.run_id] = oriented(point, objectives)
            if not promoted(rungs[epoch], r.run_id, 2):
                expected[r.run_id] = "stopped"
                break
    got = {r.run_id: r["tags.resbench.status"] for r in rows}
    assert got == expected
    assert "stopped" in got.values() and "completed" in got.values()
    for r in rows:  # stopped at its rung: no epoch after it
        assert sorted(curves[r.run_id]) == ([1, 2, 3] if got[r.run_id] == "completed"
                                            else sorted(curves[r.run_id])[:2])
        assert got[r.run_id] == "completed" or len(curves[r.run_id]) < 3


def _values(uri: str, run_id: str, key: str) -> list[float]:
    from mlflow.tracking import MlflowClient

    return [m.value for m in sorted(MlflowClient(uri).get_metric_history(run_id, key),
                                    key=lambda m: m.step)]


def test_real_optuna_nsga2_sweep_with_mo_asha(ray_session, sweep, tmp_path):
    space = space_file(
        tmp_path, "moasha-nsga2",
        train={**TINY["train"], "epochs": 3},
        space={"depth": {"choice": [8, 14]}, "skip": {"choice": ["identity", "none"]},
               "train.lr": {"loguniform": [1e-3, 0.3]}},
        search={"algorithm": "optuna_nsga2", "objectives": {"val_acc": "max", "macs": "min"},
                "num_samples": 6, "population_size": 4, "seed": 0, "max_concurrent": 2},
        scheduler={"type": "mo_asha", "grace_period": 1, "reduction_factor": 3,
                   "tie_break": "crowding"},
    )
    rc, out, err = sweep(space)
    assert rc == 0, err
    _, children = sweep.runs("moasha-nsga2")
    assert len(children) == 6
    statuses = set(children["tags.resbench.status"])
    assert statuses <= {"completed", "stopped"} and "completed" in statuses
    for _, r in children.iterrows():
        epochs = history(sweep.uri, r.run_id, "val_acc")
        assert epochs == [1, 2, 3] if r["tags.resbench.status"] == "completed" else len(epochs) < 3


def test_the_nsga2_searcher_pickles_and_resumes_identically() -> None:
    """Ray stores the searcher with the experiment (and loads it on --resume): the NSGA-II
    sampler resbench builds must pickle (Optuna 5's holds a thread lock), and a loaded copy
    proposes what the original would have."""
    import pickle

    import optuna

    from bench.samplers import NSGAIISampler

    def run(sampler: optuna.samplers.BaseSampler, n: int) -> list[tuple[float, float]]:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("d", 1, 9)),
                       n_trials=n)
        return [tuple(t.params.values()) for t in study.trials]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    copy = pickle.loads(pickle.dumps(NSGAIISampler(seed=7, population_size=4)))
    assert run(copy, 12) == run(NSGAIISampler(seed=7, population_size=4), 12)
    pickle.dumps(copy)  # and again after use
