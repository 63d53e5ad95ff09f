"""Reading a report's runs out of MLflow as plain data (dicts of strings and floats).

This is the report's only contact with MLflow, and it goes through ``bench.tracking``'s
``Tracker.client`` (the project's one mlflow importer), read-only: a report never creates an
experiment, a run or (for a ``sqlite:///`` URI) a database file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.errors import ConfigError, ResbenchError, did_you_mean
from bench.tracking import TAG_SWEEP, Tracker, local_store

# Per-epoch metrics whose whole history is read (the rest only as their last value).
CURVE_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc")
GRAD_PREFIX = "grad_norm/"
LESION_PREFIX = "lesion/"
# Artifacts that may hold a trial's lesion study (the dict of bench.diagnostics.lesion_study,
# alone or under a "lesion" key).
LESION_ARTIFACTS = ("lesion.json", "diagnostics.json")
# A study's verdict on its parent run (written by ``launchers.study import``): title, claim,
# citation, form, device, command and ``rows`` of claim / paper / measured / verdict / note.
VERDICT_ARTIFACT = "verdict.json"
VERDICT_KEYS = ("claim", "paper", "measured", "verdict")
_PAGE = 1000
_THREADS = 4


def redact_uri(uri: str) -> str:
    """The tracking URI without a password (it is printed in the report)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _client(tracking_uri: str) -> Any:
    db = local_store(tracking_uri)
    if db is not None and not db.is_file():
        raise ConfigError(
            f"no MLflow store at {db}; run a sweep first or pass --tracking-uri", "--tracking-uri")
    return Tracker(tracking_uri, "").client


def _guarded(tracking_uri: str, what: str, fn: Any) -> Any:
    """Run ``fn``; MLflow, network and database failures become one ResbenchError."""
    try:
        return fn()
    except ResbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - any client failure is reported the same way
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ResbenchError(
            f"cannot read {what} from MLflow at {redact_uri(tracking_uri)}: "
            f"{type(exc).__name__}: {first}") from exc


def list_experiments(tracking_uri: str) -> list[str]:
    """Names of the active experiments of the store, sorted."""
    client = _client(tracking_uri)

    def read() -> list[str]:
        names, token = [], None
        while True:
            page = client.search_experiments(max_results=_PAGE, page_token=token)
            names += [e.name for e in page]
            token = page.token
            if not token:
                return sorted(names, key=str.lower)

    return _guarded(tracking_uri, "the experiments", read)


def _experiment(client: Any, tracking_uri: str, name: str) -> Any:
    exp = _guarded(tracking_uri, f"experiment {name!r}",
                   lambda: client.get_experiment_by_name(name))
    if exp is None or exp.lifecycle_stage == "deleted":
        existing = list_experiments(tracking_uri)
        state = " (it was deleted)" if exp is not None else ""
        raise ConfigError(
            f"unknown experiment {name!r}{state}{did_you_mean(name, existing)}; existing: "
            f"{', '.join(existing) if existing else '(none: the store is empty)'}",
            "--experiment")
    return exp


def _history(client: Any, run_id: str, keys: Sequence[str]) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for key in keys:
        by_step: dict[int, tuple[int, float]] = {}
        for m in client.get_metric_history(run_id, key):
            # a re-logged step keeps its latest value
            if m.step not in by_step or m.timestamp >= by_step[m.step][0]:
                by_step[m.step] = (m.timestamp, float(m.value))
        out[key] = [[float(step), v] for step, (_, v) in sorted(by_step.items())]
    return out


def lesion_from_metrics(metrics: dict[str, float]) -> dict[str, Any] | None:
    """``lesion/baseline``, ``lesion/single/<block>``, ``lesion/random_k_mean/<k>`` and
    ``lesion/random_k_std/<k>`` metrics -> the lesion_study dict shape, or None."""
    found = {k[len(LESION_PREFIX):]: v for k, v in metrics.items() if k.startswith(LESION_PREFIX)}
    if not found:
        return None
    out: dict[str, Any] = {"single": {}, "random_k_mean": {}, "random_k_std": {}}
    for key, value in found.items():
        head, _, rest = key.partition("/")
        if head == "baseline" and not rest:
            out["baseline"] = value
        elif head in out and rest:
            out[head][rest] = value
    return out if ("baseline" in out or out["single"] or out["random_k_mean"]) else None


def _artifact_names(client: Any, run_id: str) -> set[str]:
    return {f.path for f in client.list_artifacts(run_id)}


def _json_artifact(client: Any, run_id: str, name: str, names: set[str]) -> Any:
    """The parsed JSON artifact ``name`` of a run (``names``: the run's artifacts), or None when
    absent or unreadable."""
    if name not in names:
        return None
    with tempfile.TemporaryDirectory(prefix="resbench-report-") as d:
        path = client.download_artifacts(run_id, name, d)
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def _lesion_artifact(client: Any, run_id: str) -> dict[str, Any] | None:
    names = _artifact_names(client, run_id)
    for name in LESION_ARTIFACTS:
        data = _json_artifact(client, run_id, name, names)
        if isinstance(data, dict) and isinstance(data.get("lesion"), dict):
            data = data["lesion"]
        if isinstance(data, dict) and ("single" in data or "random_k_mean" in data):
            return data
    return None


def verdict_of(data: Any) -> dict[str, Any] | None:
    """A verdict artifact's content when it has the expected shape (rows as dicts of strings)."""
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        return None
    rows = [{k: str(r.get(k, "")) for k in (*VERDICT_KEYS, "note")} for r in data["rows"]
            if isinstance(r, dict) and all(k in r for k in VERDICT_KEYS)]
    return {**{k: v for k, v in data.items() if k != "rows"}, "rows": rows}


def _run_dict(client: Any, run: Any, experiment: str) -> dict[str, Any]:
    info, data = run.info, run.data
    metrics = {k: float(v) for k, v in data.metrics.items()}
    params = dict(data.params)
    out: dict[str, Any] = {
        "run_id": info.run_id,
        "run_name": info.run_name or data.tags.get("mlflow.runName", ""),
        "experiment": experiment,
        "experiment_id": info.experiment_id,
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "tags": dict(data.tags),
        "params": params,
        "metrics": metrics,
        "history": {},
        "lesion": None,
    }
    if is_sweep(out):
        if data.tags.get("resbench.study"):
            try:
                out["verdict"] = verdict_of(_json_artifact(
                    client, info.run_id, VERDICT_ARTIFACT, _artifact_names(client, info.run_id)))
            except Exception:  # noqa: BLE001 - an unreadable artifact store only loses the claims
                out["verdict"] = None
        return out
    keys = [k for k in metrics if k in CURVE_KEYS or k.startswith(GRAD_PREFIX)]
    out["history"] = _history(client, info.run_id, keys)
    out["lesion"] = lesion_from_metrics(metrics)
    if out["lesion"] is None and params.get("diagnostics.lesion", "").lower() == "true":
        try:
            out["lesion"] = _lesion_artifact(client, info.run_id)
        except Exception:  # noqa: BLE001 - an unreadable artifact store only loses this figure
            out["lesion"] = None
    return out


def fetch_experiment_runs(tracking_uri: str, experiment_names: Sequence[str],
                          sweeps: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every run (sweep parents and trials, deleted runs excluded) of the named experiments as
    plain dicts: ``run_id``, ``run_name``, ``experiment``, ``experiment_id``, ``status`` (MLflow),
    ``start_time`` / ``end_time`` (ms), ``tags``, ``params``, ``metrics`` (last values),
    ``history`` (``{key: [[epoch, value], ...]}`` of the curve and ``grad_norm/*`` metrics) and
    ``lesion`` (a lesion-study dict or None). ``sweeps`` keeps only those sweep ids.

    Raises ConfigError for an unknown experiment (listing the existing ones) or a missing local
    store, ResbenchError when MLflow cannot be read."""
    if not experiment_names:
        raise ConfigError("name at least one experiment", "--experiment")
    client = _client(tracking_uri)
    wanted = set(sweeps)
    found: list[tuple[Any, str]] = []
    for name in dict.fromkeys(experiment_names):
        exp = _experiment(client, tracking_uri, name)

        def search(exp_id: str = exp.experiment_id) -> list[Any]:
            runs, token = [], None
            while True:
                page = client.search_runs([exp_id], max_results=_PAGE, page_token=token,
                                          order_by=["attributes.start_time ASC"])
                runs += list(page)
                token = page.token
                if not token:
                    return runs

        for run in _guarded(tracking_uri, f"the runs of experiment {name!r}", search):
            if wanted and run.data.tags.get(TAG_SWEEP) not in wanted:
                continue
            found.append((run, name))

    def one(item: tuple[Any, str]) -> dict[str, Any]:
        return _run_dict(client, item[0], item[1])

    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        return _guarded(tracking_uri, "the run histories", lambda: list(pool.map(one, found)))


def is_sweep(run: dict[str, Any]) -> bool:
    """A sweep's parent run (not a trial)."""
    return run["tags"].get("resbench.role") == "sweep"


__all__ = [
    "CURVE_KEYS",
    "GRAD_PREFIX",
    "fetch_experiment_runs",
    "is_sweep",
    "lesion_from_metrics",
    "verdict_of",
    "list_experiments",
    "redact_uri",
]
