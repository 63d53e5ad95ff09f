"""The committed study results and the committed report agree: ``docs/results/studies.html``
(and its Markdown copy) were rendered from ``results/*.cpu.json`` by
``scripts/publish_studies.sh``, so every study's verdict rows stand in both, and the README's
Results table quotes the same verdicts."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from bench.studies import STUDY_ORDER, VERDICTS, get_study, verdict_tally

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
REPORT = REPO / "docs" / "results" / "studies.html"


def _results() -> dict[str, dict]:
    return {name: json.loads((RESULTS / f"{name}.cpu.json").read_text(encoding="utf-8"))
            for name in STUDY_ORDER}


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_cpu_result_is_committed_and_complete() -> None:
    for name, doc in _results().items():
        assert doc["study"] == name and doc["form"] == "cpu"
        roles = [t["role"] for t in doc["trials"]]
        assert roles == [t.role for t in get_study(name).form("cpu").trials], name
        cal = doc["calibration"]
        assert cal["cpu"] and cal["resnet20_fp32_train_img_per_s"] > 0, name
        assert doc["verdict"] and all(r["verdict"] in VERDICTS for r in doc["verdict"])
        assert doc["wall_time_s"] <= 60 * 10 + 60, (name, doc["wall_time_s"])  # budget + slack
        assert {t["status"] for t in doc["trials"]} <= {"completed", "diverged", "failed", "skipped"}
        assert (RESULTS / f"{name}.cpu.json").stat().st_size < 1_000_000  # no checkpoints


@pytest.mark.parametrize("suffix", [".html", ".md"])
def test_committed_report_was_rendered_from_the_committed_results(suffix: str) -> None:
    page = REPORT.with_suffix(suffix).read_text(encoding="utf-8")
    text = _flat(html.unescape(page).replace("\\|", "|"))
    for name, doc in _results().items():
        assert doc["title"] in text, name
        for row in doc["verdict"]:
            assert _flat(row["measured"]) in text, (name, row["measured"])
            assert _flat(row["claim"]) in text, (name, row["claim"])


def test_readme_results_table_matches_the_results() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name, doc in _results().items():
        line = next((ln for ln in readme.splitlines() if ln.startswith(f"| {name} |")), None)
        assert line is not None, f"README Results has no row for {name}"
        assert verdict_tally(doc["verdict"]) in line, (name, verdict_tally(doc["verdict"]))
        assert f"{doc['wall_time_s'] / 60:.1f} min" in line, name


# --- the replay of the exhaustive table ----------------------------------------------------------

REPLAY = RESULTS / "replay-exhaustive_cifar.json"
RECORDED = RESULTS / "recorded-exhaustive_cifar.json"


def test_replay_results_come_from_the_committed_table() -> None:
    """The committed replay was computed from the committed recorded table (which replays it
    without the sweep's store: ``launchers.replay --recorded``): the same architectures, epochs,
    best accuracy and proxy correlations; every default variant has at least 20 seeds (grid,
    which ignores seeds, one)."""
    from bench import replay as rp
    from launchers.replay import DEFAULT_VARIANTS

    data = json.loads(REPLAY.read_text(encoding="utf-8"))
    table = rp.load_table_file(str(RECORDED))
    assert data["exhaustive"] == {"architectures": len(table.trials), "epochs": table.epochs,
                                  "total_epochs": table.total_epochs,
                                  "best_val_acc": table.best_acc}
    assert data["budget_epochs"] == round(table.total_epochs / 3)
    assert data["proxies"] == json.loads(json.dumps(rp.proxy_correlations(table)))
    proxies = sorted(set.intersection(*(set(r.proxies) for r in table.trials.values())))
    for variant in [*DEFAULT_VARIANTS, *(rp.PRESCREEN + p for p in proxies)]:
        want = 1 if variant == "grid" else 20
        assert data["summary"][variant]["seeds"] >= want, variant
    assert "/work" not in REPLAY.read_text(encoding="utf-8")  # no machine paths


def test_readme_replay_table_matches_the_results() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    data = json.loads(REPLAY.read_text(encoding="utf-8"))
    for variant, row in data["summary"].items():
        line = next((ln for ln in readme.splitlines() if ln.startswith(f"| {variant} |")), None)
        assert line is not None, f"README replay table has no row for {variant}"
        assert f"{row['regret_mean']:.2f} ± {row['regret_std']:.2f}" in line, variant
        assert f"{row['hv_ratio_mean']:.3f} ± {row['hv_ratio_std']:.3f}" in line, variant
