"""The report's figures as inline SVG text: matplotlib ``Figure`` objects (no pyplot, so no
global backend or GUI) saved with the SVG backend, text kept as ``<text>`` (no mathtext: run names
are shown literally), ids prefixed per figure so several SVGs can share one HTML page.

Every marker (and every curve) carries an SVG ``<title>``: the architecture and its values, shown
as a tooltip by the page's script (and natively by any SVG viewer), so the exported SVG stays a
paper-ready static figure. Colours come from one ``palette`` per report: one hue per variant in
every figure, shades of it telling apart the configurations of a variant.

Each function takes report groups (``bench.report.model.Group``) and returns a ``Plot`` (the
figure, its tooltips and the features it drew, for the caption), or None when the data for that
figure are absent.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib as mpl
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from bench.report.model import EXECUTION_PARAMS, Group, Stat, block_order, pareto_front, stat
from bench.text import si

RC = {
    "svg.fonttype": "none",  # text stays text: small, selectable, searchable
    "svg.hashsalt": "resbench",  # reproducible ids
    "text.parse_math": False,  # '$' in a run name is not mathtext
    "font.size": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
}
VARIANT_COLORS = {
    "plain": "#d62728", "resnet (identity)": "#1f77b4", "resnet (projection)": "#2ca02c",
    "resnet (?)": "#17becf", "densenet": "#ff7f0e", "densenet-bc": "#9467bd",
    "densenet-b": "#8c564b", "densenet-c": "#e377c2", "timm reference": "#000000",
}
CYCLE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
         "#7f7f7f", "#bcbd22", "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
LINESTYLES = ["-", "--", "-.", ":"]
MAX_LEGEND = 14
Names = dict[int, str]  # id(group) -> display name
Colors = dict[str, str]  # variant -> colour, one per report (``palette``)


@dataclass
class Plot:
    """A drawn figure, the tooltip of each artist given a gid (gid -> text) and the features it
    drew (``front``, ``stopped``, ``wilson``, ``seed_std``, ``x_range``, ``x_spread``,
    ``latency_p90``,
    ``refs``, ``measured_refs``, ...), so that its caption says only what is there."""

    fig: Figure
    tips: dict[str, str] = field(default_factory=dict)
    drawn: set[str] = field(default_factory=set)

    def tip(self, artist: Any, text: str) -> Any:
        gid = f"tip{len(self.tips)}"
        artist.set_gid(gid)
        self.tips[gid] = text
        return artist


@dataclass
class Rendered:
    svg: str
    drawn: set[str]


def render_plot(fn: Callable[..., Plot | Figure | None], *args: Any,
                prefix: str) -> Rendered | None:
    """Call a figure function under the report's rc settings; its SVG text (tooltips as
    ``<title>`` of ``<g class="tip">``) and drawn features, or None."""
    with mpl.rc_context(RC):
        out = fn(*args)
        if out is None:
            return None
        plot = out if isinstance(out, Plot) else Plot(out)
        buf = io.StringIO()
        plot.fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    for gid, tip in plot.tips.items():
        title = html.escape(tip, quote=False)
        text = text.replace(f'<g id="{gid}">', f'<g id="{gid}" class="tip"><title>{title}</title>',
                            1)
    text = re.sub(r'\bid="', f'id="{prefix}-', text)
    text = text.replace("url(#", f"url(#{prefix}-").replace('href="#', f'href="#{prefix}-')
    return Rendered(text, plot.drawn)


def render(fn: Callable[..., Plot | Figure | None], *args: Any, prefix: str) -> str | None:
    """Call a figure function under the report's rc settings; its SVG text or None."""
    out = render_plot(fn, *args, prefix=prefix)
    return out.svg if out else None


def palette(groups: Sequence[Group]) -> Colors:
    """One colour per variant for the whole report: the fixed ones of ``VARIANT_COLORS``, then
    the cycle's unused colours in order of the variants' names."""
    variants = sorted({g.first.variant for g in groups})
    out = {v: VARIANT_COLORS[v] for v in variants if v in VARIANT_COLORS}
    free = [c for c in CYCLE if c not in out.values()] or CYCLE
    for i, v in enumerate(v for v in variants if v not in out):
        out[v] = free[i % len(free)]
    return out


def variant_color(variant: str, colors: Colors) -> str:
    return colors.get(variant) or VARIANT_COLORS.get(variant) or CYCLE[0]


def shade(color: str, i: int, n: int) -> tuple[float, float, float]:
    """The ``i``-th of ``n`` shades of ``color``, light to dark (the colour itself for one)."""
    r, g, b = to_rgb(color)
    if n <= 1:
        return (r, g, b)
    t = i / (n - 1)  # 0: mixed 45% with white, 1: 30% with black
    if t < 0.5:
        w = 0.45 * (1 - 2 * t)
        return (r + (1 - r) * w, g + (1 - g) * w, b + (1 - b) * w)
    k = 1 - 0.3 * (2 * t - 1)
    return (r * k, g * k, b * k)


def group_shades(groups: Sequence[Group], colors: Colors, names: Names
                 ) -> dict[int, tuple[float, float, float]]:
    """A colour per group: its variant's hue, one shade per configuration of that variant
    (ordered by depth, then name)."""
    by_variant: dict[str, list[Group]] = {}
    for g in groups:
        by_variant.setdefault(g.first.variant, []).append(g)
    out = {}
    for v, gs in by_variant.items():
        gs = sorted(gs, key=lambda g: (g.first.depth or 0, names.get(id(g), "")))
        for i, g in enumerate(gs):
            out[id(g)] = shade(variant_color(v, colors), i, len(gs))
    return out


def _pct(s: Stat | None) -> str:
    if s is None:
        return "-"
    text = f"{s.mean:.2f}"
    if s.n > 1:
        text += f" ± {s.std:.2f} over {s.n} seeds"
    if s.lo is not None and s.hi is not None:
        text += f" [95%: {s.lo:.1f}-{s.hi:.1f}, {s.images} images]"
    return text


def _short(v: float) -> str:
    return si(v)


def group_tip(g: Group, name: str, objective: str) -> str:
    """The tooltip of a group's marker: name, variant, accuracies, cost, status."""
    f = g.first
    lines = [name, f"variant: {f.variant}" + (f", depth {f.depth}" if f.depth else "")]
    stopped = not g.finished and g.stopped
    for metric in dict.fromkeys((objective, "val_acc", "test_acc")):
        s = g.last_stat(metric) if stopped else g.stat(metric)
        if s is not None:
            lines.append(f"{metric}: {_pct(s)}" + (" (objective)" if metric == objective else ""))
    if stopped:
        epochs = sorted({t.epochs for t in g.stopped})
        lines.append(f"stopped early at epoch {', '.join(map(str, epochs))} (last epoch's values)")
    for key, label in (("params", "params"), ("macs", "MACs")):
        v = g.value(key)
        if v is not None:
            lines.append(f"{label}: {_short(v)}")
    thr = g.spread("infer_img_per_s")
    if thr is not None:
        lines.append(f"throughput: {thr.mean:,.0f}" + (f" ± {thr.std:,.0f}" if thr.std else "")
                     + " img/s")
    lat = g.mean("latency_ms_p50") or g.value("latency_ms_p50")
    if lat is not None:
        p90 = g.value("latency_ms_p90")
        lines.append(f"latency p50: {lat:.3g} ms" + (f" (p90 {p90:.3g})" if p90 else ""))
    lines.append(f"trials: {len(g.finished)}/{len(g.trials)} completed")
    return "\n".join(lines)


def trial_tip(t: Any, name: str) -> str:
    lines = [name, f"trial {t.trial_id or t.run_id[:8]}"
             + (f", seed {t.seed}" if t.seed is not None else "") + f": {t.status}",
             f"epochs: {t.epochs}"]
    for key in ("val_acc", "test_acc", "train_loss"):
        v = t.metrics.get(key)
        if isinstance(v, float) and math.isfinite(v):
            lines.append(f"{key}: {v:.4g}")
    return "\n".join(lines)


def _human(v: float, _pos: Any = None) -> str:
    return si(v, "g")


def _minor(v: float, _pos: Any = None) -> str:
    return _human(v) if f"{v:.0e}"[0] in "25" else ""


def _log_if_wide(ax: Any, values: Sequence[float], axis: str = "x") -> None:
    """Log scale when the values span more than 20x; tick labels as plain text (1K, 10M:
    the default log labels are mathtext, which the report turns off)."""
    pos = [v for v in values if v > 0]
    target = ax.xaxis if axis == "x" else ax.yaxis
    if pos and max(pos) / min(pos) > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        few = max(pos) / min(pos) < 300  # under ~2 decades: label the 2s and 5s as well
        target.set_minor_formatter(FuncFormatter(_minor) if few else NullFormatter())
    target.set_major_formatter(FuncFormatter(_human))


def _experiments(groups: Sequence[Group]) -> list[str]:
    return list(dict.fromkeys(g.first.experiment for g in groups))


# --- Pareto fronts ------------------------------------------------------------------------------

PARETO_AXES = (
    ("macs", "MACs per image", "min"),
    ("params", "parameters", "min"),
    ("infer_img_per_s", "inference throughput (img/s)", "max"),
    ("latency_ms_p50", "latency p50, batch 1 (ms)", "min"),
)


def _x(g: Group, key: str) -> float | None:
    if key in ("params", "macs"):
        return g.value(key)
    s = g.spread(key)
    return s.mean if s else None


def _xerr(g: Group, key: str) -> tuple[list[list[float]], str] | None:
    """The horizontal bar of a cost measured under load: throughput ± its std over the
    group's trials (or as logged), latency p50 to p90."""
    if key == "infer_img_per_s":
        s = g.spread(key)
        vals = [t.metrics[key] for t in g.trials
                if isinstance(t.metrics.get(key), float) and math.isfinite(t.metrics[key])]
        if s and len(vals) > 1 and max(vals) > min(vals):
            # the range of the measurements: positive, so it stays drawable on a log axis
            return [[s.mean - min(vals)], [max(vals) - s.mean]], "x_range"
        if s and s.std > 0:  # one trial's own std, cut at zero
            return [[min(s.std, s.mean * 0.9)], [s.std]], "x_spread"
    if key == "latency_ms_p50":
        p50, p90 = _x(g, key), g.value("latency_ms_p90")
        if p50 and p90 and p90 > p50:
            return [[0.0], [p90 - p50]], "latency_p90"
    return None


def acc_point(ax: Any, plot: Plot, x: float, s: Stat, color: Any, marker: str, tip: str,
              hollow: bool = False, y: Callable[[float], float] = lambda v: v,
              xerr: tuple[list[list[float]], str] | None = None) -> Any:
    """One accuracy marker with its bars: thin with caps, the 95% Wilson interval of the
    split's size; thick and pale, ± std over seeds; horizontal, a cost's spread. ``y`` maps an
    accuracy to the plotted value (``100 - acc`` for an error)."""
    m, lo, hi = y(s.mean), None, None
    if s.lo is not None and s.hi is not None:
        lo, hi = sorted((y(s.lo), y(s.hi)))
        ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], fmt="none", ecolor=color,
                    elinewidth=0.8, capsize=2, alpha=0.75, zorder=2)
        plot.drawn.add("wilson")
    if s.n > 1 and s.std > 0:
        ax.errorbar([x], [m], yerr=[s.std], fmt="none", ecolor=color, elinewidth=3,
                    capsize=0, alpha=0.35, zorder=2)
        plot.drawn.add("seed_std")
    if xerr is not None:
        ax.errorbar([x], [m], xerr=xerr[0], fmt="none", ecolor=color, elinewidth=0.8,
                    capsize=2, alpha=0.75, zorder=2)
        plot.drawn.add(xerr[1])
    (line,) = ax.plot([x], [m], marker, color=color, mfc="white" if hollow else color,
                      mew=1.3 if hollow else 1.0, ms=6, ls="", zorder=4)
    if hollow:
        plot.drawn.add("stopped")
    return plot.tip(line, tip)


def _label_points(ax: Any, plot: Plot, pts: Sequence[tuple[float, float]], labels: Sequence[str],
                  tips: Sequence[str]) -> None:
    """Direct labels next to points (the Pareto front), alternately above and below so that
    neighbours along the front do not overprint, and to the left of points in the right part of
    the axes so that they stay inside it (call once the axes' scales are set)."""
    ax.get_xlim()  # settles the autoscaled limits the positions below are read against
    to_axes = ax.transAxes.inverted()
    for k, ((x, y), label, tip) in enumerate(zip(pts, labels, tips, strict=True)):
        up = k % 2 == 0
        left = to_axes.transform(ax.transData.transform((x, y)))[0] > 0.6
        t = ax.annotate(label, (x, y), textcoords="offset points",
                        xytext=(-5 if left else 5, 6 if up else -11),
                        ha="right" if left else "left",
                        fontsize=6.5, color="#222", zorder=5,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                              "alpha": 0.7})
        plot.tip(t, tip)
    if labels:
        plot.drawn.add("labels")


def pareto(groups: Sequence[Group], acc: str, names: Names, colors: Colors | None = None
           ) -> Plot | None:
    """``acc`` (the search objective) against each cost. Completed configurations: filled
    markers, the front joins the non-dominated ones (labelled); configurations whose trials were
    all stopped early: hollow markers at their last epoch, off the front."""
    colors = colors if colors is not None else palette(groups)
    done = [g for g in groups if not g.first.reference and g.stat(acc)]
    cut = [g for g in groups if not g.first.reference and not g.stat(acc) and g.last_stat(acc)]
    search = done + cut
    refs = [g for g in groups if g.first.reference and g.finished]
    panels = [(k, t, m) for k, t, m in PARETO_AXES
              if any(_x(g, k) is not None for g in search)]
    if not search or not panels:
        return None
    exps = _experiments(groups)
    rows = (len(panels) + 1) // 2
    fig = Figure(figsize=(10, 3.9 * rows), layout="constrained")
    plot = Plot(fig)
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    handles: dict[str, Any] = {}
    for ax, (key, title, mode) in zip(axes, panels, strict=False):
        pts, front_groups = [], []
        xs = []
        for g in search:
            x = _x(g, key)
            hollow = g in cut
            s = g.last_stat(acc) if hollow else g.stat(acc)
            if x is None or s is None:
                continue
            xs.append(x)
            variant = g.first.variant
            color = variant_color(variant, colors)
            marker = MARKERS[exps.index(g.first.experiment) % len(MARKERS)]
            acc_point(ax, plot, x, s, color, marker, group_tip(g, names[id(g)], acc), hollow,
                      xerr=_xerr(g, key))
            if not hollow:
                pts.append((x, s.mean))
                front_groups.append(g)
            label = variant if len(exps) == 1 else f"{variant} [{g.first.experiment}]"
            handles.setdefault(label, Line2D([], [], color=color, marker=marker, ls=""))
        if cut:
            handles.setdefault("stopped early (last epoch)",
                               Line2D([], [], color="#555", marker="o", mfc="white", ls=""))
        front = pareto_front(pts, mode)
        fx = [pts[i][0] for i in front]
        fy = [pts[i][1] for i in front]
        if front:
            ax.plot(fx, fy, "-", color="black", lw=1.0, zorder=1)
            ax.plot(fx, fy, "o", mfc="none", mec="black", ms=10, zorder=1)
            plot.drawn.add("front")
            handles.setdefault("Pareto front", Line2D([], [], color="black", marker="o",
                                                      mfc="none"))
        for g in refs:
            x = _x(g, key)
            if x is None:
                continue
            xs.append(x)
            s = g.stat(acc)
            if s is not None:
                (star,) = ax.plot([x], [s.mean], "*", color="black", ms=11, zorder=3)
                plot.tip(star, group_tip(g, names[id(g)], acc))
                ax.annotate(names[id(g)], (x, s.mean), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
                plot.drawn.add("refs")
                handles.setdefault("timm reference", Line2D([], [], color="black", marker="*",
                                                            ls="", ms=9))
            else:  # measurement-only reference: its cost, no accuracy
                plot.tip(ax.axvline(x, color="black", ls=":", lw=1),
                         group_tip(g, names[id(g)], acc))
                ax.annotate(names[id(g)], (x, 1.0), xycoords=("data", "axes fraction"),
                            rotation=90, va="top", ha="right", fontsize=7)
                plot.drawn.add("measured_refs")
                handles.setdefault("timm reference (measured only)",
                                   Line2D([], [], color="black", ls=":"))
        _log_if_wide(ax, xs)
        if front:
            chosen = [front_groups[i] for i in front]
            _label_points(ax, plot, list(zip(fx, fy, strict=True)),
                          [names[id(g)] for g in chosen],
                          [group_tip(g, names[id(g)], acc) for g in chosen])
        ax.set_xlabel(title + (" (higher is better)" if mode == "max" else ""))
        ax.set_ylabel(f"{acc} (%)")
        ax.set_title(f"{acc} vs {title.split(' (')[0]}")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center",
               ncols=min(4, len(handles)))
    return plot


# --- training curves --------------------------------------------------------------------------


def curves(groups: Sequence[Group], names: Names, colors: Colors | None = None) -> Plot | None:
    keys = (("train_loss", "training loss"), ("val_acc", "validation accuracy (%)"))
    shown = [g for g in groups if any(t.curve(k) for t in g.trials for k, _ in keys)]
    if not shown:
        return None
    shades = group_shades(shown, colors if colors is not None else palette(groups), names)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    plot = Plot(fig)
    axes = fig.subplots(1, 2)
    for ax, (key, title) in zip(axes, keys, strict=True):
        for g in shown:
            first = True
            for t in g.trials:
                pts = t.curve(key)
                if not pts:
                    continue
                (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], "-",
                                  color=shades[id(g)], lw=1.2, alpha=0.9,
                                  marker="o" if len(pts) < 3 else None, ms=3,
                                  label=names[id(g)] if first else None)
                plot.tip(line, trial_tip(t, names[id(g)]))
                if t.stopped:  # where the scheduler stopped it
                    (end,) = ax.plot([pts[-1][0]], [pts[-1][1]], "o", mfc="white",
                                     color=shades[id(g)], ms=5, zorder=4)
                    plot.tip(end, trial_tip(t, names[id(g)]))
                    plot.drawn.add("stopped")
                first = False
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(title)
        ax.set_title(f"{title.split(' (')[0]} per epoch (one line per trial)")
    _legend_below(fig, axes[1], len(shown))
    return plot


def _legend_below(fig: Figure, ax: Any, n: int) -> None:
    if n <= MAX_LEGEND:
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, n))


# --- degradation (He et al. 2016, Fig. 1 and 6) ----------------------------------------------


def degradation(groups: Sequence[Group], names: Names, colors: Colors | None = None
                ) -> Plot | None:
    res = [g for g in groups if g.first.family in ("resnet", "plain") and not g.first.reference
           and g.mean_curve("train_acc")]
    panels: dict[str, list[Group]] = {}
    for g in res:
        panels.setdefault("plain" if g.first.plain else f"residual ({g.first.skip})", []).append(g)
    if "plain" not in panels or len(panels) < 2:
        return None
    titles = ["plain", *sorted(k for k in panels if k != "plain")][:4]
    shades = group_shades(res, colors if colors is not None else palette(groups), names)
    # Test-error curves (train.test_every, as in He et al. Fig. 6) when every net has them.
    held = "test" if all(len(g.mean_curve("test_acc")) > 1 for g in res) else "val"
    fig = Figure(figsize=(min(15, 5 * len(titles)), 3.8), layout="constrained")
    plot = Plot(fig)
    axes = fig.subplots(1, len(titles), sharey=True, squeeze=False)[0]
    for ax, title in zip(axes, titles, strict=True):
        for g in sorted(panels[title], key=lambda g: (g.first.depth or 0, names[id(g)])):
            c = shades[id(g)]
            train = g.mean_curve("train_acc")
            plot.tip(ax.plot([p[0] for p in train], [100 - p[1] for p in train], "--", color=c,
                             lw=1)[0], f"{names[id(g)]}\ntraining error")
            curve = g.mean_curve(f"{held}_acc")
            if curve:
                (line,) = ax.plot([p[0] for p in curve], [100 - p[1] for p in curve], "-",
                                  color=c, lw=2, label=names[id(g)])
                plot.tip(line, f"{names[id(g)]}\n{held} error, last "
                               f"{100 - curve[-1][1]:.2f}% at epoch {curve[-1][0]:g}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper right")
    axes[0].set_ylabel("error (%)")
    which = "test" if held == "test" else "validation"
    fig.suptitle(f"training error (dashed) and {which} error (bold) vs epoch, mean over seeds")
    return plot


# --- error vs depth -------------------------------------------------------------------------------

# Parameters that vary with the depth of one architecture family (left out of a series' key).
_DEPTH_KEYS = ("arch.depth", "sample.depth")


def depth_series(groups: Sequence[Group], multi_experiment: bool) -> dict[str, list[Group]]:
    """Groups split into series that differ only in depth: one per variant, block type and
    training recipe (named by what tells them apart), each sorted by depth."""
    def key(g: Group) -> tuple[str, ...]:
        keep = sorted((k, v) for k, v in g.first.params.items()
                      if k not in EXECUTION_PARAMS and k not in _DEPTH_KEYS
                      and not k.startswith(("arch.stages.", "sample.", "resbench."))
                      and k.rsplit(".", 1)[-1] != "seed")
        return (g.first.experiment, g.first.variant, g.first.block, *(f"{k}={v}" for k, v in keep))

    by_key: dict[tuple[str, ...], list[Group]] = {}
    for g in groups:
        by_key.setdefault(key(g), []).append(g)
    base: dict[tuple[str, ...], str] = {}
    for k, gs in by_key.items():
        f = gs[0].first
        name = f.variant + (f", {f.block} blocks" if f.block else "")
        base[k] = name + (f" [{f.experiment}]" if multi_experiment else "")
    out: dict[str, list[Group]] = {}
    for k, gs in by_key.items():
        same = [o for o in by_key if base[o] == base[k]]
        name = base[k]
        if len(same) > 1:  # tell apart by the recipe values that differ
            params = [dict(p.split("=", 1) for p in o[3:]) for o in same]
            mine = dict(p.split("=", 1) for p in k[3:])
            differ = sorted(n for n in set().union(*params)
                            if len({p.get(n) for p in params}) > 1)
            name += " (" + ", ".join(f"{n.rsplit('.', 1)[-1]}={mine.get(n, '-')}"
                                     for n in differ[:3]) + ")"
        out[name] = sorted(gs, key=lambda g: g.first.depth or 0)
    return out


def error_vs_depth(groups: Sequence[Group], acc: str, names: Names | None = None,
                   colors: Colors | None = None) -> Plot | None:
    pts = [g for g in groups if not g.first.reference and g.first.depth and g.stat(acc)]
    if len({g.first.depth for g in pts}) < 2:
        return None
    names = names or {id(g): g.first.label for g in groups}
    colors = colors if colors is not None else palette(groups)
    exps = _experiments(groups)
    series = depth_series(pts, len(exps) > 1)
    by_variant: dict[str, list[str]] = {}
    for name, gs in series.items():
        by_variant.setdefault(gs[0].first.variant, []).append(name)
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    plot = Plot(fig)
    ax = fig.subplots()
    split = acc.replace("_acc", "")
    for name, gs in series.items():
        variant = gs[0].first.variant
        mine = by_variant[variant]
        c = shade(variant_color(variant, colors), mine.index(name), len(mine))
        marker = MARKERS[mine.index(name) % len(MARKERS)]
        ds, ys = [], []
        for g in gs:
            s = g.stat(acc)
            acc_point(ax, plot, float(g.first.depth), s, c, marker,
                      group_tip(g, names[id(g)], acc), y=lambda v: 100 - v)
            ds.append(g.first.depth)
            ys.append(100 - s.mean)
        ax.plot(ds, ys, LINESTYLES[mine.index(name) % len(LINESTYLES)], color=c, lw=1.2,
                marker=marker, ms=6, label=name, zorder=3)
    depths = sorted({g.first.depth for g in pts})
    if len(depths) <= 12:
        ax.set_xticks(depths)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel(f"{split} error (%)")
    ax.set_title(f"{split} error vs depth, one line per variant")
    ax.legend(loc="best")
    return plot


# --- ResNet vs DenseNet ---------------------------------------------------------------------------


def families(groups: Sequence[Group], acc: str, names: Names, colors: Colors | None = None
             ) -> Plot | None:
    pts = [g for g in groups if not g.first.reference and g.stat(acc) and g.value("params")]
    if len({g.first.family for g in pts} - {""}) < 2:
        return None
    colors = colors if colors is not None else palette(groups)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    plot = Plot(fig)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in ((axes[0], "params", "parameters"), (axes[1], "macs", "MACs per image")):
        xs = []
        for g in pts:
            x = g.value(key)
            if x is None:
                continue
            xs.append(x)
            v = g.first.variant
            acc_point(ax, plot, x, g.stat(acc), variant_color(v, colors), "o",
                      group_tip(g, names[id(g)], acc))
        _log_if_wide(ax, xs)
        ax.set_xlabel(title)
        ax.set_title(f"{acc} vs {title} by family")
    axes[0].set_ylabel(f"{acc} (%)")
    variants = sorted({g.first.variant for g in pts})
    axes[1].legend([Line2D([], [], color=variant_color(v, colors), marker="o", ls="")
                    for v in variants], variants, loc="best")
    return plot


# --- gradient flow --------------------------------------------------------------------------------


def _grad_at(g: Group, block: str, which: str) -> float | None:
    vals = []
    for t in g.trials:
        if t.status not in ("completed", "stopped"):
            continue
        pts = t.curve("grad_norm/" + block)
        if pts:
            vals.append(pts[0][1] if which == "first" else pts[-1][1])
    s = stat(vals)
    return s.mean if s else None


def grad_flow(groups: Sequence[Group], names: Names, colors: Colors | None = None
              ) -> Plot | None:
    shown = []
    for g in groups:
        blocks = block_order(k[len("grad_norm/"):] for t in g.trials for k in sorted(t.curve_keys)
                             if k.startswith("grad_norm/"))
        if blocks and any(_grad_at(g, b, "first") for b in blocks):
            shown.append((g, blocks))
    if not shown:
        return None
    shades = group_shades([g for g, _ in shown], colors if colors is not None
                          else palette(groups), names)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    plot = Plot(fig)
    axes = fig.subplots(1, 2, sharey=True)
    values = []
    for ax, which, title in ((axes[0], "first", "first epoch"), (axes[1], "last", "last epoch")):
        for g, blocks in shown:
            pts = [(i + 1, _grad_at(g, b, which), b) for i, b in enumerate(blocks)]
            pts = [(i, v, b) for i, v, b in pts if v is not None and v > 0]
            values += [v for _, v, _ in pts]
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", marker=".",
                              color=shades[id(g)], lw=1.2, label=names[id(g)])
            plot.tip(line, f"{names[id(g)]}\n" + "\n".join(f"{b}: {v:.3g}" for _, v, b in pts))
        ax.set_xlabel("parameter group from input (stem = 1, head = last)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"gradient L2 norm per block, {title}")
    _log_if_wide(axes[0], values, axis="y")
    axes[0].set_ylabel("gradient norm (last batch of the epoch)")
    _legend_below(fig, axes[1], len(shown))
    return plot


# --- lesion study (Veit et al. 2016) --------------------------------------------------------------


def lesion(groups: Sequence[Group], names: Names, colors: Colors | None = None) -> Plot | None:
    shown = [(g, [t.lesion for t in g.finished if t.lesion]) for g in groups]
    shown = [(g, ls) for g, ls in shown if ls]
    if not shown:
        return None
    shades = group_shades([g for g, _ in shown], colors if colors is not None
                          else palette(groups), names)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    plot = Plot(fig)
    axes = fig.subplots(1, 2, sharey=True)
    any_k = False
    for g, studies in shown:
        c = shades[id(g)]
        blocks = block_order(b for s in studies for b in (s.get("single") or {}))
        ys = [stat(float(s["single"][b]) for s in studies if b in (s.get("single") or {}))
              for b in blocks]
        pts = [(i + 1, y.mean, b) for i, (y, b) in enumerate(zip(ys, blocks, strict=True)) if y]
        if pts:
            (line,) = axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "-", marker=".",
                                   color=c, label=names[id(g)])
            plot.tip(line, f"{names[id(g)]}\n"
                           + "\n".join(f"without {b}: {v:.2f}%" for _, v, b in pts))
        base = stat(float(s["baseline"]) for s in studies if "baseline" in s)
        if base:
            axes[0].axhline(base.mean, color=c, lw=0.8, ls=":")
        ks = sorted({int(float(k)) for s in studies for k in (s.get("random_k_mean") or {})})
        kp = []
        for k in ks:
            vals = [float(v) for s in studies for kk, v in (s.get("random_k_mean") or {}).items()
                    if int(float(kk)) == k]
            s = stat(vals)
            if s:
                kp.append((k, s.mean, s.std))
        if kp:
            any_k = True
            axes[1].errorbar([p[0] for p in kp], [p[1] for p in kp], yerr=[p[2] for p in kp],
                             fmt="none", ecolor=c, capsize=2)
            (line,) = axes[1].plot([p[0] for p in kp], [p[1] for p in kp], "-", marker="o",
                                   color=c, label=names[id(g)])
            plot.tip(line, f"{names[id(g)]}\n" + "\n".join(
                f"{k} deleted: {m:.2f} ± {sd:.2f}%" for k, m, sd in kp))
    axes[0].set_xlabel("deleted block (from input)")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title("one block deleted (dotted: intact model)")
    axes[1].set_xlabel("number of random blocks deleted")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_title("k random blocks deleted (mean ± std)")
    if not any_k:
        axes[1].text(0.5, 0.5, "no random-k results", transform=axes[1].transAxes,
                     ha="center", va="center")
    _legend_below(fig, axes[0], len(shown))
    return plot


__all__ = ["Plot", "Rendered", "acc_point", "curves", "degradation", "depth_series",
           "error_vs_depth", "families", "grad_flow", "group_tip", "lesion", "palette",
           "pareto", "render", "render_plot", "shade"]
