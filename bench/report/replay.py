"""The replay report: one self-contained HTML page (the table of ``bench.replay.markdown`` as a
sortable table, and a figure of the mean regret against the epochs consumed per variant). Plain
run dicts in (``dataclasses.asdict`` of ``bench.replay.Run``), text out."""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from bench.report import plots
from bench.report.page import SCRIPT, STYLE, csp
from bench.report.tables import Table, fixed, number, text, to_html


def regret_at(trace: Sequence[Sequence[float]], epochs: float, best: float) -> float:
    """The regret after ``epochs`` of a best-so-far trace [(epochs used, best), ...]."""
    value = -math.inf
    for used, found in trace:
        if used > epochs:
            break
        value = found
    return best - value if math.isfinite(value) else math.nan


def regret_figure(runs: Sequence[Mapping[str, Any]], best: float, budget: int) -> Figure | None:
    if not runs:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    xs = list(range(1, budget + 1))
    for i, variant in enumerate(dict.fromkeys(r["variant"] for r in runs)):
        mine = [r for r in runs if r["variant"] == variant]
        ys = []
        for x in xs:
            vals = [v for r in mine if math.isfinite(v := regret_at(r["trace"], x, best))]
            # a point only once every seed has a fully trained trial
            ys.append(statistics.fmean(vals) if len(vals) == len(mine) else math.nan)
        ax.plot(xs, ys, label=variant, color=plots.CYCLE[i % len(plots.CYCLE)], lw=1.4)
    ax.set_xlabel("epochs consumed")
    ax.set_ylabel("regret to the exhaustive best (val_acc points)")
    ax.legend(loc="upper right", ncols=2)
    return fig


def page(data: Mapping[str, Any]) -> str:
    """The HTML page of a replay result (the launcher's JSON)."""
    ex = data["exhaustive"]
    t = Table("replay", ["variant", "seeds", "regret", "± std", "hypervolume ratio", "± std ",
                         "epochs used", "trials", "trained to the end"],
              numeric={1, 2, 3, 4, 5, 6, 7, 8})
    for variant, row in data["summary"].items():
        t.rows.append([text(variant), number(row["seeds"]), fixed(row["regret_mean"]),
                       fixed(row["regret_std"]), fixed(row["hv_ratio_mean"], 3),
                       fixed(row["hv_ratio_std"], 3), number(row["epochs_mean"]),
                       fixed(row["trials_mean"], 1), fixed(row["full_mean"], 1)])
    svg = plots.render(regret_figure, data["runs"], ex["best_val_acc"], data["budget_epochs"],
                       prefix="f1")
    title = f"resbench replay: {data['experiment']}"
    note = (f"{ex['architectures']} architectures x {ex['epochs']} epochs = "
            f"{ex['total_epochs']} epochs exhaustive (best val_acc {ex['best_val_acc']:.2f}); "
            f"each replay has {data['budget_epochs']} epochs. Regret: the exhaustive best minus "
            "the best val_acc of the trials trained to their last epoch; hypervolume ratio: "
            "their (val_acc, MACs) hypervolume over the exhaustive front's. Mean and std over "
            "the seeds.")
    e = html.escape
    figure = f'<figure>{svg}<figcaption>Mean regret over the seeds against the epochs ' \
             f'consumed.</figcaption></figure>' if svg else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{e(csp(SCRIPT))}">'
            f"<title>{e(title)}</title><style>{STYLE}</style></head><body>\n"
            f"<h1>{e(title)}</h1><p class='note'>{e(note)}</p>{to_html(t)}{figure}\n"
            f"<script>{SCRIPT}</script></body></html>\n")


__all__ = ["page", "regret_at", "regret_figure"]
