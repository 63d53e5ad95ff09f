"""The trial engine: the trial spec (architecture, data, training, measurement, diagnostics) and
``train``, which runs one trial end to end and returns its ``TrialRecord`` (``bench.record``).

Data live on the device as uint8 and are augmented there (``bench.augment``); per-step work is
kept free of host syncs (loss and accuracy sums stay on the device and are read once per epoch).
Runs bf16 autocast on CUDA and, on a CPU, where a measured check finds it faster
(``bench.precision``), channels_last on both (measured faster on CPU too). NaN/inf losses end the trial with status
``diverged`` rather than an exception. Checkpoints go through the per-epoch ``report`` callback,
and a checkpoint passed back as ``resume`` continues the run exactly (bitwise on CPU).
Imports only torch, numpy, PyYAML, torchvision and pydantic (the specs; plus timm for the
models): no Ray or MLflow, so it runs on a bare GPU host (pydantic from the wheels of
``scripts/fetch_wheels.sh`` where it is missing).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.augment import Normalizer, autocast, crop_flip, cutout, evaluate
from bench.config import flatten, to_dict
from bench.data import Splits, load_dataset
from bench.data import identity as data_identity
from bench.diagnostics import grad_groups, gradient_norms, lesion_study
from bench.errors import ConfigError
from bench.measure import benchmark, environment
from bench.models import ArchSpec, build_model, cost
from bench.record import TrialRecord
from bench.spec.trial import (  # noqa: F401 - the trial schema (torch-free), re-exported
    EPOCH_METRICS,
    EXECUTION_KEYS,
    FINAL_METRICS,
    MAX_EPOCHS,
    DataSpec,
    DiagnosticsSpec,
    MeasureSpec,
    TrainSpec,
    TrialSpec,
    parse_trial,
    schedule_warnings,
)

CHECKPOINT_FORMAT = 1
ReportFn = Callable[[dict[str, float], Callable[[], dict[str, Any]]], None]

# --- learning-rate schedule -------------------------------------------------------------------

class LRSchedule:
    """LR factor per optimiser step (for ``LambdaLR``); a plain object so that LambdaLR's
    state_dict carries its settings."""

    def __init__(self, spec: TrainSpec, steps_per_epoch: int) -> None:
        self.kind = spec.schedule
        self.total = max(1, spec.epochs * steps_per_epoch)
        self.warmup = int(round(spec.warmup_epochs * steps_per_epoch))
        self.milestones = tuple(spec.milestones)
        self.gamma = spec.gamma
        self.rise = self.warmup or max(1, int(round(spec.onecycle_peak * self.total)))
        self.start = 1.0 / spec.onecycle_div
        self.final = spec.final_lr

    def __call__(self, step: int) -> float:
        if self.kind == "onecycle":
            if step < self.rise:
                return self.start + (1.0 - self.start) * step / self.rise
            t = (step - self.rise) / max(1, self.total - self.rise)
            return max(self.final, 1.0 - (1.0 - self.final) * t)
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "step":
            return self.gamma ** sum(step >= m * self.total for m in self.milestones)
        if self.kind == "cosine":
            t = (step - self.warmup) / max(1, self.total - self.warmup)
            return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
        return 1.0


# --- setup helpers ----------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("cuda requested but no CUDA device is available; valid here: auto, cpu", "train.device")
    return torch.device(name)


@dataclass(frozen=True)
class Execution:
    """Where and how a trial's model runs: the device, bf16 autocast, channels_last."""

    device: torch.device
    bf16: bool
    channels_last: bool


def execution(t: TrainSpec, cache_dir: str | None = None) -> Execution:
    """The execution a TrainSpec asks for; sets the process's intra-op threads (``threads``) and
    cuDNN autotuning on CUDA. ``precision: auto`` is bf16 on CUDA and, on a CPU, whatever the
    measured check of ``bench.precision`` found faster there (cached in ``cache_dir``);
    channels_last is on by default on both."""
    device = resolve_device(t.device)
    cuda = device.type == "cuda"
    if t.threads:
        torch.set_num_threads(t.threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
    bf16 = t.precision == "bf16"
    if t.precision == "auto":
        if cuda:
            bf16 = True
        elif device.type == "cpu":
            from bench.precision import cpu_bf16

            bf16 = cpu_bf16(cache_dir)
    return Execution(
        device, bf16=bf16,
        channels_last=True if t.channels_last == "auto" else bool(t.channels_last),
    )


def measure_model(model: nn.Module, arch: ArchSpec, ex: Execution, m: MeasureSpec) -> dict[str, float]:
    """``bench.measure.benchmark`` of ``model`` with the arch's input and the trial's execution."""
    return benchmark(
        model, (arch.in_chans, arch.input_size, arch.input_size), ex.device,
        batch_size=m.batch_size, warmup=m.warmup, iters=m.iters,
        precision="bf16" if ex.bf16 else "fp32", channels_last=ex.channels_last,
        latency_iters=m.latency_iters, train_step=m.train_step, num_classes=arch.num_classes,
    )


def measure_untrained(spec: TrialSpec) -> dict[str, float]:
    """Params, MACs, throughput, latency and memory of the untrained model (a measurement-only
    trial: no data, no training)."""
    ex = execution(spec.train, spec.data.cache_dir)
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.arch).to(ex.device)
    if ex.channels_last:
        model = model.to(memory_format=torch.channels_last)
    out = {k: float(v) for k, v in cost(spec.arch).as_dict().items()}
    out.update(measure_model(model, spec.arch, ex, spec.measure))
    return out


def make_optimizer(model: nn.Module, spec: TrainSpec, device: torch.device) -> torch.optim.Optimizer:
    """SGD or AdamW; 1-d parameters (BN, biases) get no weight decay unless decay_bn_bias."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 and not spec.decay_bn_bias else decay).append(p)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    extra = {"fused": True} if device.type == "cuda" else {}
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=spec.lr, betas=tuple(spec.betas), **extra)
    nesterov = spec.nesterov and spec.momentum > 0
    return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=nesterov, **extra)


def _to_cpu(obj: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU (a snapshot training cannot mutate)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def load_checkpoint(path: str | Path, where: str = "resume") -> dict[str, Any]:
    """A checkpoint file ``train`` wrote (its ``report`` state, saved with ``torch.save``),
    read as data only: ``weights_only`` refuses pickled objects, so loading never runs code
    from a file. ConfigError at ``where`` naming the file when it is unreadable or refused."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ConfigError(f"cannot read the checkpoint: {exc.strerror}", where, str(path)) from None
    except pickle.UnpicklingError as exc:
        first = (str(exc).strip().splitlines() or ["unreadable"])[0]
        raise ConfigError(f"refusing a checkpoint that is not plain tensors and data ({first})",
                          where, str(path)) from None


# Keys that may differ between a checkpoint and the resuming spec (execution details).
_RESUME_FREE = EXECUTION_KEYS | {"train.test_every"}


def _check_resume_spec(saved: Mapping[str, Any], spec: TrialSpec) -> None:
    old, new = flatten(saved), flatten(to_dict(spec))
    differ = sorted(
        k for k in set(old) | set(new)
        if old.get(k) != new.get(k) and k not in _RESUME_FREE
        and not k.startswith(("measure.", "diagnostics."))
    )
    if differ:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ[:5])
        raise ConfigError(f"the checkpoint was made with a different spec ({shown}); resume with the same spec")


# --- the trial --------------------------------------------------------------------------------


class _Trial:
    """State of one running trial; ``train`` drives it epoch by epoch."""

    def __init__(self, spec: TrialSpec) -> None:
        t = spec.train
        self.spec = spec
        self.ex = execution(t, spec.data.cache_dir)
        self.device, self.bf16, self.channels_last = self.ex.device, self.ex.bf16, self.ex.channels_last
        cuda = self.device.type == "cuda"

        self.splits: Splits = load_dataset(spec.data, self.device)
        s = self.splits
        # The data decide the classifier and input shape (a cifar100 trial needs 100 outputs).
        fit = {"num_classes": s.num_classes, "in_chans": s.in_chans, "input_size": s.image_size}
        self.arch = spec.arch
        if any(getattr(spec.arch, k) != v for k, v in fit.items()):
            self.arch = dataclasses.replace(spec.arch, **fit)
        torch.manual_seed(t.seed)
        self.model = build_model(self.arch).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model, mode=t.compile_mode) if t.compile else self.model
        self.cudagraphs = t.compile and "reduce-overhead" in t.compile_mode and cuda

        n = len(s.train)
        self.batch = min(t.batch_size, n)
        self.steps = n // self.batch
        self.optimizer = make_optimizer(self.model, t, self.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, LRSchedule(t, self.steps))
        self.gen = torch.Generator(device=self.device).manual_seed(t.seed)
        self.norm = Normalizer.create(s.mean, s.std, self.device, self.channels_last)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
        self.groups = grad_groups(self.model) if spec.diagnostics.grad_norms else None

        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_val_acc = -math.inf
        self.train_time = 0.0

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "data": self.gen.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return _to_cpu({
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "history": [dict(h) for h in self.history],
            "best_val_acc": self.best_val_acc,
            "train_time_s": self.train_time,
            "spec": to_dict(self.spec),
        })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"not a resbench checkpoint (format {state.get('format')!r})", "resume")
        _check_resume_spec(state["spec"], self.spec)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.gen.set_state(state["rng"]["data"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.epoch = int(state["epoch"])
        self.history = [dict(h) for h in state["history"]]
        self.best_val_acc = float(state["best_val_acc"])
        self.train_time = float(state["train_time_s"])

    # -- one epoch ---------------------------------------------------------------------------

    def train_epoch(self) -> dict[str, float]:
        t, d = self.spec.train, self.spec.data
        train = self.splits.train
        self.model.train()
        dev = self.device
        loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        grads: dict[str, float] = {}
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        perm = torch.randperm(len(train), generator=self.gen, device=dev)
        for step in range(self.steps):
            idx = perm[step * self.batch : (step + 1) * self.batch]
            images, labels = train.images[idx], train.labels[idx]
            if d.augment:
                images = crop_flip(images, self.gen, d.crop_padding, d.flip)
            x = self.norm(images)
            if d.augment and d.cutout:
                x = cutout(x, self.gen, d.cutout)
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            with autocast(dev, self.bf16):
                logits = self.forward(x)
                loss = self.criterion(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.groups is not None and step == self.steps - 1:
                grads = gradient_norms(self.model, self.groups)
            if t.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            loss_sum += loss.detach().float()
            correct += (logits.detach().argmax(1) == labels).sum()
        mean_loss, n_correct = torch.stack([loss_sum.double(), correct.double()]).tolist()  # one sync
        seconds = time.perf_counter() - start
        images_seen = self.steps * self.batch
        self.train_time += seconds
        return {
            "lr": lr,
            "train_loss": mean_loss / self.steps,
            "train_acc": 100.0 * n_correct / images_seen,
            "train_img_per_s": images_seen / max(seconds, 1e-9),
            **grads,
        }

    def evaluate(self, split: str) -> dict[str, float]:
        res = evaluate(
            self.model, self.splits.split(split), self.norm,
            batch_size=self.spec.train.eval_batch_size, bf16=self.bf16,
        )
        return {f"{split}_loss": res["loss"], f"{split}_acc": res["acc"], f"{split}_top5": res["top5"]}

    # -- end of training ---------------------------------------------------------------------

    def final_metrics(self) -> dict[str, float]:
        spec = self.spec
        out: dict[str, float] = {}
        last = self.history[-1] if self.history else {}
        if "test_acc" in last and last.get("epoch") == float(self.epoch):
            out.update({k: last[k] for k in ("test_loss", "test_acc", "test_top5")})  # this epoch's
        elif spec.train.eval_test:
            out.update(self.evaluate("test"))
        c = cost(self.arch)
        out.update(params=float(c.params), macs=float(c.macs), activations=float(c.activations))
        if math.isfinite(self.best_val_acc):
            out["best_val_acc"] = self.best_val_acc
        out["train_time_s"] = self.train_time
        # The split sizes: what an accuracy's binomial interval needs (the report reads these).
        for split in ("train", "val", "test"):
            out[f"{split}_images"] = float(len(getattr(self.splits, split)))
        if spec.measure.enabled:  # self.arch carries the data's input shape and classes
            out.update(measure_model(self.model, self.arch, self.ex, spec.measure))
        return out

    def finish(self, started: float) -> tuple[dict[str, float], dict[str, Any]]:
        """The final metrics (with the wall time since ``started``) and the diagnostics."""
        final = self.final_metrics()
        diagnostics = self.diagnostics()
        final["wall_time_s"] = time.perf_counter() - started
        return final, diagnostics

    def diagnostics(self) -> dict[str, Any]:
        dspec = self.spec.diagnostics
        out: dict[str, Any] = {}
        if dspec.grad_norms and self.groups is not None:
            out["grad_norms"] = {
                "measured_on": "last training batch of each epoch, before gradient clipping",
                "groups": [name for name, _ in self.groups],
            }
        if dspec.lesion:
            out["lesion"] = lesion_study(
                self.model, self.splits, split=dspec.lesion_split, k_values=dspec.lesion_k,
                samples=dspec.lesion_samples, seed=self.spec.train.seed,
                batch_size=self.spec.train.eval_batch_size, bf16=self.bf16,
                channels_last=self.channels_last,
            )
        return out


def train(spec: TrialSpec, report: ReportFn | None = None, resume: Mapping[str, Any] | None = None,
          started: Callable[[dict[str, str]], None] | None = None) -> TrialRecord:
    """Run one trial. ``report(metrics, checkpoint)`` is called after every epoch with that
    epoch's metrics (the last call also carries the final ones) and a zero-argument function
    returning the checkpoint state; pass such a state back as ``resume`` to continue exactly.
    ``started(env)``, if given, is called once before the first epoch with what will run
    (``TrialRecord.env``: ``auto`` settings resolved, the data's shape and identity).

    Returns status ``completed``, ``diverged`` (NaN/inf loss) or ``failed`` (out of memory);
    errors the user can fix (ConfigError, DataError) are raised."""
    wall = time.perf_counter()
    env = environment(resolve_device(spec.train.device))
    trial = _Trial(spec)
    # What actually ran (``auto`` resolved, the threads the trial set).
    env.update(precision="bf16" if trial.bf16 else "fp32",
               channels_last=str(trial.channels_last).lower(),
               torch_threads=str(torch.get_num_threads()), device_type=trial.device.type,
               in_chans=str(trial.arch.in_chans), input_size=str(trial.arch.input_size),
               num_classes=str(trial.arch.num_classes),
               **{f"data_{k}": v for k, v in data_identity(spec.data, trial.splits).items()})
    if started is not None:
        started(dict(env))
    if resume is not None:
        trial.load_state_dict(resume)
    checkpoint = trial.state_dict

    final: dict[str, float] = {}
    diagnostics: dict[str, Any] = {}
    try:
        while trial.epoch < spec.train.epochs:
            epoch_start = time.perf_counter()
            m: dict[str, float] = {"epoch": float(trial.epoch + 1)}
            m.update(trial.train_epoch())
            if not math.isfinite(m["train_loss"]):
                return _diverged(trial, env, f"training loss became {m['train_loss']} in epoch {trial.epoch + 1}")
            if len(trial.splits.val):
                m.update(trial.evaluate("val"))
                if not math.isfinite(m["val_loss"]):
                    return _diverged(trial, env, f"validation loss became {m['val_loss']} in epoch {trial.epoch + 1}")
                trial.best_val_acc = max(trial.best_val_acc, m["val_acc"])
                m["best_val_acc"] = trial.best_val_acc
            every = spec.train.test_every
            if every and (trial.epoch + 1) % every == 0:
                m.update(trial.evaluate("test"))
            m["epoch_time_s"] = time.perf_counter() - epoch_start
            trial.epoch += 1
            trial.history.append(m)
            if trial.epoch == spec.train.epochs:
                final, diagnostics = trial.finish(wall)
            if report is not None:
                report({**m, **final}, checkpoint)
    except torch.cuda.OutOfMemoryError as exc:
        return _record(
            spec, "failed",
            f"out of memory at batch size {spec.train.batch_size} ({str(exc).splitlines()[0]}); "
            "lower train.batch_size",
            metrics=dict(trial.history[-1]) if trial.history else {},
            history=trial.history,
            env=env,
        )
    if not final:  # resumed from a checkpoint taken after the last epoch: only the final numbers
        final, diagnostics = trial.finish(wall)
    metrics = {**trial.history[-1], **final}
    return _record(spec, "completed", "", metrics=metrics, history=trial.history,
                   diagnostics=diagnostics, env=env)


def _record(spec: TrialSpec, status: str, message: str, **fields: Any) -> TrialRecord:
    """The record ``train`` returns (status completed, diverged or failed)."""
    return TrialRecord(trial_id=spec.name, kind="search", config={}, label=spec.arch.label,
                       status=status, message=message, role=spec.name, **fields)


def _diverged(trial: _Trial, env: dict[str, str], what: str) -> TrialRecord:
    lr = trial.optimizer.param_groups[0]["lr"]
    return _record(
        trial.spec, "diverged",
        f"{what} (lr {lr:.3g}); lower train.lr, add warm-up (train.warmup_epochs) or set train.grad_clip",
        metrics=dict(trial.history[-1]) if trial.history else {},
        history=trial.history,
        env=env,
    )
