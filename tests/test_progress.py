"""The sweep's live progress table (``bench.tune.ProgressCallback``): what a running trial's row
says before and after its first report, and that a stand-in objective value is never shown as
if it were measured. The callback only reads a trial's id, status and config, so plain objects
stand in for Tune's trials here; real sweeps drive it in tests/test_sweep.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.space import load_space
from bench.tune import PLACEHOLDER_KEY, ProgressCallback

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def progress() -> ProgressCallback:
    space = load_space(REPO / "search_spaces" / "quickstart.yaml")
    return ProgressCallback(space, "search", interval_s=0.0, total=2)


def _trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status="RUNNING", config={}, last_result=None)


def _running_rows(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("    running ")]


def test_a_trial_before_its_first_report_is_in_its_first_epoch(progress, capsys) -> None:
    trial = _trial("t0")
    progress.on_trial_start(0, [trial], trial)
    progress.print_table([trial])
    [row] = _running_rows(capsys.readouterr().out)
    assert "first epoch" in row and "loading" not in row


def test_a_stand_in_objective_is_not_shown_a_measured_one_is(progress, capsys) -> None:
    metric, _ = progress.space.search.primary
    a, b = _trial("t0"), _trial("t1")
    for t in (a, b):
        progress.on_trial_start(0, [a, b], t)
    progress.on_trial_result(0, [a, b], a, {"epoch": 1, metric: -1.0, PLACEHOLDER_KEY: metric})
    progress.on_trial_result(0, [a, b], b, {"epoch": 2, metric: 0.875})
    progress.print_table([a, b])
    out = capsys.readouterr().out
    rows = _running_rows(out)
    assert len(rows) == 2
    assert "epoch 1/" in rows[0] and metric not in rows[0], rows[0]
    assert "epoch 2/" in rows[1] and f"{metric} 0.875" in rows[1], rows[1]
    assert "best " + metric + " 0.875" in out  # the stand-in is not the best either
