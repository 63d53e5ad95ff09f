"""Wall-time estimates of a sweep's trials on this machine, from a short calibration.

The calibration times a few training steps (forward + backward + SGD step, the trial's batch
size, input, precision, memory format and intra-op threads) of each distinct architecture; the
measured img/s goes into ``bench.studies.estimate_seconds`` (epochs x images, validation and test
passes, the per-trial overhead), whose throughput-in-proportion-to-MACs model it turns into an
equivalent ResNet-20 rate. Rates are cached in ``train-rates.json`` in the data cache folder,
keyed by CPU model, torch version, threads, precision, memory format, batch, input and the
architecture's config (``rate_key``), so a machine measures each architecture once.

The timing runs in a child process (``python -m bench.estimate``): a net that trips a CPU
kernel bug aborts that process, not the launcher, and the child's thread setting stays its own.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_FILE = "train-rates.json"
WARMUP_STEPS, TIMED_STEPS = 2, 5
CALIBRATION_TIMEOUT_S = 300.0
MAX_CALIBRATED = 24  # distinct architectures timed per estimate; the rest get their mean rate
SWEEP_OVERHEAD_S = 20.0  # Ray start and stop, the driver's dataset check, the report
# Official split sizes (train, test) where they are known without reading the data.
SPLIT_SIZES = {"digits": (1438, 359), "cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000)}


def threads_of(spec: Any, cpus: float) -> int:
    """The intra-op threads a trial runs with: ``train.threads``, else one per CPU Ray gives it."""
    return int(spec.train.threads) if spec.train.threads else max(1, int(cpus))


def rate_key(spec: Any, threads: int) -> str:
    """What a training rate depends on: the machine, the software and the trial's execution."""
    from importlib.metadata import version  # not `import torch`: a cached estimate needs none

    from bench.config import to_dict
    from bench.host import cpu_model

    t = spec.train
    arch = json.dumps(to_dict(spec.arch), sort_keys=True, default=str)
    return (f"{cpu_model()} | torch {version('torch')} | {threads} threads | {t.precision} | "
            f"channels_last {t.channels_last} | batch {t.batch_size} | {arch}")


def split_sizes(data: Any) -> tuple[int, int]:
    """(official train images, test images) of a dataset spec, without decoding it; an image
    folder's files are counted."""
    if data.name in SPLIT_SIZES:
        return SPLIT_SIZES[data.name]
    if data.name == "synthetic":
        return data.synthetic_size, max(1, data.synthetic_size // 5)
    if data.name == "imagefolder" and data.root:
        root = Path(data.root).expanduser()
        held = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
        return _count_images(root / "train"), _count_images(held) if held else 0
    return data.subset or 10_000, data.test_subset or 2_000


def _count_images(folder: Path) -> int:
    from bench.data import IMAGE_EXTENSIONS

    n = 0
    for cls in os.scandir(folder):
        if cls.is_dir():
            n += sum(1 for e in os.scandir(cls.path) if e.name.lower().endswith(IMAGE_EXTENSIONS))
    return n


def _read(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def train_rates(jobs: Mapping[str, tuple[Any, int]], cache_dir: str | None
                ) -> tuple[dict[str, float], int]:
    """Training img/s of each ``key -> (TrialSpec, threads)``: from the cache, the others
    measured (in one child process) and added to it. Returns (rates, how many were measured);
    a key the child could not time is left out."""
    from bench.config import to_dict

    path = Path(cache_dir).expanduser() / CACHE_FILE if cache_dir else None
    cached = _read(path)
    rates = {k: float(cached[k]) for k in jobs if isinstance(cached.get(k), (int, float))}
    todo = [k for k in jobs if k not in rates][:MAX_CALIBRATED]
    if not todo:
        return rates, 0
    request = [{"key": k, "spec": to_dict(jobs[k][0]), "threads": jobs[k][1]} for k in todo]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.estimate"], input=json.dumps(request),
                              capture_output=True, text=True, timeout=CALIBRATION_TIMEOUT_S,
                              env=env)
        measured = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    except (subprocess.TimeoutExpired, ValueError, OSError):
        measured = {}
    measured = {k: float(v) for k, v in measured.items() if k in jobs and v and v > 0}
    rates.update(measured)
    if path is not None and measured:
        from bench.jsonio import write_atomic

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps({**_read(path), **measured}, indent=2) + "\n")
        except OSError:
            pass  # an unwritable cache costs a new calibration next time, nothing else
    return rates, len(measured)


def _time_one(spec_data: Mapping[str, Any], threads: int) -> float:
    """Training img/s of one trial spec's model (run in the child): the median of
    ``TIMED_STEPS`` timed steps, so that a step slowed by a neighbour's load weighs little."""
    import statistics
    import time

    import torch
    import torch.nn.functional as F

    from bench.augment import autocast
    from bench.models import build_model
    from bench.trainer import execution, make_optimizer, parse_trial

    spec = parse_trial(spec_data)
    torch.set_num_threads(threads)
    ex = execution(spec.train, spec.data.cache_dir)
    torch.manual_seed(0)
    model = build_model(spec.arch).train()
    fmt = torch.channels_last if ex.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    a, bs = spec.arch, spec.train.batch_size
    x = torch.randn(bs, a.in_chans, a.input_size, a.input_size).contiguous(memory_format=fmt)
    y = torch.randint(0, a.num_classes, (bs,))
    opt = make_optimizer(model, spec.train, torch.device("cpu"))
    times = []
    for i in range(WARMUP_STEPS + TIMED_STEPS):
        start = time.perf_counter()
        with autocast(torch.device("cpu"), ex.bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - start)
    return bs / statistics.median(times)


@dataclass(frozen=True)
class TrialEstimate:
    """The estimated seconds of one planned trial (None: no rate measured for it)."""

    seconds: float | None
    rate: float | None  # training img/s measured for its architecture


def trial_estimates(specs: Sequence[Any], cpus: float, cache_dir: str | None
                    ) -> tuple[list[TrialEstimate], int]:
    """The estimate of each trial spec (its full training; measurement-only specs are not
    passed here), and how many architectures were calibrated now (the rest came cached)."""
    from bench.studies import CPU_DENSE_SLOWDOWN as DENSE
    from bench.studies import R20_MACS, _macs, estimate_seconds

    keys = [rate_key(s, threads_of(s, cpus)) for s in specs]
    jobs = {k: (s, threads_of(s, cpus)) for k, s in zip(keys, specs, strict=True)}
    rates, measured = train_rates(jobs, cache_dir)
    out = []
    for key, spec in zip(keys, specs, strict=True):
        rate = rates.get(key)
        if rate is None:
            out.append(TrialEstimate(None, None))
            continue
        # estimate_seconds assumes a throughput in proportion to MACs: the ResNet-20 rate that
        # makes it give this architecture the measured one.
        r20 = rate * _macs(spec.arch) / R20_MACS * (DENSE if spec.arch.family == "densenet" else 1)
        train_n, test_n = split_sizes(spec.data)
        seconds = estimate_seconds(spec, train_images=train_n, test_images=test_n,
                                   cpu_r20_img_per_s=r20)
        out.append(TrialEstimate(seconds, rate))
    return out, measured


def parallel_trials(max_concurrent: int, cpus_per_trial: float, cpus: int | None = None) -> int:
    """How many trials run at once on this machine."""
    fit = max(1, int((cpus or os.cpu_count() or 1) // max(cpus_per_trial, 1e-9)))
    return min(max_concurrent, fit) if max_concurrent else fit


def total_seconds(trial_seconds: Sequence[float], parallel: int) -> float:
    """Wall time of trials run ``parallel`` at a time, longest first (greedy list scheduling),
    plus the sweep's own overhead."""
    lanes = [0.0] * max(1, parallel)
    for s in sorted(trial_seconds, reverse=True):
        i = lanes.index(min(lanes))
        lanes[i] += s
    return SWEEP_OVERHEAD_S + max(lanes)


def duration(seconds: float | None) -> str:
    """``75.2`` -> ``1m15s``; None -> ``-``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _main() -> int:
    """The child: a JSON list of ``{key, spec, threads}`` on stdin -> ``{key: img/s}`` printed."""
    request = json.loads(sys.stdin.read() or "[]")
    out: dict[str, float] = {}
    for job in request:
        try:
            out[job["key"]] = _time_one(job["spec"], int(job["threads"]))
        except Exception as exc:  # noqa: BLE001 - one untimeable net leaves the others timed
            print(f"calibration of one architecture failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
