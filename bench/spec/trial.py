"""The trial schema: the data, training, measurement and diagnostics sections of a trial (and a
space file), the zero-cost proxy sections, ``TrialSpec`` and ``parse_trial`` (what a trial
produces is a ``bench.record.TrialRecord``).

Torch-free frozen specs (``bench.config.spec_class``: dataclasses validated by pydantic) parsed
by ``bench.config.parse`` (every error names the key path, the bad value and what is valid); the
trainer (``bench.trainer``) runs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from bench.config import Bool, Float, Int, Str, doc, parse, spec_class
from bench.errors import ConfigError
from bench.spec.arch import ArchSpec
from bench.spec.parts import DATASETS, PROXIES
from bench.spec.presets import cifar_resnet

MAX_EPOCHS = 100_000  # a bound that no real recipe reaches; more is a typo or an attack
# Bounds of what one process can hold: a larger side or a synthetic set cannot fit in memory.
MAX_IMAGE_SIZE = 2048
MAX_SYNTHETIC_BYTES = 4 << 30


@spec_class
class DataSpec:
    """Which dataset, which part of it, and how batches are augmented."""

    name: Str = doc("dataset: digits | cifar10 | cifar100 | imagefolder | synthetic", default="digits")
    root: Str | None = doc(
        "local copy: folder holding cifar-10-batches-py/ (cifar) or train/ + test/|val/ "
        "(imagefolder); launchers fill it from RESBENCH_DATA when unset",
        default=None,
    )
    subset: Int | None = doc(
        "official-train images used (seeded random pick), validation carve included", default=None
    )
    val_fraction: Float = doc("fraction of the used train images held out as validation", default=0.1)
    test_subset: Int | None = doc("test images used (seeded random pick)", default=None)
    augment: Bool = doc("random crop (with padding) and flip on the training batches", default=True)
    crop_padding: Int = doc("zero padding of the random crop, pixels; 0 = no crop", default=4)
    flip: Bool = doc("random horizontal flip", default=True)
    cutout: Int = doc("cutout square side in pixels; 0 = off", default=0)
    image_size: Int | None = doc("resize to this square size (digits: 32 when unset)", default=None)
    num_classes: Int = doc("synthetic only: number of classes", default=10)
    shape: tuple[Int, ...] = doc("synthetic only: image shape C, H, W", default=(3, 32, 32))
    synthetic_size: Int = doc("synthetic only: training images (test gets a fifth)", default=5000)
    seed: Int = doc("seed of the subset and validation picks (not of training)", default=0)
    cache_dir: Str | None = doc(
        "where downloads and decoded image folders are cached; launchers fill a default",
        default=None,
    )
    download: Bool = doc("cifar: download into root (or cache_dir) when no copy is found", default=False)

    def __post_init__(self) -> None:
        DATASETS.get(self.name, "name")  # ConfigError listing the valid names
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.val_fraction}", "val_fraction")
        for key in ("subset", "test_subset", "image_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"must be a positive integer or null, got {value}", key)
        for key in ("crop_padding", "cutout"):
            if getattr(self, key) < 0:
                raise ConfigError(f"must be >= 0 (0 = off), got {getattr(self, key)}", key)
        for key in ("num_classes", "synthetic_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ConfigError(f"must be [channels, height, width], got {list(self.shape)}", "shape")
        if self.image_size is not None and self.image_size > MAX_IMAGE_SIZE:
            raise ConfigError(f"must be at most {MAX_IMAGE_SIZE} pixels, got {self.image_size}",
                              "image_size")
        side = self.image_size or max(self.shape[1:])
        if self.name == "synthetic" and self.synthetic_size * self.shape[0] * side ** 2 > MAX_SYNTHETIC_BYTES:
            raise ConfigError(
                f"{self.synthetic_size} images of {self.shape[0]}x{side}x{side} bytes exceed "
                f"{MAX_SYNTHETIC_BYTES >> 30} GiB, the limit of a synthetic dataset held in "
                "memory", "synthetic_size")


@spec_class
class TrainSpec:
    """Optimisation and execution settings of one trial."""

    epochs: Int = doc("training epochs", default=10)
    batch_size: Int = doc("training batch size (the last partial batch of an epoch is dropped)", default=128)
    eval_batch_size: Int = doc("batch size of validation / test evaluation", default=1000)
    optimizer: Literal["sgd", "adamw"] = doc("sgd (momentum, optional nesterov) or adamw", default="sgd")
    lr: Float = doc("peak learning rate", default=0.1)
    momentum: Float = doc("SGD momentum", default=0.9)
    nesterov: Bool = doc("SGD Nesterov momentum", default=True)
    betas: tuple[Float, ...] = doc("AdamW betas", default=(0.9, 0.999))
    weight_decay: Float = doc("L2 / decoupled weight decay", default=5e-4)
    decay_bn_bias: Bool = doc("also decay BN parameters and biases (1-d tensors)", default=False)
    label_smoothing: Float = doc("label smoothing of the training loss", default=0.0)
    schedule: Literal["step", "cosine", "onecycle", "constant"] = doc(
        "LR schedule (per step): step (x gamma at milestones), cosine, onecycle (linear up, "
        "linear down to 0), constant",
        default="cosine",
    )
    warmup_epochs: Float = doc("linear warm-up (onecycle: the rising phase, if > 0)", default=0.0)
    milestones: tuple[Float, ...] = doc("step schedule: fractions of training", default=(0.5, 0.75))
    gamma: Float = doc("step schedule: LR factor at each milestone", default=0.1)
    onecycle_peak: Float = doc("onecycle: fraction of training spent rising", default=0.25)
    onecycle_div: Float = doc("onecycle: starting LR = lr / onecycle_div", default=25.0)
    final_lr: Float = doc("cosine / onecycle: final LR as a fraction of lr", default=0.0)
    grad_clip: Float = doc("clip the global gradient norm to this; 0 = off", default=0.0)
    precision: Literal["auto", "fp32", "bf16"] = doc(
        "auto: bf16 on CUDA; on a CPU bf16 only where a measured check finds it faster", default="auto")
    channels_last: Literal["auto"] | Bool = doc(
        "NHWC activations; auto: on (faster with cuDNN and with oneDNN on CPU)", default="auto"
    )
    compile: Bool = doc("torch.compile the model for training", default=False)
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = doc(
        "torch.compile mode (reduce-overhead uses CUDA graphs)", default="default"
    )
    seed: Int = doc("seed of initialisation, shuffling and augmentation", default=0)
    device: Literal["auto", "cpu", "cuda"] = doc("auto: cuda when available", default="auto")
    threads: Int = doc("torch intra-op threads; 0 = leave torch's setting", default=0)
    eval_test: Bool = doc("evaluate the test split at the end (final numbers)", default=True)
    test_every: Int = doc(
        "also evaluate the test split every N epochs, for test-error curves (He et al. Fig. 6); "
        "0 = only at the end. Search still optimises the validation split", default=0)

    def __post_init__(self) -> None:
        # field -> (holds, what is valid): one table, so a rule and its message stay together
        rules: dict[str, tuple[bool, str]] = {
            "epochs": (1 <= self.epochs <= MAX_EPOCHS, f"in 1..{MAX_EPOCHS:,}"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "eval_batch_size": (self.eval_batch_size >= 1, ">= 1"),
            "lr": (self.lr > 0 and math.isfinite(self.lr), "> 0"),
            "momentum": (0 <= self.momentum < 1, "in [0, 1)"),
            "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "label_smoothing": (0 <= self.label_smoothing < 1, "in [0, 1)"),
            "warmup_epochs": (0 <= self.warmup_epochs < self.epochs,
                              f"in [0, epochs={self.epochs})"),
            "gamma": (0 < self.gamma <= 1, "in (0, 1]"),
            "onecycle_peak": (0 < self.onecycle_peak < 1, "in (0, 1)"),
            "onecycle_div": (self.onecycle_div >= 1, ">= 1"),
            "final_lr": (0 <= self.final_lr <= 1, "in [0, 1]"),
            "grad_clip": (self.grad_clip >= 0, ">= 0 (0 = off)"),
            "threads": (self.threads >= 0, ">= 0 (0 = torch's default)"),
            "test_every": (self.test_every >= 0, ">= 0 (0 = test only at the end)"),
            "betas": (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                      "two numbers in [0, 1)"),
            "milestones": (all(0 < m < 1 for m in self.milestones), "fractions in (0, 1)"),
        }
        for key, (ok, rule) in rules.items():
            if not ok:
                raise ConfigError(f"must be {rule}, got {getattr(self, key)!r}", key)


@spec_class
class MeasureSpec:
    """Runtime measurement after training (``bench.measure.benchmark``)."""

    enabled: Bool = doc("measure throughput, latency and memory after training", default=False)
    batch_size: Int = doc("batch size of the throughput runs (halved on out-of-memory)", default=256)
    warmup: Int = doc("untimed iterations before each timed run", default=5)
    iters: Int = doc("timed iterations of each throughput run", default=20)
    latency_iters: Int = doc("timed batch-1 iterations for the latency percentiles", default=50)
    train_step: Bool = doc("also time a full training step (on a copy of the model)", default=True)

    def __post_init__(self) -> None:
        for key in ("batch_size", "iters", "latency_iters"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key)
        if self.warmup < 0:
            raise ConfigError(f"must be >= 0, got {self.warmup}", "warmup")


@spec_class
class DiagnosticsSpec:
    """Gradient-flow and lesion diagnostics (``bench.diagnostics``)."""

    grad_norms: Bool = doc(
        "record grad_norm/<stem|block|head> each epoch (last batch of the epoch, before clipping)",
        default=False,
    )
    lesion: Bool = doc("lesion study after training (Veit et al. 2016)", default=False)
    lesion_k: tuple[Int, ...] = doc("numbers of random blocks deleted together", default=(2, 4, 8))
    lesion_samples: Int = doc("random draws per k", default=5)
    lesion_split: Literal["val", "test"] = doc("split the lesion accuracies are measured on", default="test")

    def __post_init__(self) -> None:
        if self.lesion_samples < 1 or any(k < 1 for k in self.lesion_k):
            raise ConfigError("lesion_samples and every lesion_k must be >= 1", "lesion_k")


def _default_arch() -> ArchSpec:
    return cifar_resnet(20)


@spec_class
class TrialSpec:
    """Everything one trial needs; parse with ``parse_trial`` (or ``bench.config.parse``)."""

    arch: ArchSpec = doc("the model (see bench.models.ArchSpec)", default_factory=_default_arch)
    data: DataSpec = doc("the dataset and augmentation", default_factory=DataSpec)
    train: TrainSpec = doc("optimisation and execution", default_factory=TrainSpec)
    measure: MeasureSpec = doc("runtime measurement", default_factory=MeasureSpec)
    diagnostics: DiagnosticsSpec = doc("gradient flow and lesion study", default_factory=DiagnosticsSpec)
    name: Str = doc("trial name (display)", default="")


def parse_trial(data: Mapping[str, Any] | None, source: str = "") -> TrialSpec:
    """A TrialSpec from plain data; ``arch`` may be the structured form (with ``stages``) or
    the flat sweep form (``depth``, ``block``, ``skip``, ``model``, ...; see
    ``bench.models.arch_from_params``)."""
    data = dict(data or {})
    arch = data.get("arch")
    if isinstance(arch, Mapping) and "stages" not in arch:
        from bench.spec.params import arch_from_params  # lazy: pydantic, for the flat form only

        try:
            data["arch"] = arch_from_params(arch)
        except ConfigError as exc:
            raise exc.at("arch", source) from None
    return parse(TrialSpec, data, source=source)


@spec_class
class ProxySpec:
    """Which proxies every searched trial logs (``proxy/<name>`` metrics) before it trains."""

    enabled: Bool = doc("score each searched trial's untrained network", default=True)
    names: tuple[Str, ...] = doc(
        "proxies to score (default: the seven built-in ones; registered plugins by name)",
        default=("naswot", "synflow", "grad_norm", "snip", "jacob_cov", "params", "macs"))
    batch_size: Int = doc("images of the one minibatch (from the training split)", default=64)
    seed: Int = doc("seed of the weights and of the minibatch draw", default=0)

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError("needs at least one proxy (or enabled: false)", "names")
        for i, name in enumerate(self.names):
            PROXIES.get(name, f"names[{i}]")
        if self.batch_size < 2:
            raise ConfigError(f"must be >= 2 (the kernels compare inputs), got {self.batch_size}",
                              "batch_size")


@spec_class
class Prescreen:
    """``search.prescreen``: draw ``pool`` configurations, score each untrained network with
    ``proxy`` and train only the best ``keep`` (Optuna: enqueue them as its first trials)."""

    proxy: Str = doc("the proxy that ranks the pool (a registered name, e.g. synflow)")
    pool: Int = doc("configurations drawn and scored (grid: a seeded sample of the grid)")
    keep: Int = doc("best-scoring configurations trained (Optuna: enqueued first)")

    def __post_init__(self) -> None:
        PROXIES.get(self.proxy, "proxy")
        if self.pool < 1:
            raise ConfigError(f"must be >= 1, got {self.pool}", "pool")
        if not 1 <= self.keep <= self.pool:
            raise ConfigError(f"must be between 1 and pool ({self.pool}), got {self.keep}", "keep")


# --- what a trial reports ------------------------------------------------------------------------

# Metric names are stable (sweeps, tracking and reports key on them); accuracies in percent. The
# search space's objective lists (``bench.space``) are derived from these.
EPOCH_METRICS = {
    "epoch": "epochs completed (1-based)",
    "lr": "learning rate of the epoch's last step",
    "train_loss": "mean training loss (with label smoothing) over the epoch's batches",
    "train_acc": "top-1 on the augmented training batches, as trained",
    "val_loss": "cross-entropy on the validation split (carved from train; absent if empty)",
    "val_acc": "top-1 on the validation split",
    "val_top5": "top-5 on the validation split",
    "best_val_acc": "best val_acc so far",
    "epoch_time_s": "wall time of the epoch: training and evaluation",
    "train_img_per_s": "training images per second (training loop only, synced at the end)",
    "grad_norm/<group>": "gradient L2 norm of stem / stageS.blockB / head on the epoch's last batch",
}
COST_METRICS = {"params": "parameters", "macs": "multiply-accumulates per image",
                "activations": "conv/linear outputs per image"}
FINAL_METRICS = {
    "test_loss": "cross-entropy on the test split (when train.eval_test; also per epoch, in the "
                 "history, on the epochs train.test_every selects)",
    "test_acc": "top-1 on the test split",
    "test_top5": "top-5 on the test split",
    **COST_METRICS,
    "train_time_s": "training-loop time summed over epochs (no evaluation)",
    "train_images": "images in the training split (after data.subset)",
    "val_images": "images in the validation split",
    "test_images": "images in the test split (after data.test_subset)",
    "wall_time_s": "wall time of the whole train() call",
    "infer_img_per_s": "measure: inference images/s at measure_batch_size",
    "train_step_img_per_s": "measure: training-step images/s",
    "latency_ms_p50": "measure: batch-1 latency, median",
    "latency_ms_p90": "measure: batch-1 latency, 90th percentile",
    "latency_ms_p99": "measure: batch-1 latency, 99th percentile",
    "peak_mem_mb": "measure: peak CUDA memory allocated (CUDA only)",
    "measure_batch_size": "measure: the batch size that ran (halved on out-of-memory)",
}


# Keys that do not change what a trial learns (where and how fast it ran): the report groups
# trials without them (and without every ``*.seed``), a checkpoint resumes across them.
EXECUTION_KEYS = frozenset({
    "name", "train.device", "train.threads", "train.compile", "train.compile_mode",
    "train.eval_test", "train.eval_batch_size", "data.root", "data.cache_dir", "data.download",
})


# --- schedule sanity (a launcher warns before anything runs) ----------------------------------

# Below this many epochs a step schedule's drops come after a handful of epochs: the recipes
# that use it (164-300 epochs) spend tens of epochs at each LR.
SHORT_STEP_EPOCHS = 30
MAX_WARMUP_FRACTION = 0.2


def schedule_warnings(t: TrainSpec) -> list[str]:
    """What a schedule made for long runs does to a short one (e.g. after ``--set
    train.epochs=4``), one message each; [] when the schedule suits the epochs."""
    out = []
    if t.schedule == "step" and t.epochs < SHORT_STEP_EPOCHS and t.milestones:
        at = ", ".join(f"{m:.0%} (after epoch {m * t.epochs:g})" for m in t.milestones)
        out.append(
            f"train.schedule step at {t.epochs} epochs: the LR drops x{t.gamma:g} at {at}, a "
            f"schedule made for long runs; a short run then learns little after the first drop. "
            "Short runs: --set train.schedule=cosine (or onecycle), which decay over any length")
    if t.warmup_epochs and t.warmup_epochs > MAX_WARMUP_FRACTION * t.epochs:
        out.append(
            f"train.warmup_epochs {t.warmup_epochs:g} of {t.epochs} epochs: "
            f"{t.warmup_epochs / t.epochs:.0%} of the run warms up; lower it "
            f"(--set train.warmup_epochs=...) for a short run")
    return out


__all__ = [
    "DataSpec", "DiagnosticsSpec", "MeasureSpec", "Prescreen", "ProxySpec", "TrainSpec",
    "COST_METRICS", "EPOCH_METRICS", "EXECUTION_KEYS", "FINAL_METRICS", "TrialSpec", "parse_trial",
    "schedule_warnings",
]
