"""Ray Tune glue: the trainable, the searchers and scheduler, the driver-side callbacks that
track trials in MLflow and print progress, and the reading of a finished ``ResultGrid``.

The trainable is thin: ``decode(config) -> cost check -> train(spec, report=...)``; each epoch
becomes one ``ray.tune.report`` with a checkpoint (``torch.save`` of the trainer's state), and a
restarted trial resumes from ``ray.tune.get_checkpoint()``. Every report carries the cost
(``params``, ``macs``) and a value for every objective, so multi-objective Optuna gets complete
results even from trials stopped early; the meta keys ``resbench_status`` / ``resbench_message``
/ ``resbench_final`` mark the last report of a trial.

Architectures over the constraints budget never train: the trial reports status ``rejected``
once, with the worst value of each objective (the true value of cost objectives), so Optuna's
sampler learns to avoid that region.

MLflow is written only here on the driver (``TrackingCallback``), and ``bench.tracking`` is
imported lazily so that trial workers never import mlflow.
"""

from __future__ import annotations

import json
import math
import pickle
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback, Checkpoint, CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.stopper import Stopper

from bench.config import flatten, to_dict
from bench.diagnostics import lesion_metrics
from bench.errors import ConfigError, ResbenchError
from bench.moasha import Decision, promoted, rung_levels
from bench.pareto import Point, TieBreak, oriented
from bench.record import TrialRecord
from bench.redaction import redact_uri
from bench.space import (
    COST_METRICS,
    EPOCH_METRICS,
    Axis,
    SearchSpace,
    decode,
    is_measure_only,
    sample_of,
    trial_name,
)

STATUS_KEY = "resbench_status"
MESSAGE_KEY = "resbench_message"
FINAL_KEY = "resbench_final"
PLACEHOLDER_KEY = "resbench_placeholders"  # comma-separated objective keys holding stand-ins
DIAGNOSTICS_KEY = "resbench_diagnostics"  # JSON of TrialRecord.diagnostics (final report only)
NODE_KEY = "resbench_node_id"  # the Ray node the trial runs on (tag resbench.node_id)
ENV_KEY = "resbench_env"  # JSON of TrialRecord.env (what ran: auto resolved, the data's identity)
META_KEYS = (STATUS_KEY, MESSAGE_KEY, FINAL_KEY, PLACEHOLDER_KEY, DIAGNOSTICS_KEY, NODE_KEY,
             ENV_KEY)
TAG_NODE = "resbench.node_id"
DIAGNOSTICS_ARTIFACT = "diagnostics.json"
TRIAL_ARTIFACT = "trial.yaml"  # the trial's spec; python -m launchers.train --config accepts it
# Spec params logged with the value that ran (TrialRecord.env key) instead of the requested one
# (``auto``, ``0`` threads, the arch's default input shape before the data fitted it).
RESOLVED_PARAMS = {
    "train.precision": "precision", "train.channels_last": "channels_last",
    "train.threads": "torch_threads", "train.device": "device_type",
    "arch.in_chans": "in_chans", "arch.input_size": "input_size",
    "arch.num_classes": "num_classes",
}
# Keys Ray adds to every result; not logged as metrics.
RAY_KEYS = frozenset({
    "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "pid", "hostname",
    "node_ip", "date", "done", "trial_id", "experiment_tag", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint", "config",
    "experiment_id", "episodes_total", "timesteps_total", "timesteps_since_restore",
})
PER_EPOCH = frozenset({"epoch", "lr", *EPOCH_METRICS})
# Test metrics of the epochs ``train.test_every`` selects; the last epoch's are final metrics.
TEST_CURVE = frozenset({"test_loss", "test_acc", "test_top5"})
WORST_MAX = -1.0  # accuracies and throughputs are >= 0
WORST_MIN = 1e30
CHECKPOINT_FILE = "state.pt"


# --- the trainable ------------------------------------------------------------------------------


def worst_values(objectives: Mapping[str, str]) -> dict[str, float]:
    """The worst value of every objective (a stand-in where the true one is not known)."""
    return {name: WORST_MAX if mode == "max" else WORST_MIN for name, mode in objectives.items()}


def placeholders(result: Mapping[str, Any]) -> set[str]:
    """The objective keys of a result that hold stand-ins, not measured values."""
    return set(filter(None, str(result.get(PLACEHOLDER_KEY, "")).split(",")))


def _with_objectives(metrics: dict[str, Any], objectives: Mapping[str, str],
                     force_worst: bool = False) -> dict[str, Any]:
    """Fill objectives absent from ``metrics`` (or all but cost ones) with stand-ins."""
    stand_in = [k for k in objectives if k not in metrics or (force_worst and k not in COST_METRICS)]
    if not stand_in:
        return metrics
    worst = worst_values({k: objectives[k] for k in stand_in})
    return {**metrics, **worst, PLACEHOLDER_KEY: ",".join(stand_in)}


def _load_checkpoint(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    """The trainer state in a Ray checkpoint (``bench.trainer.load_checkpoint``: data only)."""
    if checkpoint is None:
        return None
    from bench.trainer import load_checkpoint

    with checkpoint.as_directory() as d:
        try:
            return load_checkpoint(Path(d) / CHECKPOINT_FILE)
        except ConfigError as exc:
            raise ResbenchError(f"{CHECKPOINT_FILE}: {exc.detail}") from None


def diagnostic_metrics(diagnostics: Mapping[str, Any]) -> dict[str, float]:
    """A lesion study flattened to the metric names the report reads: ``lesion/baseline``,
    ``lesion/single/<block>``, ``lesion/random_k_mean/<k>``, ``lesion/random_k_std/<k>``."""
    lesion = diagnostics.get("lesion")
    return lesion_metrics(lesion) if isinstance(lesion, Mapping) else {}


def _diagnostics_result(diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """The keys a final report carries for the diagnostics: flattened lesion metrics and the
    whole dict as JSON (logged as the child's ``diagnostics.json``)."""
    if not diagnostics:
        return {}
    return {**diagnostic_metrics(diagnostics),
            DIAGNOSTICS_KEY: json.dumps(diagnostics, default=str, sort_keys=True)}


def run_trial(config: dict[str, Any], space: SearchSpace) -> None:
    """The Ray Tune function trainable (wrapped by ``trainable``)."""
    import torch

    from bench.models import cost
    from bench.trainer import measure_untrained, train

    spec = decode(space, config)
    objectives = space.search.objectives
    base: dict[str, Any] = {k: float(v) for k, v in cost(spec.arch).as_dict().items()}
    base[NODE_KEY] = ray.get_runtime_context().get_node_id()
    final = {FINAL_KEY: 1}
    if "reference" not in config:
        reason = space.constraints.violation(int(base["params"]), int(base["macs"]))
        if reason:
            tune.report(_with_objectives(
                {**base, "epoch": 0.0, STATUS_KEY: "rejected", MESSAGE_KEY: reason, **final},
                objectives, force_worst=True))
            return
        base.update(_proxy_metrics(spec, space))
    if is_measure_only(space, config):
        from bench.measure import environment
        from bench.trainer import resolve_device

        metrics = measure_untrained(spec)
        env = json.dumps(environment(resolve_device(spec.train.device)), sort_keys=True)
        tune.report(_with_objectives(
            {**metrics, "epoch": 0.0, STATUS_KEY: "completed", MESSAGE_KEY: "", ENV_KEY: env,
             **final}, objectives))
        return

    epochs = spec.train.epochs
    last: list[tuple[dict[str, Any], Callable[[], dict[str, Any]]]] = []

    def send(out: dict[str, Any], state: Callable[[], dict[str, Any]]) -> None:
        with tempfile.TemporaryDirectory(prefix="resbench-ckpt-") as d:
            torch.save(state(), Path(d) / CHECKPOINT_FILE)
            tune.report(_with_objectives(out, objectives),
                        checkpoint=Checkpoint.from_directory(d))

    def report(metrics: dict[str, float], state: Callable[[], dict[str, Any]]) -> None:
        out: dict[str, Any] = {**base, **metrics}
        if int(metrics.get("epoch", 0)) >= epochs:  # the trainer's last report: it completed
            out.update({STATUS_KEY: "completed", MESSAGE_KEY: "", **final})
            last.append((out, state))  # sent once train() returns, with its diagnostics
            return
        send(out, state)

    def started(env: dict[str, str]) -> None:  # every report from here on says what ran
        base[ENV_KEY] = json.dumps(env, sort_keys=True)

    result = train(spec, report=report, resume=_load_checkpoint(tune.get_checkpoint()),
                   started=started)
    if last:
        out, state = last[0]
        send({**out, **_diagnostics_result(result.diagnostics)}, state)
    else:  # diverged / failed, or resumed after the last epoch
        done = result.status == "completed"
        tune.report(_with_objectives(
            {**base, **result.metrics, "epoch": float(len(result.history)),
             STATUS_KEY: result.status, MESSAGE_KEY: result.message, **final,
             **(_diagnostics_result(result.diagnostics) if done else {})},
            objectives, force_worst=not done))


def _proxy_metrics(spec: Any, space: SearchSpace) -> dict[str, float]:
    """The zero-cost proxies of a searched trial's untrained network (``proxy/<name>``); a
    proxy that cannot score this network is left out with a warning, never failing the trial."""
    from bench.proxies import trial_metrics

    try:
        return trial_metrics(spec, space.proxies)
    except Exception as exc:  # noqa: BLE001 - a score is a bonus, the training is the trial
        print(f"warning: zero-cost proxies skipped ({type(exc).__name__}: {exc})", flush=True)
        return {}


def trainable(space: SearchSpace, gpu: float) -> Any:
    """``run_trial`` bound to the space, with per-trial resources."""
    fn = tune.with_parameters(run_trial, space=space)
    return tune.with_resources(fn, {"cpu": space.resources.cpu, "gpu": gpu})


# --- search algorithms and scheduler ----------------------------------------------------------


class OptunaSpace:
    """Define-by-run Optuna space (a picklable callable): conditional axes are suggested only
    when active, so Optuna sees the real tree. ``grid`` axes are rejected at load time."""

    def __init__(self, axes: Sequence[tuple[str, Axis]]) -> None:
        self.axes = list(axes)

    def __call__(self, trial: Any) -> dict[str, Any]:
        sample: dict[str, Any] = {}
        for name, axis in self.axes:
            if not axis.active(sample):
                continue
            kind = axis.kind
            if kind == "choice":
                sample[name] = trial.suggest_categorical(name, list(axis.choice))
            elif kind == "uniform":
                sample[name] = trial.suggest_float(name, *axis.uniform)
            elif kind == "loguniform":
                sample[name] = trial.suggest_float(name, *axis.loguniform, log=True)
            elif kind == "randint":
                sample[name] = trial.suggest_int(name, *axis.randint)
            elif kind == "qrandint":
                low, high, step = axis.qrandint
                sample[name] = trial.suggest_int(name, low, high, step=step)
            else:
                raise ValueError(f"axis {name}: {kind} cannot be sampled by Optuna")
        return {}


def make_searcher(space: SearchSpace, points: list[dict[str, Any]] | None = None) -> Any:
    """OptunaSearch (TPE or NSGA-II; multi-objective when several objectives) for optuna_*;
    ``points`` (sampled axes, e.g. a prescreen's kept configs) are its first trials."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    s = space.search
    if s.algorithm == "optuna_nsga2":
        kwargs = {"population_size": s.population_size} if s.population_size else {}
        from bench.samplers import NSGAIISampler  # picklable (Ray stores the searcher)

        sampler = NSGAIISampler(seed=s.seed, **kwargs)
    else:
        sampler = optuna.samplers.TPESampler(seed=s.seed)
    names, modes = list(s.objectives), list(s.objectives.values())
    # Metric and mode go to the searcher only: TuneConfig(metric=...) would silently turn a
    # multi-objective study into a single-objective one.
    metric = names if len(names) > 1 else names[0]
    mode = modes if len(modes) > 1 else modes[0]
    return OptunaSearch(space=OptunaSpace(space.space.items()), metric=metric, mode=mode,
                        sampler=sampler, points_to_evaluate=points or None)


def make_scheduler(space: SearchSpace) -> Any:
    """ASHA on the primary objective (MO-ASHA on all of them), by epoch. Rungs stop below the
    last epoch (a rung there saves nothing) and ``stop_last_trials=False`` lets each trial send
    its final report."""
    sch = space.scheduler
    if sch.type == "none":
        return FIFOScheduler()
    if sch.type == "mo_asha":  # all objectives (the rules: bench.moasha)
        return MOASHAScheduler(
            space.search.objectives, time_attr="epoch",
            max_t=max(sch.grace_period, space.train.epochs - 1), grace_period=sch.grace_period,
            reduction_factor=sch.reduction_factor, tie_break=sch.tie_break)
    metric, mode = space.search.primary
    return ASHAScheduler(
        time_attr="epoch", metric=metric, mode=mode,
        max_t=max(sch.grace_period, space.train.epochs - 1), grace_period=sch.grace_period,
        reduction_factor=sch.reduction_factor, stop_last_trials=False,
    )


class MOASHAScheduler(FIFOScheduler):
    """MO-ASHA (``bench.moasha``) over ``objectives`` (metric -> "max" | "min"), by the ``time_attr`` epochs."""

    def __init__(self, objectives: Mapping[str, str], *, time_attr: str = "epoch",
                 max_t: int, grace_period: int = 1, reduction_factor: float = 2.0,
                 tie_break: TieBreak = "epsnet") -> None:
        if len(objectives) < 2:
            raise ValueError("MO-ASHA needs two or more objectives; use ASHA for one")
        if grace_period < 1 or max_t < grace_period or reduction_factor <= 1:
            raise ValueError("need 1 <= grace_period <= max_t and reduction_factor > 1")
        super().__init__()
        self.objectives = dict(objectives)
        self._metric = next(iter(self.objectives))  # what Tune checks every result reports
        self.time_attr = time_attr
        self.reduction_factor = reduction_factor
        self.tie_break = tie_break
        self.milestones = rung_levels(grace_period, max_t, reduction_factor)
        self.rungs: dict[float, dict[str, Point]] = {m: {} for m in self.milestones}
        self.decisions: list[Decision] = []

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the objectives come from the space file, never from TuneConfig

    def _point(self, result: Mapping[str, Any]) -> Point | None:
        if any(k not in result for k in self.objectives):
            return None
        point = oriented(result, self.objectives)
        return tuple(-math.inf if math.isnan(v) else v for v in point)  # NaN ranks last

    def _record(self, trial_id: str, result: Mapping[str, Any]) -> str:
        t = result.get(self.time_attr)
        point = self._point(result)
        if t is None or point is None:
            return TrialScheduler.CONTINUE
        reached = [m for m in self.milestones if float(t) >= m]
        if not reached or trial_id in self.rungs[reached[-1]]:
            return TrialScheduler.CONTINUE
        milestone = reached[-1]
        recorded = self.rungs[milestone]
        recorded[trial_id] = point
        keep = promoted(recorded, trial_id, self.reduction_factor, self.tie_break)
        action = TrialScheduler.CONTINUE if keep else TrialScheduler.STOP
        self.decisions.append(Decision(trial_id, milestone, len(recorded), action))
        return action

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._record(trial.trial_id, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if result:
            self._record(trial.trial_id, result)

    def debug_string(self) -> str:
        stopped = sum(d.action == TrialScheduler.STOP for d in self.decisions)
        rungs = " | ".join(f"epoch {m:g}: {len(r)} trials" for m, r in self.rungs.items())
        return f"Using MO-ASHA ({self.tie_break}): {stopped} stopped; {rungs}"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))



# --- trial outcome helpers (shared by the callbacks and the summary) ----------------------------


# The cause recorded for a trial that ended without its final report where no scheduler
# stops trials (e.g. its checkpoint could not be written to the storage).
NO_FINAL_REPORT = ("the trial ended without its final report and no scheduler stops trials in "
                   "this sweep: its process or the storage (checkpoints, results) failed")


def status_of(result: Mapping[str, Any] | None, errored: bool, early_stopping: bool = True
              ) -> str:
    """A trial's resbench status from its last result: without a final report it was stopped
    by the scheduler when there is one (``early_stopping``), else it failed."""
    if errored:
        return "failed"
    if not result:
        return "interrupted"
    return str(result.get(STATUS_KEY) or ("stopped" if early_stopping else "failed"))


def early_stopping(space: SearchSpace) -> bool:
    return space.scheduler.type != "none"


def numeric_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Every number of a result but Ray's keys, resbench's own and objective stand-ins."""
    skip = set(RAY_KEYS) | set(META_KEYS)
    skip |= placeholders(result)
    out = {}
    for key, value in result.items():
        if key in skip or isinstance(value, (str, bytes, dict, list, tuple)) or value is None:
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def epoch_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Per-epoch keys of a result (history: loss, accuracy, lr, grad norms, and test metrics of
    an epoch before the last: the final report's go with the final metrics, logged once)."""
    final = STATUS_KEY in result
    return {k: v for k, v in numeric_metrics(result).items()
            if k in PER_EPOCH or k.startswith("grad_norm/") or (k in TEST_CURVE and not final)}


def final_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Keys known once per trial (cost, test accuracy, throughput, latency, times); the test
    metrics of a result that is not the final report were logged with its epoch already."""
    final = STATUS_KEY in result
    return {k: v for k, v in numeric_metrics(result).items()
            if k not in PER_EPOCH and not k.startswith("grad_norm/")
            and (final or k not in TEST_CURVE)}


def trial_kind(config: Mapping[str, Any]) -> str:
    return "reference" if "reference" in config else "search"


def trial_params(space: SearchSpace, config: Mapping[str, Any], spec: Any) -> dict[str, Any]:
    """MLflow params of a trial: the flattened spec plus the sampled axes as ``sample.*``."""
    params = flatten(to_dict(spec))
    if "trial" in config:
        params["trial"] = trial_name(space, config)
    elif "reference" not in config:
        params.update({f"sample.{k}": v for k, v in sample_of(config).items()})
    return params


def ran_env(result: Mapping[str, Any]) -> dict[str, str]:
    """The ``TrialRecord.env`` a trial's report carries ({} before the trainer started)."""
    try:
        env = json.loads(str(result.get(ENV_KEY) or "{}"))
    except ValueError:
        return {}
    return env if isinstance(env, dict) else {}


def resolved_params(env: Mapping[str, str]) -> dict[str, str]:
    """The ``RESOLVED_PARAMS`` keys with the values that ran."""
    return {key: env[name] for key, name in RESOLVED_PARAMS.items() if name in env}


def trial_yaml(spec: Any) -> str:
    """A trial's spec as the YAML ``launchers.train --config`` reads; the cache folder is left
    for the launcher to fill (it is the driver machine's)."""
    import yaml

    data = to_dict(spec)
    data["data"] = {**data["data"], "cache_dir": None}
    return yaml.safe_dump(data, sort_keys=False)


# --- driver-side callbacks -------------------------------------------------------------------------


# Tracking URIs with credentials seen by this driver, by their redacted form: a target
# unpickled from Ray's tuner.pkl (which only ever holds the redacted URI) gets its credentials
# back from the URI the resuming driver was given, never from a file.
_CREDENTIALED: dict[str, str] = {}


@dataclass
class TrackingTarget:
    """Where a sweep's runs go (picklable: lives in Ray's tuner.pkl for restores; pickled
    without the URI's credentials)."""

    uri: str
    experiment: str
    artifact_location: str | None
    parent_id: str
    sweep_id: str
    smoke: bool = False  # a --smoke sweep: its children carry resbench.smoke=true too

    @property
    def tags(self) -> dict[str, str]:
        """Tags every child run of the sweep carries."""
        return {"resbench.smoke": str(bool(self.smoke)).lower()}

    def __post_init__(self) -> None:
        shown = redact_uri(self.uri)
        if shown != self.uri:
            _CREDENTIALED[shown] = self.uri

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "uri": redact_uri(self.uri)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "uri": _CREDENTIALED.get(state["uri"], state["uri"])})


def error_text(trial: Any) -> str:
    """The traceback Ray stored for a failed trial (last line first), or ''."""
    path = getattr(trial, "error_file", None)
    text = ""
    if path and Path(path).is_file():
        text = Path(path).read_text(errors="replace").strip()
    if not text:
        text = str(getattr(trial, "error_msg", "") or "")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return f"{lines[-1]}\n\n{text}" if lines else ""


class TrackingCallback(Callback):
    """Logs each trial as a nested MLflow run from the driver (one SQLite writer), batched: one
    ``log_batch`` per result. Runs are found by their ``resbench.trial_id`` tag before one is
    created, so a restored sweep never duplicates a run or an epoch."""

    def __init__(self, target: TrackingTarget, space: SearchSpace, tracker: Any = None) -> None:
        self.target = target
        self.space = space
        self._tracker: Any = tracker  # None: opened on first use (in the process Ray runs it)
        self._runs: dict[str, list] = {}  # trial id -> [run id, epochs logged, env logged]
        self._nodes: dict[str, str] = {}  # trial id -> node id tagged
        # trial id -> epoch -> (its metrics, when first reported): what a failed write left
        # unlogged, sent again (same timestamp, so a write the store did take is not doubled)
        # before anything newer
        self._pending: dict[str, dict[int, tuple[dict[str, float], int]]] = {}
        self.warned = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_tracker=None, _runs={}, _nodes={}, _pending={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_nodes": {}, "_pending": {}, **state})

    def logged(self) -> dict[str, set[int]]:
        """trial id -> the epochs this callback knows its run holds (what the store had when
        the run was opened, plus every write since that succeeded)."""
        return {trial: set(entry[1]) for trial, entry in self._runs.items()}

    @property
    def tracker(self) -> Any:
        if self._tracker is None:
            from bench.tracking import Tracker

            t = self.target
            self._tracker = Tracker(t.uri, t.experiment, t.artifact_location)
        return self._tracker

    def _guard(self, fn: Callable[[], None]) -> None:
        # Tracking must not abort a sweep; the end-of-sweep reconcile repairs what is missing.
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            if not self.warned:
                print(f"warning: MLflow tracking failed ({type(exc).__name__}: {exc}); "
                      "the runs are repaired from Ray's results at the end", flush=True)
                self.warned = True
            self._tracker = None

    def run_for(self, trial_id: str, config: Mapping[str, Any], path: str = "") -> list:
        entry = self._runs.get(trial_id)
        if entry is None:
            spec = decode(self.space, config)
            tags = {"resbench.kind": trial_kind(config), "resbench.label": spec.arch.label,
                    "resbench.sweep_id": self.target.sweep_id, **self.target.tags}
            if path:
                tags["resbench.trial_path"] = path
            params = trial_params(self.space, config, spec)
            run_id, last = self.tracker.trial_run(
                self.target.parent_id, trial_id, spec.name or spec.arch.label,
                {k: v for k, v in params.items() if k not in RESOLVED_PARAMS}, tags)
            self.tracker.log_text(run_id, trial_yaml(spec), TRIAL_ARTIFACT)
            entry = self._runs[trial_id] = [run_id, set(last), False]
        return entry

    def log_ran(self, entry: list, result: Mapping[str, Any]) -> None:
        """Once per run: the params of what ran and the dataset input, from the env a report
        carries (params already there, e.g. from before a restore, are kept)."""
        env = ran_env(result)
        if entry[2] or not env:
            return
        self.tracker.log_missing_params(entry[0], resolved_params(env))
        if env.get("data_digest"):
            self.tracker.log_dataset(
                entry[0], env.get("data_name", ""), env["data_digest"], env.get("data_source", ""),
                {k.removeprefix("data_"): v for k, v in env.items() if k.startswith("data_")
                 and k not in ("data_name", "data_digest", "data_source")}
                | {"shape": f"{env.get('in_chans')}x{env.get('input_size')}x"
                            f"{env.get('input_size')}", "classes": env.get("num_classes", "")})
        entry[2] = True

    def log_result(self, trial_id: str, config: Mapping[str, Any], result: Mapping[str, Any]
                   ) -> None:
        step = int(result.get("epoch", 0) or 0)
        pending = self._pending.setdefault(trial_id, {})
        if step > 0 and step not in pending:  # queued first: a failure below cannot lose it
            pending[step] = (epoch_metrics(result), int(time.time() * 1000))
        entry = self.run_for(trial_id, config)
        for epoch in sorted(pending):  # oldest first, each epoch once
            if epoch not in entry[1]:
                metrics, stamp = pending[epoch]
                self.tracker.log_metrics(entry[0], metrics, step=epoch, timestamp_ms=stamp)
                entry[1].add(epoch)
            del pending[epoch]
        node = result.get(NODE_KEY)
        if node and self._nodes.get(trial_id) != node:  # where it runs (a retry may move it)
            self.tracker.log_tags(entry[0], {TAG_NODE: str(node)})
            self._nodes[trial_id] = str(node)
        self.log_ran(entry, result)

    def finish(self, trial_id: str, config: Mapping[str, Any], result: Mapping[str, Any] | None,
               status: str, error: str = "") -> None:
        result = result or {}
        if result.get("epoch") or result.get(NODE_KEY):
            self.log_result(trial_id, config, result)
        entry = self.run_for(trial_id, config)
        self.log_ran(entry, result)
        if not entry[2]:  # it never trained (or ran before the env was reported): as requested
            params = trial_params(self.space, config, decode(self.space, config))
            self.tracker.log_missing_params(
                entry[0], {k: params[k] for k in RESOLVED_PARAMS if k in params})
        if result.get(DIAGNOSTICS_KEY):
            self.tracker.log_text(entry[0], str(result[DIAGNOSTICS_KEY]), DIAGNOSTICS_ARTIFACT)
        message = error or str(result.get(MESSAGE_KEY, "") or "")
        self.tracker.end_trial(entry[0], status, final_metrics(result),
                               step=int(result.get("epoch", 0) or 0), error=message)
        if error and "\n" in error:
            self.tracker.log_text(entry[0], error, "error.txt")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guard(lambda: self.run_for(trial.trial_id, trial.config, trial.path or ""))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        self._guard(lambda: self.log_result(trial.trial_id, trial.config, result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result
        status = status_of(result, False, early_stopping(self.space))
        error = NO_FINAL_REPORT if result and STATUS_KEY not in result and status == "failed" \
            else ""
        self._guard(lambda: self.finish(trial.trial_id, trial.config, result, status, error))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guard(lambda: self.finish(trial.trial_id, trial.config, trial.last_result,
                                        "failed", error_text(trial) or "trial crashed"))


class ProgressCallback(Callback):
    """A compact live view: one line per finished trial and, every ``interval_s``, a table of
    trial states, running trials and the best value so far."""

    def __init__(self, space: SearchSpace, title: str, interval_s: float = 15.0,
                 total: int = 0) -> None:
        self.space = space
        self.title = title
        self.total = total  # trials the job runs when known up front (grid, random, references)
        self.interval_s = interval_s
        self._last = 0.0
        self._labels: dict[str, str] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._best: tuple[float, str] | None = None
        self._done = 0
        self._start = 0.0  # monotonic time of the first step this driver saw
        self._started: dict[str, float] = {}  # trial id -> when it started

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_last=0.0, _labels={}, _latest={}, _best=None, _done=0, _start=0.0,
                     _started={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_start": 0.0, "_started": {}, "total": 0, **state})

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started[trial.trial_id] = time.monotonic()

    def _decoded(self, trial: Any) -> tuple[str, int]:
        """(label, epochs) of a trial: its own (a listed trial or an epochs axis may differ
        from the file's train.epochs)."""
        if trial.trial_id not in self._labels:
            try:
                spec = decode(self.space, trial.config)
                self._labels[trial.trial_id] = (spec.arch.label, spec.train.epochs)
            except Exception:  # noqa: BLE001 - display only
                self._labels[trial.trial_id] = (trial.trial_id, self.space.train.epochs)
        return self._labels[trial.trial_id]

    def _label(self, trial: Any) -> str:
        return self._decoded(trial)[0]

    def _epochs(self, trial: Any) -> int:
        return max(1, self._decoded(trial)[1])

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        self._latest[trial.trial_id] = result
        metric, mode = self.space.search.primary
        value = result.get(metric)
        if value is None or metric in placeholders(result) or result.get(STATUS_KEY) == "rejected":
            return
        value = float(value)
        if not math.isfinite(value):
            return
        better = self._best is None or (value > self._best[0] if mode == "max"
                                        else value < self._best[0])
        if better:
            self._best = (value, self._label(trial))

    def _line(self, trial: Any, status: str, trials: list | None = None) -> None:
        self._done += 1
        result = trial.last_result or {}
        parts = [f"[{self.title}] {trial.trial_id} {self._label(trial)}: {status}"]
        if result.get("epoch"):
            parts.append(f"epoch {int(result['epoch'])}")
        stand_ins = placeholders(result)
        for key in self.space.search.objectives:
            if key in result and key not in stand_ins:
                parts.append(f"{key} {fmt(result[key])}")
        if result.get(MESSAGE_KEY):
            parts.append(f"({result[MESSAGE_KEY]})")
        if trials and self._start:
            # Tune marks the trial finished after this call: count it as such.
            done = [t if t is not trial else _Finished(t) for t in trials]
            parts.append(f"| {self.timing(done)}")
        print("  ".join(parts), flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, status_of(trial.last_result, False, early_stopping(self.space)), trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "failed: " + (error_text(trial).splitlines() or ["?"])[0], trials)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if not self._start:
            self._start = now
        if now - self._last < self.interval_s:
            return
        if self._last == 0.0:
            self._last = now
            return
        self._last = now
        self.print_table(trials)

    def print_table(self, trials: list) -> None:
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        metric, _ = self.space.search.primary
        state = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        best = f"best {metric} {fmt(self._best[0])} ({self._best[1]})" if self._best else "best: -"
        lines = [f"[{self.title}] {len(trials)} trials: {state}; {best}",
                 f"[{self.title}] {self.timing(trials)}"]
        now = time.monotonic()
        for t in trials:
            if t.status != "RUNNING":
                continue
            r = self._latest.get(t.trial_id, {})
            since = self._started.get(t.trial_id)
            wait = f" {duration(now - since)}" if since else ""
            # Before its first report a trial loads its data and trains its first epoch: the
            # time since it started covers both, so the row says so rather than "loading".
            epoch = (f"epoch {int(r['epoch'])}/{self._epochs(t)}" if r.get("epoch")
                     else f"first epoch{wait}")
            shown = metric in r and metric not in placeholders(r)  # a stand-in is not a value
            value = f"{metric} {fmt(r[metric])}" if shown else ""
            lines.append(f"    running {t.trial_id} {self._label(t):32s} {epoch:14s} {value}")
        print("\n".join(lines), flush=True)


    def expected_trials(self, trials: list) -> int:
        """Trials this job will run: the searcher's sample count, else those Tune created."""
        s = self.space.search
        known = self.total or (s.samples if self.title == "search" and s.is_optuna else 0)
        return max(len(trials), known)

    def timing(self, trials: list, now: float | None = None) -> str:
        """Elapsed time, finished trials and their rate, and the ETA from the epochs done: a
        finished trial counts whole (early stopping removes the rest of its work), a running one
        by its epochs; so the ETA is an upper bound under ASHA."""
        now = time.monotonic() if now is None else now
        elapsed = now - self._start if self._start else 0.0
        total = self.expected_trials(trials)
        finished = sum(1 for t in trials if t.status in ("TERMINATED", "ERROR"))
        work = finished + sum(  # a running trial by the share of its own epochs done
            min(1.0, int(self._latest.get(t.trial_id, {}).get("epoch", 0) or 0) / self._epochs(t))
            for t in trials if t.status == "RUNNING")
        rate = f"{60.0 * finished / elapsed:.2g}/min" if finished and elapsed > 0 else "-/min"
        eta = duration(elapsed * (total - work) / work) if work and elapsed > 0 else "-"
        return (f"elapsed {duration(elapsed)}, {finished}/{self.expected_trials(trials)} trials "
                f"done ({rate}), ETA {eta}")


@dataclass
class _Finished:
    """A trial seen as finished (for the timing of the line that announces it)."""

    trial: Any
    status: str = "TERMINATED"

    @property
    def trial_id(self) -> str:
        return str(self.trial.trial_id)


def duration(seconds: float) -> str:
    from bench.estimate import duration as shown

    return shown(seconds)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            from bench.space import human

            return human(value) if abs(value) >= 1e5 else f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


# --- replaying recorded trials (bench.replay) ----------------------------------------------------


def _replay_trainable(config: dict[str, Any], table: Any) -> None:
    """A replayed trial: the reports the recorded table holds for its configuration."""
    for report in table.reports(config):
        tune.report(report)


class _EpochBudget(Stopper):
    """Ends the experiment once the trials have reported ``limit`` epochs in all; keeps the
    results in order (trial id, epoch, val_acc) for the accounting and the trace."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.last: dict[str, int] = {}
        self.log: list[tuple[str, int, float]] = []

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        epoch = int(result.get("epoch", 0) or 0)
        self.used += max(0, epoch - self.last.get(trial_id, 0))
        self.last[trial_id] = max(epoch, self.last.get(trial_id, 0))
        self.log.append((trial_id, epoch, float(result.get("val_acc", math.nan))))
        return False

    def stop_all(self) -> bool:
        return self.used >= self.limit


@dataclass(frozen=True)
class Replayed:
    """What one replay experiment reported: the epochs it consumed, every result in order
    (trial id, epoch, val_acc), and each trial's last epoch and config (from the results)."""

    used: int
    log: list[tuple[str, int, float]]
    last: dict[str, int]
    configs: dict[str, dict[str, Any]]


def run_replay(table: Any, space: SearchSpace, configs: list[dict[str, Any]] | None,
               budget: int, storage: str, name: str) -> Replayed:
    """One replay experiment on the running Ray: the real searcher (Optuna when ``configs`` is
    None, else a grid over them) and scheduler of ``space`` decide which recorded trials
    (``table.reports``) go on, one at a time, until ``budget`` epochs are consumed."""
    stopper = _EpochBudget(budget)
    fn = tune.with_resources(tune.with_parameters(_replay_trainable, table=table), {"cpu": 1})
    if configs is None:  # Optuna proposes
        tc = TuneConfig(search_alg=make_searcher(space), scheduler=make_scheduler(space),
                        num_samples=space.search.samples, max_concurrent_trials=1,
                        reuse_actors=True)
        param_space: dict[str, Any] = {}
    else:
        tc = TuneConfig(scheduler=make_scheduler(space) if space.scheduler.type != "none"
                        else FIFOScheduler(), num_samples=1, max_concurrent_trials=1,
                        reuse_actors=True)
        param_space = {"sample": tune.grid_search([c["sample"] for c in configs])}
    rc = RunConfig(name=name, storage_path=storage, stop=stopper, verbose=0, callbacks=[])
    grid = tune.Tuner(fn, param_space=param_space, tune_config=tc, run_config=rc).fit()
    last: dict[str, int] = {}
    found: dict[str, dict[str, Any]] = {}
    for res in grid:
        m = res.metrics or {}
        last[str(m.get("trial_id"))] = int(m.get("epoch", 0) or 0)
        found[str(m.get("trial_id"))] = res.config
    return Replayed(stopper.used, list(stopper.log), last, found)


# --- Ray session, tuner construction and results ---------------------------------------------------


def init_ray(address: str | None, temp_dir: str | None, log_to_driver: bool) -> None:
    """Start (or join) Ray: no dashboard; a local session keeps its files under ``temp_dir``."""
    import logging

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=log_to_driver,
                                  logging_level=logging.WARNING, configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(_temp_dir=temp_dir, **kwargs)


def ray_initialized() -> bool:
    """Whether this process has joined a Ray session (a caller's is joined, not shut down)."""
    return ray.is_initialized()


def alive_nodes() -> int:
    """How many nodes of the joined Ray cluster are alive."""
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def max_node_resources() -> tuple[float, float]:
    """(CPUs, GPUs) of the largest alive nodes: a trial cannot span nodes."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    return (max((float(r.get("CPU", 0.0)) for r in nodes), default=0.0),
            max((float(r.get("GPU", 0.0)) for r in nodes), default=0.0))


# Checkpoints a trial keeps. Ray's own pruning (CheckpointConfig.num_to_keep) deletes an old
# checkpoint as soon as a new one is registered, while the experiment snapshot that --resume
# restores from is written every few seconds and copied to the storage asynchronously: a
# Ctrl-C could leave a snapshot naming a checkpoint already deleted, and that trial could not
# resume ("does not exist on storage anymore"; seen with sub-second epochs and two kept). So
# resbench prunes: the newest KEEP_CHECKPOINTS stay, an older one goes once it has been
# superseded for CHECKPOINT_GRACE_S (no snapshot is that old), and at the end of a sweep every
# trial's folder is cut down to its newest KEEP_CHECKPOINTS.
KEEP_CHECKPOINTS = 2
CHECKPOINT_GRACE_S = 60.0


class CheckpointPruner(Callback):
    """Deletes superseded checkpoints on the storage (see ``KEEP_CHECKPOINTS``)."""

    def __init__(self, keep: int = KEEP_CHECKPOINTS, grace_s: float = CHECKPOINT_GRACE_S) -> None:
        self.keep, self.grace_s = keep, grace_s
        # trial id -> [superseded at (monotonic) or None, filesystem, path], oldest first
        self._saved: dict[str, list[list[Any]]] = {}

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: the settings only
        return {"keep": self.keep, "grace_s": self.grace_s, "_saved": {}}

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        now = time.monotonic()
        saved = self._saved.setdefault(str(trial.trial_id), [])
        if saved and saved[-1][0] is None:
            saved[-1][0] = now
        saved.append([None, checkpoint.filesystem, checkpoint.path])
        for entry in list(saved[:-self.keep]):
            if entry[0] is not None and now - entry[0] >= self.grace_s:
                _delete_dir(entry[1], entry[2])
                saved.remove(entry)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        from pyarrow import fs as pafs

        for trial in trials:
            latest = trial.checkpoint
            if latest is None:
                continue
            folder = str(Path(latest.path).parent)
            try:
                found = latest.filesystem.get_file_info(pafs.FileSelector(folder))
            except Exception:  # noqa: BLE001 - the folder may be gone; nothing to prune
                continue
            names = sorted(i.path for i in found if i.type == pafs.FileType.Directory
                           and Path(i.path).name.startswith("checkpoint_"))
            for path in names[:-self.keep]:
                _delete_dir(latest.filesystem, path)
        self._saved.clear()


def _delete_dir(filesystem: Any, path: str) -> None:
    try:
        filesystem.delete_dir(path)
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a checkpoint left behind costs disk, not the sweep
        print(f"warning: could not delete the superseded checkpoint {path}: {exc}", flush=True)


def make_tuner(space: SearchSpace, kind: str, configs: list[dict[str, Any]] | None,
               storage_path: str, name: str, callbacks: list, gpu: float,
               points: list[dict[str, Any]] | None = None) -> tune.Tuner:
    """A Tuner for the search (``configs`` None: Optuna proposes, ``points`` first) or the
    references."""
    s = space.search
    if kind == "search" and configs is None:
        param_space: dict[str, Any] = {}
        tune_config = TuneConfig(search_alg=make_searcher(space, points),
                                 scheduler=make_scheduler(space),
                                 num_samples=s.samples, reuse_actors=True,
                                 max_concurrent_trials=s.max_concurrent or None,
                                 trial_name_creator=_trial_name,
                                 trial_dirname_creator=_trial_name)
    else:
        # one key per kind of config: "sample" (searched), "trial" (listed), "reference"
        key = next(iter(configs[0])) if configs else ("sample" if kind == "search" else "reference")
        param_space = {key: tune.grid_search([c[key] for c in configs or []])}
        scheduler = make_scheduler(space) if kind == "search" else FIFOScheduler()
        tune_config = TuneConfig(scheduler=scheduler, num_samples=1, reuse_actors=True,
                                 max_concurrent_trials=s.max_concurrent or None,
                                 trial_name_creator=_trial_name,
                                 trial_dirname_creator=_trial_name)
    run_config = RunConfig(
        name=name, storage_path=storage_path,
        callbacks=[*callbacks, CheckpointPruner(), JsonLoggerCallback(), CSVLoggerCallback()],
        failure_config=FailureConfig(max_failures=s.max_failures),
        # Ray keeps every checkpoint; CheckpointPruner deletes them once no snapshot can name
        # them (Ray's num_to_keep deletes them too early for --resume).
        checkpoint_config=CheckpointConfig(num_to_keep=None), verbose=0,
    )
    return tune.Tuner(trainable(space, gpu), param_space=param_space, tune_config=tune_config,
                      run_config=run_config)


def restore_tuner(path: str, space: SearchSpace, gpu: float) -> tune.Tuner:
    return tune.Tuner.restore(path, trainable(space, gpu), resume_unfinished=True,
                              resume_errored=True)


def can_restore(path: str) -> bool:
    return tune.Tuner.can_restore(path)


def _trial_name(trial: Any) -> str:
    return str(trial.trial_id)


def outcomes(results: Any, space: SearchSpace) -> list[TrialRecord]:
    """The trials of a ResultGrid as records: status, last result, per-epoch history, and
    what a study's results JSON holds of each (spec, diagnostics, environment, wall time)."""
    out = []
    for res in results:
        metrics = dict(res.metrics or {})
        config = dict(res.config or metrics.get("config") or {})
        trial_id = str(metrics.get("trial_id") or Path(res.path).name)
        errored = res.error is not None
        error = ""
        if errored:
            lines = [ln for ln in str(res.error).splitlines() if ln.strip()]
            error = f"{lines[-1]}\n\n{res.error}" if lines else "trial crashed"
        try:
            decoded = decode(space, config)
            spec, label = to_dict(decoded), decoded.arch.label
        except Exception:  # noqa: BLE001 - display only
            spec, label = {}, trial_id
        history = []
        df = res.metrics_dataframe
        if df is not None and "epoch" in df:
            for row in df.to_dict("records"):
                if row.get("epoch"):
                    history.append(epoch_metrics(row))
        status = status_of(metrics, errored, early_stopping(space))
        if status == "failed" and not errored and STATUS_KEY not in metrics:
            error = NO_FINAL_REPORT
        try:
            diagnostics = json.loads(str(metrics.get(DIAGNOSTICS_KEY) or "{}"))
        except ValueError:
            diagnostics = {}
        out.append(TrialRecord(
            trial_id, trial_kind(config), config, label, status, metrics, error, str(res.path),
            history, res.checkpoint, role=trial_name(space, config) or "", spec=spec,
            diagnostics=diagnostics if isinstance(diagnostics, dict) else {},
            env=ran_env(metrics), wall_time_s=float(metrics.get("time_total_s") or 0.0),
            measure_only=is_measure_only(space, config)))
    return out


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


__all__ = [
    "OptunaSpace",
    "ProgressCallback",
    "TrackingCallback",
    "TrackingTarget",
    "TrialRecord",
    "alive_nodes",
    "can_restore",
    "diagnostic_metrics",
    "cluster_gpus",
    "init_ray",
    "make_scheduler",
    "make_searcher",
    "make_tuner",
    "outcomes",
    "restore_tuner",
    "run_trial",
    "shutdown",
    "status_of",
]
