"""What each zero-cost proxy costs on CIFAR-size networks on this machine: per proxy and
network, the median over ``--rounds`` scorings (after one warm-up) of the wall time and of the
process CPU time (the second is what the score costs even on a machine shared with other jobs).

    python scripts/proxy_cost.py [--threads 1] [--batch 64] [--rounds 3] [--json out.json]

Prints a Markdown table and the CPU model; one minibatch of random 32x32 images, as the trial's
scoring uses (``proxies.batch_size``, default 64).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NETS = {
    "ResNet-20 (A)": {"family": "resnet", "depth": 20},
    "ResNet-56 (A)": {"family": "resnet", "depth": 56},
    "ResNet-110 (A)": {"family": "resnet", "depth": 110},
    "ResNet-56 (B)": {"family": "resnet", "depth": 56, "skip": "projection"},
    "DenseNet-BC-100 (k=12)": {"family": "densenet", "depth": 100, "growth_rate": 12, "bc": True,
                               "compression": 0.5},
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()

    import torch

    from bench.measure import environment
    from bench.models import arch_from_params, build_model
    from bench.proxies import PROXIES, score

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    names = PROXIES.names()
    rows = {}
    for label, params in NETS.items():
        arch = arch_from_params({**params, "num_classes": 10, "input_size": 32})
        build = lambda arch=arch: build_model(arch)  # noqa: E731
        score(build, x, y, names)  # warm-up
        rows[label] = {}
        for name in names:
            walls, cpus = [], []
            for _ in range(args.rounds):
                w, c = time.perf_counter(), time.process_time()
                score(build, x, y, [name])
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
            rows[label][name] = {"wall_s": statistics.median(walls),
                                 "cpu_s": statistics.median(cpus)}
    env = environment("cpu")
    print(f"CPU: {env.get('cpu')}; torch {torch.__version__}; {args.threads} thread(s); "
          f"batch {args.batch} at 32x32; median of {args.rounds}; seconds as CPU (wall)")
    print("| network | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, by_name in rows.items():
        cells = [f"{v['cpu_s']:.2f} ({v['wall_s']:.2f})" for v in by_name.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"env": env, "threads": args.threads,
                                               "batch": args.batch, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
