"""Replay against a tiny recorded exhaustive sweep (real Ray Tune, Optuna and MLflow): the grid
replayed with the whole budget reproduces the exhaustive best exactly, budgets are spent to the
epoch and add up over the trials, a seed replays identically, prescreened replays take the
best-scoring configs first, and the launcher writes its JSON and Markdown."""

from __future__ import annotations

import json

import pytest
import test_sweep
from test_sweep import TINY, space_file

from bench import replay as rp
from bench.errors import ConfigError
from bench.space import enumerate_samples
from launchers.replay import main

ray_session, store, sweep = test_sweep.ray_session, test_sweep.store, test_sweep.sweep


@pytest.fixture(scope="module")
def recorded(ray_session, store, tmp_path_factory):
    """A real 4-architecture, 3-epoch exhaustive sweep (digits, ResNet-8 / 14 at width 4)."""
    from launchers.sweep import main as sweep_main

    tmp = tmp_path_factory.mktemp("exhaustive")
    path = space_file(tmp, "tiny-exhaustive", train={**TINY["train"], "epochs": 3},
                      space={"depth": {"grid": [8, 14]}, "skip": {"grid": ["identity", "none"]}},
                      search={"algorithm": "grid", "objectives": {"val_acc": "max",
                                                                  "macs": "min"}},
                      proxies={"names": ["synflow", "params"], "batch_size": 16})
    rc = sweep_main(["--space", str(path), "--tracking-uri", store, "--storage",
                     str(tmp / "ray"), "--no-report", "--progress-interval", "3600"])
    assert rc == 0
    return rp.load_recorded(store, "tiny-exhaustive")


def test_recorded_table(recorded):
    assert len(recorded.trials) == 4 and recorded.epochs == 3 and recorded.total_epochs == 12
    for rec in recorded.trials.values():
        assert len(rec.curve) == 3 and rec.cost["macs"] > 0
        assert set(rec.proxies) == {"synflow", "params"}
        assert isinstance(rec.sample["depth"], int)  # typed back from the MLflow param


def test_grid_with_the_whole_budget_reproduces_the_exhaustive_best(recorded, tmp_path):
    run = rp.replay(recorded, "grid", 0, recorded.total_epochs, str(tmp_path))
    assert run.best_val_acc == recorded.best_acc and run.regret == 0
    assert run.epochs == 12 and run.trials == 4 and run.full == 4
    assert run.hv_ratio == pytest.approx(1.0)
    assert run.trace[-1] == (12, recorded.best_acc)


def test_budgets_are_spent_to_the_epoch_and_add_up(recorded, tmp_path):
    run = rp.replay(recorded, "grid", 0, 5, str(tmp_path))
    assert (run.epochs, run.trials, run.full) == (5, 2, 1)  # 3 + 2 epochs
    first = recorded.trials[rp.key(enumerate_samples(recorded.space)[0])]  # the grid's first
    assert run.best_val_acc == first.final_acc  # the one trial trained to its end
    assert run.trace[-1][0] == 5
    for variant in ("tpe+asha", "random"):
        a = rp.replay(recorded, variant, 1, 7, str(tmp_path))
        assert a.epochs == 7 and a.full <= a.trials  # summarize checks results == stopper
    a = rp.replay(recorded, "nsga2+mo_asha", 1, 7, str(tmp_path))
    b = rp.replay(recorded, "nsga2+mo_asha", 1, 7, str(tmp_path))
    assert a.epochs == 7 and (a.best_val_acc, a.trials, a.trace) == (
        b.best_val_acc, b.trials, b.trace)  # one trial at a time: a seed replays identically


def test_prescreened_replay_takes_the_best_scoring_first(recorded, tmp_path):
    run = rp.replay(recorded, "prescreen:synflow", 0, 3, str(tmp_path))
    best = max(recorded.trials.values(), key=lambda r: r.proxies["synflow"])
    assert (run.full, run.best_val_acc) == (1, best.final_acc)
    with pytest.raises(ConfigError, match="unknown variant 'bohb'.*valid: random, grid"):
        rp.replay(recorded, "bohb", 0, 3, str(tmp_path))
    with pytest.raises(ConfigError, match="proxy 'naswot' was not recorded"):
        rp.replay(recorded, "prescreen:naswot", 0, 3, str(tmp_path))


def test_launcher_writes_results_and_table(recorded, store, tmp_path, capsys):
    out, md = tmp_path / "replay.json", tmp_path / "replay.md"
    rc = main(["--experiment", "tiny-exhaustive", "--tracking-uri", store, "--variant", "grid",
               "--variant", "nsga2+mo_asha", "--seeds", "2", "--budget", "6", "--out", str(out),
               "--markdown", str(md)])
    assert rc == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["budget_epochs"] == 6 and data["exhaustive"]["total_epochs"] == 12
    assert [r["variant"] for r in data["runs"]] == ["grid", "nsga2+mo_asha", "nsga2+mo_asha"]
    assert all(r["epochs"] == 6 for r in data["runs"])
    assert "| nsga2+mo_asha | 2 |" in md.read_text()
    page = md.with_suffix(".html").read_text()
    assert "<svg" in page and "nsga2+mo_asha" in page and "epochs consumed" in page
    assert main(["--experiment", "nope", "--tracking-uri", store]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err


def test_a_saved_table_replays_without_the_store(recorded, store, tmp_path, capsys):
    """--save-recorded writes the table; --recorded replays it with no MLflow store, the same
    runs as from MLflow; a file of another kind is refused by name."""
    table = tmp_path / "table.json"
    common = ["--variant", "tpe+asha", "--variant", "prescreen:synflow", "--seeds", "2",
              "--budget", "6", "--markdown", str(tmp_path / "x.md")]
    assert main(["--experiment", "tiny-exhaustive", "--tracking-uri", store, "--save-recorded",
                 str(table), "--out", str(tmp_path / "mlflow.json"), *common]) == 0
    saved = json.loads(table.read_text())
    assert saved["format"] == rp.TABLE_FORMAT and len(saved["trials"]) == 4
    assert main(["--recorded", str(table), "--out", str(tmp_path / "file.json"), *common]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("mlflow", "file"))
    assert a["runs"] == b["runs"] and a["proxies"] == b["proxies"]
    assert b["experiment"] == "tiny-exhaustive" and b["tracking_uri"] == "recorded:table.json"
    assert rp.load_table_file(str(table)).trials.keys() == recorded.trials.keys()
    capsys.readouterr()
    assert main(["--recorded", str(tmp_path / "file.json")]) == 2
    assert "not a recorded replay table" in capsys.readouterr().err
    assert main(["--seeds", "2"]) == 2
    assert "--recorded FILE" in capsys.readouterr().err


def test_shards_merge_into_the_single_run(recorded, store, tmp_path, capsys):
    """Two processes' disjoint variant sets, merged, equal one replay of both; the proxies'
    rank correlations over the table are in the output; mismatched shards are refused."""
    common = ["--experiment", "tiny-exhaustive", "--tracking-uri", store, "--seeds", "2",
              "--budget", "6"]
    paths = {}
    for name, variants in (("a", ["random"]), ("b", ["prescreen:synflow"]),
                           ("ab", ["random", "prescreen:synflow"])):
        paths[name] = tmp_path / f"{name}.json"
        argv = [*common, "--out", str(paths[name]), "--markdown", str(tmp_path / f"{name}.md")]
        for v in variants:
            argv += ["--variant", v]
        assert main(argv) == 0, capsys.readouterr().err
    merged = tmp_path / "merged.json"
    assert main([*common, "--merge", str(paths["a"]), str(paths["b"]), "--out", str(merged),
                 "--markdown", str(tmp_path / "merged.md")]) == 0
    one, both = json.loads(paths["ab"].read_text()), json.loads(merged.read_text())
    assert both["summary"] == one["summary"] and both["runs"] == one["runs"]
    assert [c["proxy"] for c in both["proxies"]] == ["params", "synflow"]
    assert all(-1 <= c["spearman"] <= 1 and c["n"] == 4 for c in both["proxies"])
    assert "| synflow |" in (tmp_path / "merged.md").read_text()
    capsys.readouterr()
    assert main([*common[:-1], "7", "--merge", str(paths["a"])]) == 2
    assert "budget_epochs 6, this replay 7" in capsys.readouterr().err
