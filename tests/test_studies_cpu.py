"""The CPU forms of the studies: every trial parses, each form fits its budget on the slower
2-core machine (each study <= 10 min, all eight <= 60), the plan prints without training
(``--dry-run``), and the verdicts read the CPU forms' own depths and widths."""

from __future__ import annotations

from typing import Any

from bench.studies import (
    CONSISTENT,
    CPU_BUDGET_MINUTES,
    CPU_NA,
    CPU_SIZING_R20_IMG_S,
    CPU_TOTAL_MINUTES,
    INCONSISTENT,
    STUDY_ORDER,
    estimate_study_seconds,
    get_study,
    trial_spec,
)
from launchers.study import main


def test_every_study_has_a_cpu_form_within_budget() -> None:
    total = 0.0
    for name in STUDY_ORDER:
        study = get_study(name)
        form = study.form("cpu")
        assert form.note.startswith("CPU form:"), name
        for trial in form.trials:
            spec = trial_spec(form, trial)
            assert spec.train.device == "cpu"
            if not trial.measure_only:
                # a real claim test: the JPEG CIFAR-10 at 32 px, a seeded subset, the test split
                assert spec.data.name == "imagefolder" and spec.data.subset and spec.train.eval_test
                assert spec.data.test_subset >= 1000 and spec.train.precision == "auto"
        est = estimate_study_seconds(study, "cpu", CPU_SIZING_R20_IMG_S)
        assert set(est) == {t.role for t in form.trials} | {"total"}
        assert 60 < est["total"] <= 60 * CPU_BUDGET_MINUTES, (name, est["total"])
        total += est["total"]
    assert total <= 60 * CPU_TOTAL_MINUTES, total
    # a faster CPU shortens the estimate in proportion
    fast = estimate_study_seconds(get_study("depth"), "cpu", 2 * CPU_SIZING_R20_IMG_S)
    slow = estimate_study_seconds(get_study("depth"), "cpu", CPU_SIZING_R20_IMG_S)
    assert fast["resnet56"] < 0.6 * slow["resnet56"]


def test_cpu_forms_dry_run_without_data(capsys) -> None:
    assert main(["all", "--form", "cpu", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in STUDY_ORDER:
        assert f"study {name} (cpu form)" in out
    assert "all: estimated" in out and "resnet56" in out and "wrn16-4" in out


def test_form_flag_errors_exit_2(capsys) -> None:
    assert main(["depth", "--form", "cpu", "--smoke", "--dry-run"]) == 2
    assert "--smoke contradicts --form cpu" in capsys.readouterr().err


def _rec(role: str, acc: float | None, loss: float = 1.0, **metrics: Any) -> dict[str, Any]:
    return {"role": role, "label": role, "status": "completed",
            "metrics": {"test_acc": acc, "train_time_s": 100.0, **metrics},
            "history": [{"epoch": 3, "train_loss": loss}],
            "spec": {"arch": {"num_classes": 10}, "train": {"epochs": 3}}}


def test_cpu_verdicts_read_the_cpu_roles() -> None:
    deg = get_study("degradation").evaluate({"form": "cpu", "trials": [
        _rec("plain20", 50.0, 1.2), _rec("resnet20", 52.0, 1.1),
        _rec("plain56", 45.0, 1.4), _rec("resnet56", 55.0, 1.0)]})
    by = {r.claim: r.verdict for r in deg}
    assert not any("110" in c for c in by)  # the CPU form has no 110-layer pair
    assert by["plain-56 trains worse than plain-20 (higher final training loss and test "
              "error)"] == CONSISTENT
    assert {v for c, v in by.items() if "reproduces" in c} == {CPU_NA}  # GPU anchors

    depth = get_study("depth").evaluate({"form": "cpu", "trials": [
        _rec(f"resnet{d}", a) for d, a in ((20, 50.0), (32, 52.0), (44, 51.9), (56, 54.0))]})
    trend = [r for r in depth if r.claim.startswith("test error falls with depth")][0]
    assert "from 20 to 56 layers" in trend.claim and trend.verdict == CONSISTENT
    assert not any(r.claim.startswith("ResNet-110") for r in depth)

    width = get_study("width").evaluate({"form": "cpu", "trials": [
        _rec("wrn16-1", 50.0, params=1e5, train_step_img_per_s=400.0),
        _rec("wrn16-2", 55.0, params=4e5, train_step_img_per_s=150.0),
        _rec("wrn16-4", 54.0, params=1.6e6, train_step_img_per_s=40.0)]})
    w = {r.claim: r for r in width}
    assert w["WRN-16-k: error falls as k grows (1, 2, 4; steps within 0.3 pt noise)"].verdict \
        == INCONSISTENT  # k=4 is 1 pt worse than k=2
    hw = [r for r in width if r.claim.startswith("widening uses the hardware")][0]
    assert "4x width" in hw.claim and "16x parameters" in hw.claim and hw.verdict == CONSISTENT


def test_cpu_lesion_verdict_uses_the_cpu_nets() -> None:
    stages = [{"stride": 1}, {"stride": 2}, {"stride": 2}]
    single = {f"stage{s}.block{b}": 60.0 for s in (1, 2, 3) for b in range(1, 6)}
    single["stage2.block1"] = 40.0

    def rec(role: str, les: dict[str, Any]) -> dict[str, Any]:
        out = _rec(role, les["baseline"])
        out["spec"]["arch"]["stages"] = stages
        out["diagnostics"] = {"lesion": les}
        return out

    rows = get_study("lesion").evaluate({"form": "cpu", "trials": [
        rec("resnet32", {"baseline": 61.0, "single": single,
                         "random_k_mean": {"2": 58.0, "4": 52.0, "8": 40.0}}),
        rec("plain32", {"baseline": 55.0, "single": {"stage1.block1": 10.0}})]})
    by = {r.claim: r for r in rows}
    assert by["ResNet-32: downsampling blocks matter more"].verdict == CONSISTENT
    assert not any("ResNet-56" in c or "ResNet-110" in c for c in by)
    plain = by["a plain net collapses to chance when any one block is deleted"]
    assert plain.verdict == CONSISTENT and plain.measured.startswith("plain-32:")
