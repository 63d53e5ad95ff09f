"""Running a study (``bench.studies``) behind ``python -m launchers.study``: its trials one after
another through the standalone trainer (measurement-only ones through ``bench.measure``), the
progress lines, the trials and verdict tables, the results JSON rewritten after every trial,
the CPU calibration and the dry run. ``run(args)`` takes the parsed command line
(``launchers.study.build_parser``). Needs no Ray or MLflow; ``import`` needs MLflow."""


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

from bench.config import to_dict
from bench.errors import ConfigError, ResbenchError, did_you_mean
from bench.jsonio import finite, write_atomic
from bench.record import TrialRecord
from bench.studies import STUDIES, STUDY_ORDER, Study, StudyForm, StudyTrial, get_study

RESULTS_FORMAT = 1
COMMANDS = ("list", "all", "import")
# The smoke form on a real image folder: a few hundred images (override with --set data.subset=).
SMOKE_FOLDER_DATA = {"name": "imagefolder", "subset": 256, "test_subset": 128}
SKIPPED = "skipped"


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
    return [(trial, spec) for trial, spec, _ in trial_inputs(study, args, root)]


def trial_inputs(study: Study, args: argparse.Namespace, root: str | None
                 ) -> list[tuple[StudyTrial, Any, dict[str, Any]]]:
    """(trial, TrialSpec, its mapping with the command line's changes) of the selected trials."""
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
        # named by its role: the same spec whichever backend runs it
        spec = dataclasses.replace(spec, data=resolve_paths(spec.data, os.environ),
                                   name=trial.role)
        if form.needs_data and not trial.measure_only and spec.data.name == "imagefolder" \
                and not spec.data.root and not args.dry_run:
            raise ConfigError(
                f"the {args.form} form of {study.name!r} trains on the JPEG CIFAR-10: pass --data-root "
                "DIR (the tree with train/ and test/), --tarball cifar10-jpeg.tar.gz, or set "
                "RESBENCH_DATA; or run the smoke form with --smoke", "--data-root")
        out.append((trial, spec, data))
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
    rec = new_record(trial, spec)

    def report(metrics: dict[str, float], _checkpoint: Any) -> None:
        _say(progress_line(trial.role, spec.train.epochs, metrics), quiet)

    try:
        if trial.measure_only:
            rec.metrics, rec.env = measure_only(spec)
            rec.status = "completed"
        else:
            result = train(spec, report=report)
            rec.status, rec.message, rec.metrics = result.status, result.message, result.metrics
            rec.history, rec.diagnostics, rec.env = result.history, result.diagnostics, result.env
    except ResbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a crashed variant is a result, not the end
        rec.status, rec.message = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    rec.wall_time_s = time.perf_counter() - start
    return rec.as_dict()


def new_record(trial: StudyTrial, spec: Any, status: str = "", message: str = "") -> TrialRecord:
    """The record of a study trial before it runs (``status`` skipped: one that never will)."""
    return TrialRecord(trial_id=trial.role, kind="reference" if trial.measure_only else "search",
                       config={}, label=spec.arch.label, status=status, message=message,
                       role=trial.role, spec=to_dict(spec), measure_only=trial.measure_only)


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


def start_doc(study: Study, args: argparse.Namespace, specs: Sequence[tuple[StudyTrial, Any]]
              ) -> tuple[float | None, dict[str, float], dict[str, Any]]:
    """The study's heading lines and its results document before any trial ran (the CPU form
    measures this CPU first): (budget minutes, estimated seconds by role, document)."""
    from bench.measure import environment
    from bench.studies import estimate_seconds
    from bench.trainer import resolve_device

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
    return limit, estimates, doc


def run_study(study: Study, args: argparse.Namespace, root: str | None, out: Path) -> int:
    """Run one study in-process, print its tables, write its JSON; the exit code (0 or 1)."""
    specs = build_specs(study, args, root)
    limit, estimates, doc = start_doc(study, args, specs)
    quiet = args.quiet
    failed = False
    began = time.perf_counter()
    for i, (trial, spec) in enumerate(specs):
        elapsed = time.perf_counter() - began
        head = f"[{i + 1}/{len(specs)}] {trial.role}: {spec.arch.label}"
        if limit is not None and elapsed > 60 * limit:
            _say(f"{head}: skipped (the {limit:g}-minute budget is spent)", quiet)
            doc["trials"].append(new_record(
                trial, spec, SKIPPED, f"skipped: started after the {limit:g}-minute budget"
            ).as_dict())
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
    print_outcome(study, doc, args.form, out)
    return 1 if failed else 0


def print_outcome(study: Study, doc: dict[str, Any], form: str, out: Path) -> None:
    """The trials and verdict tables and the closing line of a finished study."""
    print(f"\n{study.name}: trials\n{trials_table(doc['trials'])}")
    print(f"\n{study.name}: verdict ({'smoke form: code path only' if form == 'smoke' else doc['device']})")
    print(verdict_text(doc["verdict"]))
    print(f"\n{study.name}: {verdict_summary(doc['verdict'])}; {doc['wall_time_s']:.1f} s; "
          f"wrote {out}")


def _finish(study: Study, doc: dict[str, Any], began: float, out: Path) -> None:
    doc["wall_time_s"] = time.perf_counter() - began
    doc["verdict"] = [row.as_dict() for row in study.evaluate(doc)]
    write_json(out, doc)


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
        from bench.study_import import import_results  # MLflow: only here

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
    chosen = backend(args.backend)
    if chosen == "ray":
        from bench.study_sweep import run_study_sweep as runner
    else:
        runner = run_study
    with data_root(args) as root:
        for name in names:
            study = get_study(name)
            if len(names) > 1 or (args.out and Path(args.out).is_dir()):  # a folder: its file
                out = Path(args.out or "results") / default_out(name, args.form).name
            else:
                out = Path(args.out) if args.out else default_out(name, args.form)
            code = max(code, runner(study, args, root, out))
    return code


def backend(name: str) -> str:
    """``auto``: Ray Tune when Ray is installed (the sweep machinery, MLflow live), else the
    sequential in-process runner (hosts without Ray, e.g. a bare GPU host)."""
    import importlib.util

    if name == "auto":
        return "ray" if importlib.util.find_spec("ray") is not None else "sequential"
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("Ray is not installed here; use --backend sequential (then "
                          "'launchers.study import' the results JSON where MLflow is)",
                          "--backend")
    return name
