"""Zero-cost proxies: each one on tiny networks (finite, deterministic under a seed, a known
ordering), the registry and the space-file section, the rank correlations and the report's
"proxies" section, and ``search.prescreen`` in real sweeps (exactly ``keep`` trained, the rest
recorded with their scores; Optuna gets the kept ones first)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import scipy.stats
import test_sweep
import torch
from test_sweep import TINY, space_file
from torch import nn

from bench.errors import ConfigError
from bench.models import arch_from_params, build_model
from bench.proxies import PROXIES, ProxyDef, ProxySpec, register_proxy, score, trial_metrics
from bench.report import build_report
from bench.report.proxies import correlate, kendall, spearman
from bench.space import from_dict

ray_session, store, sweep = test_sweep.ray_session, test_sweep.store, test_sweep.sweep
NAMES = ("naswot", "synflow", "grad_norm", "snip", "jacob_cov", "params", "macs")


def batch(n: int = 16, side: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, side, side, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def resnet(depth: int = 8, skip: str = "identity") -> Any:
    arch = arch_from_params({"family": "resnet", "depth": depth, "width": 4, "skip": skip,
                             "num_classes": 10, "input_size": 8})
    return lambda: build_model(arch)


class TwoBranch(nn.Module):
    """conv-ReLU in two parallel branches into a linear head; ``connected=False`` computes the
    second branch but leaves it out of the output (a disconnected branch)."""

    def __init__(self, connected: bool, saturated: bool = False) -> None:
        super().__init__()
        self.connected = connected
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 10)
        if saturated:  # every ReLU always on: a linear network that tells no inputs apart
            with torch.no_grad():
                self.a[0].bias.fill_(100.0)
                self.b[0].bias.fill_(100.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        other = self.b(x)
        if self.connected:
            h = h + other
        return self.head(h.mean((2, 3)))


def test_registry_lists_every_proxy_and_rejects_unknown_names():
    assert set(NAMES) <= set(PROXIES.names())
    with pytest.raises(ConfigError, match=r"unknown proxy 'zen'.*valid: .*naswot.*synflow"):
        PROXIES.get("zen")
    with pytest.raises(ConfigError, match=r"names\[1\].*unknown proxy 'nope'"):
        ProxySpec(names=("naswot", "nope"))
    register_proxy("width_sum", ProxyDef(
        lambda m, x, y: float(sum(p.shape[0] for p in m.parameters())), "test", "test"))
    try:
        x, y = batch()
        assert score(resnet(), x, y, ["width_sum"])["width_sum"] > 0
        assert from_dict({**TINY, "proxies": {"names": ["width_sum"]}}).proxies.names == (
            "width_sum",)
    finally:
        PROXIES.unregister("width_sum")


@pytest.mark.parametrize("name", NAMES)
def test_each_proxy_is_finite_and_deterministic_under_a_seed(name):
    x, y = batch()
    first = score(resnet(), x, y, [name], seed=3)[name]
    again = score(resnet(), x, y, [name], seed=3)[name]
    assert math.isfinite(first) and first == again
    plain = score(resnet(skip="none"), x, y, [name], seed=3)[name]
    assert math.isfinite(plain)
    if name not in ("params", "macs"):  # weight-dependent: another seed, another network
        assert score(resnet(), x, y, [name], seed=4)[name] != first


@pytest.mark.parametrize("name", ["synflow", "snip", "grad_norm"])
def test_a_disconnected_branch_scores_lower(name):
    x, y = batch()
    connected = score(lambda: TwoBranch(True), x, y, [name])[name]
    cut = score(lambda: TwoBranch(False), x, y, [name])[name]
    assert connected > cut > 0


@pytest.mark.parametrize("name", ["naswot", "jacob_cov"])
def test_a_network_that_tells_no_inputs_apart_scores_lower(name):
    x, y = batch()
    normal = score(lambda: TwoBranch(True), x, y, [name])[name]
    linear = score(lambda: TwoBranch(True, saturated=True), x, y, [name])[name]
    assert normal > linear


def test_baselines_grow_with_depth_and_trial_metrics_come_from_the_trials_data(tiny_trial):
    x, y = batch()
    for name in ("params", "macs"):
        assert score(resnet(14), x, y, [name])[name] > score(resnet(8), x, y, [name])[name]
    spec = tiny_trial()
    out = trial_metrics(spec, ProxySpec(batch_size=16))
    assert {f"proxy/{n}" for n in NAMES} <= set(out) and out["proxy_time_s"] > 0
    assert all(math.isfinite(v) for v in out.values())
    assert trial_metrics(spec, ProxySpec(enabled=False)) == {}


def test_rank_correlations_match_scipy_and_bootstrap_brackets_them():
    x = [1, 2, 2, 3, 5, 8, 8, 9]
    y = [10, 30, 20, 40, 35, 80, 90, 85]
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0])
    assert kendall(x, y) == pytest.approx(scipy.stats.kendalltau(x, y)[0])
    assert spearman(x, [-v for v in y]) == pytest.approx(-spearman(x, y))
    c = correlate("p", x, y)
    assert c.n == 8 and c.spearman_ci[0] <= c.spearman <= c.spearman_ci[1] <= 1
    assert c.kendall_ci[0] <= c.kendall <= c.kendall_ci[1]
    assert correlate("p", x, y) == c  # seeded bootstrap: the same report twice
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def _run(i: int, acc: float, proxy: float, status: str = "completed") -> dict[str, Any]:
    return {"run_id": f"r{i}", "run_name": f"resnet{i}", "experiment": "e",
            "experiment_id": "1", "status": "FINISHED",
            "tags": {"resbench.status": status, "mlflow.parentRunId": "p",
                     "resbench.kind": "search"},
            "params": {"arch.family": "resnet", "arch.depth": str(6 * i + 2)},
            "metrics": {"val_acc": acc, "proxy/synflow": proxy, "proxy/params": float(i)},
            "history": {}}


def test_report_has_a_proxies_section_over_completed_trials():
    runs = [_run(1, 50, 1.0), _run(2, 60, 3.0), _run(3, 70, 2.0), _run(4, 80, 4.0),
            _run(5, 10, 9.0, status="stopped")]  # a stopped trial is left out
    report = build_report(runs, ["e"])
    assert 'id="proxies"' in report.html and "## Zero-cost proxies" in report.markdown
    rows = [ln for ln in report.markdown.splitlines() if ln.startswith("| e |")]
    synflow = next(r for r in rows if "| synflow |" in r)
    params = next(r for r in rows if "| params |" in r)
    assert "| 4 | 0.800 |" in synflow and "| 0.667 |" in synflow  # rho 0.8, tau 4/6
    assert "| 4 | 1.000 |" in params
    assert 'id="proxies"' not in build_report([_run(1, 50, 1.0) | {"metrics": {"val_acc": 1.0}}],
                                              ["e"]).html


# --- prescreen in real sweeps --------------------------------------------------------------------


PRESCREEN_AXES = {"depth": {"grid": [8, 14]}, "skip": {"grid": ["identity", "none"]},
                  "block": {"grid": ["basic", "preact_basic"]}}


def test_prescreen_checks():
    with pytest.raises(ConfigError, match=r"search\.prescreen\.keep.*between 1 and pool \(3\)"):
        from_dict({**TINY, "space": PRESCREEN_AXES,
                   "search": {"algorithm": "grid", "prescreen": {"proxy": "naswot", "pool": 3,
                                                                 "keep": 4}}})
    with pytest.raises(ConfigError, match=r"search\.prescreen\.proxy.*unknown proxy 'zen'"):
        from_dict({**TINY, "space": PRESCREEN_AXES,
                   "search": {"algorithm": "grid", "prescreen": {"proxy": "zen", "pool": 3,
                                                                 "keep": 1}}})
    with pytest.raises(ConfigError, match=r"search\.num_samples.*remove num_samples"):
        from_dict({**TINY, "space": {"depth": {"choice": [8, 14]}},
                   "search": {"algorithm": "random", "num_samples": 3,
                              "prescreen": {"proxy": "naswot", "pool": 3, "keep": 1}}})
    with pytest.raises(ConfigError, match=r"search\.num_samples.*num_samples >= 3"):
        from_dict({**TINY, "space": {"depth": {"choice": [8, 14]}},
                   "search": {"algorithm": "optuna_tpe", "num_samples": 2,
                              "prescreen": {"proxy": "naswot", "pool": 4, "keep": 3}}})


def _prescreen_artifact(sweep: Any, parent_id: str) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sweep.uri)
    local = client.download_artifacts(parent_id, "prescreen.json", str(sweep.storage.parent))
    with open(local, encoding="utf-8") as f:
        return json.load(f)


def test_prescreen_trains_exactly_keep_and_records_the_rest(ray_session, sweep, tmp_path):
    space = space_file(tmp_path, "prescreen", space=PRESCREEN_AXES,
                       search={"algorithm": "grid",
                               "prescreen": {"proxy": "synflow", "pool": 6, "keep": 2}})
    rc, out, err = sweep(space)
    assert rc == 0, err
    assert "prescreen: synflow on 6 configurations, kept 2" in out
    parent, children = sweep.runs("prescreen")
    assert len(children) == 2 and (children["tags.resbench.status"] == "completed").all()
    assert parent["metrics.prescreen_pool"] == 6 and parent["metrics.prescreen_kept"] == 2
    rows = _prescreen_artifact(sweep, parent.run_id)["rows"]
    assert len(rows) == 6 and sum(r["kept"] for r in rows) == 2
    best = sorted(rows, key=lambda r: -r["score"])
    assert all(r["kept"] for r in best[:2]) and not any(r["kept"] for r in best[2:])
    assert all("below the best 2 by synflow" in r["reason"] for r in best[2:])
    assert all(math.isfinite(r["score"]) for r in rows)
    # each trained trial logged the same score the driver ranked it by
    for _, child in children.iterrows():
        sample = {k[len("params.sample."):]: v for k, v in child.items()
                  if k.startswith("params.sample.") and isinstance(v, str)}
        row = next(r for r in rows if {k: str(v) for k, v in r["sample"].items()} == sample)
        assert row["kept"]
        assert child["metrics.proxy/synflow"] == pytest.approx(row["score"], rel=1e-6)
        assert all(math.isfinite(child[f"metrics.proxy/{n}"]) for n in NAMES)
    report = (sweep.reports / "prescreen.md").read_text()  # the sweep's own report
    assert "## Zero-cost proxies" in report and "| prescreen | synflow | 2 |" in report


def test_prescreen_enqueues_the_kept_configs_first_for_optuna(ray_session, sweep, tmp_path):
    space = space_file(tmp_path, "prescreen-tpe", space={
        "depth": {"choice": [8, 14]}, "skip": {"choice": ["identity", "none"]},
        "block": {"choice": ["basic", "preact_basic"]}},
        search={"algorithm": "optuna_tpe", "num_samples": 3, "seed": 0, "max_concurrent": 1,
                "prescreen": {"proxy": "naswot", "pool": 5, "keep": 2}})
    rc, out, err = sweep(space)
    assert rc == 0, err
    parent, children = sweep.runs("prescreen-tpe")
    assert len(children) == 3
    kept = [r for r in _prescreen_artifact(sweep, parent.run_id)["rows"] if r["kept"]]
    kept.sort(key=lambda r: -r["score"])
    first = children.sort_values("start_time").head(2)  # one at a time: in proposal order
    got = [{k: child[f"params.sample.{k}"] for k in ("depth", "skip", "block")}
           for _, child in first.iterrows()]
    assert got == [{k: str(v) for k, v in r["sample"].items()} for r in kept]
