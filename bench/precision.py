"""``precision: auto`` on a CPU: bf16 autocast only where a short measured check finds it faster.

CPUs differ: bf16 autocast trained ResNet-20 2.5x faster than fp32 on one 2-core machine (native
AVX-512 bf16) and 10x slower on another (no native bf16), so the device type decides nothing.
The check times a small conv net's training step (forward + backward, channels_last, the
process's intra-op threads) in fp32 and in bf16, alternating, and takes bf16 when its median
step is at least ``MIN_SPEEDUP`` times faster. The outcome is cached per CPU model, torch
version, thread count and kernel set (``cache_key``): in memory for the process and, given a cache folder, in
``cpu-precision.json`` there, so a machine pays for the check once.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

CACHE_FILE = "cpu-precision.json"
MIN_SPEEDUP = 1.15  # below this, fp32 (bf16 costs accuracy margin for a small gain)
_MEMO: dict[str, dict[str, Any]] = {}


def cache_key(threads: int | None = None) -> str:
    """What the check's outcome depends on: CPU model, torch version, intra-op threads, and the
    kernels this process may use (ATen's CPU capability; oneDNN's ISA cap, which its own
    variables set at process start: capped at AVX2, a native-bf16 CPU emulates bf16 slowly)."""
    import os

    from bench.host import cpu_model

    n = threads or torch.get_num_threads()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "all"
    return (f"{cpu_model()} | torch {torch.__version__} | {n} threads | "
            f"{torch._C._get_cpu_capability()} | onednn {isa.lower()}")


def _net() -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for cout, stride in ((16, 1), (16, 1), (32, 2), (32, 1), (64, 2), (64, 1)):
        layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def measure(batch: int = 64, warmup: int = 2, iters: int = 5) -> dict[str, float]:
    """Median training-step milliseconds of a small CIFAR-size conv net in fp32 and bf16."""
    torch.manual_seed(0)
    model = _net()
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step(bf16: bool) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x), y)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return (time.perf_counter() - t) * 1e3

    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(warmup + iters):
        for bf16 in (False, True):  # alternating: drifts in machine load hit both alike
            ms = step(bf16)
            if i >= warmup:
                times[bf16].append(ms)
    return {"fp32_ms": statistics.median(times[False]), "bf16_ms": statistics.median(times[True])}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cpu_check(cache_dir: str | Path | None = None, threads: int | None = None) -> dict[str, Any]:
    """The check's outcome for this CPU: ``{"fp32_ms", "bf16_ms", "speedup", "bf16", "key",
    "cached"}``, measured once and then read from the memo or ``cache_dir``'s file."""
    key = cache_key(threads)
    if key in _MEMO:
        return {**_MEMO[key], "cached": True}
    path = Path(cache_dir) / CACHE_FILE if cache_dir else None
    if path is not None:
        entry = _read(path).get(key)
        if isinstance(entry, dict) and isinstance(entry.get("bf16"), bool):
            _MEMO[key] = {**entry, "key": key}
            return {**_MEMO[key], "cached": True}
    m = measure()
    speedup = m["fp32_ms"] / m["bf16_ms"] if m["bf16_ms"] > 0 else 0.0
    entry = {**m, "speedup": speedup, "bf16": speedup >= MIN_SPEEDUP, "key": key}
    _MEMO[key] = entry
    if path is not None:
        from bench.jsonio import write_atomic

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = _read(path)
            data[key] = {k: v for k, v in entry.items() if k != "key"}
            write_atomic(path, json.dumps(data, indent=2) + "\n")
        except OSError:
            pass  # an unwritable cache costs a re-check next time, nothing else
    return {**entry, "cached": False}


def cpu_bf16(cache_dir: str | Path | None = None, threads: int | None = None) -> bool:
    """Whether ``precision: auto`` takes bf16 autocast on this CPU."""
    return bool(cpu_check(cache_dir, threads)["bf16"])
