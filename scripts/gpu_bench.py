"""Benchmark resbench's training path against the usual PyTorch recipe on the JPEG CIFAR-10 tree.

Parts (``--parts``, default all):
  a  the usual recipe: torchvision ImageFolder over the JPEG files + transforms + DataLoader
     (N workers), fp32, batch 128, ResNet-20: steady-state training images/s;
  b  resbench's resident path on the same data and model, batch 128: uint8 dataset on the device,
     on-device augmentation, bf16 autocast + channels_last on CUDA (fp32 + channels_last on CPU);
     also fp32 NCHW, to separate the data path from the precision and layout (and, on CPU, the
     opt-in bf16 autocast);
  c  ResNet-20 to the target test accuracy (default 86%) within the time target (default 30 s of
     training): 25 epochs one-cycle SGD-nesterov, bf16, batch 512;
  d  1, 2 and 4 ResNet-20 trials as separate processes on one GPU at once: aggregate images/s;
  e  torch.compile (mode reduce-overhead = CUDA graphs) and larger batch sizes for one trial.

    python scripts/gpu_bench.py --tarball .data/cifar10-jpeg.tar.gz --out bench.json
    python scripts/gpu_bench.py --data /path/to/cifar10-jpeg --parts a,b,c
    python scripts/gpu_bench.py --tarball ... --cpu-smoke          # tiny end-to-end check on CPU

Prints a table and writes the JSON given by ``--out``. Imports only torch/torchvision/numpy/
PyYAML/Pillow/timm/pydantic and resbench's engine modules (no Ray, MLflow or scikit-learn; on a
host without pydantic, install the wheels of ``scripts/fetch_wheels.sh`` first).
The defaults are sized to finish within about 6 minutes on one H100; ``--max-minutes`` skips
the parts that would start after that budget.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a plain script from a checkout

import torch  # noqa: E402
import yaml  # noqa: E402

from bench.config import to_dict  # noqa: E402
from bench.data import DataSpec, load_dataset  # noqa: E402
from bench.jsonio import write_atomic  # noqa: E402
from bench.measure import environment  # noqa: E402
from bench.models import build_model, cifar_resnet  # noqa: E402
from bench.trainer import TrialSpec, parse_trial, resolve_device, train  # noqa: E402

PARTS = ("a", "b", "c", "d", "e")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=False)
    src.add_argument("--data", help="extracted JPEG CIFAR-10 tree (with train/ and test/)")
    src.add_argument("--tarball", help="cifar10-jpeg.tar.gz: extracted to a temporary folder")
    p.add_argument("--out", default="gpu_bench.json", help="JSON results (default %(default)s)")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of a,b,c,d,e")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--cache-dir", help="decoded-dataset cache (default: a temporary folder)")
    p.add_argument("--subset", type=int, help="training images used by every part (default all)")
    p.add_argument("--test-subset", type=int, help="test images used by part c (default all)")
    p.add_argument("--max-minutes", type=float, default=6.0, help="skip parts that would start later")
    p.add_argument(
        "--rounds", type=int, default=1,
        help="run parts a and b this many times, alternating, and report medians (noisy hosts)",
    )
    p.add_argument("--cpu-smoke", action="store_true", help="tiny settings for an end-to-end check on CPU")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    g = p.add_argument_group("a: usual recipe")
    g.add_argument("--usual-workers", type=int, default=min(8, os.cpu_count() or 1))
    g.add_argument("--usual-warmup", type=int, default=20, help="untimed steps (worker start-up)")
    g.add_argument("--usual-steps", type=int, default=200, help="timed steps")
    g = p.add_argument_group("b: resident path")
    g.add_argument("--resident-epochs", type=int, default=2, help="the last epoch is the one reported")
    g.add_argument("--no-fp32-resident", action="store_true", help="skip the fp32 resident run")
    g = p.add_argument_group("c: time to accuracy")
    g.add_argument("--target-acc", type=float, default=86.0)
    g.add_argument("--target-seconds", type=float, default=30.0)
    g.add_argument("--target-epochs", type=int, default=25)
    g.add_argument("--target-batch", type=int, default=512)
    g.add_argument("--target-lr", type=float, default=0.4)
    g.add_argument("--target-wd", type=float, default=5e-4)
    g.add_argument("--target-smoothing", type=float, default=0.1)
    g.add_argument("--target-skip", default="projection", help="ResNet-20 shortcut (option B: projection)")
    g.add_argument("--target-compile", action="store_true", help="torch.compile the target run")
    g = p.add_argument_group("d: concurrent trials")
    g.add_argument("--procs", default="1,2,4", help="numbers of concurrent trial processes")
    g.add_argument("--proc-epochs", type=int, default=3)
    g.add_argument("--proc-batch", type=int, default=512)
    g = p.add_argument_group("e: compile and batch size")
    g.add_argument("--batch-sizes", default="512,1024,2048", help="eager batch sizes to try")
    g.add_argument("--compile-modes", default="reduce-overhead", help="torch.compile modes to try ('' = none)")
    g.add_argument("--compile-epochs", type=int, default=3, help="the first epoch includes compilation")
    g.add_argument("--size-epochs", type=int, default=2)
    return p


def apply_smoke(args: argparse.Namespace) -> None:
    """Sizes for a quick end-to-end run on a CPU (numbers meaningless, code paths exercised)."""
    args.device = "cpu" if args.device == "auto" else args.device
    args.subset = args.subset or 512
    args.test_subset = args.test_subset or 256
    args.usual_workers, args.usual_warmup, args.usual_steps = min(args.usual_workers, 2), 1, 3
    args.resident_epochs = 1
    args.target_epochs, args.target_batch = 1, 128
    args.procs, args.proc_epochs, args.proc_batch = "1,2", 1, 128
    args.batch_sizes, args.size_epochs = "64,128", 1
    args.compile_modes = ""


# --- helpers -----------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dataset_root(args: argparse.Namespace, scratch: Path) -> Path:
    if args.data:
        root = Path(args.data)
    else:
        tarball = Path(args.tarball or REPO / ".data" / "cifar10-jpeg.tar.gz")
        if not tarball.is_file():
            sys.exit(f"error: no dataset: pass --data DIR (extracted) or --tarball FILE (missing: {tarball})")
        start = time.perf_counter()
        with tarfile.open(tarball) as tar:
            tar.extractall(scratch, filter="data")
        print(f"extracted {tarball.name} in {time.perf_counter() - start:.1f}s", flush=True)
        root = scratch / "cifar10-jpeg"
    if not (root / "train").is_dir():
        found = [p.parent for p in root.glob("*/train")]
        if len(found) == 1:
            root = found[0]
        else:
            sys.exit(f"error: {root} has no train/ folder")
    return root


def trial(args: argparse.Namespace, root: Path, cache: Path, **sections: dict[str, Any]) -> TrialSpec:
    """A ResNet-20 trial on the JPEG tree with the given overrides per section."""
    base: dict[str, Any] = {
        "arch": {"depth": 20, "skip": args.target_skip},
        "data": {"name": "imagefolder", "root": str(root), "cache_dir": str(cache),
                 "val_fraction": 0.0, "subset": args.subset, "test_subset": args.test_subset},
        "train": {"device": args.device, "batch_size": 128, "epochs": 1, "lr": 0.1,
                  "schedule": "onecycle", "eval_test": False, "threads": args.threads},
    }
    for key, extra in sections.items():
        base[key] = {**base.get(key, {}), **extra}
    return parse_trial(base)


def steady_img_s(history: list[dict[str, float]]) -> float:
    """Images/s of the epochs after the first (which holds cuDNN autotuning, compilation)."""
    tail = history[1:] or history
    return statistics.fmean(h["train_img_per_s"] for h in tail)


# --- parts -------------------------------------------------------------------------------------


def part_a(args: argparse.Namespace, root: Path, device: torch.device) -> dict[str, Any]:
    """The usual recipe: ImageFolder + transforms + DataLoader workers, fp32, batch 128."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    tf = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
    ds = datasets.ImageFolder(str(root / "train"), transform=tf)
    if args.subset:
        ds = Subset(ds, torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[: args.subset].tolist())
    cuda = device.type == "cuda"
    loader = DataLoader(
        ds, batch_size=128, shuffle=True, num_workers=args.usual_workers, pin_memory=cuda,
        drop_last=True, persistent_workers=args.usual_workers > 0,
    )
    torch.manual_seed(0)
    model = build_model(cifar_resnet(20, skip=args.target_skip)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    crit = torch.nn.CrossEntropyLoss()
    need = args.usual_warmup + args.usual_steps
    steps = 0
    start_all = time.perf_counter()
    t0 = None
    while steps < need:
        for x, y in loader:
            if steps == args.usual_warmup:
                sync(device)
                t0 = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = crit(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if steps >= need:
                break
    sync(device)
    seconds = time.perf_counter() - (t0 if t0 is not None else start_all)
    timed = steps - args.usual_warmup if t0 is not None else steps
    return {
        "img_per_s": timed * 128 / seconds,
        "timed_steps": timed,
        "workers": args.usual_workers,
        "wall_s": time.perf_counter() - start_all,
        "final_loss": loss.item(),
    }


def part_b(args: argparse.Namespace, root: Path, cache: Path) -> dict[str, Any]:
    """The resident path at batch 128: default settings (bf16 + channels_last on CUDA, fp32 +
    channels_last on CPU), fp32 NCHW (the data path alone) and, on CPU, opt-in bf16."""
    out: dict[str, Any] = {}
    runs: dict[str, dict[str, Any]] = {"resident": {}}
    if not args.no_fp32_resident:
        runs["resident_fp32_nchw"] = {"precision": "fp32", "channels_last": False}
    if args.device == "cpu":  # auto is fp32 on CPU; bf16 autocast is opt-in there
        runs["resident_bf16"] = {"precision": "bf16"}
    for name, extra in runs.items():
        spec = trial(args, root, cache, train={"epochs": args.resident_epochs, "lr": 0.05, **extra})
        start = time.perf_counter()
        res = train(spec)
        out[name] = {
            "img_per_s": res.history[-1]["train_img_per_s"],
            "status": res.status,
            "precision": extra.get("precision", "auto"),
            "wall_s": time.perf_counter() - start,
        }
    return out


def part_c(args: argparse.Namespace, root: Path, cache: Path) -> dict[str, Any]:
    spec = trial(
        args, root, cache,
        train={
            "epochs": args.target_epochs, "batch_size": args.target_batch, "lr": args.target_lr,
            "optimizer": "sgd", "nesterov": True, "momentum": 0.9, "weight_decay": args.target_wd,
            "label_smoothing": args.target_smoothing, "schedule": "onecycle", "onecycle_peak": 0.25,
            "eval_test": True, "compile": args.target_compile,
        },
    )
    start = time.perf_counter()
    res = train(spec)
    m = res.metrics
    acc, seconds = m.get("test_acc", float("nan")), m.get("train_time_s", float("nan"))
    return {
        "status": res.status,
        "message": res.message,
        "test_acc": acc,
        "train_time_s": seconds,
        "wall_s": time.perf_counter() - start,
        "steady_img_per_s": steady_img_s(res.history) if res.history else float("nan"),
        "met_accuracy": acc >= args.target_acc,
        "met_time": seconds <= args.target_seconds,
        "recipe": to_dict(spec.train),
        "train_loss_curve": [round(h["train_loss"], 4) for h in res.history],
    }


def part_d(args: argparse.Namespace, root: Path, cache: Path, scratch: Path, train_images: int) -> dict[str, Any]:
    """N trial processes at once (the launcher, as a sweep worker would run them): the sum of
    their steady images/s, and images trained / wall time including process start-up."""
    spec = trial(args, root, cache, train={"epochs": args.proc_epochs, "batch_size": args.proc_batch, "lr": 0.2})
    cfg = scratch / "proc_trial.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(spec), sort_keys=False))
    out: dict[str, Any] = {}
    for n in [int(v) for v in args.procs.split(",") if v.strip()]:
        jsons = [scratch / f"proc{n}_{i}.json" for i in range(n)]
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "launchers.train", "--config", str(cfg), "--json", str(j),
                 "--quiet", "--set", f"train.seed={i}"],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            for i, j in enumerate(jsons)
        ]
        errors = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - start
        results = []
        for p, j, err in zip(procs, jsons, errors, strict=True):
            if p.returncode != 0 or not j.is_file():
                results.append({"error": (err or "").strip().splitlines()[-3:]})
                continue
            results.append(json.loads(j.read_text()))
        ok = [r for r in results if "history" in r]
        per_proc = [steady_img_s(r["history"]) for r in ok]
        images = len(ok) * args.proc_epochs * (train_images // args.proc_batch) * args.proc_batch
        out[str(n)] = {
            "processes": n,
            "completed": len(ok),
            "aggregate_img_per_s": sum(per_proc),
            "per_process_img_per_s": per_proc,
            "wall_img_per_s": images / wall,
            "wall_s": wall,
            "errors": [r["error"] for r in results if "error" in r],
        }
    return out


def part_e(args: argparse.Namespace, root: Path, cache: Path, device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for bs in [int(v) for v in args.batch_sizes.split(",") if v.strip()]:
        spec = trial(args, root, cache, train={"epochs": args.size_epochs, "batch_size": bs, "lr": 0.1 * bs / 128})
        try:
            res = train(spec)
            out[f"eager_bs{bs}"] = {"img_per_s": steady_img_s(res.history), "status": res.status, "message": res.message}
        except Exception as exc:  # a failed variant is a result, not the end of the benchmark
            out[f"eager_bs{bs}"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    for mode in [m for m in args.compile_modes.split(",") if m.strip()]:
        if mode == "reduce-overhead" and device.type != "cuda":
            out[f"compile_{mode}"] = {"skipped": "CUDA graphs need a CUDA device"}
            continue
        bs = args.proc_batch
        spec = trial(
            args, root, cache,
            train={"epochs": args.compile_epochs, "batch_size": bs, "lr": 0.1 * bs / 128,
                   "compile": True, "compile_mode": mode},
        )
        try:
            res = train(spec)
            h = res.history
            steady = steady_img_s(h)
            first = h[0]["epoch_time_s"]
            rest = statistics.fmean(x["epoch_time_s"] for x in h[1:]) if len(h) > 1 else float("nan")
            out[f"compile_{mode}_bs{bs}"] = {
                "img_per_s": steady, "status": res.status, "message": res.message,
                "first_epoch_s": first, "steady_epoch_s": rest, "compile_overhead_s": first - rest,
            }
        except Exception as exc:
            out[f"compile_{mode}_bs{bs}"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median images/s (the upper median for an even count)."""
    ordered = sorted(runs, key=lambda r: r["img_per_s"])
    return dict(ordered[len(ordered) // 2])


# --- main --------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    rounds = results["args"]["rounds"]
    rows = [("part", "run", "img/s" + (f" (median of {rounds})" if rounds > 1 else ""), "other")]
    p = {k: v for k, v in results["parts"].items() if "skipped" not in v}
    for k, v in results["parts"].items():
        if "skipped" in v:
            rows.append((k, "skipped", "", v["skipped"]))
    if "a" in p:
        rows.append(("a", f"usual recipe, {p['a'].get('workers')} workers, fp32 bs128", f"{p['a'].get('img_per_s', 0):.0f}", ""))
    if "b" in p:
        base = p.get("a", {}).get("img_per_s")
        for name, r in p["b"].items():
            if name == "rounds":
                continue
            ratio = f"{r['img_per_s'] / base:.2f}x usual" if base else ""
            rows.append(("b", f"{name} ({r['precision']}) bs128", f"{r['img_per_s']:.0f}", ratio))
    if "c" in p:
        c = p["c"]
        rows.append((
            "c", f"ResNet-20 {c['recipe']['epochs']} ep bs{c['recipe']['batch_size']}",
            f"{c['steady_img_per_s']:.0f}",
            f"test {c['test_acc']:.2f}% in {c['train_time_s']:.1f}s (acc ok: {c['met_accuracy']}, time ok: {c['met_time']})",
        ))
    if "d" in p:
        for n, r in p["d"].items():
            rows.append(("d", f"{n} concurrent trial process(es)", f"{r['aggregate_img_per_s']:.0f}",
                         f"{r['completed']}/{n} completed; with start-up {r['wall_img_per_s']:.0f} img/s "
                         f"over {r['wall_s']:.1f}s"))
    if "e" in p:
        for name, r in p["e"].items():
            extra = r.get("error") or r.get("skipped") or (
                f"compile overhead {r['compile_overhead_s']:.1f}s" if "compile_overhead_s" in r else ""
            )
            rows.append(("e", name, f"{r['img_per_s']:.0f}" if "img_per_s" in r else "-", str(extra)[:80]))
    for name, seconds in results.get("part_seconds", {}).items():
        rows.append(("", f"part {name} took", "", f"{seconds:.1f}s"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cpu_smoke:
        apply_smoke(args)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        sys.exit(f"error: unknown parts {bad}; valid: {','.join(PARTS)}")
    device = resolve_device(args.device)
    args.device = device.type
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    results: dict[str, Any] = {"env": environment(device), "args": vars(args), "parts": {}, "part_seconds": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_bench_") as tmp:
        scratch = Path(tmp)
        root = dataset_root(args, scratch)
        cache = Path(args.cache_dir) if args.cache_dir else scratch / "cache"
        start = time.perf_counter()
        splits = load_dataset(DataSpec(name="imagefolder", root=str(root), cache_dir=str(cache), val_fraction=0.0))
        results["decode_s"] = time.perf_counter() - start
        results["train_images"] = args.subset or len(splits.train)
        del splits
        print(f"dataset ready ({results['train_images']} training images, {results['decode_s']:.1f}s) on {device}", flush=True)
        schedule = [p for p in parts if p in "ab"] * max(args.rounds - 1, 0) + parts
        runs: dict[str, list[dict[str, Any]]] = {}
        for part in schedule:
            elapsed = (time.perf_counter() - began) / 60
            if elapsed > args.max_minutes:
                results["parts"][part] = {"skipped": f"time budget of {args.max_minutes} min spent"}
                continue
            print(f"part {part} ...", flush=True)
            start = time.perf_counter()
            if part == "a":
                runs.setdefault("a", []).append(part_a(args, root, device))
            elif part == "b":
                runs.setdefault("b", []).append(part_b(args, root, cache))
            elif part == "c":
                results["parts"]["c"] = part_c(args, root, cache)
            elif part == "d":
                results["parts"]["d"] = part_d(args, root, cache, scratch, results["train_images"])
            elif part == "e":
                results["parts"]["e"] = part_e(args, root, cache, device)
            results["part_seconds"][part] = results["part_seconds"].get(part, 0.0) + time.perf_counter() - start
            print(f"part {part} done in {time.perf_counter() - start:.1f}s", flush=True)
        if "a" in runs:
            results["parts"]["a"] = {**median_run(runs["a"]), "rounds": runs["a"]}
        if "b" in runs:
            results["parts"]["b"] = {
                name: {**median_run([r[name] for r in runs["b"]]), "rounds": [r[name] for r in runs["b"]]}
                for name in runs["b"][0]
            }
    results["total_s"] = time.perf_counter() - began
    print(table(results))
    print(f"total {results['total_s']:.1f}s")
    write_atomic(args.out, json.dumps(results, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
