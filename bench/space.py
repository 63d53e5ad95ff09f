"""The search-space YAML format: frozen dataclasses, loading with file-and-key-path errors, the
JSON Schema, trial enumeration (grid / random), decoding a sampled config into a ``TrialSpec``,
the constraint check and the ``--smoke`` shrink.

A sampled config is a flat mapping ``axis name -> value``. Bare axis names are architecture
parameters (``bench.models.arch_from_params`` keys: ``depth``, ``block``, ``skip``, ...); dotted
names set a field of another section (``train.lr``, ``dataset.augment``, ``measure.batch_size``).
An axis with ``when`` is active only when the named earlier axes hold the given value(s); an
inactive axis is absent from the config, so the section default applies. ``param`` lets an axis
set a parameter under another name, so conditional sub-spaces can each have their own ``depth``.

No Ray, no MLflow, no torch here: the driver and the trial workers both use this module, and
parsing a file imports only the spec layer (``bench.spec``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from bench.config import (
    Bool,
    Float,
    Int,
    Str,
    apply_overrides,
    doc,
    json_schema,
    load_yaml,
    parse,
    shown,
    spec_class,
    to_dict,
)
from bench.errors import ConfigError, did_you_mean, unknown
from bench.plugins import import_plugins
from bench.spec import trial as _trial
from bench.spec.arch import ArchSpec
from bench.spec.params import arch_from_params, arch_schema, check_key, check_value, param_keys
from bench.spec.parts import DATASETS
from bench.spec.trial import (
    DataSpec,
    DiagnosticsSpec,
    MeasureSpec,
    Prescreen,
    ProxySpec,
    TrainSpec,
    TrialSpec,
)

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint", "qrandint")
# Dotted axis prefixes -> TrialSpec section. ``dataset`` is the YAML key, ``data`` the spec field.
SECTIONS = {"train": "train", "dataset": "data", "data": "data", "measure": "measure",
            "diagnostics": "diagnostics"}

# Metric names the trial engine reports (bench.spec.trial); objectives must be one of these.
EPOCH_METRICS = tuple(k for k in _trial.EPOCH_METRICS if k not in ("epoch", "lr") and "<" not in k)
COST_METRICS = tuple(_trial.COST_METRICS)
FINAL_METRICS = tuple(k for k in _trial.FINAL_METRICS
                      if k not in _trial.COST_METRICS and k != "measure_batch_size"
                      and not k.endswith("_images"))  # sizes, never objectives
OBJECTIVE_METRICS = EPOCH_METRICS + COST_METRICS + FINAL_METRICS

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SCI_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")  # YAML 1.1 reads 1e-3 as a string
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MAX_ENUMERATED = 10_000
# Bounds on values that pass the rules but could never run: a sweep of more trials, a seed
# NumPy rejects, a name longer than file systems allow in a path part (with the sweep id's
# timestamp suffix), more image passes per trial than weeks of training.
MAX_TRIALS = _MAX_ENUMERATED
MAX_SEED = 2**32 - 1
MAX_NAME = 100
MAX_IMAGE_PASSES = 10**9  # train.epochs x training images of one trial
SMOKE_TRAIN, SMOKE_TEST = 128, 64  # --smoke: images used (the dataset needs at least these)
SMOKE_SIZE = 32  # --smoke: largest reference input side


# --- the format -------------------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    if isinstance(value, str) and _SCI_RE.match(value):
        return float(value)
    return value


@spec_class
class Axis:
    """One search axis: exactly one distribution key, optionally a ``when`` condition."""

    choice: tuple[Any, ...] | None = doc(
        "categorical values: sampled (random, optuna) or all enumerated (grid)", default=None)
    grid: tuple[Any, ...] | None = doc(
        "values that are all run, for grid and random search (random: grid x num_samples)",
        default=None)
    uniform: tuple[Float, ...] | None = doc("[low, high]: a float drawn uniformly", default=None)
    loguniform: tuple[Float, ...] | None = doc("[low, high]: a float drawn log-uniformly",
                                               default=None)
    randint: tuple[Int, ...] | None = doc("[low, high]: an integer, both ends inclusive",
                                          default=None)
    qrandint: tuple[Int, ...] | None = doc(
        "[low, high, step]: an integer low + k*step, both ends inclusive", default=None)
    when: dict[str, Any] | None = doc(
        "active only when each named (earlier) axis has this value or one of these values",
        default=None)
    param: Str | None = doc(
        "the parameter this axis sets (default: the axis name); lets two conditional axes "
        "set one parameter, e.g. resnet_depth and densenet_depth both set depth", default=None)

    def __post_init__(self) -> None:
        given = [k for k in DISTRIBUTIONS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"needs exactly one distribution key, got {given or 'none'}; "
                f"valid: {', '.join(DISTRIBUTIONS)}"
            )
        kind = given[0]
        values = getattr(self, kind)
        if kind in ("choice", "grid"):
            if not values:
                raise ConfigError("needs at least one value", kind)
            values = tuple(_scalar(v) for v in values)
            for i, v in enumerate(values):
                if not isinstance(v, (bool, int, float, str, type(None))):
                    raise ConfigError(
                        f"values must be scalars (number, string, bool, null), got {shown(v)}",
                        f"{kind}[{i}]")
            object.__setattr__(self, kind, values)
            return
        want = 3 if kind == "qrandint" else 2
        if len(values) != want:
            shape = "[low, high, step]" if want == 3 else "[low, high]"
            raise ConfigError(f"expected {shape}, got {shown(list(values))}", kind)
        low, high = values[0], values[1]
        if kind in ("uniform", "loguniform") and not all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
            raise ConfigError(f"bounds must be finite numbers, got {shown(list(values))}", kind)
        if not low < high:
            raise ConfigError(f"low must be below high, got {list(values)}", kind)
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"low must be > 0 for a log scale, got {low}", kind)
        if kind == "qrandint":
            step = values[2]
            if step < 1 or (high - low) % step:
                raise ConfigError(
                    f"step must be >= 1 and divide high - low, got {list(values)}", kind)

    def target(self, name: str) -> str:
        return self.param or name

    def as_choice(self) -> Axis:
        """A ``grid`` axis as the ``choice`` of the same values (to be sampled, not fanned out);
        any other axis unchanged."""
        return dataclasses.replace(self, choice=self.grid, grid=None) if self.kind == "grid" \
            else self

    @property
    def kind(self) -> str:
        return next(k for k in DISTRIBUTIONS if getattr(self, k) is not None)

    @property
    def values(self) -> tuple[Any, ...] | None:
        """Every value for finite axes (choice, grid, randint, qrandint), else None."""
        kind = self.kind
        if kind in ("choice", "grid"):
            return getattr(self, kind)
        if kind == "randint":
            low, high = self.randint
            return tuple(range(low, high + 1)) if high - low < 1000 else None
        if kind == "qrandint":
            low, high, step = self.qrandint
            return tuple(range(low, high + 1, step)) if (high - low) // step < 1000 else None
        return None

    def bounds(self) -> tuple[Any, ...]:
        """The values shown for a continuous axis in a dry run: its two ends."""
        finite = self.values
        return finite if finite is not None else tuple(getattr(self, self.kind)[:2])

    def sample(self, rng: random.Random) -> Any:
        kind = self.kind
        if kind in ("choice", "grid"):
            return rng.choice(getattr(self, kind))
        if kind == "uniform":
            return rng.uniform(*self.uniform)
        if kind == "loguniform":
            low, high = self.loguniform
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        if kind == "randint":
            return rng.randint(*self.randint)
        low, high, step = self.qrandint
        return low + step * rng.randint(0, (high - low) // step)

    def active(self, sample: Mapping[str, Any]) -> bool:
        for name, want in (self.when or {}).items():
            if name not in sample:
                return False
            allowed = want if isinstance(want, (list, tuple)) else [want]
            if sample[name] not in allowed:
                return False
        return True


@spec_class
class Reference:
    """A timm model run alongside the search: trained with the same recipe, or only measured."""

    model: Str = doc("timm model name, e.g. resnet18 or densenet121")
    train: Bool = doc("true: trained with the space's recipe; false: measurement only",
                      default=True)
    input_size: Int | None = doc(
        "measurement-only: input side in pixels (default: the dataset's; a trained reference "
        "always takes the dataset's)", default=None)
    num_classes: Int | None = doc(
        "measurement-only: classifier outputs (default: the dataset's)", default=None)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("must name a timm model", "model")
        for key in ("input_size", "num_classes"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"must be a positive integer, got {value}", key)


@spec_class
class ListedTrial:
    """One trial named in the file's ``trials`` list: explicit configurations run as they are
    (a study's trials), each over the file's sections."""

    name: Str = doc("the trial's name: letters, digits, '.', '_', '-' (unique in the list)")
    arch: dict[str, Any] = doc("architecture parameters over the file's arch",
                               default_factory=dict)
    train: dict[str, Any] = doc("train fields over the file's train", default_factory=dict)
    dataset: dict[str, Any] = doc("dataset fields over the file's dataset", default_factory=dict)
    measure: dict[str, Any] = doc("measure fields over the file's measure", default_factory=dict)
    diagnostics: dict[str, Any] = doc("diagnostics fields over the file's diagnostics",
                                      default_factory=dict)
    measure_only: Bool = doc("built and measured (params, MACs, throughput), never trained",
                             default=False)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name or ""):
            raise ConfigError(f"invalid name {shown(self.name)}; use letters, digits, '.', '_' "
                              "and '-'", "name")
        if len(self.name) > MAX_NAME:
            raise ConfigError(f"has {len(self.name)} characters; the limit is {MAX_NAME}", "name")


@spec_class
class Search:
    """How configurations are proposed and what is optimised."""

    algorithm: Literal["grid", "random", "optuna_tpe", "optuna_nsga2"] = doc(
        "grid: every combination; random: seeded draws; optuna_*: Optuna samplers", default="grid")
    objectives: dict[str, Literal["max", "min"]] = doc(
        "metric -> max|min; the first is primary (ASHA, top table); several = multi-objective",
        default_factory=lambda: {"val_acc": "max"})
    num_samples: Int | None = doc(
        "trials proposed (random: draws per grid combination; default 8); not for grid",
        default=None)
    max_concurrent: Int = doc("trials running at once; 0 = as many as resources allow",
                              default=0)
    seed: Int = doc("seed of the random draws and the Optuna sampler", default=0)
    max_failures: Int = doc("retries of a crashed trial (from its last checkpoint)", default=0)
    population_size: Int | None = doc("optuna_nsga2: population size (default Optuna's 50)",
                                      default=None)
    prescreen: Prescreen | None = doc(
        "score a pool of untrained networks with a zero-cost proxy and train only the best "
        "(grid / random: exactly keep trials; Optuna: the best enqueued first)", default=None)
    repeats: Int = doc(
        "grid / random: train each sampled configuration with this many seeds (train.seed, "
        "train.seed + 1, ...); the summary shows mean +- std over them", default=1)

    def __post_init__(self) -> None:
        if not 1 <= self.repeats <= MAX_REPEATS:
            raise ConfigError(f"must be in 1..{MAX_REPEATS}, got {self.repeats}", "repeats")
        if self.repeats > 1 and self.algorithm.startswith("optuna"):
            raise ConfigError(
                "repeats needs algorithm grid or random (Optuna proposes each trial from the "
                "results so far, one seed each)", "repeats")
        if not self.objectives:
            raise ConfigError("needs at least one objective, e.g. {val_acc: max}", "objectives")
        for name in self.objectives:
            if name not in OBJECTIVE_METRICS:
                raise unknown("objective metric", name, OBJECTIVE_METRICS).at(f"objectives.{name}")
        if self.algorithm == "grid" and self.num_samples is not None:
            raise ConfigError(
                "grid runs every combination once; remove num_samples or use algorithm random",
                "num_samples")
        if self.num_samples is not None and not 1 <= self.num_samples <= MAX_TRIALS:
            raise ConfigError(f"must be in 1..{MAX_TRIALS:,}, got {self.num_samples}",
                              "num_samples")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"must be in 0..{MAX_SEED} (2^32 - 1: what NumPy and Optuna's "
                              f"samplers accept), got {self.seed}", "seed")
        if self.max_concurrent < 0 or self.max_failures < 0:
            raise ConfigError("max_concurrent and max_failures must be >= 0", "max_concurrent")
        if self.population_size is not None and self.algorithm != "optuna_nsga2":
            raise ConfigError("only applies to algorithm optuna_nsga2", "population_size")
        if self.population_size is not None and self.population_size < 2:
            raise ConfigError(f"must be >= 2, got {self.population_size}", "population_size")
        p = self.prescreen
        if p is not None and self.algorithm == "random" and self.num_samples is not None:
            raise ConfigError(
                f"with prescreen, random search trains the best prescreen.keep ({p.keep}) of "
                f"prescreen.pool ({p.pool}) draws; remove num_samples", "num_samples")
        if p is not None and self.is_optuna and self.samples < p.keep:
            raise ConfigError(
                f"{self.samples} trials cannot hold the {p.keep} enqueued by prescreen.keep; "
                f"valid: num_samples >= {p.keep}", "num_samples")

    @property
    def samples(self) -> int:
        return self.num_samples or (1 if self.algorithm == "grid" else 8)

    @property
    def primary(self) -> tuple[str, str]:
        name = next(iter(self.objectives))
        return name, self.objectives[name]

    @property
    def is_optuna(self) -> bool:
        return self.algorithm.startswith("optuna")


@spec_class
class Scheduler:
    """Early stopping of weak trials (asynchronous successive halving)."""

    type: Literal["none", "asha", "mo_asha"] = doc(
        "none: every trial trains fully; asha: ASHA on the primary objective; mo_asha: "
        "multi-objective ASHA on all objectives (Schmucker et al. 2021)", default="none")
    grace_period: Int = doc("asha / mo_asha: epochs every trial trains before it can be stopped",
                            default=1)
    reduction_factor: Float = doc("asha / mo_asha: keep the best 1/factor at each rung",
                                  default=2.0)
    tie_break: Literal["epsnet", "crowding"] = doc(
        "mo_asha: order inside a non-dominated front: epsnet (greedy epsilon-net, the paper's "
        "default) or crowding (NSGA-II crowding distance)", default="epsnet")

    def __post_init__(self) -> None:
        if self.grace_period < 1:
            raise ConfigError(f"must be >= 1, got {self.grace_period}", "grace_period")
        if self.reduction_factor <= 1:
            raise ConfigError(f"must be > 1, got {self.reduction_factor}", "reduction_factor")


@spec_class
class Resources:
    """What one trial reserves; fractional GPUs let several small trials share one GPU."""

    cpu: Float = doc("CPU cores per trial", default=1.0)
    gpu: Float = doc("GPUs per trial (0.25 = four trials per GPU); ignored without GPUs",
                     default=0.0)

    def __post_init__(self) -> None:
        if self.cpu <= 0:
            raise ConfigError(f"must be > 0, got {self.cpu}", "cpu")
        if self.gpu < 0 or (self.gpu > 1 and not float(self.gpu).is_integer()):
            raise ConfigError(f"must be a fraction in [0, 1] or a whole number, got {self.gpu}",
                              "gpu")


def parse_count(value: int | str | None, path: str) -> int | None:
    """``40M`` / ``1.5G`` / ``250000`` -> an integer (None stays None)."""
    if value is None or isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)\s*", str(value))
    if not m:
        raise ConfigError(f"expected a count like 250000, 40M or 1.5G, got {value!r}", path)
    return int(float(m.group(1)) * _SUFFIX[m.group(2).upper()])


@spec_class
class Constraints:
    """A budget: architectures over it are rejected before any training (and counted)."""

    max_params: Int | Str | None = doc("most parameters, e.g. 1.7M", default=None)
    max_macs: Int | Str | None = doc("most multiply-accumulates per image, e.g. 300M",
                                     default=None)

    def __post_init__(self) -> None:
        for key in ("max_params", "max_macs"):
            value = parse_count(getattr(self, key), key)
            if value is not None and value < 1:
                raise ConfigError(f"must be positive, got {value}", key)
            object.__setattr__(self, key, value)

    def violation(self, params: int, macs: int) -> str:
        """'' when within budget, else the reason."""
        reasons = []
        if self.max_params is not None and params > self.max_params:
            reasons.append(f"params {human(params)} > max_params {human(self.max_params)}")
        if self.max_macs is not None and macs > self.max_macs:
            reasons.append(f"macs {human(macs)} > max_macs {human(self.max_macs)}")
        return "; ".join(reasons)


@spec_class
class Tracking:
    """Where the MLflow runs go (the launcher's --tracking-uri / MLFLOW_TRACKING_URI win)."""

    experiment: Str | None = doc("MLflow experiment name (default: the space's name)",
                                 default=None)
    uri: Str | None = doc("tracking URI (default: sqlite store under the repo's mlflow/)",
                          default=None)


@spec_class
class SearchSpace:
    """A search-space file: fixed recipe, searched axes, search algorithm and budget."""

    name: Str = doc("sweep name: letters, digits, '.', '_', '-' (Ray and MLflow use it)")
    description: Str = doc("one paragraph: what the sweep shows", default="")
    dataset: DataSpec = doc("dataset name, or a mapping of data fields",
                            default_factory=DataSpec)
    train: TrainSpec = doc("training recipe shared by all trials", default_factory=TrainSpec)
    arch: dict[str, Any] = doc(
        "fixed architecture parameters (bench.spec.params: the keys of the family's model), "
        "under the sampled ones",
        default_factory=dict)
    measure: MeasureSpec = doc("throughput / latency measurement", default_factory=MeasureSpec)
    diagnostics: DiagnosticsSpec = doc("gradient norms / lesion study",
                                       default_factory=DiagnosticsSpec)
    space: dict[str, Axis] = doc(
        "searched axes: bare names are architecture parameters, dotted names set a field "
        "(train.lr, dataset.augment)", default_factory=dict)
    references: tuple[Reference, ...] = doc("timm models run alongside the search", default=())
    trials: tuple[ListedTrial, ...] = doc(
        "explicit trials, each run once as listed (instead of searched axes): a name and the "
        "sections it changes", default=())
    search: Search = doc("algorithm, objectives, sample count", default_factory=Search)
    scheduler: Scheduler = doc("early stopping", default_factory=Scheduler)
    proxies: ProxySpec = doc("zero-cost proxies logged by every searched trial (proxy/<name>)",
                             default_factory=ProxySpec)
    resources: Resources = doc("per-trial CPUs and GPUs", default_factory=Resources)
    constraints: Constraints = doc("params / MACs budget", default_factory=Constraints)
    tracking: Tracking = doc("MLflow experiment and URI", default_factory=Tracking)
    plugins: tuple[Str, ...] = doc(
        "Python modules imported before the file is validated and in every trial worker "
        "(dotted names on the workers' sys.path), e.g. to register_block / register_dataset "
        "custom entries", default=())

    def __post_init__(self) -> None:
        import_plugins(self.plugins)
        if not _NAME_RE.match(self.name):
            raise ConfigError(
                f"invalid name {shown(self.name)}; use letters, digits, '.', '_' and '-'", "name")
        experiment = self.tracking.experiment
        for key, value in (("name", self.name), ("tracking.experiment", experiment)):
            if value is not None and len(value) > MAX_NAME:
                raise ConfigError(f"{shown(value)} has {len(value)} characters; the limit is "
                                  f"{MAX_NAME} (it names folders and runs)", key)
        if experiment is not None and not experiment.strip():
            raise ConfigError("must not be empty", "tracking.experiment")
        _check_axes(self)
        _check_reachable(self)
        _check_search(self)
        _check_arch_keys(self)
        _check_trials(self)

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    def is_arch_axis(self, name: str) -> bool:
        return "." not in self.space[name].target(name)


def _check_arch_keys(space: SearchSpace) -> None:
    """The ``arch`` keys and the architecture axes against the architecture model (its keys and
    value types); rules between parameters (depth conventions) are checked at decode."""
    for key, value in space.arch.items():
        check_key(str(key), f"arch.{key}")
        if value is not None:
            check_value(str(key), value, f"arch.{key}")
    for name, axis in space.space.items():
        target = axis.target(name)
        if "." in target:
            continue
        check_key(target, f"space.{name}" + (".param" if axis.param else ""))
        for j, value in enumerate(axis.values or ()):
            if value is not None:
                check_value(target, value, f"space.{name}.{axis.kind}[{j}]")


def _check_trials(space: SearchSpace) -> None:
    """Listed trials: unique names, architecture keys of the model, sections by name; the
    searched axes and the listed trials are two ways to say which trials run, never both."""
    if not space.trials:
        return
    if space.space:
        raise ConfigError("a file lists its trials or searches axes, not both; move the axes' "
                          "values into the trials or drop the list", "trials")
    s = space.search
    for key, bad in (("algorithm", s.algorithm != "grid"), ("repeats", s.repeats != 1),
                     ("prescreen", s.prescreen is not None)):
        if bad:
            raise ConfigError("listed trials run once each, as listed: leave search."
                              f"{key} at its default", f"search.{key}")
    seen: set[str] = set()
    for i, trial in enumerate(space.trials):
        if trial.name in seen:
            raise ConfigError(f"duplicate trial name {trial.name!r}; names must be unique",
                              f"trials[{i}].name")
        seen.add(trial.name)
        for key, value in trial.arch.items():
            check_key(str(key), f"trials[{i}].arch.{key}")
            if value is not None:
                check_value(str(key), value, f"trials[{i}].arch.{key}")


def _check_axes(space: SearchSpace) -> None:
    names = list(space.space)
    for i, (name, axis) in enumerate(space.space.items()):
        target = axis.target(name)
        if "." in target:
            section, _, fld = target.partition(".")
            if section not in SECTIONS:
                valid = [*SECTIONS, "<arch parameter>"]
                raise ConfigError(
                    f"unknown section {section!r}{did_you_mean(section, SECTIONS)}; "
                    f"valid: {', '.join(valid)}", f"space.{name}")
            cls = type(getattr(space, "dataset" if SECTIONS[section] == "data" else section))
            fields = [f.name for f in dataclasses.fields(cls)]
            top = fld.split(".")[0]
            if top not in fields:
                raise ConfigError(
                    f"unknown {section} field {top!r}{did_you_mean(top, fields)}; "
                    f"valid: {', '.join(sorted(fields))}", f"space.{name}")
        for dep, want in (axis.when or {}).items():
            path = f"space.{name}.when.{dep}"
            if dep not in names[:i]:
                earlier = names[:i]
                hint = did_you_mean(dep, names)
                raise ConfigError(
                    f"refers to {dep!r}{hint}, which is not an earlier axis; valid: "
                    f"{', '.join(earlier) if earlier else '(none: this is the first axis)'}", path)
            values = space.space[dep].values
            wanted = want if isinstance(want, (list, tuple)) else [want]
            for w in wanted:
                if values is not None and _scalar(w) not in values:
                    raise ConfigError(
                        f"{w!r} is not a value of axis {dep!r}{did_you_mean(str(w), map(str, values))}; "
                        f"valid: {', '.join(repr(v) for v in values)}", path)


def _check_reachable(space: SearchSpace, limit: int = 20_000) -> None:
    """Every conditional axis must be active for some combination of the earlier axes (its
    ``when`` conditions must not contradict each other or the other axes' conditions)."""
    conditional = [n for n, a in space.space.items() if a.when]
    if not conditional:
        return
    bounded = [(n, dataclasses.replace(a, choice=a.bounds(), **_cleared(a)))
               for n, a in space.space.items()]
    seen: set[str] = set()
    for count, sample in enumerate(_walk(bounded, {}, ("choice",), None)):
        seen.update(sample)
        if count >= limit or seen.issuperset(conditional):
            return
    for name in conditional:
        if name not in seen:
            when = ", ".join(f"{k}={v!r}" for k, v in space.space[name].when.items())
            raise ConfigError(
                f"is never active: no combination of the earlier axes has {when} (the "
                "conditions contradict each other or the conditions of the axes they name); "
                "fix the when values or remove the axis", f"space.{name}.when")


def _check_search(space: SearchSpace) -> None:
    search, axes = space.search, space.space
    if search.algorithm == "grid":
        for name, axis in axes.items():
            if axis.kind not in ("choice", "grid"):
                raise ConfigError(
                    f"algorithm grid needs finite axes (choice or grid), got {axis.kind}; "
                    "use algorithm random or optuna_tpe for continuous axes", f"space.{name}")
    if search.is_optuna:
        for name, axis in axes.items():
            if axis.kind == "grid":
                raise ConfigError(
                    "Optuna samplers cannot enumerate a grid; use choice (sampled) or "
                    "algorithm grid / random", f"space.{name}.grid")
        if not axes:
            raise ConfigError("Optuna needs at least one axis in space; for a fixed set of "
                              "models use algorithm grid", "search.algorithm")
    if search.algorithm == "optuna_nsga2" and len(search.objectives) < 2:
        raise ConfigError("optuna_nsga2 is multi-objective: give two or more objectives, "
                          "e.g. {val_acc: max, macs: min}", "search.objectives")
    primary, _ = search.primary
    if primary in FINAL_METRICS and (space.scheduler.type == "asha" or (
            search.is_optuna and len(search.objectives) == 1)):
        raise ConfigError(
            f"{primary!r} is only known after training, but the primary objective is compared "
            f"every epoch here; put a per-epoch metric first ({', '.join(EPOCH_METRICS[:6])})",
            f"search.objectives.{primary}")
    _check_mo_asha(space)
    if search.repeats > 1 and any(a.target(n) == REPEAT_KEY for n, a in axes.items()):
        raise ConfigError(f"search.repeats sets {REPEAT_KEY} itself; remove the axis that "
                          "samples it (or set repeats: 1)", "search.repeats")
    if space.scheduler.type != "none" and space.scheduler.grace_period >= space.train.epochs:
        raise ConfigError(
            f"grace_period {space.scheduler.grace_period} must be below train.epochs "
            f"({space.train.epochs}) or nothing can be stopped", "scheduler.grace_period")


def _check_mo_asha(space: SearchSpace) -> None:
    """MO-ASHA ranks on every objective at every rung: it needs several, each known by then."""
    if space.scheduler.type != "mo_asha":
        return
    objectives = space.search.objectives
    if len(objectives) < 2:
        raise ConfigError(
            f"mo_asha ranks trials on several objectives, but search.objectives has one "
            f"({next(iter(objectives))}); use type asha for a single objective, or add a cost "
            "objective, e.g. {val_acc: max, macs: min}", "scheduler.type")
    for name in objectives:
        if name in FINAL_METRICS:
            raise ConfigError(
                f"{name!r} is only known after training, but mo_asha compares every objective "
                f"at each rung; valid: per-epoch metrics ({', '.join(EPOCH_METRICS[:6])}) and "
                f"cost metrics ({', '.join(COST_METRICS)})", f"search.objectives.{name}")


# --- loading ----------------------------------------------------------------------------------


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The file's top-level mapping, read within the limits of ``load_yaml``; syntax errors
    give line and column."""
    data = load_yaml(path, "search-space file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}",
                          source=str(path))
    return data


def normalize(data: Mapping[str, Any]) -> dict[str, Any]:
    """Expand the shorthands: ``dataset: digits`` and ``references: [resnet18, ...]``."""
    out = dict(data)
    if isinstance(out.get("dataset"), str):
        out["dataset"] = {"name": out["dataset"]}
    refs = out.get("references")
    if isinstance(refs, list):
        out["references"] = [{"model": r} if isinstance(r, str) else r for r in refs]
    return out


def from_dict(data: Mapping[str, Any], source: str = "") -> SearchSpace:
    """Parse and fully validate (every enumerable config is decoded once)."""
    plugins = data.get("plugins") if isinstance(data, Mapping) else None
    if isinstance(plugins, (list, tuple)):
        try:
            import_plugins(plugins)
        except ConfigError as exc:
            raise exc.at(source=source) from None
    space = parse(SearchSpace, normalize(data), source=source)
    try:
        validate_decoding(space)
    except ConfigError as exc:
        raise (exc.at(source=source) if source and not exc.source else exc) from None
    return space


def load_space(path: str | Path, overrides: Sequence[str] = (), smoke: bool = False,
               unset: Sequence[str] = (), plugins: Sequence[str] = ()) -> SearchSpace:
    """Read, remove keys (``unset``), override (``key.path=value``), validate and optionally
    shrink a space file; ``plugins`` (``--plugin``) join the file's ``plugins`` (its trial
    workers import them too)."""
    from bench.config import remove_keys

    data = read_yaml(path)
    try:
        data = remove_keys(data, unset)
    except ConfigError as exc:
        raise exc.at(source=f"{path} (--unset)") from None
    try:
        data = apply_overrides(data, overrides)
    except ConfigError as exc:
        raise exc.at(source=f"{path} (--set)") from None
    if plugins:
        import_plugins(plugins, "--plugin")
        listed = data.get("plugins") if isinstance(data.get("plugins"), list) else []
        data = {**data, "plugins": [*listed, *(p for p in plugins if p not in listed)]}
    space = from_dict(data, source=str(path))
    return shrink(space) if smoke else space


def space_hash(space: SearchSpace) -> str:
    """Stable short hash of the resolved space (after overrides and --smoke)."""
    blob = json.dumps(to_dict(space), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def space_schema() -> dict[str, Any]:
    """JSON Schema of the file format (``--schema``), with the shorthands and one-of rules."""
    schema = json_schema(SearchSpace)
    defs = schema["$defs"]
    defs["Axis"]["oneOf"] = [{"required": [k]} for k in DISTRIBUTIONS]
    props = defs["SearchSpace"]["properties"]
    props["dataset"] = {"anyOf": [{"type": "string"}, props["dataset"]],
                        "description": props["dataset"].get("description", "")}
    refs = props["references"]
    refs["items"] = {"anyOf": [{"type": "string"}, refs["items"]]}
    # The architecture parameters: the families' models of the spec layer (bench.spec.params).
    arch = arch_schema()
    defs.update(arch.pop("$defs", {}))
    props["arch"] = {**arch, "description": props["arch"].get("description", "")}
    defs["Axis"]["properties"]["param"] = {
        "anyOf": [{"enum": list(param_keys())}, {"type": "string", "pattern": r"\."},
                  {"type": "null"}],
        "description": defs["Axis"]["properties"]["param"].get("description", "")}
    schema["title"] = "resbench search space"
    return schema


# --- enumeration --------------------------------------------------------------------------------


def _walk(axes: list[tuple[str, Axis]], sample: dict[str, Any], branch: Iterable[str],
          rng: random.Random | None) -> Iterator[dict[str, Any]]:
    """Depth-first over the axes in file order; kinds in ``branch`` fan out, others are drawn."""
    if not axes:
        yield dict(sample)
        return
    (name, axis), rest = axes[0], axes[1:]
    if not axis.active(sample):
        yield from _walk(rest, sample, branch, rng)
        return
    if axis.kind in branch:
        for value in axis.values or ():
            sample[name] = value
            yield from _walk(rest, sample, branch, rng)
        sample.pop(name, None)
        return
    assert rng is not None
    sample[name] = axis.sample(rng)
    yield from _walk(rest, sample, branch, rng)
    sample.pop(name, None)


def draw(axes: Sequence[tuple[str, Axis]], rng: random.Random) -> dict[str, Any]:
    """One sampled config: every active axis drawn (``grid`` axes only through ``as_choice``)."""
    return next(_walk(list(axes), {}, (), rng))


def enumerate_samples(space: SearchSpace) -> list[dict[str, Any]]:
    """The exact sampled configs of a grid or random search, in run order."""
    axes = list(space.space.items())
    if space.search.algorithm == "grid":
        out = list(itertools.islice(_walk(axes, {}, ("choice", "grid"), None), _MAX_ENUMERATED + 1))
    elif space.search.algorithm == "random":
        rng = random.Random(space.search.seed)
        out = []
        for _ in range(space.search.samples):
            out += list(itertools.islice(_walk(axes, {}, ("grid",), rng), _MAX_ENUMERATED + 1))
    else:
        raise ValueError("Optuna proposes its configs while it runs; see architectures()")
    if len(out) > _MAX_ENUMERATED:
        raise ConfigError(f"more than {_MAX_ENUMERATED} trials; shrink the grid", "space")
    return out


def architectures(space: SearchSpace, limit: int = 200) -> tuple[list[dict[str, Any]], bool]:
    """Distinct architecture-parameter combinations a search can reach (continuous axes at their
    two ends), for dry runs; the flag says the list was cut at ``limit``."""
    axes = [(n, a) for n, a in space.space.items() if space.is_arch_axis(n)]
    bounded = [(n, dataclasses.replace(a, choice=a.bounds(), **_cleared(a))) for n, a in axes]
    seen: dict[str, dict[str, Any]] = {}
    for sample in _walk(bounded, {}, ("choice",), None):
        seen.setdefault(json.dumps(sample, sort_keys=True, default=str), sample)
        if len(seen) > limit:
            break
    out = list(seen.values())
    return out[:limit], len(out) > limit


def _cleared(axis: Axis) -> dict[str, Any]:
    return {k: None for k in DISTRIBUTIONS if k != "choice" and getattr(axis, k) is not None}


# --- decoding -----------------------------------------------------------------------------------


def dataset_shape(data: DataSpec) -> tuple[int, int, int] | None:
    """(num_classes, channels, image side) known without loading (the dataset's registered
    definition), or None (image folders)."""
    return DATASETS.get(data.name, "dataset.name").image_shape(data)


def sample_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The axis values of a Ray trial config (grid/random nest them under ``sample``)."""
    inner = config.get("sample", config)
    return {k: v for k, v in inner.items() if k not in ("sample", "reference", "trial")}


def _set_path(section: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = section
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def decode(space: SearchSpace, config: Mapping[str, Any]) -> TrialSpec:
    """A Ray trial config (sampled axes, or ``{"reference": i}``) -> the full ``TrialSpec``."""
    import_plugins(space.plugins)  # a trial worker unpickles the space without importing them
    sections = {"data": to_dict(space.dataset), "train": to_dict(space.train),
                "measure": to_dict(space.measure), "diagnostics": to_dict(space.diagnostics)}
    shape = dataset_shape(space.dataset)
    base: dict[str, Any] = {}
    if shape is not None:
        base = {"num_classes": shape[0], "in_chans": shape[1], "input_size": shape[2]}
    where = {"data": "dataset", "train": "train", "measure": "measure",
             "diagnostics": "diagnostics"}
    if "trial" in config:
        index = int(config["trial"])
        listed = space.trials[index]
        for key, yaml_key in where.items():
            sections[key] = _merged(sections[key], getattr(listed, yaml_key))
            where[key] = f"trials[{index}].{yaml_key}"
        try:  # the trial's own dataset sets the defaults of its architecture
            shape = dataset_shape(parse(DataSpec, sections["data"], where["data"]))
        except ConfigError:
            shape = None  # reported by the section's parse below
        base = {} if shape is None else {"num_classes": shape[0], "in_chans": shape[1],
                                         "input_size": shape[2]}
        arch = _arch({**base, **space.arch, **listed.arch}, f"trials[{index}].arch")
        name = listed.name
    elif "reference" in config:
        ref = reference_of(space, config)
        params = {"family": "timm", "timm_model": ref.model, **base}
        if ref.input_size is not None:
            params["input_size"] = ref.input_size
        if ref.num_classes is not None:
            params["num_classes"] = ref.num_classes
        arch = _arch(params, f"references[{int(config['reference'])}]")
        kind = "reference" if ref.train else "measure-only reference"
        name = f"{arch.label} ({kind})"
    else:
        sample = sample_of(config)
        arch_params = {**base, **space.arch}
        sampled = {}
        for key, value in sample.items():
            target = space.space[key].target(key) if key in space.space else key
            sampled[target] = key
            if "." in target:
                section, _, rest = target.partition(".")
                _set_path(sections[SECTIONS[section]], rest, value)
            else:
                arch_params[target] = value
        arch = _arch(arch_params, "space", sampled)
        name = arch.label
    parts = {}
    for key, cls in (("data", DataSpec), ("train", TrainSpec), ("measure", MeasureSpec),
                     ("diagnostics", DiagnosticsSpec)):
        try:
            parts[key] = parse(cls, sections[key], where[key])
        except ConfigError as exc:
            raise _blame_axis(exc, space, config) from None
    return TrialSpec(arch=arch, data=parts["data"], train=parts["train"],
                     measure=parts["measure"], diagnostics=parts["diagnostics"], name=name)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on ``base``, mappings merged key by key (a listed trial's section changes)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _blame_axis(exc: ConfigError, space: SearchSpace, config: Mapping[str, Any]
                ) -> ConfigError:
    """Re-anchor an error caused by a sampled dotted axis to ``space.<axis>``."""
    if "reference" in config or "trial" in config:
        return exc
    for key, value in sample_of(config).items():
        axis = space.space.get(key)
        target = axis.target(key) if axis else key
        if "." not in target:
            continue
        section, _, rest = target.partition(".")
        path = f"{'dataset' if SECTIONS[section] == 'data' else section}.{rest}"
        if exc.path == path or exc.path.startswith(path + "."):
            return ConfigError(f"{exc.detail} (sampled value {value!r})", f"space.{key}")
    return exc


def _arch(params: Mapping[str, Any], where: str, sampled: Mapping[str, str] | None = None
          ) -> ArchSpec:
    """``arch_from_params`` with the error anchored where the bad value came from: the axis
    that sampled it (``space.<axis>``), the fixed ``arch`` section, or a reference."""
    try:
        return arch_from_params(params)
    except ConfigError as exc:
        top = exc.path.split(".")[0].split("[")[0]
        if where == "space" and top in (sampled or {}):
            path = f"space.{sampled[top]}"
        else:
            where = "arch" if where == "space" else where
            path = f"{where}{'.' + exc.path if exc.path else ''}"
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise ConfigError(f"{exc.detail} (architecture parameters: {shown})", path) from None


def reference_of(space: SearchSpace, config: Mapping[str, Any]) -> Reference:
    return space.references[int(config["reference"])]


def is_measure_only(space: SearchSpace, config: Mapping[str, Any]) -> bool:
    if "trial" in config:
        return space.trials[int(config["trial"])].measure_only
    return "reference" in config and not reference_of(space, config).train


def trial_name(space: SearchSpace, config: Mapping[str, Any]) -> str | None:
    """The name of a listed trial's config (None for searched and reference trials)."""
    return space.trials[int(config["trial"])].name if "trial" in config else None


REPEAT_KEY = "train.seed"  # what search.repeats varies, as a sampled key of each trial
MAX_REPEATS = 100


def search_configs(space: SearchSpace) -> list[dict[str, Any]]:
    """Ray trial configs of a grid / random search: none when the file has neither ``space`` nor
    ``arch`` (a references-only file), one trial when only ``arch`` is given; with
    ``search.repeats`` N, each sample N times with seeds ``train.seed`` + 0..N-1; a file that
    lists its trials, each of them once (``{"trial": index}``)."""
    if space.trials:
        return [{"trial": i} for i in range(len(space.trials))]
    if not space.space and not space.arch:
        return []
    samples = enumerate_samples(space)
    n = space.search.repeats
    if n == 1:
        return [{"sample": s} for s in samples]
    seed = space.train.seed
    return [{"sample": {**s, REPEAT_KEY: seed + k}} for s in samples for k in range(n)]


def reference_configs(space: SearchSpace) -> list[dict[str, Any]]:
    return [{"reference": i} for i in range(len(space.references))]


def validate_decoding(space: SearchSpace) -> None:
    """Decode every enumerable config (arch corners for Optuna) so bad names fail at load."""
    if space.search.is_optuna:
        archs, _ = architectures(space, limit=50)
        probes = [{k: v for k, v in a.items()} for a in archs]
        # dotted axes: their first value (or low end) checks the section field's type
        for name, axis in space.space.items():
            if not space.is_arch_axis(name):
                for probe in probes:
                    probe[name] = axis.bounds()[0]
    else:
        probes = search_configs(space)
    specs = [decode(space, probe if ("trial" in probe or "sample" in probe) else {"sample": probe})
             for probe in probes]
    for i in range(len(space.references)):
        decode(space, {"reference": i})
    for spec in {s.data: s for s in specs}.values():
        _check_dataset_size(spec.data)
    for spec in {(s.data, s.train.epochs): s for s in specs}.values():
        _check_image_passes(spec)
    _check_budget(space, [s.arch for s in specs])


def _splits(data: DataSpec) -> tuple[int, int] | None:
    """(train, test) images of the dataset, from its registered definition, or None."""
    return DATASETS.get(data.name, "dataset.name").resolved(data).splits


def _check_dataset_size(data: DataSpec) -> None:
    """A subset larger than the dataset fails at load time in every trial; say so up front."""
    splits = _splits(data)
    if splits is None:
        return
    n_train, n_test = splits
    for key, n in (("subset", n_train), ("test_subset", n_test)):
        value = getattr(data, key)
        if value is not None and value > n:
            raise ConfigError(f"{value} exceeds the {n} {'training' if key == 'subset' else 'test'} "
                              f"images of {data.name}; valid: 1 to {n} (or null for all)",
                              f"dataset.{key}")


def _check_image_passes(spec: TrialSpec) -> None:
    """epochs x training images of one trial within ``MAX_IMAGE_PASSES`` (where the image
    count is known without loading: a subset, or a built-in dataset's size)."""
    data = spec.data
    splits = _splits(data)
    images = data.subset or (splits[0] if splits else None)
    if images is None:
        return
    epochs = spec.train.epochs
    if epochs * images > MAX_IMAGE_PASSES:
        raise ConfigError(
            f"{epochs:,} epochs x {images:,} training images = {epochs * images:,} image passes "
            f"per trial; the limit is {MAX_IMAGE_PASSES:,}: lower train.epochs or "
            "dataset.subset", "train.epochs")


def _check_budget(space: SearchSpace, archs: Sequence[ArchSpec]) -> None:
    """A budget that no architecture of the space meets would run an empty sweep."""
    c = space.constraints
    if (c.max_params is None and c.max_macs is None) or not archs:
        return
    from bench.spec.costs import arch_counts  # exact counts from the spec, no model built

    smallest: list[int] = []
    distinct = list(dict.fromkeys(archs))
    for arch in distinct:
        counted = arch_counts(arch)
        if not c.violation(*counted):
            return
        smallest = [min(a, b) for a, b in zip(smallest, counted, strict=True)] if smallest \
            else list(counted)
    limits = ", ".join(f"{k} {human(v)}" for k, v in (("max_params", c.max_params),
                                                       ("max_macs", c.max_macs)) if v)
    raise ConfigError(
        f"no architecture of the space meets the budget ({limits}): all {len(distinct)} are "
        f"over it, the smallest has {human(smallest[0])} params and {human(smallest[1])} MACs; "
        "raise the limits or add smaller architectures", "constraints")


# --- smoke ---------------------------------------------------------------------------------------


def shrink(space: SearchSpace) -> SearchSpace:
    """Every trial tiny: one epoch on a small subset, short measurement at a small input, no
    early stopping, at most two draws for random / Optuna; grid and references keep all their
    trials. Axes that set the epochs or the warm-up are pinned to values one epoch allows."""
    data = space.dataset
    data = dataclasses.replace(
        data,
        subset=min(data.subset or SMOKE_TRAIN, SMOKE_TRAIN),
        test_subset=min(data.test_subset or SMOKE_TEST, SMOKE_TEST),
        synthetic_size=min(data.synthetic_size, SMOKE_TRAIN),
    )
    train = dataclasses.replace(space.train, epochs=1, **_smoke_train(space.train))
    pinned = {"train.epochs": 1, "train.warmup_epochs": 0.0}
    axes = {name: (Axis(choice=(pinned[axis.target(name)],), when=axis.when, param=axis.param)
                   if axis.target(name) in pinned else axis)
            for name, axis in space.space.items()}
    search = space.search
    if search.algorithm != "grid":
        pre = search.prescreen
        changes: dict[str, Any] = {}
        if pre is not None:
            changes["prescreen"] = dataclasses.replace(pre, pool=min(pre.pool, 4),
                                                       keep=min(pre.keep, 2))
        if pre is None or search.algorithm != "random":
            changes["num_samples"] = min(search.samples, 2)
        search = dataclasses.replace(search, **changes)
    if search.repeats > 1:  # one seed: the code path, not the spread
        search = dataclasses.replace(search, repeats=1)
    refs = tuple(dataclasses.replace(r, input_size=min(r.input_size or SMOKE_SIZE, SMOKE_SIZE))
                 for r in space.references)
    # listed trials: their own epochs and sizes give way to the smoke ones
    trials = tuple(dataclasses.replace(
        t, train={k: v for k, v in t.train.items() if k not in ("epochs", "warmup_epochs", "compile")},
        dataset={k: (min(v, SMOKE_TRAIN if k == "subset" else SMOKE_TEST)
                     if k in ("subset", "test_subset") and isinstance(v, int) else v)
                 for k, v in t.dataset.items()}) for t in space.trials)
    return dataclasses.replace(
        space, dataset=data, train=train, measure=_smoke_measure(space.measure),
        diagnostics=_smoke_diagnostics(space.diagnostics), space=axes, search=search,
        scheduler=Scheduler(type="none"), references=refs, trials=trials)


def _smoke_train(train: TrainSpec) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if train.warmup_epochs:
        changes["warmup_epochs"] = 0
    if train.compile:
        changes["compile"] = False
    return changes


def _smoke_measure(measure: MeasureSpec) -> MeasureSpec:
    changes = {k: v for k, v in (("warmup", 0), ("iters", 1), ("latency_iters", 2),
                                 ("batch_size", 2)) if getattr(measure, k) > v}
    return dataclasses.replace(measure, **changes)


def _smoke_diagnostics(diag: DiagnosticsSpec) -> DiagnosticsSpec:
    changes: dict[str, Any] = {}
    if diag.lesion_samples > 1:
        changes["lesion_samples"] = 1
    if len(diag.lesion_k) > 1:
        changes["lesion_k"] = diag.lesion_k[:1]
    return dataclasses.replace(diag, **changes)


def human(n: float) -> str:
    """12345678 -> '12.3M'."""
    from bench.text import si

    return si(n, below=".4g" if isinstance(n, float) else "")


__all__ = [
    "Axis",
    "Constraints",
    "Reference",
    "Resources",
    "Scheduler",
    "Search",
    "SearchSpace",
    "Tracking",
    "architectures",
    "decode",
    "draw",
    "enumerate_samples",
    "load_space",
    "reference_configs",
    "search_configs",
    "shrink",
    "space_hash",
    "space_schema",
]
