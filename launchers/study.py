"""``python -m launchers.study``: run a turnkey study (``bench.studies``) and judge its claim.

    python -m launchers.study list                              # the studies and GPU budgets
    python -m launchers.study degradation --smoke               # tiny CPU form (digits)
    python -m launchers.study degradation --tarball cifar10-jpeg.tar.gz   # GPU form
    python -m launchers.study all --form cpu --tarball cifar10-jpeg.tar.gz  # 2-core CPU forms
    python -m launchers.study all --data-root DIR --out results/
    python -m launchers.study import results/degradation.json [--tracking-uri URI]

A study runs its trials one after another through the standalone trainer
(``bench.trainer.train``; measurement-only trials through ``bench.measure.benchmark``), prints
a progress line per epoch, then a table of the trials and the verdict (claim, paper number,
measured number), and writes one JSON with every trial's spec, metrics, history, diagnostics
and environment plus the verdict rows (rewritten after every trial, so an interrupted run
keeps what finished). ``--max-minutes`` (default 8 for the GPU form, 10 for the CPU form) skips
the trials that would start after that much time; they are recorded as ``skipped``.

Forms (``--form``): ``gpu`` (the paper-scale claim, about 8 minutes on one H100), ``cpu`` (the
claim at a 2-core CPU's budget: at most 10 minutes a study, 60 for all eight), ``smoke`` (tiny
stand-ins: the code path only; ``--smoke`` is short for it). A CPU-form run first measures this
CPU's ResNet-20 training img/s (fp32, and the precision ``auto`` picks), records it beside the
results with the CPU model, and estimates each trial's time from it.

The GPU form needs the JPEG CIFAR-10 tree (``train/`` + ``test/``): ``--data-root DIR``,
``--tarball FILE`` (extracted to a temporary folder) or the RESBENCH_DATA environment variable.
The smoke form uses scikit-learn's digits unless a data root is given.

``import`` logs a results JSON into MLflow (experiment ``study-<name>``: one parent run, one
child run per trial with its per-epoch metrics) so ``launchers.report`` can show it; importing
the same file again adds nothing.

Only torch, timm, torchvision, numpy, PyYAML and Pillow are needed to run a study (no Ray, no
MLflow, no pydantic, no scikit-learn unless the digits are used); ``import`` needs MLflow.
Exit codes: 0 ran (whatever the verdict), 1 a trial failed (crash, out of memory) or MLflow
could not be written, 2 bad input (one message; ``--debug`` shows the traceback), 130
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import shlex
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import plugins
from bench.config import to_dict
from bench.diagnostics import lesion_metrics
from bench.errors import ConfigError, ResbenchError, did_you_mean
from bench.jsonio import finite, write_atomic
from bench.studies import FORMS, STUDIES, STUDY_ORDER, Study, StudyForm, StudyTrial, get_study

RESULTS_FORMAT = 1
COMMANDS = ("list", "all", "import")
# The smoke form on a real image folder: a few hundred images (override with --set data.subset=).
SMOKE_FOLDER_DATA = {"name": "imagefolder", "subset": 256, "test_subset": 128}
SKIPPED = "skipped"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launchers.study",
        description="Run a resbench study (a paper's claim as a set of trials) and judge it, "
                    "or import a study's results into MLflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"studies: {', '.join(STUDY_ORDER)}; exit codes: 0 ran, 1 a trial failed or "
               "MLflow could not be written, 2 bad input, 130 interrupted",
    )
    p.add_argument("name", metavar="NAME|all|list|import",
                   help="a study, 'all' (every study in order), 'list', or 'import FILE'")
    p.add_argument("file", nargs="?", metavar="FILE", help="import: the results JSON")
    p.add_argument("--form", choices=FORMS, default=None,
                   help="gpu (default; the paper-scale claim), cpu (the claim on a 2-core CPU, "
                        "<= 10 min a study) or smoke (tiny stand-ins: the code path only)")
    p.add_argument("--smoke", action="store_true", help="short for --form smoke")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"),
                   help="train.device of every trial (default: the form's; GPU form: auto)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data-root", metavar="DIR", help="the JPEG CIFAR-10 tree (train/, test/)")
    src.add_argument("--tarball", metavar="PATH",
                     help="cifar10-jpeg.tar.gz, extracted to a temporary folder")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="decoded-dataset cache (default: RESBENCH_CACHE, else the user cache)")
    p.add_argument("--out", metavar="PATH",
                   help="results JSON (default results/NAME.json, results/NAME.smoke.json); "
                        "an existing folder, or with 'all': the folder that holds them")
    p.add_argument("--max-minutes", type=float, metavar="M",
                   help="skip trials that would start after M minutes (default 8 for the GPU "
                        "form, 10 for the CPU form, no limit for --smoke); with 'all' per study")
    p.add_argument("--dry-run", action="store_true",
                   help="parse every trial and print the plan with estimates; train nothing")
    p.add_argument("--trials", metavar="ROLE,...", help="only these trials (roles; see 'list')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key of every trial, e.g. train.compile=true (repeatable)")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="import: MLflow URI (default MLFLOW_TRACKING_URI, else the repo store)")
    p.add_argument("--experiment", metavar="NAME", help="import: experiment (default study-NAME)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    plugins.add_argument(p)
    return p


# --- small helpers -----------------------------------------------------------------------------




def _say(text: str = "", quiet: bool = False) -> None:
    if not quiet:
        print(text, flush=True)


def _fmt(value: Any, kind: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "—"
    if kind == "count":
        from bench.text import si

        return si(value, below=".0f")
    if kind == "pct":
        return f"{value:.2f}"
    if kind == "int":
        return f"{value:.0f}"
    return f"{value:.3g}" if kind == "g" else f"{value:.1f}"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns; columns whose body is all '—' are dropped."""
    from bench.text import columns

    return "\n".join(columns(rows, drop="—")) if len(rows) >= 2 else ""


def trials_table(records: Sequence[Mapping[str, Any]]) -> str:
    head = ["role", "model", "status", "params", "MACs", "epochs", "train loss", "test acc %",
            "train s", "train img/s", "infer img/s", "p50 ms", "peak MB"]
    rows = [head]
    for rec in records:
        m = rec.get("metrics") or {}
        hist = rec.get("history") or []
        last = hist[-1] if hist else {}
        rows.append([
            str(rec["role"]), str(rec.get("label", "")), str(rec.get("status", "")),
            _fmt(m.get("params"), "count"), _fmt(m.get("macs"), "count"),
            _fmt(last.get("epoch"), "int"), _fmt(last.get("train_loss"), "g"),
            _fmt(m.get("test_acc"), "pct"), _fmt(m.get("train_time_s"), "f"),
            _fmt(m.get("train_step_img_per_s", last.get("train_img_per_s")), "int"),
            _fmt(m.get("infer_img_per_s"), "int"), _fmt(m.get("latency_ms_p50"), "g"),
            _fmt(m.get("peak_mem_mb"), "int"),
        ])
    return table(rows)


def verdict_text(rows: Sequence[Mapping[str, str]]) -> str:
    out = []
    for row in rows:
        out.append(f"[{row['verdict']}] {row['claim']}")
        out.append(f"    paper:    {row['paper']}")
        out.append(f"    measured: {row['measured']}")
        if row.get("note"):
            out.append(f"    note:     {row['note']}")
    return "\n".join(out)


def verdict_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| claim | paper | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {cell(r['claim'])} | {cell(r['paper'])} | {cell(r['measured'])} | "
              f"{cell(r['verdict'])} |" for r in rows]
    return "\n".join(lines)


def verdict_summary(rows: Sequence[Mapping[str, str]]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return ", ".join(f"{n} {v}" for v, n in counts.items()) or "no verdict rows"


def write_json(path: Path, data: Mapping[str, Any]) -> None:

    write_atomic(path, json.dumps(finite(data), indent=2) + "\n")
    with contextlib.suppress(OSError):
        os.chmod(path, 0o644)  # a results file is for sharing (the temp file was private)


# --- data --------------------------------------------------------------------------------------


@contextlib.contextmanager
def data_root(args: argparse.Namespace) -> Iterator[str | None]:
    """The image-folder root from --data-root or --tarball (extracted, removed afterwards)."""
    if args.data_root:
        yield find_tree(Path(args.data_root).expanduser())
        return
    if not args.tarball:
        yield None
        return
    tarball = Path(args.tarball).expanduser()
    if not tarball.is_file():
        raise ConfigError(f"no such file: {tarball}", "--tarball")
    with tempfile.TemporaryDirectory(prefix="resbench-study-") as tmp:
        try:
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ConfigError(f"cannot extract {tarball}: {exc}", "--tarball") from None
        yield find_tree(Path(tmp))


def find_tree(root: Path) -> str:
    """``root`` if it holds train/, else its one sub-folder that does."""
    if (root / "train").is_dir():
        return str(root)
    found = sorted(p.parent for p in root.glob("*/train") if p.is_dir())
    if len(found) == 1:
        return str(found[0])
    raise ConfigError(
        f"{root} holds no train/ folder (expected the JPEG CIFAR-10 tree: train/<class>/*.jpg "
        "and test/<class>/*.jpg)", "--data-root")


def data_changes(form: StudyForm, smoke: bool, root: str | None, cache_dir: str | None
                 ) -> dict[str, Any]:
    """What the command line changes in every trial's data section."""
    out: dict[str, Any] = {}
    if form.needs_data and root is not None:
        out.update(SMOKE_FOLDER_DATA if smoke else {})
        out["root"] = root
    if cache_dir:
        out["cache_dir"] = cache_dir
    return out


# --- running -----------------------------------------------------------------------------------


def build_specs(study: Study, args: argparse.Namespace, root: str | None
                ) -> list[tuple[StudyTrial, Any]]:
    """(trial, TrialSpec) of the selected trials, every spec parsed before anything runs."""
    from bench.config import apply_overrides
    from bench.locations import resolve_paths
    from bench.trainer import parse_trial

    form = study.form(args.form)
    trials = list(form.trials)
    if args.trials:
        wanted = [t.strip() for t in args.trials.split(",") if t.strip()]
        roles = [t.role for t in trials]
        bad = [w for w in wanted if w not in roles]
        if bad:
            raise ConfigError(f"unknown trial {bad[0]!r} of study {study.name!r}; valid: "
                              f"{', '.join(roles)}", "--trials")
        trials = [t for t in trials if t.role in wanted]
    changes = data_changes(form, args.form == "smoke", root, args.cache_dir)
    out = []
    for trial in trials:
        data = form.trial_data(trial)
        data["data"].update(changes)
        if args.device:
            data["train"]["device"] = args.device
        try:
            data = apply_overrides(data, args.overrides)
            spec = parse_trial(data)
        except ConfigError as exc:
            raise exc.at(source=f"study {study.name!r}, trial {trial.role!r}") from None
        spec = dataclasses.replace(spec, data=resolve_paths(spec.data, os.environ))
        if form.needs_data and not trial.measure_only and spec.data.name == "imagefolder" \
                and not spec.data.root and not args.dry_run:
            raise ConfigError(
                f"the {args.form} form of {study.name!r} trains on the JPEG CIFAR-10: pass --data-root "
                "DIR (the tree with train/ and test/), --tarball cifar10-jpeg.tar.gz, or set "
                "RESBENCH_DATA; or run the smoke form with --smoke", "--data-root")
        out.append((trial, spec))
    return out


def measure_only(spec: Any) -> tuple[dict[str, float], dict[str, str]]:
    """Params, MACs, throughput, latency and memory of an untrained model, and the env."""
    from bench.measure import environment
    from bench.trainer import measure_untrained, resolve_device

    env = environment(resolve_device(spec.train.device))
    return measure_untrained(spec), env


def progress_line(role: str, epochs: int, m: Mapping[str, float]) -> str:
    parts = [f"  {role:<16} epoch {int(m['epoch']):>3}/{epochs}", f"loss {m['train_loss']:.4f}",
             f"train {m['train_acc']:5.1f}%"]
    if "val_acc" in m:
        parts.append(f"val {m['val_acc']:5.1f}%")
    if "test_acc" in m:
        parts.append(f"test {m['test_acc']:5.2f}%")
    parts += [f"{m['epoch_time_s']:.1f}s", f"{m['train_img_per_s']:.0f} img/s"]
    return "  ".join(parts)


def run_trial(trial: StudyTrial, spec: Any, quiet: bool) -> dict[str, Any]:
    """One trial as a results record; crashes that are not input errors become ``failed``."""
    from bench.trainer import train

    start = time.perf_counter()
    record: dict[str, Any] = {"role": trial.role, "label": spec.arch.label,
                              "measure_only": trial.measure_only, "spec": to_dict(spec)}

    def report(metrics: dict[str, float], _checkpoint: Any) -> None:
        _say(progress_line(trial.role, spec.train.epochs, metrics), quiet)

    try:
        if trial.measure_only:
            metrics, env = measure_only(spec)
            record.update(status="completed", message="", metrics=metrics, history=[],
                          diagnostics={}, env=env)
        else:
            result = train(spec, report=report)
            record.update(status=result.status, message=result.message, metrics=result.metrics,
                          history=result.history, diagnostics=result.diagnostics, env=result.env)
    except ResbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a crashed variant is a result, not the end
        record.update(status="failed", message=f"{type(exc).__name__}: {exc}"[:2000],
                      metrics={}, history=[], diagnostics={}, env={})
    record["wall_time_s"] = time.perf_counter() - start
    # JSON round trip: the record reads the same in memory as from the file (string keys).
    return json.loads(json.dumps(finite(record)))


def default_out(name: str, form: str) -> Path:
    return Path("results") / (f"{name}.json" if form == "gpu" else f"{name}.{form}.json")


def canonical_command(name: str, form: str) -> str:
    return f"python -m launchers.study {name}" + {
        "smoke": " --smoke", "cpu": " --form cpu --tarball cifar10-jpeg.tar.gz",
    }.get(form, " --tarball cifar10-jpeg.tar.gz")


def calibrate(spec: Any) -> dict[str, Any]:
    """This CPU's ResNet-20 training img/s (fp32, and the precision ``auto`` picks for the
    form's trials), its model and threads: recorded beside every CPU-form result."""
    import torch

    from bench.measure import cpu_features, cpu_model, reference_train_rate
    from bench.trainer import execution

    ex = execution(spec.train, spec.data.cache_dir)
    out: dict[str, Any] = {"cpu": cpu_model(), "cpu_features": cpu_features(),
                           "cores": os.cpu_count() or 0,
                           "threads": torch.get_num_threads(),
                           "precision": "bf16" if ex.bf16 else "fp32",
                           "resnet20_fp32_train_img_per_s": reference_train_rate("fp32")}
    out["resnet20_train_img_per_s"] = (reference_train_rate("bf16") if ex.bf16
                                       else out["resnet20_fp32_train_img_per_s"])
    return out


def dry_run(study: Study, args: argparse.Namespace, root: str | None) -> float:
    """Print a study form's trials with their estimated seconds; nothing is trained or
    written. Returns the estimated total (seconds)."""
    from bench.studies import CPU_SIZING_R20_IMG_S, estimate_seconds

    specs = build_specs(study, args, root)
    cpu = CPU_SIZING_R20_IMG_S if args.form == "cpu" else None
    rows = [["role", "model", "epochs", "images", "estimate s"]]
    total = 0.0
    for trial, spec in specs:
        est = estimate_seconds(spec, trial.measure_only, cpu_r20_img_per_s=cpu) \
            if args.form != "smoke" else None
        total += est or 0.0
        rows.append([trial.role, spec.arch.label,
                     "—" if trial.measure_only else str(spec.train.epochs),
                     "—" if trial.measure_only else str(spec.data.subset or "all"),
                     "—" if est is None else f"{est:.0f}"])
    where = {"cpu": f"on a CPU training ResNet-20 at {CPU_SIZING_R20_IMG_S:.0f} img/s",
             "gpu": "on one H100"}.get(args.form, "")
    print(f"study {study.name} ({args.form} form): {len(specs)} trials"
          + (f", estimated {total / 60:.1f} min {where}" if where else ""))
    print(table(rows))
    return total


def run_study(study: Study, args: argparse.Namespace, root: str | None, out: Path) -> int:
    """Run one study, print its tables, write its JSON; the exit code (0 or 1)."""
    from bench.measure import environment
    from bench.studies import estimate_seconds
    from bench.trainer import resolve_device

    specs = build_specs(study, args, root)
    form = study.form(args.form)
    limit = args.max_minutes if args.max_minutes is not None else study.budget(args.form)
    quiet = args.quiet
    _say(f"study {study.name} ({args.form} form): {study.title}", quiet)
    _say(f"  claim: {study.claim}", quiet)
    _say(f"  {form.note}", quiet)
    estimates: dict[str, float] = {}
    calibration: dict[str, Any] = {}
    where = "on one H100 (from the anchors)"
    if args.form == "cpu" and specs:
        calibration = calibrate(specs[0][1])
        rate = calibration["resnet20_train_img_per_s"]
        _say(f"  this CPU: {calibration['cpu']}, {calibration['threads']} thread(s): ResNet-20 "
             f"trains at {calibration['resnet20_fp32_train_img_per_s']:.0f} img/s in fp32"
             + (f", {rate:.0f} in bf16 (precision auto picks bf16 here)"
                if calibration["precision"] == "bf16" else ""), quiet)
        estimates = {t.role: estimate_seconds(s, t.measure_only, cpu_r20_img_per_s=rate)
                     for t, s in specs}
        where = "on this CPU (from its ResNet-20 rate)"
    elif args.form == "gpu":
        estimates = {t.role: estimate_seconds(s, t.measure_only) for t, s in specs}
    if estimates:
        _say(f"  {len(specs)} trials, estimated {sum(estimates.values()) / 60:.1f} min {where}"
             + (f"; budget {limit:g} min" if limit else ""), quiet)
    started = dt.datetime.now(dt.UTC)
    first_device = specs[0][1].train.device if specs else "auto"
    doc: dict[str, Any] = {
        "format": RESULTS_FORMAT, "study": study.name, "title": study.title,
        "form": args.form, "claim": study.claim,
        "citation": study.citation, "paper": study.paper, "note": form.note,
        "space": study.space, "command": canonical_command(study.name, args.form),
        "argv": shlex.join(["python", "-m", "launchers.study", *getattr(args, "argv", [])]),
        "overrides": list(args.overrides), "started": started.isoformat(timespec="seconds"),
        "budget": {"max_minutes": limit, "estimate_s": estimates},
        "env": environment(resolve_device(first_device)),
        "trials": [], "verdict": [],
    }
    doc["device"] = doc["env"].get("device", "")
    if calibration:
        doc["calibration"] = calibration
        doc["device"] = (f"{calibration['cpu']} ({calibration['cores']} cores, "
                         f"{calibration['threads']} thread(s); ResNet-20 "
                         f"{calibration['resnet20_fp32_train_img_per_s']:.0f} img/s fp32"
                         + (f", {calibration['resnet20_train_img_per_s']:.0f} bf16"
                            if calibration["precision"] == "bf16" else "") + ")")
    failed = False
    began = time.perf_counter()
    for i, (trial, spec) in enumerate(specs):
        elapsed = time.perf_counter() - began
        head = f"[{i + 1}/{len(specs)}] {trial.role}: {spec.arch.label}"
        if limit is not None and elapsed > 60 * limit:
            _say(f"{head}: skipped (the {limit:g}-minute budget is spent)", quiet)
            doc["trials"].append({
                "role": trial.role, "label": spec.arch.label, "measure_only": trial.measure_only,
                "spec": json.loads(json.dumps(finite(to_dict(spec)))), "status": SKIPPED,
                "message": f"skipped: started after the {limit:g}-minute budget",
                "metrics": {}, "history": [], "diagnostics": {}, "env": {}, "wall_time_s": 0.0})
            continue
        est = ""
        if trial.role in estimates:
            left = sum(estimates[t.role] for t, _ in specs[i:])
            est = (f" (estimate {estimates[trial.role]:.0f} s; elapsed {elapsed / 60:.1f} min, "
                   f"about {left / 60:.1f} min left)")
        _say(f"{head}{est}", quiet)
        record = run_trial(trial, spec, quiet)
        failed |= record["status"] == "failed"
        m = record["metrics"]
        acc = f", test {m['test_acc']:.2f}%" if isinstance(m.get("test_acc"), float) else ""
        msg = f" ({record['message']})" if record["message"] else ""
        _say(f"  -> {record['status']}{acc} in {record['wall_time_s']:.1f} s{msg}", quiet)
        doc["trials"].append(record)
        _finish(study, doc, began, out)
    _finish(study, doc, began, out)
    print(f"\n{study.name}: trials\n{trials_table(doc['trials'])}")
    print(f"\n{study.name}: verdict ({'smoke form: code path only' if args.form == 'smoke' else doc['device']})")
    print(verdict_text(doc["verdict"]))
    print(f"\n{study.name}: {verdict_summary(doc['verdict'])}; {doc['wall_time_s']:.1f} s; "
          f"wrote {out}")
    return 1 if failed else 0


def _finish(study: Study, doc: dict[str, Any], began: float, out: Path) -> None:
    doc["wall_time_s"] = time.perf_counter() - began
    doc["verdict"] = [row.as_dict() for row in study.evaluate(doc)]
    write_json(out, doc)


# --- MLflow import -----------------------------------------------------------------------------

IMPORT_STATUS = {"completed": "completed", "diverged": "diverged", "failed": "failed",
                 SKIPPED: "rejected"}


def read_results(path: str | Path) -> dict[str, Any]:
    """A results JSON written by this launcher (ConfigError when it is not one)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}", "FILE") from None
    except ValueError as exc:
        raise ConfigError(f"{p} is not JSON: {exc}", "FILE") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT or \
            not isinstance(data.get("trials"), list) or not data.get("study"):
        raise ConfigError(f"{p} is not a study results file (written by launchers.study)", "FILE")
    return data


def import_results(path: str | Path, tracking_uri: str | None = None,
                   experiment: str | None = None) -> dict[str, Any]:
    """Log a results JSON as one parent run and a child run per trial; returns
    ``{"uri", "experiment", "parent_id", "children", "imported", "already"}``."""
    from bench.config import flatten
    from bench.tracking import (
        Tracker,
        check_store,
        default_artifact_location,
        default_tracking_uri,
        quiet_store_logs,
    )

    data = read_results(path)
    name, form = str(data["study"]), str(data.get("form", "gpu"))
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    exp = experiment or f"study-{name}"
    # fail fast on an unreachable server or an unwritable store or artifact folder
    check_store(uri, artifact_location=default_artifact_location(uri), experiment=exp)
    tracker = Tracker(uri, exp, default_artifact_location(uri))
    quiet_store_logs()
    tracker.setup()
    stamp = "".join(ch for ch in str(data.get("started", "")) if ch.isdigit())[:14] or "unknown"
    sweep_id = f"study-{name}-{form}-{stamp}"
    env = data.get("env") or {}
    tags = {"resbench.study": name, "resbench.form": form, "resbench.device": data.get("device", ""),
            "resbench.git_sha": env.get("git_sha", "unknown"), "resbench.command": data.get("command", ""),
            "resbench.space": data.get("space", ""),
            **{f"resbench.env.{k}": v for k, v in env.items()}}
    rows = data.get("verdict") or []
    params = {"study": name, "form": form, "trials": len(data["trials"]),
              "device": data.get("device", ""), "claim": data.get("claim", ""),
              "citation": data.get("citation", ""),
              "max_minutes": (data.get("budget") or {}).get("max_minutes"),
              "overrides": " ".join(data.get("overrides") or [])}
    # The verdict as parameters too: the report lists a parent's parameters, so the claim,
    # the paper's number and ours appear there side by side.
    params.update({f"verdict.{i + 1:02d}": f"[{r['verdict']}] {r['claim']} | paper: {r['paper']} "
                   f"| measured: {r['measured']}" for i, r in enumerate(rows)})
    texts = {"verdict.md": f"# {data.get('title', name)}\n\n{data.get('claim', '')}\n\n"
                           f"{verdict_markdown(rows)}\n",
             "study.json": json.dumps(data, indent=2),
             # What the report's "Claims" section reads (bench.report.fetch.VERDICT_ARTIFACT).
             "verdict.json": json.dumps({
                 "study": name, "form": form, "title": data.get("title", name),
                 "claim": data.get("claim", ""), "citation": data.get("citation", ""),
                 "device": data.get("device", ""), "wall_time_s": data.get("wall_time_s"),
                 "command": data.get("command", ""), "note": data.get("note", ""),
                 "rows": rows}, indent=2)}
    parent = tracker.start_sweep(sweep_id, f"{name} ({form}, {data.get('device', '?')})", tags,
                                 params, texts)
    imported = already = 0
    for rec in data["trials"]:
        role = str(rec["role"])
        status = IMPORT_STATUS.get(str(rec.get("status")), "failed")
        existing = tracker.find_trial(parent, role)
        if existing is not None and existing.info.status != "RUNNING" and \
                existing.data.tags.get("resbench.status") == status:
            already += 1
            continue
        child_tags = {"resbench.kind": "reference" if rec.get("measure_only") else "search",
                      "resbench.label": rec.get("label", role), "resbench.sweep_id": sweep_id,
                      "resbench.study": name, "resbench.study_role": role}
        run_id, last = tracker.trial_run(parent, role, str(rec.get("label") or role),
                                         {**flatten(rec.get("spec") or {}), "study.role": role},
                                         child_tags)
        history = rec.get("history") or []
        step = 0
        for entry in history:
            step = int(entry.get("epoch") or 0)
            if step > last:
                tracker.log_metrics(run_id, entry, step=step)
        per_epoch = set(history[-1]) if history else set()
        final = {k: v for k, v in (rec.get("metrics") or {}).items() if k not in per_epoch}
        lesion = (rec.get("diagnostics") or {}).get("lesion")
        if isinstance(lesion, Mapping):
            final.update(lesion_metrics(lesion))
        final["study_wall_time_s"] = rec.get("wall_time_s")
        tracker.end_trial(run_id, status, final, step=step, error=str(rec.get("message") or ""))
        if rec.get("diagnostics"):
            tracker.log_text(run_id, json.dumps(rec["diagnostics"], indent=2), "diagnostics.json")
        imported += 1
    done = sum(1 for r in data["trials"] if r.get("status") == "completed")
    consistent = sum(1 for r in rows if r.get("verdict") == "consistent")
    judged = sum(1 for r in rows if r.get("verdict") in ("consistent", "not consistent"))
    tracker.end_sweep(parent, "completed", {
        "trials": len(data["trials"]), "completed": done,
        "wall_time_s": data.get("wall_time_s"), "verdict_consistent": consistent,
        "verdict_judged": judged}, {"resbench.verdict": verdict_summary(rows)})
    return {"uri": uri, "experiment": exp, "parent_id": parent, "children": len(data["trials"]),
            "imported": imported, "already": already}


# --- entry point -------------------------------------------------------------------------------


def list_studies() -> str:
    from bench.studies import CPU_SIZING_R20_IMG_S, estimate_study_seconds

    rows = [["study", "GPU trials", "GPU estimate", "CPU estimate", "title"]]
    for name in STUDY_ORDER:
        study = get_study(name)
        est = estimate_study_seconds(study)["total"]
        cpu = estimate_study_seconds(study, "cpu")["total"] if study.cpu else None
        rows.append([name, ", ".join(t.role for t in study.gpu.trials), f"{est / 60:.1f} min",
                     "—" if cpu is None else f"{cpu / 60:.1f} min", study.title])
    extra = sorted(set(STUDIES.names()) - set(STUDY_ORDER))
    for name in extra:
        study = get_study(name)
        rows.append([name, ", ".join(t.role for t in study.gpu.trials), "—", "—", study.title])
    return table(rows) + (f"\n(CPU estimates on the slower 2-core machine seen: ResNet-20 at "
                          f"{CPU_SIZING_R20_IMG_S:.0f} img/s)")


def resolve_names(name: str) -> list[str]:
    if name == "all":
        return list(STUDY_ORDER) + sorted(set(STUDIES.names()) - set(STUDY_ORDER))
    if name not in STUDIES:
        valid = sorted(STUDIES.names())
        raise ConfigError(
            f"unknown study {name!r}{did_you_mean(name, [*valid, *COMMANDS])}; valid studies: "
            f"{', '.join(valid)} (or: all, list, import FILE)")
    return [name]


def run(args: argparse.Namespace) -> int:
    if args.name == "import":
        if not args.file:
            raise ConfigError("import needs the results file: python -m launchers.study import "
                              "results/NAME.json", "FILE")
        try:
            info = import_results(args.file, args.tracking_uri, args.experiment)
        except ConfigError:
            raise
        except ResbenchError as exc:  # the store cannot be reached or written
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - MLflow and database failures: one message
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            print(f"error: cannot write to MLflow: {type(exc).__name__}: {first}", file=sys.stderr)
            return 1
        from bench.tracking import ui_command

        print(f"imported {info['imported']} trial(s) ({info['already']} already there) into "
              f"experiment {info['experiment']} (parent run {info['parent_id']})\n"
              f"  browse: {ui_command(info['uri'])}\n"
              f"  report: python -m launchers.report --experiment {info['experiment']}"
              + (f" --tracking-uri {info['uri']}" if args.tracking_uri else ""))
        return 0
    if args.file:
        raise ConfigError(f"unexpected argument {args.file!r} (only 'import' takes a file)")
    if args.name == "list":
        print(list_studies())
        return 0
    names = resolve_names(args.name)
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise ConfigError(f"must be > 0, got {args.max_minutes:g}", "--max-minutes")
    code = 0
    if args.dry_run:
        root = find_tree(Path(args.data_root).expanduser()) if args.data_root else None
        total = sum(dry_run(get_study(name), args, root) for name in names)
        if len(names) > 1:
            print(f"all: estimated {total / 60:.1f} min")
        return 0
    with data_root(args) as root:
        for name in names:
            study = get_study(name)
            if len(names) > 1 or (args.out and Path(args.out).is_dir()):  # a folder: its file
                out = Path(args.out or "results") / default_out(name, args.form).name
            else:
                out = Path(args.out) if args.out else default_out(name, args.form)
            code = max(code, run_study(study, args, root, out))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke and args.form not in (None, "smoke"):
        parser.error(f"--smoke contradicts --form {args.form}")
    args.form = "smoke" if args.smoke else (args.form or "gpu")
    args.argv = argv
    try:
        plugins.import_plugins(args.plugin, "--plugin")
        return run(args)
    except ResbenchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the results JSON holds the trials that finished)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
