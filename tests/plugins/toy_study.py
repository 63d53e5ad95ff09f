"""A study in one file (a test plugin): "at equal parameters, depth beats width" on digits.

Everything a study needs is the public API of ``bench.studies``: the trials of each form (a role,
the flat architecture, overrides), the paper's numbers, and a verdict function over the results
``launchers.study`` writes. Registering it makes ``python -m launchers.study toy_depth_width
--plugin toy_study`` list, dry-run, run and import it like a built-in study.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.studies import (
    CONSISTENT,
    INCONSISTENT,
    INFO,
    MISSING,
    Results,
    Study,
    StudyForm,
    StudyTrial,
    VerdictRow,
    register_study,
)

DATA = {"name": "digits", "image_size": 16, "subset": 256, "test_subset": 128,
        "val_fraction": 0.25, "crop_padding": 2, "flip": False}
TRAIN = {"epochs": 1, "batch_size": 32, "lr": 0.05, "schedule": "cosine", "device": "cpu",
         "threads": 1, "compile": False}
TRIALS = (StudyTrial("deep", {"depth": 14, "width": 4}),
          StudyTrial("wide", {"depth": 8, "width": 6}))


def verdict(results: Mapping[str, Any]) -> list[VerdictRow]:
    r = Results(results)
    deep, wide = r.error("deep"), r.error("wide")
    rows = [VerdictRow(f"{role}: test error", "—", "—" if e is None else f"{e:.1f}%",
                       MISSING if e is None else INFO) for role, e in (("deep", deep),
                                                                     ("wide", wide))]
    ok = None if deep is None or wide is None else deep <= wide
    rows.append(VerdictRow("the deeper net is no worse", "a toy claim, no paper",
                           f"deep {deep} vs wide {wide}",
                           MISSING if ok is None else (CONSISTENT if ok else INCONSISTENT)))
    return rows


form = StudyForm(trials=TRIALS, train=TRAIN, data=DATA, note="a toy study: one epoch on digits")
register_study(Study(
    name="toy_depth_width", title="Depth against width (toy)",
    claim="At about equal parameters, a deeper net is no worse than a wider one.",
    citation="none (a test plugin)", paper={}, gpu=form, smoke=form, cpu=form,
    evaluate=verdict))
