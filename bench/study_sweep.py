"""A study run by the sweep machinery (``launchers.study NAME``, backend ``ray``): its form
becomes a search space that lists its trials (``trials:``), the sweep driver runs them on Ray
Tune with MLflow recording them live and ``--resume`` continuing an interrupted run, and once
every trial has ended the verdict is judged from the trials' records, written to the same
results JSON as the sequential backend's and attached to the sweep's parent run (its
parameters, ``verdict.md``, ``verdict.json``, ``study.json``)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from bench.record import TrialRecord
from bench.studies import Study, StudyTrial

# the trial's own shape keys, so that the listed trial resolves exactly as the study's spec
SHAPE_KEYS = ("num_classes", "in_chans", "input_size")


def form_space(study: Study, form: str, inputs: list[tuple[StudyTrial, Any, dict[str, Any]]],
               device: str | None, plugins: list[str]) -> dict[str, Any]:
    """The search-space mapping of a study form: one listed trial per study trial with its
    resolved sections (absolute data folders), one trial at a time on all of this host's
    CPUs (timings as in-process), no early stopping, no proxies."""
    from bench.config import to_dict

    trials = []
    for trial, spec, data in inputs:
        arch = dict(data["arch"])
        for key in SHAPE_KEYS:
            value = getattr(spec.arch, key, None)
            if value is not None and key not in arch:
                arch[key] = value
        dataset = to_dict(spec.data)
        for key in ("root", "cache_dir"):
            if dataset.get(key) and "://" not in str(dataset[key]):
                dataset[key] = str(Path(dataset[key]).expanduser().resolve())
        trials.append({"name": trial.role, "arch": arch, "train": to_dict(spec.train),
                       "dataset": dataset, "measure": to_dict(spec.measure),
                       "diagnostics": to_dict(spec.diagnostics),
                       "measure_only": trial.measure_only})
    return {
        "name": f"study-{study.name}-{form}",
        "description": f"{study.title} ({form} form): {study.claim}",
        "trials": trials,
        "search": {"objectives": {"test_acc": "max"}, "max_concurrent": 1},
        "scheduler": {"type": "none"},
        "proxies": {"enabled": False},
        "resources": {"cpu": os.cpu_count() or 1, "gpu": 1 if device == "cuda" else 0},
        "tracking": {"experiment": f"study-{study.name}"},
        "plugins": list(plugins),
    }


def study_record(rec: TrialRecord) -> dict[str, Any]:
    """A sweep trial's record in the results JSON's form (its final metrics without Ray's
    keys; a trial that did not complete carries its reason)."""
    from bench.tune import MESSAGE_KEY, numeric_metrics

    message = rec.message or ("" if rec.status == "completed"
                              else str(rec.metrics.get(MESSAGE_KEY) or ""))
    out = TrialRecord(rec.trial_id, rec.kind, rec.config, rec.label, rec.status,
                      numeric_metrics(rec.metrics), message.splitlines()[0] if message else "",
                      history=rec.history, role=rec.role, spec=rec.spec,
                      diagnostics=rec.diagnostics, env=rec.env, wall_time_s=rec.wall_time_s,
                      measure_only=rec.measure_only)
    return out.as_dict()


def run_study_sweep(study: Study, args: argparse.Namespace, root: str | None, out: Path) -> int:
    """One study on Ray Tune through the sweep driver; the exit code (0, or 1 when a trial
    failed)."""
    import yaml

    from bench import sweep
    from bench.space import from_dict
    from bench.study_import import parent_fields, parent_summary
    from bench.study_run import _finish, print_outcome, start_doc, trial_inputs

    inputs = trial_inputs(study, args, root)
    _, _, doc = start_doc(study, args, [(t, s) for t, s, _ in inputs])
    if args.max_minutes is not None:
        print("note: --max-minutes skips late trials with --backend sequential only; on Ray "
              "every listed trial runs", flush=True)
    mapping = form_space(study, args.form, inputs, args.device, list(args.plugin))
    label = f"study {study.name} ({args.form} form)"
    space = from_dict(mapping, source=label)
    source = yaml.safe_dump(mapping, sort_keys=False)
    roles = [t.role for t, _, _ in inputs]
    began = time.perf_counter()

    def finish(tracker: Any, parent: str, records: list[TrialRecord]) -> None:
        by_role = {r.role: r for r in records}
        doc["trials"] = [study_record(by_role[role]) for role in roles if role in by_role]
        doc["sweep"] = {"parent_run_id": parent, "experiment": mapping["tracking"]["experiment"]}
        _finish(study, doc, began, out)  # the verdict, and the JSON written
        tags, params, texts = parent_fields(doc)
        tags.pop("resbench.space", None)  # the parent's own: the sweep's space name
        metrics, end_tags = parent_summary(doc)
        tracker.log_missing_params(parent, params)  # a resumed run keeps its first values
        tracker.log_tags(parent, {**tags, **end_tags})
        tracker.log_metrics(parent, {k: v for k, v in metrics.items() if v is not None})
        for name, text in texts.items():
            tracker.log_text(parent, text, name)
        print_outcome(study, doc, args.form, out)

    argv = ["--space", label, "--report" if args.report else "--no-report"]
    if args.resume:  # an unfinished run of the same trials continues; else a new one
        argv += ["--resume", "auto"]
    for flag, value in (("--storage", args.storage), ("--tracking-uri", args.tracking_uri),
                        ("--experiment", args.experiment)):
        if value:
            argv += [flag, value]
    if args.debug:
        argv.append("--debug")
    return sweep.run(args.sweep_parser().parse_args(argv), space=space, source_text=source,
                     finish=finish)
