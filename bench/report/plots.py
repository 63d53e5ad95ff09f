"""The report's figures as inline SVG text: matplotlib ``Figure`` objects (no pyplot, so no
global backend or GUI) saved with the SVG backend, text kept as ``<text>`` (no mathtext: run names
are shown literally), ids prefixed per figure so several SVGs can share one HTML page.

Each function takes report groups (``bench.report.model.Group``) and returns the SVG, or None
when the data for that figure are absent.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.report.model import Group, block_order, pareto_front, stat

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
MAX_LEGEND = 14
Names = dict[int, str]  # id(group) -> display name


def render(fn: Callable[..., Figure | None], *args: Any, prefix: str) -> str | None:
    """Call a figure function under the report's rc settings; its SVG text or None."""
    with mpl.rc_context(RC):
        fig = fn(*args)
        if fig is None:
            return None
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="', f'id="{prefix}-', text)
    return text.replace("url(#", f"url(#{prefix}-").replace('href="#', f'href="#{prefix}-')


def variant_color(variant: str, seen: dict[str, str]) -> str:
    if variant in VARIANT_COLORS:
        return VARIANT_COLORS[variant]
    if variant not in seen:
        seen[variant] = CYCLE[len(seen) % len(CYCLE)]
    return seen[variant]


def _human(v: float, _pos: Any = None) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


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
    return g.value(key) if key in ("params", "macs") else g.mean(key)


def pareto(groups: Sequence[Group], acc: str, names: Names) -> Figure | None:
    search = [g for g in groups if not g.first.reference and g.stat(acc)]
    refs = [g for g in groups if g.first.reference and g.finished]
    panels = [(k, t, m) for k, t, m in PARETO_AXES
              if any(_x(g, k) is not None for g in search)]
    if not search or not panels:
        return None
    exps = _experiments(groups)
    rows = (len(panels) + 1) // 2
    fig = Figure(figsize=(10, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    seen: dict[str, str] = {}
    handles: dict[str, Any] = {}
    for ax, (key, title, mode) in zip(axes, panels, strict=False):
        pts, idx = [], []
        for i, g in enumerate(search):
            x, s = _x(g, key), g.stat(acc)
            if x is None or s is None:
                continue
            pts.append((x, s.mean))
            idx.append(i)
            variant = g.first.variant
            color = variant_color(variant, seen)
            marker = MARKERS[exps.index(g.first.experiment) % len(MARKERS)]
            ax.errorbar([x], [s.mean], yerr=[s.std] if s.n > 1 else None, fmt=marker,
                        color=color, ms=5, alpha=0.85, elinewidth=0.8, capsize=2)
            label = variant if len(exps) == 1 else f"{variant} [{g.first.experiment}]"
            handles.setdefault(label, Line2D([], [], color=color, marker=marker, ls=""))
        front = pareto_front(pts, mode)
        fx = [pts[i][0] for i in front]
        fy = [pts[i][1] for i in front]
        ax.plot(fx, fy, "-", color="black", lw=1.0, zorder=1)
        ax.plot(fx, fy, "o", mfc="none", mec="black", ms=9, zorder=1)
        handles.setdefault("Pareto front", Line2D([], [], color="black", marker="o", mfc="none"))
        xs = [p[0] for p in pts]
        for g in refs:
            x = _x(g, key)
            if x is None:
                continue
            xs.append(x)
            s = g.stat(acc)
            if s is not None:
                ax.plot([x], [s.mean], "*", color="black", ms=11, zorder=3)
                ax.annotate(names[id(g)], (x, s.mean), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
                handles.setdefault("timm reference", Line2D([], [], color="black", marker="*",
                                                            ls="", ms=9))
            else:  # measurement-only reference: its cost, no accuracy
                ax.axvline(x, color="black", ls=":", lw=1)
                ax.annotate(names[id(g)], (x, 1.0), xycoords=("data", "axes fraction"),
                            rotation=90, va="top", ha="right", fontsize=7)
                handles.setdefault("timm reference (measured only)",
                                   Line2D([], [], color="black", ls=":"))
        _log_if_wide(ax, xs)
        ax.set_xlabel(title + (" (higher is better)" if mode == "max" else ""))
        ax.set_ylabel(f"{acc} (%)")
        ax.set_title(f"{acc} vs {title.split(' (')[0]}")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center",
               ncols=min(4, len(handles)))
    return fig


# --- training curves --------------------------------------------------------------------------


def _group_colors(groups: Sequence[Group]) -> dict[int, str]:
    return {id(g): CYCLE[i % len(CYCLE)] for i, g in enumerate(groups)}


def curves(groups: Sequence[Group], names: Names) -> Figure | None:
    keys = (("train_loss", "training loss"), ("val_acc", "validation accuracy (%)"))
    shown = [g for g in groups if any(t.curve(k) for t in g.trials for k, _ in keys)]
    if not shown:
        return None
    colors = _group_colors(shown)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (key, title) in zip(axes, keys, strict=True):
        for g in shown:
            first = True
            for t in g.trials:
                pts = t.curve(key)
                if not pts:
                    continue
                ls = "--" if t.plain else "-"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, color=colors[id(g)],
                        lw=1.2, alpha=0.85, marker="o" if len(pts) < 3 else None, ms=3,
                        label=names[id(g)] if first else None)
                first = False
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.set_title(f"{title.split(' (')[0]} per epoch (one line per trial)")
    _legend_below(fig, axes[1], len(shown))
    return fig


def _legend_below(fig: Figure, ax: Any, n: int) -> None:
    if n <= MAX_LEGEND:
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, n))


# --- degradation (He et al. 2016, Fig. 1 and 6) ----------------------------------------------


def degradation(groups: Sequence[Group], names: Names) -> Figure | None:
    res = [g for g in groups if g.first.family in ("resnet", "plain") and not g.first.reference
           and g.mean_curve("train_acc")]
    panels: dict[str, list[Group]] = {}
    for g in res:
        panels.setdefault("plain" if g.first.plain else f"residual ({g.first.skip})", []).append(g)
    if "plain" not in panels or len(panels) < 2:
        return None
    titles = ["plain", *sorted(k for k in panels if k != "plain")][:4]
    depths = sorted({g.first.depth or 0 for g in res})
    cmap = mpl.colormaps["viridis"]
    color = {d: cmap(0.85 * i / max(1, len(depths) - 1)) for i, d in enumerate(depths)}
    # Test-error curves (train.test_every, as in He et al. Fig. 6) when every net has them.
    held = "test" if all(len(g.mean_curve("test_acc")) > 1 for g in res) else "val"
    fig = Figure(figsize=(min(15, 5 * len(titles)), 3.8), layout="constrained")
    axes = fig.subplots(1, len(titles), sharey=True, squeeze=False)[0]
    for ax, title in zip(axes, titles, strict=True):
        for g in sorted(panels[title], key=lambda g: (g.first.depth or 0, names[id(g)])):
            c = color[g.first.depth or 0]
            train = g.mean_curve("train_acc")
            ax.plot([p[0] for p in train], [100 - p[1] for p in train], "--", color=c, lw=1)
            curve = g.mean_curve(f"{held}_acc")
            if curve:
                ax.plot([p[0] for p in curve], [100 - p[1] for p in curve], "-", color=c, lw=2,
                        label=names[id(g)])
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(loc="upper right")
    axes[0].set_ylabel("error (%)")
    which = "test" if held == "test" else "validation"
    fig.suptitle(f"training error (dashed) and {which} error (bold) vs epoch, mean over seeds")
    return fig


# --- error vs depth -------------------------------------------------------------------------------


def error_vs_depth(groups: Sequence[Group], acc: str) -> Figure | None:
    pts = [g for g in groups if not g.first.reference and g.first.depth and g.stat(acc)]
    if len({g.first.depth for g in pts}) < 2:
        return None
    exps = _experiments(groups)
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    seen: dict[str, str] = {}
    lines: dict[str, dict[int, list[float]]] = {}
    for g in pts:
        s = g.stat(acc)
        line = g.first.variant + (f" [{g.first.experiment}]" if len(exps) > 1 else "")
        c = variant_color(g.first.variant, seen)
        marker = MARKERS[exps.index(g.first.experiment) % len(MARKERS)]
        ax.errorbar([g.first.depth], [100 - s.mean], yerr=[s.std] if s.n > 1 else None,
                    fmt=marker, color=c, ms=5, capsize=2, elinewidth=0.8)
        lines.setdefault(line, {}).setdefault(g.first.depth, []).append(100 - s.mean)
    for line, by_depth in lines.items():
        ds = sorted(by_depth)
        ys = [sum(by_depth[d]) / len(by_depth[d]) for d in ds]
        c = variant_color(line.split(" [")[0], seen)
        ax.plot(ds, ys, "-", color=c, lw=1.2, label=line)
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel(f"{acc.replace('_acc', '')} error (%)")
    ax.set_title(f"{acc.replace('_acc', '')} error vs depth (mean ± std over seeds)")
    ax.legend(loc="best")
    return fig


# --- ResNet vs DenseNet ---------------------------------------------------------------------------


def families(groups: Sequence[Group], acc: str, names: Names) -> Figure | None:
    pts = [g for g in groups if not g.first.reference and g.stat(acc) and g.value("params")]
    if len({g.first.family for g in pts} - {""}) < 2:
        return None
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    seen: dict[str, str] = {}
    for ax, key, title in ((axes[0], "params", "parameters"), (axes[1], "macs", "MACs per image")):
        xs = []
        done: set[str] = set()
        for g in pts:
            x = g.value(key)
            if x is None:
                continue
            xs.append(x)
            s = g.stat(acc)
            v = g.first.variant
            ax.errorbar([x], [s.mean], yerr=[s.std] if s.n > 1 else None, fmt="o",
                        color=variant_color(v, seen), ms=5, capsize=2, elinewidth=0.8,
                        label=None if v in done else v)
            done.add(v)
        _log_if_wide(ax, xs)
        ax.set_xlabel(title)
        ax.set_title(f"{acc} vs {title} by family")
    axes[0].set_ylabel(f"{acc} (%)")
    axes[1].legend(loc="best")
    return fig


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


def grad_flow(groups: Sequence[Group], names: Names) -> Figure | None:
    shown = []
    for g in groups:
        blocks = block_order(k[len("grad_norm/"):] for t in g.trials for k in t.history
                             if k.startswith("grad_norm/"))
        if blocks and any(_grad_at(g, b, "first") for b in blocks):
            shown.append((g, blocks))
    if not shown:
        return None
    colors = _group_colors([g for g, _ in shown])
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    values = []
    for ax, which, title in ((axes[0], "first", "first epoch"), (axes[1], "last", "last epoch")):
        for g, blocks in shown:
            pts = [(i + 1, _grad_at(g, b, which)) for i, b in enumerate(blocks)]
            pts = [(i, v) for i, v in pts if v is not None and v > 0]
            values += [v for _, v in pts]
            style = "--" if g.first.plain else ("-." if g.first.family == "densenet" else "-")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker=".",
                    color=colors[id(g)], lw=1.2, label=names[id(g)])
        ax.set_xlabel("parameter group from input (stem = 1, head = last)")
        ax.set_title(f"gradient L2 norm per block, {title}")
    _log_if_wide(axes[0], values, axis="y")
    axes[0].set_ylabel("gradient norm (last batch of the epoch)")
    _legend_below(fig, axes[1], len(shown))
    return fig


# --- lesion study (Veit et al. 2016) --------------------------------------------------------------


def lesion(groups: Sequence[Group], names: Names) -> Figure | None:
    shown = [(g, [t.lesion for t in g.finished if t.lesion]) for g in groups]
    shown = [(g, ls) for g, ls in shown if ls]
    if not shown:
        return None
    colors = _group_colors([g for g, _ in shown])
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    any_k = False
    for g, studies in shown:
        c = colors[id(g)]
        style = "--" if g.first.plain else "-"
        blocks = block_order(b for s in studies for b in (s.get("single") or {}))
        ys = [stat(float(s["single"][b]) for s in studies if b in (s.get("single") or {}))
              for b in blocks]
        pts = [(i + 1, y.mean) for i, y in enumerate(ys) if y]
        if pts:
            axes[0].plot([p[0] for p in pts], [p[1] for p in pts], style, marker=".",
                         color=c, label=names[id(g)])
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
                             fmt=style, marker="o", color=c, capsize=2, label=names[id(g)])
    axes[0].set_xlabel("deleted block (from input)")
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title("one block deleted (dotted: intact model)")
    axes[1].set_xlabel("number of random blocks deleted")
    axes[1].set_title("k random blocks deleted (mean ± std)")
    if not any_k:
        axes[1].text(0.5, 0.5, "no random-k results", transform=axes[1].transAxes,
                     ha="center", va="center")
    _legend_below(fig, axes[0], len(shown))
    return fig


__all__ = ["curves", "degradation", "error_vs_depth", "families", "grad_flow", "lesion",
           "pareto", "render"]
