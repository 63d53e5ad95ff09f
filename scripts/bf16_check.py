"""Does bf16 autocast train as well as fp32 on this CPU? ResNet-20 (option A) with the CPU
forms' recipe (``bench.studies.CPU_TRAIN``) on a seeded subset of the JPEG CIFAR-10, fp32 and
bf16, several training seeds each: test accuracy mean +- std and training img/s per precision.

    python scripts/bf16_check.py --data .data/cifar10-jpeg --out results/bf16_check.json

The verdict "sound" means the bf16 mean lies within the larger of the two seed stds (and 1 pt)
of the fp32 mean; the CPU forms use ``precision: auto`` (bf16 where a measured check finds it
faster) only if the committed check says so. Prints one line per run and writes the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.data import resolve_paths  # noqa: E402
from bench.jsonio import finite, write_atomic  # noqa: E402
from bench.measure import environment  # noqa: E402
from bench.studies import CPU_TRAIN  # noqa: E402
from bench.trainer import parse_trial, train  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the JPEG CIFAR-10 tree (train/, test/)")
    p.add_argument("--out", default="results/bf16_check.json")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--subset", type=int, default=4000)
    p.add_argument("--test-subset", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    args = p.parse_args()
    runs = []
    began = time.perf_counter()
    for seed in range(args.seeds):
        for precision in ("fp32", "bf16"):
            spec = parse_trial({
                "arch": {"depth": 20},
                "data": {"name": "imagefolder", "root": args.data, "val_fraction": 0.0,
                         "subset": args.subset, "test_subset": args.test_subset},
                "train": {**CPU_TRAIN, "epochs": args.epochs, "seed": seed,
                          "precision": precision, "threads": args.threads},
            })
            spec = dataclasses.replace(spec, data=resolve_paths(spec.data, os.environ))
            res = train(spec)
            rates = [h["train_img_per_s"] for h in res.history]
            run = {"precision": precision, "seed": seed, "status": res.status,
                   "test_acc": res.metrics.get("test_acc"),
                   "train_loss": res.history[-1]["train_loss"] if res.history else None,
                   "train_img_per_s": statistics.median(rates) if rates else None,
                   "train_time_s": res.metrics.get("train_time_s")}
            print(json.dumps(run), flush=True)
            runs.append(run)
    summary = {}
    for precision in ("fp32", "bf16"):
        accs = [r["test_acc"] for r in runs if r["precision"] == precision and r["test_acc"] is not None]
        rates = [r["train_img_per_s"] for r in runs if r["precision"] == precision and r["train_img_per_s"]]
        summary[precision] = {"test_acc_mean": statistics.fmean(accs) if accs else None,
                              "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else None,
                              "train_img_per_s_median": statistics.median(rates) if rates else None,
                              "runs": len(accs)}
    f, b = summary["fp32"], summary["bf16"]
    sound = None
    if f["test_acc_mean"] is not None and b["test_acc_mean"] is not None:
        noise = max(1.0, f["test_acc_std"] or 0.0, b["test_acc_std"] or 0.0)
        sound = abs(b["test_acc_mean"] - f["test_acc_mean"]) <= noise
    speedup = (b["train_img_per_s_median"] / f["train_img_per_s_median"]
               if b["train_img_per_s_median"] and f["train_img_per_s_median"] else None)
    doc = {"what": "ResNet-20 fp32 vs bf16 autocast on CPU, CPU-form recipe",
           "command": "python scripts/bf16_check.py " + " ".join(sys.argv[1:]),
           "cpu": environment(None).get("cpu", ""), "env": environment(None),
           "recipe": {**CPU_TRAIN, "epochs": args.epochs}, "subset": args.subset,
           "test_subset": args.test_subset, "threads": args.threads, "runs": runs,
           "summary": summary, "bf16_speedup": speedup, "bf16_sound": sound,
           "wall_time_s": time.perf_counter() - began}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(args.out), json.dumps(finite(doc), indent=2) + "\n")
    print(f"fp32 {f}\nbf16 {b}\nspeedup {speedup}, sound {sound}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
