"""Assembling a report from plain run dicts: the sections (tables and figures) rendered as one
self-contained HTML page, a Markdown file of the same tables and a CSV of the trials.

The page needs nothing from the network: figures are inline SVG, styles inline, and one small
inline script sorts the tables and shows each marker's tooltip (its SVG ``<title>``). A
Content-Security-Policy lets only that script run, on top of every run name, parameter and error
text being escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.report import plots
from bench.report.fetch import is_sweep, redact_uri
from bench.report.model import (
    Group,
    Stat,
    Trial,
    accuracy_metric,
    display_names,
    group_trials,
    nearest,
    objective_metric,
    smoke_sources,
    with_interval,
)
from bench.report.tables import (
    Cell,
    Table,
    accuracy,
    count,
    fixed,
    measured,
    number,
    text,
    to_csv,
    to_html,
    to_markdown,
)
from bench.tracking import ui_command

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    th.tabIndex = 0;
    th.title = "sort";
    function key(row) {
      var c = row.cells[col];
      return c ? c.getAttribute("data-v") || "" : "";
    }
    function sort() {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") { return x === y ? 0 : (x === "" ? 1 : -1); }
        var nx = Number(x), ny = Number(y);
        var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? r : -r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });
});
"""
# Tooltips: each ``svg g.tip`` (a marker or a curve) shows its <title> in one floating box while
# the pointer is over it; the <title> is taken out so the browser's own tooltip does not double it.
TIP_SCRIPT = """
(function () {
  var tip = document.createElement("div");
  tip.className = "tooltip";
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  document.body.appendChild(tip);
  function place(e) {
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var x = e.clientX + 14, y = e.clientY + 14;
    if (x + w > window.innerWidth - 4) { x = Math.max(4, e.clientX - w - 14); }
    if (y + h > window.innerHeight - 4) { y = Math.max(4, e.clientY - h - 14); }
    tip.style.left = (x + window.scrollX) + "px";
    tip.style.top = (y + window.scrollY) + "px";
  }
  document.querySelectorAll("svg g.tip").forEach(function (g) {
    var title = g.querySelector(":scope > title");
    if (!title) { return; }
    var text = title.textContent;
    g.setAttribute("data-tip", text);
    g.removeChild(title);
    g.addEventListener("mouseenter", function (e) {
      tip.textContent = text;
      tip.hidden = false;
      place(e);
    });
    g.addEventListener("mousemove", place);
    g.addEventListener("mouseleave", function () { tip.hidden = true; });
  });
})();
"""
SCRIPT = SORT_SCRIPT + TIP_SCRIPT
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:0 1.2rem 3rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.5rem;margin:1.2rem 0 .2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}
nav a{margin-right:.6rem;white-space:nowrap;display:inline-block}.meta{color:#555;font-size:.9rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.22rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f4f6;cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}code,pre{font-size:.8rem}
pre{white-space:pre-wrap;max-height:20rem;overflow:auto;background:#f6f6f6;padding:.4rem}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
figcaption{color:#555;font-size:.85rem}.note{color:#555}.warn{color:#9a3412}
.v-ok{color:#166534;font-weight:600}.v-bad{color:#b91c1c;font-weight:600}h3{font-size:1rem}
td.id{min-width:8.6rem;max-width:8.6rem}td.id code{word-break:break-all;font-size:.7rem}
td small.ci{color:#666;white-space:nowrap}
.tooltip{position:absolute;z-index:10;background:#1b1b1b;color:#fff;padding:.35rem .55rem;
border-radius:4px;font-size:.78rem;line-height:1.35;white-space:pre-line;pointer-events:none;
max-width:30rem;box-shadow:0 2px 6px rgba(0,0,0,.3)}
g.tip{cursor:pointer}
.banner{background:#fef3c7;border:2px solid #d97706;color:#78350f;padding:.6rem .9rem;
margin:1rem 0;border-radius:4px;font-weight:600}
"""
ACC_TITLE = {"val_acc": "val acc (%)", "test_acc": "test acc (%)"}
# How a study's verdict reads on the page (the values of bench.studies.VERDICTS).
VERDICT_CLASS = {"consistent": "v-ok", "not consistent": "v-bad", "not measured": "warn"}


def csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


@dataclass
class Report:
    """The three rendered files and what the page says about its data."""

    html: str
    markdown: str
    csv: str
    trials: int
    finished: int
    warnings: list[str] = field(default_factory=list)
    smoke: list[str] = field(default_factory=list)  # what marks the runs as smoke runs


@dataclass
class Section:
    id: str
    title: str
    html: str
    markdown: str = ""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _counts(trials: Sequence[Trial]) -> str:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _first_line(message: str) -> str:
    return next((ln.strip() for ln in message.splitlines() if ln.strip()), "")


def _ui_base(tracking_uri: str) -> str | None:
    """The MLflow UI address for links, when the store is a tracking server."""
    if tracking_uri.startswith(("http://", "https://")):
        p = urlsplit(tracking_uri)
        host = (p.hostname or "") + (f":{p.port}" if p.port else "")
        return urlunsplit((p.scheme, host, p.path.rstrip("/"), "", ""))
    return None


class Builder:
    """Turns runs into sections; one instance per report."""

    def __init__(self, runs: Sequence[dict[str, Any]], experiments: Sequence[str],
                 tracking_uri: str) -> None:
        self.experiments = list(dict.fromkeys(experiments))
        self.uri = tracking_uri
        self.ui = _ui_base(tracking_uri)
        self.sweeps = [r for r in runs if is_sweep(r)]
        self.trials = [Trial.from_run(r) for r in runs if not is_sweep(r)]
        self.groups = group_trials(self.trials)
        self.multi = len(self.experiments) > 1
        self.names = display_names(self.groups, self.multi)
        self.acc = accuracy_metric(self.trials)  # the final number (test when measured)
        self.objective = objective_metric(self.sweeps, self.trials)  # what the search ranked by
        self.colors = plots.palette(self.groups)  # one colour per variant in every figure
        self.smoke = smoke_sources(self.sweeps, self.trials, self.experiments)
        self.finished = [t for t in self.trials if t.finished]
        self.warnings: list[str] = []
        self._fig = 0

    # -- helpers ---------------------------------------------------------------------------

    def run_link(self, run_id: str, experiment_id: str) -> Cell:
        if self.ui:
            url = f"{self.ui}/#/experiments/{experiment_id}/runs/{run_id}"
            return text(run_id, markup=f'<a href="{_e(url)}"><code>{_e(run_id)}</code></a>')
        return text(run_id, markup=f"<code>{_e(run_id)}</code>")

    def figure(self, fn: Callable[..., Any], *args: Any,
               caption: str | Callable[[set[str]], str]) -> str | None:
        """A figure with its caption (a function of what the figure drew, so that it names
        only what is there)."""
        self._fig += 1
        try:
            out = plots.render_plot(fn, *args, prefix=f"f{self._fig}")
        except Exception as exc:  # noqa: BLE001 - one bad figure must not lose the report
            first = caption if isinstance(caption, str) else caption(set())
            message = f"{first.split('.')[0]}: {type(exc).__name__}: {exc}"
            self.warnings.append(message)
            return f'<p class="warn">This figure could not be drawn ({_e(message)}).</p>'
        if out is None:
            return None
        text_ = caption if isinstance(caption, str) else caption(out.drawn)
        return f'<figure class="plot">{out.svg}<figcaption>{_e(text_)}</figcaption></figure>'

    def bars(self, drawn: set[str], what: str = "accuracy") -> str:
        """The caption's sentences on the error bars a figure drew."""
        parts = []
        if "wilson" in drawn:
            parts.append(f"Thin capped bars: 95% Wilson interval of the {what} for the number "
                         "of images in the evaluated split.")
        else:
            parts.append("No interval is drawn: the runs record neither the split's size "
                         "(val_images / test_images) nor data.subset / data.test_subset.")
        if "seed_std" in drawn:
            parts.append("Thick pale bars: ± std over seeds.")
        return " ".join(parts)

    # -- sections ----------------------------------------------------------------------------

    def claims(self) -> Section | None:
        """Each imported study's verdict: the claim, the paper's number and resbench's side by
        side, with the device, form and the command that reproduces it."""
        studies = [s for s in self.sweeps if s.get("verdict")]
        if not studies:
            return None
        parts_html, parts_md = [], []
        for i, s in enumerate(sorted(studies, key=lambda s: (s["experiment"], s["start_time"] or 0))):
            v = s["verdict"]
            form = str(v.get("form") or "")
            secs = v.get("wall_time_s")
            facts = [f"form: {form or '?'}", f"device: {v.get('device') or '?'}"]
            if isinstance(secs, (int, float)) and math.isfinite(secs):
                facts.append(f"wall time: {secs:.0f} s")
            t = Table(f"claims-{i + 1}", ["claim", "paper", "resbench", "verdict", "note"])
            for r in v["rows"]:
                cls = VERDICT_CLASS.get(r["verdict"], "")
                mark = f'<span class="{cls}">{_e(r["verdict"])}</span>' if cls else None
                t.rows.append([text(r["claim"]), text(r["paper"]), text(r["measured"]),
                               text(r["verdict"], markup=mark), text(r["note"])])
            head = f"{v.get('title') or s['run_name']}"
            lines = [f"<h3>{_e(head)}</h3>"]
            if v.get("claim"):
                lines.append(f"<p>{_e(v['claim'])}</p>")
            lines.append(f"<p class='note'>{_e('; '.join(facts))}"
                         + (f" · {_e(v['citation'])}" if v.get("citation") else "") + "</p>")
            if form == "smoke":
                lines.append("<p class='warn'>Smoke form: tiny stand-ins on a CPU that test the "
                             "code path; its numbers say nothing about the claim.</p>")
            lines.append(to_html(t))
            if v.get("command"):
                lines.append(f"<p class='note'>Reproduce: <code>{_e(v['command'])}</code></p>")
            parts_html.append("".join(lines))
            md = [f"### {_md(head)}", _md("; ".join(facts)), to_markdown(t)]
            if v.get("command"):
                md.append(f"Reproduce: `{v['command']}`")
            parts_md.append("\n\n".join(md))
        return Section("claims", "Claims: papers vs resbench", "".join(parts_html),
                       "\n\n".join(parts_md))

    def overview(self) -> Section:
        lines_html, lines_md = [], []
        for name in self.experiments:
            trials = [t for t in self.trials if t.experiment == name]
            sweeps = [s for s in self.sweeps if s["experiment"] == name]
            done = sum(t.finished for t in trials)
            if not trials:
                msg = (f"Experiment {name!r} has no trials yet "
                       f"({len(sweeps)} sweep run{'s' if len(sweeps) != 1 else ''}).")
            elif not done:
                msg = (f"Experiment {name!r} has no finished trials ({len(trials)} trials: "
                       f"{_counts(trials)}); see the trials that did not complete below.")
            else:
                msg = (f"Experiment {name!r}: {len(trials)} trials ({_counts(trials)}) from "
                       f"{len(sweeps)} sweep{'s' if len(sweeps) != 1 else ''}.")
            cls = "" if done else ' class="warn"'
            lines_html.append(f"<li{cls}>{_e(msg)}</li>")
            lines_md.append(f"- {_md(msg)}")
        acc = (f"Architectures are ranked by {self.objective}, the search's objective; "
               f"{self.acc} is the final number. Accuracies in percent; 'mean ± std' is over "
               "the seeds of trials that differ only in their seed; [lo, hi] is the 95% Wilson "
               "interval for the number of images in the evaluated split (where the runs "
               "record it).")
        body = f"<ul>{''.join(lines_html)}</ul><p class='note'>{_e(acc)}</p>"
        return Section("overview", "Overview", body, "\n".join(lines_md) + f"\n\n{_md(acc)}")

    def summary_table(self) -> Table:
        cols = (["experiment"] if self.multi else []) + [
            "architecture", "family", "depth", "params", "MACs", "throughput (img/s)",
            "latency p50 (ms)", "val acc (%)", "test acc (%)", "seeds", "status"]
        off = 1 if self.multi else 0
        t = Table("summary", cols, numeric={off + i for i in (2, 3, 4, 5, 6, 7, 8, 9)})

        def order(g: Group) -> tuple[float, str]:
            m = g.mean(self.objective)
            return (-(m if m is not None else -math.inf), self.names[id(g)])

        for g in sorted(self.groups, key=order):
            f = g.first
            row = [text(f.experiment)] if self.multi else []
            row += [
                text(self.names[id(g)]), text(f.variant),
                number(float(f.depth)) if f.depth else Cell(),
                count(g.value("params")), count(g.value("macs")),
                measured(g.spread("infer_img_per_s")), number(g.mean("latency_ms_p50")),
                self.group_acc(g, "val_acc"), self.group_acc(g, "test_acc"),
                Cell(f"{len(g.finished)}/{len(g.trials)}", len(g.finished), len(g.finished)),
                text(_counts(g.trials)),
            ]
            t.rows.append(row)
        return t

    @staticmethod
    def group_acc(g: Group, metric: str) -> Cell:
        """A configuration's accuracy; for one whose trials were all stopped early, the value at
        their last epoch, marked (and sorted after the finished ones)."""
        cell = accuracy(g.stat(metric))
        if cell.text or g.finished:
            return cell
        s = g.last_stat(metric)
        if s is None:
            return cell
        last = accuracy(s)
        epochs = "/".join(str(e) for e in sorted({t.epochs for t in g.stopped}))
        note = f"stopped, epoch {epochs}"
        return Cell(f"{last.text} ({note})", "", last.raw,
                    f'{last.html or _e(last.text)}<br><small class="ci">{_e(note)}</small>')

    def trials_table(self) -> Table:
        # the experiment column only when several are compared (narrower table)
        off = 1 if self.multi else 0
        cols = (["experiment"] if self.multi else []) + [
            "trial", "architecture", "family", "seed", "status", "epochs", "params", "MACs",
            "throughput (img/s)", "latency p50 (ms)", "val acc (%)", "best val acc (%)",
            "test acc (%)", "train time (s)", "MLflow run id"]
        t = Table("trials", cols, numeric={off + i for i in (3, 5, 6, 7, 8, 9, 10, 11, 12, 13)},
                  css={off + 14: "id"})
        for tr in sorted(self.trials, key=lambda x: (x.experiment, x.trial_id, x.run_id)):
            m = tr.metrics

            def acc(split: str, tr: Trial = tr) -> Cell:
                v = tr.metrics.get(f"{split}_acc")
                if v is None or not math.isfinite(v):
                    return Cell()
                return accuracy(with_interval(Stat(v, 0.0, 1), tr.split_size(split)))

            t.rows.append([
                *([text(tr.experiment)] if self.multi else []),
                text(tr.trial_id), text(tr.label), text(tr.variant),
                number(float(tr.seed)) if tr.seed is not None else Cell(),
                text(tr.status), number(float(tr.epochs)),
                count(m.get("params")), count(m.get("macs")),
                number(m.get("infer_img_per_s")), number(m.get("latency_ms_p50")),
                acc("val"), fixed(m.get("best_val_acc")), acc("test"),
                number(m.get("train_time_s")),
                self.run_link(tr.run_id, tr.run["experiment_id"]),
            ])
        return t

    def csv_text(self) -> str:
        """Every trial with raw numbers (full precision), the evaluated splits' sizes (blank
        when unknown) and the first line of its error."""
        keys = ["params", "macs", "infer_img_per_s", "latency_ms_p50", "latency_ms_p90",
                "val_acc", "best_val_acc", "test_acc", "train_time_s", "epoch"]
        cols = ["experiment", "sweep_id", "trial_id", "run_id", "architecture", "family",
                "kind", "depth", "seed", "status", *keys, "val_images", "test_images", "error"]
        t = Table("trials-csv", cols)
        for tr in sorted(self.trials, key=lambda x: (x.experiment, x.trial_id, x.run_id)):
            t.rows.append([
                text(tr.experiment), text(tr.sweep_id), text(tr.trial_id), text(tr.run_id),
                text(tr.label), text(tr.variant), text(tr.kind),
                Cell(str(tr.depth or ""), raw=tr.depth), Cell(raw=tr.seed),
                text(tr.status), *[Cell(raw=tr.metrics.get(k)) for k in keys],
                Cell(raw=tr.split_size("val")), Cell(raw=tr.split_size("test")),
                text(_first_line(tr.message)),
            ])
        return to_csv(t)

    def tables(self) -> list[Section]:
        summary, trials = self.summary_table(), self.trials_table()
        note = ("One row per architecture and training configuration; trials that differ only "
                "in the seed are merged (mean ± std over the finished ones). Click a header to "
                "sort.")
        return [
            Section("summary", "Summary", f"<p class='note'>{_e(note)}</p>" + to_html(summary),
                    f"{_md(note)}\n\n{to_markdown(summary)}"),
            Section("trials", "Trials",
                    "<p class='note'>Every trial (MLflow child run), one row each.</p>"
                    + to_html(trials), to_markdown(trials)),
        ]

    def pareto_caption(self, drawn: set[str]) -> str:
        obj = self.objective
        parts = [f"Pareto fronts of {obj}, the search's objective, against each recorded cost "
                 "(mean over seeds)."]
        if "front" in drawn:
            parts.append("The black line joins the non-dominated completed configurations, "
                         "each labelled by name.")
        if "stopped" in drawn:
            parts.append(f"Hollow markers: configurations whose trials were all stopped early "
                         f"by the scheduler, at their last epoch's {obj} (not on the front).")
        parts.append(self.bars(drawn))
        if "x_range" in drawn:
            parts.append("Horizontal bars on throughput: the range of its measurements over "
                         "the configuration's trials (measured while other trials ran; mean "
                         "± std in the Summary table).")
        if "x_spread" in drawn:
            parts.append("Horizontal bars on throughput: ± the std the trial logged.")
        if "latency_p90" in drawn:
            parts.append("Horizontal bars on latency: from p50 to p90.")
        if "refs" in drawn:
            parts.append("Stars: timm reference models.")
        if "measured_refs" in drawn:
            parts.append("Dotted vertical lines: reference models that were only measured.")
        if self.acc != obj:
            parts.append(f"{self.acc}, the final number, is in each marker's tooltip and the "
                         "Summary table.")
        parts.append("Hover a marker for its architecture and values.")
        return " ".join(parts)

    def pareto(self) -> Section | None:
        fig = self.figure(plots.pareto, self.groups, self.objective, self.names, self.colors,
                          caption=self.pareto_caption)
        if fig is None:
            return Section("pareto", "Pareto fronts",
                           "<p class='note'>No finished trial (nor one stopped early) with an "
                           "accuracy and a cost.</p>")
        return Section("pareto", "Pareto fronts", fig)

    def proxies(self) -> Section | None:
        """Spearman and Kendall correlations of each zero-cost proxy with the final validation
        accuracy of the completed searched trials (``bench.report.proxies``), per experiment."""
        from bench.report.proxies import BOOTSTRAP, LEVEL, correlations

        done = [t for t in self.finished if not t.reference]
        target = "val_acc" if any("val_acc" in t.metrics for t in done) else "test_acc"
        t = Table("proxies", ["experiment", "proxy", "trials", "Spearman ρ",
                              f"{LEVEL:.0%} interval", "Kendall τ", f"{LEVEL:.0%} interval "],
                  numeric={2, 3, 5})
        for name in self.experiments:
            trials = [tr.metrics for tr in done if tr.experiment == name]
            for c in correlations(trials, target):
                t.rows.append([text(name), text(c.proxy), number(float(c.n)),
                               fixed(c.spearman, 3), text(_ci(c.spearman_ci)),
                               fixed(c.kendall, 3), text(_ci(c.kendall_ci))])
        if not t.rows:
            return None
        note = (f"How well each zero-cost proxy of the untrained network (proxy/<name>, scored "
                f"on one minibatch before training) ranks the completed searched trials by "
                f"their final {target}: rank correlations over the trials, with {LEVEL:.0%} "
                f"percentile bootstrap intervals ({BOOTSTRAP} resamples of the trials). 1 is a "
                "perfect ranking, 0 none; params and macs are the baselines a proxy must beat.")
        return Section("proxies", "Zero-cost proxies", f"<p class='note'>{_e(note)}</p>"
                       + to_html(t), f"{_md(note)}\n\n{to_markdown(t)}")

    def figures(self) -> list[Section]:
        out = []
        split = self.acc.replace("_acc", "")

        def curves(drawn: set[str]) -> str:
            text_ = ("Training loss and validation accuracy per epoch, one line per trial, "
                     "coloured by variant (shades: configurations of one variant).")
            if "stopped" in drawn:
                text_ += " Hollow circle: where the scheduler stopped a trial."
            return text_ + " Hover a line for its trial."

        def depth(drawn: set[str]) -> str:
            return (f"{split} error (100 - accuracy) against depth: one line per variant, block "
                    "type and training recipe, named in the legend; markers are the "
                    "configurations (mean over seeds). " + self.bars(drawn, "error")
                    + " Hover a marker for its architecture and values.")

        specs = [
            ("curves", "Training curves", plots.curves, (self.groups, self.names, self.colors),
             curves),
            ("degradation", "Degradation: plain vs residual", plots.degradation,
             (self.groups, self.names, self.colors),
             "He et al. 2016, Fig. 1 and 6: training error (dashed) and held-out error (bold: "
             "test error when every net has per-epoch test points, train.test_every, else "
             "validation error) per epoch, plain networks (skip none) against residual ones, "
             "one line per depth (darker: deeper). "
             "Degradation shows as deeper plain nets training worse than shallower ones."),
            ("depth", "Error vs depth", plots.error_vs_depth,
             (self.groups, self.acc, self.names, self.colors), depth),
        ]
        for sid, title, fn, args, caption in specs:
            fig = self.figure(fn, *args, caption=caption)
            if fig is not None:
                out.append(Section(sid, title, fig))
        return out

    def families(self) -> Section | None:
        fams = {g.first.family for g in self.groups if not g.first.reference and g.finished}
        if not {"resnet", "densenet"} <= fams:
            return None
        fig = self.figure(plots.families, self.groups, self.acc, self.names, self.colors,
                          caption=lambda drawn: f"{self.acc} against parameters and MACs, "
                          "coloured by variant. " + self.bars(drawn)
                          + " Hover a marker for its architecture and values.")
        res = [g for g in self.groups
               if g.first.family == "resnet" and not g.first.plain and g.stat(self.acc)]
        dense = [g for g in self.groups if g.first.family == "densenet" and g.stat(self.acc)]
        t = Table("matched", ["DenseNet", "params", "MACs", ACC_TITLE[self.acc],
                              "ResNet (closest in params)", "params ", "MACs ",
                              ACC_TITLE[self.acc] + " ", "params ratio", "Δ acc (D − R)"],
                  numeric={1, 2, 3, 5, 6, 7, 8, 9})
        for d in sorted(dense, key=lambda g: g.value("params") or 0):
            dp = d.value("params") or 0.0
            r = nearest(dp, res, "params")
            ds = d.stat(self.acc)
            row = [text(self.names[id(d)]), count(d.value("params")), count(d.value("macs")),
                   accuracy(ds)]
            if r is None:
                row += [Cell()] * 6
            else:
                rs = r.stat(self.acc)
                rp = r.value("params") or 0.0
                row += [text(self.names[id(r)]), count(rp), count(r.value("macs")), accuracy(rs),
                        number(dp / rp if rp else None),
                        fixed(ds.mean - rs.mean if ds and rs else None)]
            t.rows.append(row)
        note = ("Each DenseNet configuration next to the ResNet configuration closest to it in "
                "parameter count (log scale).")
        body = f"<p class='note'>{_e(note)}</p>" + to_html(t) + (fig or "")
        return Section("families", "ResNet vs DenseNet at matched budget", body,
                       f"{_md(note)}\n\n{to_markdown(t)}")

    def diagnostics(self) -> list[Section]:
        out = []
        fig = self.figure(plots.grad_flow, self.groups, self.names, self.colors,
                          caption="Gradient L2 norm of each block's parameters on the last "
                                  "training batch of the first and last epoch (mean over "
                                  "seeds), coloured by variant.")
        if fig is not None:
            out.append(Section("gradients", "Gradient flow", fig))
        fig = self.figure(plots.lesion, self.groups, self.names, self.colors,
                          caption="Lesion study (Veit et al. 2016): accuracy with one block's "
                                  "residual branch deleted, and with k random blocks deleted.")
        if fig is not None:
            out.append(Section("lesion", "Lesion study", fig))
        return out

    def failures(self) -> Section:
        bad = [t for t in self.trials if not t.finished]
        if not bad:
            return Section("failures", "Trials that did not complete",
                           "<p class='note'>Every trial completed.</p>",
                           "Every trial completed.")
        t = Table("failures", ["experiment", "trial", "architecture", "status", "epochs", "cause",
                               "MLflow run id"], numeric={4}, css={6: "id"})
        for tr in sorted(bad, key=lambda x: (x.status, x.experiment, x.trial_id)):
            cause = _first_line(tr.message) or _default_cause(tr)
            markup = _e(cause)
            if tr.message.strip() and tr.message.strip() != cause:
                markup += f"<details><summary>details</summary><pre>{_e(tr.message)}</pre></details>"
            common = [text(tr.experiment), text(tr.trial_id), text(tr.label), text(tr.status),
                      number(float(tr.epochs))]
            t.rows.append([*common, text(cause, markup=markup),
                           self.run_link(tr.run_id, tr.run["experiment_id"])])
        # Markdown takes each cell's plain text: the cause and run id without their markup.
        return Section("failures", "Trials that did not complete", to_html(t), to_markdown(t))

    def sweeps_section(self) -> Section:
        if not self.sweeps:
            note = "No sweep parent runs (the runs were not logged by the sweep launcher)."
            return Section("runs", "MLflow runs and environment", f"<p class='note'>{_e(note)}</p>",
                           note)
        runs = Table("sweeps", ["experiment", "experiment id", "sweep", "parent run id", "status",
                                "started (UTC)", "trials"], numeric={6}, css={3: "id"})
        for s in self.sweeps:
            sid = s["tags"].get("resbench.sweep_id", "")
            n = sum(t.sweep_id == sid for t in self.trials) if sid else 0
            started = _utc(s.get("start_time"))
            common = [text(s["experiment"]), text(s["experiment_id"]), text(sid)]
            tail = [text(s["tags"].get("resbench.status") or s["status"]), text(started),
                    number(float(n))]
            runs.rows.append([*common, self.run_link(s["run_id"], s["experiment_id"]), *tail])
        env = self.environment()
        how = _ui_hint(self.uri)
        body = (to_html(runs) + f"<p class='note'>{_e(how)}</p><h3>Environment</h3>"
                + to_html(env))
        md = f"{to_markdown(runs)}\n\n{_md(how)}\n\n### Environment\n\n{to_markdown(env)}"
        return Section("runs", "MLflow runs and environment", body, md)

    def environment(self) -> Table:
        """Tags and parameters of each sweep's parent run, one column per sweep."""
        cols = ["setting"] + [s["tags"].get("resbench.sweep_id") or s["run_id"][:8]
                              for s in self.sweeps]
        rows: dict[str, list[str]] = {}

        def put(key: str, i: int, value: str) -> None:
            rows.setdefault(key, [""] * len(self.sweeps))[i] = value

        for i, s in enumerate(self.sweeps):
            tags = s["tags"]
            for key in ("resbench.git_sha", "resbench.space", "resbench.space_hash",
                        "resbench.smoke"):
                if key in tags:
                    put(key.split(".", 1)[1], i, tags[key])
            for key, value in sorted(tags.items()):
                if key.startswith("resbench.env."):
                    put(key[len("resbench.env."):], i, value)
            for key, value in sorted(s.get("params", {}).items()):
                put(f"sweep.{key}", i, value)
        t = Table("environment", cols)
        for key, values in rows.items():
            t.rows.append([text(key), *[text(v) for v in values]])
        return t


def _ci(interval: tuple[float, float]) -> str:
    lo, hi = interval
    return f"[{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) and math.isfinite(hi) else "-"


def _default_cause(t: Trial) -> str:
    return {
        "stopped": f"stopped early by the scheduler after {t.epochs} epoch(s)",
        "running": "still running (or its driver died; re-run the sweep with --resume)",
        "interrupted": "the sweep was interrupted",
        "rejected": "over the constraints budget",
    }.get(t.status, "no message recorded")


def _utc(ms: Any) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ui_hint(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"Open the runs in the MLflow UI at {redact_uri(uri)}."
    if uri:
        return f"Browse the runs with: {ui_command(redact_uri(uri))}"
    return ""


def _md(value: str) -> str:
    return html.escape(value, quote=False).replace("|", "\\|")


def build_report(runs: Sequence[dict[str, Any]], experiments: Sequence[str],
                 tracking_uri: str = "", generated: dt.datetime | None = None) -> Report:
    """The report of ``runs`` (``bench.report.fetch.fetch_experiment_runs`` dicts) of the named
    experiments. Pure: no MLflow, no files."""
    b = Builder(runs, experiments, tracking_uri)
    sections = [b.overview(), b.claims(), *b.tables(), b.pareto(), b.proxies(), *b.figures(),
                b.families(), *b.diagnostics(), b.failures(), b.sweeps_section()]
    sections = [s for s in sections if s is not None]
    banner_html = banner_md = ""
    if b.smoke:
        banner = ("Built from smoke runs (" + "; ".join(b.smoke) + "): every trial was shrunk "
                  "to test the code path (one epoch, a small subset), so these numbers do not "
                  "compare architectures.")
        banner_html = f'<div class="banner" id="smoke-banner" role="alert">{_e(banner)}</div>\n'
        banner_md = f"> **Smoke runs.** {_md(banner)}"
    when = (generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    title = "resbench report: " + ", ".join(b.experiments)
    meta = f"Generated {when} from {redact_uri(tracking_uri) or 'plain run data'}."
    nav = " ".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.id}"><h2>{_e(s.title)}</h2>\n{s.html}\n</section>'
                     for s in sections)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp(SCRIPT))}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>\n"
        f"<h1>{_e(title)}</h1><p class=\"meta\">{_e(meta)}</p>{banner_html}<nav>{nav}</nav>\n"
        f"{body}\n<script>{SCRIPT}</script></body></html>\n"
    )
    md_parts = [f"# {_md(title)}", _md(meta), *([banner_md] if banner_md else []),
                "Figures are in the HTML report next to this file."]
    md_parts += [f"## {_md(s.title)}\n\n{s.markdown}" for s in sections if s.markdown]
    return Report(page, "\n\n".join(md_parts) + "\n", b.csv_text(), len(b.trials),
                  len(b.finished), b.warnings, b.smoke)


__all__ = ["SCRIPT", "Report", "build_report"]
