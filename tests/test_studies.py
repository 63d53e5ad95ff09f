"""The turnkey studies: every smoke form end to end on a CPU, the GPU forms' specs (parse, build,
nominal sizes, budget), the verdict logic on hand-made results, the launcher's errors and
budget, and the MLflow import into a real SQLite store read back by the report."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bench.studies import (
    CONSISTENT,
    INCONSISTENT,
    MISSING,
    SMOKE,
    STUDIES,
    STUDY_ORDER,
    VERDICTS,
    estimate_study_seconds,
    get_study,
    trial_spec,
)
from launchers.study import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every study's smoke form, run once through ``all --smoke``."""
    out = tmp_path_factory.mktemp("studies")
    assert main(["all", "--smoke", "--out", str(out), "--quiet", "--backend", "sequential"]) == 0
    return out


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# --- smoke forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STUDY_ORDER)
def test_smoke_form_runs_end_to_end(smoke_dir: Path, name: str) -> None:
    data = load(smoke_dir / f"{name}.smoke.json")
    study = get_study(name)
    assert data["study"] == name and data["form"] == "smoke" and data["device"] == "cpu"
    assert data["claim"] == study.claim and data["command"].endswith(f"{name} --smoke")
    assert [t["role"] for t in data["trials"]] == [t.role for t in study.smoke.trials]
    for trial in data["trials"]:
        assert trial["status"] == "completed", trial["message"]
        m = trial["metrics"]
        assert m["params"] > 0 and m["macs"] > 0 and trial["env"]["torch"]
        assert trial["spec"]["arch"]["family"] in ("resnet", "densenet", "timm")
        if trial["measure_only"]:
            assert trial["history"] == [] and m["infer_img_per_s"] > 0
        else:
            assert len(trial["history"]) == 1 and 0 <= m["test_acc"] <= 100
    rows = data["verdict"]
    assert rows
    for row in rows:
        assert set(row) == {"claim", "paper", "measured", "verdict", "note"}
        assert row["verdict"] in VERDICTS and row["claim"] and row["paper"]
    # rows comparing with an absolute paper / anchor number are not judged on the smoke form
    absolute = {r["verdict"] for r in rows if "anchor -" in r["claim"] or "papers'" in r["claim"]}
    assert absolute <= {SMOKE}


def test_smoke_forms_carry_their_diagnostics(smoke_dir: Path) -> None:
    lesion = load(smoke_dir / "lesion.smoke.json")
    blocks = {"resnet56": 3, "resnet110": 6, "plain56": 3}  # ResNet-8, ResNet-14, plain-8
    for trial in lesion["trials"]:
        les = trial["diagnostics"]["lesion"]
        assert les["split"] == "test" and set(les["random_k_mean"]) == {"1", "2"}
        assert len(les["single"]) == blocks[trial["role"]]
    grads = load(smoke_dir / "gradients.smoke.json")
    for trial in grads["trials"]:
        keys = trial["history"][0]
        assert keys["grad_norm/stem"] > 0 and keys["grad_norm/head"] > 0
    rvd = load(smoke_dir / "resnet_vs_densenet.smoke.json")
    assert all(t["metrics"]["train_step_img_per_s"] > 0 for t in rvd["trials"])
    assert [t["spec"]["arch"]["family"] for t in rvd["trials"]] == ["resnet", "resnet", "densenet"]


# --- GPU forms ---------------------------------------------------------------------------------

NOMINAL_PARAMS = {  # (study, role): the papers' parameter counts (10 classes unless ImageNet)
    ("degradation", "resnet56"): 855_770,  # option B, as the anchors
    ("degradation", "plain56"): 853_018,
    ("depth", "resnet20"): 269_722,
    ("depth", "resnet56"): 853_018,
    ("depth", "resnet110"): 1_727_962,
    ("resnet_vs_densenet", "densenet_bc100"): 769_162,
    ("lesion", "resnet56"): 853_018,
    ("skips", "projection"): 855_770,
    ("imagenet", "resnet50"): 25_557_032,
    ("imagenet", "resnet152"): 60_192_808,
    ("imagenet", "densenet121"): 7_978_856,
    ("imagenet", "timm_resnet50"): 25_557_032,
}


def test_gpu_forms_parse_build_and_fit_the_budget() -> None:
    from bench.models import cost

    seen = set()
    costs: dict[str, dict[str, float]] = {}
    for name in STUDY_ORDER:
        study = get_study(name)
        form = study.gpu
        assert form.note and study.citation and study.claim
        assert (REPO / study.space).is_file(), study.space
        for trial in form.trials:
            spec = trial_spec(form, trial)
            if not trial.measure_only:
                assert spec.data.name == "imagefolder" and spec.train.eval_test
                assert spec.train.device == "auto" and spec.train.epochs >= 5
            if name != "imagenet" and (name, trial.role) not in NOMINAL_PARAMS:
                continue
            c = cost(spec.arch)
            if name == "imagenet":
                costs[trial.role] = {"params": float(c.params), "macs": float(c.macs)}
            if (name, trial.role) in NOMINAL_PARAMS:
                assert c.params == NOMINAL_PARAMS[name, trial.role], trial.role
                seen.add((name, trial.role))
        est = estimate_study_seconds(study)
        assert set(est) == {t.role for t in form.trials} | {"total"}
        assert 60 < est["total"] <= 60 * study.budget_minutes, (name, est["total"])
    assert seen == set(NOMINAL_PARAMS)
    assert len(STUDIES) == len(STUDY_ORDER)
    # the ImageNet nets' parameter and MAC counts agree with the published ones
    records = [{"role": role, "status": "completed", "metrics": m} for role, m in costs.items()]
    rows = get_study("imagenet").evaluate({"form": "gpu", "trials": records})
    counted = [r for r in rows if "parameters and MACs" in r.claim or "matches timm" in r.claim]
    assert len(counted) == 10 and {r.verdict for r in counted} == {CONSISTENT}


def test_gpu_form_without_data_is_one_clear_error(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.delenv("RESBENCH_DATA", raising=False)
    assert main(["depth", "--out", str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data-root" in err and "--tarball" in err
    assert not (tmp_path / "d.json").exists()


# --- verdict logic on hand-made results ------------------------------------------------------


def trial(role: str, acc: float | None, loss: float = 0.5, status: str = "completed",
          **extra: Any) -> dict[str, Any]:
    metrics = {"test_acc": acc, "train_time_s": 20.0} if acc is not None else {}
    return {"role": role, "label": role, "status": status, "metrics": metrics,
            "history": [{"epoch": 25, "train_loss": loss}],
            "spec": {"arch": {"num_classes": 10}, "train": {"epochs": 25}}, **extra}


def test_degradation_verdict_follows_the_numbers() -> None:
    evaluate = get_study("degradation").evaluate
    results = {"form": "gpu", "trials": [
        trial("plain20", 84.0, 0.36), trial("plain56", 74.2, 0.75),
        trial("resnet20", 86.4, 0.30), trial("resnet56", 87.9, 0.20),
        trial("plain110", None, status="diverged"), trial("resnet110", 85.0, 0.4)]}
    rows = evaluate(results)
    assert [r.verdict for r in rows[:4]] == [CONSISTENT] * 4
    assert [r.verdict for r in rows[4:]] == [CONSISTENT] * 4  # anchors reproduced
    assert "inf (diverged)" not in rows[3].measured and "90.00%" in rows[3].measured
    # plain-56 better than plain-20, ResNet-56 missing, ResNet-20 far below its anchor
    results["trials"][1] = trial("plain56", 85.0, 0.30)
    results["trials"][2] = trial("resnet20", 80.0, 0.30)
    del results["trials"][3]
    rows = {r.claim: r for r in evaluate(results)}
    assert rows["plain-56 trains worse than plain-20 (higher final training loss and test "
                "error)"].verdict == INCONSISTENT
    assert rows["ResNet-56 beats ResNet-20 (depth helps once there are shortcuts)"].verdict == MISSING
    anchor = [r for r in rows.values() if "ResNet-20 (>=" in r.claim][0]
    assert anchor.verdict == INCONSISTENT
    results["form"] = "smoke"
    assert {r.verdict for r in evaluate(results) if "anchor" in r.paper and "reproduces" in r.claim} == {SMOKE}


def test_lesion_verdict_reads_single_and_k_deletions() -> None:
    stages = [{"stride": 1}, {"stride": 2}, {"stride": 2}]
    single = {f"stage{s}.block{b}": 92.5 for s in (1, 2, 3) for b in (1, 2, 3)}
    single.update({"stage2.block1": 80.0, "stage3.block1": 70.0})
    lesion = {"baseline": 93.0, "single": single,
              "random_k_mean": {"2": 91.0, "4": 87.0, "8": 75.0}}
    plain = {"baseline": 90.0, "single": {"stage1.block1": 10.0, "stage2.block2": 11.0}}

    def rec(role: str, les: dict[str, Any]) -> dict[str, Any]:
        out = trial(role, les["baseline"])
        out["spec"]["arch"]["stages"] = stages
        out["diagnostics"] = {"lesion": les}
        return out

    results = {"form": "gpu", "trials": [rec("resnet56", lesion), rec("plain56", plain)]}
    rows = get_study("lesion").evaluate(results)
    by = {r.claim: r.verdict for r in rows}
    assert by["ResNet-56: deleting one non-downsampling block barely changes the error "
              "(median rise <= 2 pt)"] == CONSISTENT
    assert by["ResNet-56: downsampling blocks matter more"] == CONSISTENT
    assert by["ResNet-56: deleting k random blocks raises the error smoothly"] == CONSISTENT
    assert by["a plain net collapses to chance when any one block is deleted"] == CONSISTENT
    assert by["ResNet-110: deleting one block barely changes the error"] == MISSING
    lesion["random_k_mean"]["8"] = 92.9  # k=8 hurts less than k=4: not smooth
    plain["single"] = {"stage1.block1": 85.0, "stage2.block2": 86.0}  # no collapse
    by = {r.claim: r.verdict for r in get_study("lesion").evaluate(results)}
    assert by["ResNet-56: deleting k random blocks raises the error smoothly"] == INCONSISTENT
    assert by["a plain net collapses to chance when any one block is deleted"] == INCONSISTENT


def test_gradient_verdict_compares_stem_to_head() -> None:
    def rec(role: str, stem: float) -> dict[str, Any]:
        out = trial(role, 80.0)
        out["history"] = [{"epoch": 1, "grad_norm/stem": stem, "grad_norm/head": 1.0}]
        return out

    ratios = {"plain20": 0.5, "resnet20": 0.6, "plain56": 0.3, "resnet56": 0.6,
              "plain110": 0.2, "resnet110": 0.7}
    results = {"form": "gpu", "trials": [rec(k, v) for k, v in ratios.items()]}
    rows = get_study("gradients").evaluate(results)
    assert [r.verdict for r in rows[-2:]] == [CONSISTENT, CONSISTENT]
    results["trials"][4] = rec("plain110", 0.01)  # 50x below plain-20: vanishing
    results["trials"][5] = rec("resnet110", 0.001)
    rows = get_study("gradients").evaluate(results)
    assert [r.verdict for r in rows[-2:]] == [INCONSISTENT, INCONSISTENT]


# --- launcher ----------------------------------------------------------------------------------


def test_unknown_study_exits_2_listing_the_valid_ones() -> None:
    proc = subprocess.run([sys.executable, "-m", "launchers.study", "degradaton"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "unknown study 'degradaton'" in err and "did you mean 'degradation'" in err
    assert all(name in err for name in STUDY_ORDER)


def test_budget_skips_trials_that_would_start_late(tmp_path: Path) -> None:
    out = tmp_path / "skips.json"
    assert main(["skips", "--smoke", "--max-minutes", "0.001", "--out", str(out), "--quiet",
                 "--backend", "sequential"]) == 0
    data = load(out)
    statuses = [t["status"] for t in data["trials"]]
    assert statuses[0] == "completed" and statuses[-1] == "skipped"
    assert "budget" in data["trials"][-1]["message"]
    plain = [r for r in data["verdict"] if r["claim"].startswith("none (plain)")][0]
    assert plain["verdict"] == MISSING


def test_smoke_form_on_an_image_folder_tarball(tmp_path: Path, make_imagefolder) -> None:
    make_imagefolder(tmp_path / "tree" / "cifar10-jpeg", per_class=8, test_per_class=3, size=12)
    tarball = tmp_path / "tree.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "tree" / "cifar10-jpeg", arcname="cifar10-jpeg")
    out = tmp_path / "r.json"
    code = main(["skips", "--smoke", "--tarball", str(tarball), "--cache-dir", str(tmp_path / "c"),
                 "--trials", "identity,none", "--set", "data.subset=20", "--set",
                 "data.test_subset=6", "--out", str(out), "--quiet", "--backend", "sequential"])
    assert code == 0
    data = load(out)
    assert [t["role"] for t in data["trials"]] == ["identity", "none"]
    for t in data["trials"]:
        assert t["status"] == "completed" and t["spec"]["data"]["name"] == "imagefolder"
        assert t["spec"]["data"]["subset"] == 20 and t["metrics"]["test_acc"] >= 0
    assert main(["skips", "--smoke", "--trials", "identiy", "--out", str(out)]) == 2


# --- MLflow import -------------------------------------------------------------------------------


def test_import_logs_parent_and_children_once(smoke_dir: Path, tmp_path: Path, capsys) -> None:
    from bench.report import write_report
    from bench.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    results = smoke_dir / "lesion.smoke.json"
    assert main(["import", str(results), "--tracking-uri", uri]) == 0
    assert "imported 3 trial(s)" in capsys.readouterr().out
    client = Tracker(uri, "study-lesion").client
    exp = client.get_experiment_by_name("study-lesion")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("resbench.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 3 and len(runs) == 4
    parent = parents[0]
    assert parent.data.params["study"] == "lesion" and parent.data.params["verdict.01"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["resbench.trial_id"] for c in children} == {"resnet56", "resnet110", "plain56"}
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["resbench.status"] == "completed"
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert [m.step for m in history] == [1]
        assert "lesion/baseline" in child.data.metrics and child.data.params["arch.family"] == "resnet"
    # importing again adds nothing
    assert main(["import", str(results), "--tracking-uri", uri]) == 0
    assert "0 trial(s) (3 already there)" in capsys.readouterr().out
    assert len(client.search_runs([exp.experiment_id])) == 4
    html = write_report(uri, ["study-lesion"], tmp_path / "report.html")
    assert "Lesion study" in html.read_text(encoding="utf-8")


def test_import_rejects_a_file_that_is_not_a_study_result(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    assert main(["import", str(bad), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 2
    assert "not a study results file" in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()
