"""Runtime measurement of a model (inference and training throughput, batch-1 latency, peak
memory) and capture of the software/hardware environment a result was produced on.

The timing method is timm's benchmark.py: warm-up iterations, then timed iterations bracketed by
CUDA synchronisation; throughput times the whole loop (one sync at each end), latency syncs
every iteration. A batch size that runs out of memory is halved and retried; the size that ran
is reported as ``measure_batch_size`` and the number of halvings as ``measure_oom_retries``.
"""

from __future__ import annotations

import copy
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.augment import autocast
from bench.host import cpu_features, cpu_model  # noqa: F401 - re-exported


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per iteration of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / max(iters, 1)


def _latencies(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - start)
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def benchmark(
    model: nn.Module,
    input_shape: Sequence[int],
    device: torch.device | str,
    batch_size: int = 256,
    warmup: int = 5,
    iters: int = 20,
    precision: str = "fp32",
    channels_last: bool = False,
    latency_iters: int = 50,
    train_step: bool = True,
    num_classes: int | None = None,
) -> dict[str, float]:
    """Throughput and latency of ``model`` on random inputs of ``input_shape`` (C, H, W).

    Returns ``infer_img_per_s``, ``train_step_img_per_s`` (forward + backward + SGD step on a
    copy, so the model's weights are untouched), ``latency_ms_p50/p90/p99`` (batch 1),
    ``peak_mem_mb`` (CUDA only: peak allocated during the training step, or inference when
    ``train_step`` is off), ``measure_batch_size`` and, when a size ran out of memory,
    ``measure_oom_retries`` (how many halvings)."""
    device = torch.device(device)
    bf16 = precision == "bf16"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    ooms = 0
    bs = max(1, int(batch_size))
    while True:
        try:
            out = _run(model, input_shape, device, bs, warmup, iters, bf16, fmt, train_step, num_classes)
            break
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
            if not _is_oom(exc) or bs == 1:
                raise
            ooms += 1
            bs //= 2  # _run empties the CUDA cache before it allocates again
    model.eval()
    x1 = torch.randn(1, *input_shape, device=device).contiguous(memory_format=fmt)

    def one() -> None:
        with torch.no_grad(), autocast(device, bf16):
            model(x1)

    lat = _latencies(one, device, warmup, max(latency_iters, 1))
    model.train(was_training)
    out.update(
        latency_ms_p50=1e3 * _percentile(lat, 50),
        latency_ms_p90=1e3 * _percentile(lat, 90),
        latency_ms_p99=1e3 * _percentile(lat, 99),
        measure_batch_size=float(bs),
    )
    if ooms:
        out["measure_oom_retries"] = float(ooms)
    return out


def _run(
    model: nn.Module,
    input_shape: Sequence[int],
    device: torch.device,
    bs: int,
    warmup: int,
    iters: int,
    bf16: bool,
    fmt: torch.memory_format,
    train_step: bool,
    num_classes: int | None,
) -> dict[str, float]:
    out: dict[str, float] = {}
    x = torch.randn(bs, *input_shape, device=device).contiguous(memory_format=fmt)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model.eval()

    def infer() -> None:
        with torch.no_grad(), autocast(device, bf16):
            model(x)

    out["infer_img_per_s"] = bs / _timed(infer, device, warmup, iters)
    if train_step:
        clone = copy.deepcopy(model).train()
        opt = torch.optim.SGD(clone.parameters(), lr=1e-3, momentum=0.9)
        with torch.no_grad(), autocast(device, bf16):
            classes = num_classes or clone(x[:1]).shape[1]
        y = torch.randint(0, classes, (bs,), device=device)

        def step() -> None:
            with autocast(device, bf16):
                loss = F.cross_entropy(clone(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        out["train_step_img_per_s"] = bs / _timed(step, device, warmup, iters)
        del clone, opt
    if device.type == "cuda":
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def git_sha(path: str | Path | None = None, timeout: float = 2.0) -> str:
    """HEAD of the checkout holding ``path`` (default: this package), '+dirty' when modified;
    'unknown' when not a checkout, no git, or it takes longer than ``timeout`` seconds."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=timeout,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device | str | None = None) -> dict[str, str]:
    """Versions and hardware a result was produced on (no host names or user paths)."""
    import numpy
    import torchvision

    cuda = torch.cuda.is_available()
    dev = torch.device(device) if device is not None else torch.device("cuda" if cuda else "cpu")
    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": str(torch.backends.cudnn.version()) if cuda else "none",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "gpu_count": str(torch.cuda.device_count() if cuda else 0),
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count() or 0),
        "torch_threads": str(torch.get_num_threads()),
        "platform": f"{platform.system()}-{platform.machine()}",
        "git_sha": git_sha(),
    }
    return env


def reference_train_rate(precision: str = "fp32", batch_size: int = 128, warmup: int = 2,
                         iters: int = 5) -> float:
    """Training img/s of CIFAR ResNet-20 (option B) on this CPU at ``precision``, channels_last,
    the process's threads: the figure every CPU result is recorded with, since these machines
    differ several-fold (training-step benchmark on random 32-px inputs)."""
    from bench.models import build_model, cifar_resnet

    torch.manual_seed(0)
    model = build_model(cifar_resnet(20, skip="projection")).to(memory_format=torch.channels_last)
    out = benchmark(model, (3, 32, 32), "cpu", batch_size=batch_size, warmup=warmup, iters=iters,
                    precision=precision, channels_last=True, latency_iters=0, train_step=True,
                    num_classes=10)
    return float(out["train_step_img_per_s"])
