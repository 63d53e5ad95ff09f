"""Importing a study's results JSON into MLflow (``launchers.study import FILE``): one parent
run per results file and one child per trial with its per-epoch metrics, idempotent (a file
imported again adds nothing), read back by ``launchers.report``."""


from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.diagnostics import lesion_metrics
from bench.errors import ConfigError
from bench.study_run import RESULTS_FORMAT, SKIPPED, verdict_markdown, verdict_summary

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


def parent_fields(data: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any],
                                                   dict[str, str]]:
    """(tags, params, texts) of a study's parent run, from its results document: the study,
    form, device and claim, the verdict rows as parameters, and the ``verdict.md``,
    ``verdict.json`` (what the report's "Claims" section reads) and ``study.json`` artifacts."""
    name, form = str(data["study"]), str(data.get("form", "gpu"))
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
    return tags, params, texts


def parent_summary(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(metrics, tags) a study's parent run ends with: trials run and the verdict's tally."""
    rows = data.get("verdict") or []
    done = sum(1 for r in data["trials"] if r.get("status") == "completed")
    consistent = sum(1 for r in rows if r.get("verdict") == "consistent")
    judged = sum(1 for r in rows if r.get("verdict") in ("consistent", "not consistent"))
    return ({"trials": len(data["trials"]), "completed": done,
             "wall_time_s": data.get("wall_time_s"), "verdict_consistent": consistent,
             "verdict_judged": judged}, {"resbench.verdict": verdict_summary(rows)})


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
    tags, params, texts = parent_fields(data)
    parent = tracker.start_sweep(sweep_id, f"{name} ({form}, {data.get('device', '?')})", tags,
                                 params, texts)
    imported = already = 0
    ended = tracker.ended_trials(parent)
    for rec in data["trials"]:
        role = str(rec["role"])
        status = IMPORT_STATUS.get(str(rec.get("status")), "failed")
        if ended.get(role) == status:
            already += 1
            continue
        child_tags = {"resbench.kind": "reference" if rec.get("measure_only") else "search",
                      "resbench.label": rec.get("label", role), "resbench.sweep_id": sweep_id,
                      "resbench.study": name, "resbench.study_role": role}
        run_id, logged = tracker.trial_run(parent, role, str(rec.get("label") or role),
                                         {**flatten(rec.get("spec") or {}), "study.role": role},
                                         child_tags)
        history = rec.get("history") or []
        step = 0
        for entry in history:
            step = int(entry.get("epoch") or 0)
            if step > 0 and step not in logged:
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
    tracker.end_sweep(parent, "completed", *parent_summary(data))
    return {"uri": uri, "experiment": exp, "parent_id": parent, "children": len(data["trials"]),
            "imported": imported, "already": already}
