"""Print the README's Results table (Markdown) from the committed CPU-form results:
one row per study with its main claim, the paper's number, resbench's number, the verdict
(and the tally of all its judged rows), the device, the wall time and the command that ran.

    python scripts/results_table.py [results/]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.studies import STUDY_ORDER, headline, verdict_tally  # noqa: E402


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "results")
    print("| study | claim | paper | resbench (CPU form) | verdict | device | wall time | command |")
    print("|---|---|---|---|---|---|---|---|")
    for name in STUDY_ORDER:
        doc = json.loads((folder / f"{name}.cpu.json").read_text(encoding="utf-8"))
        top = headline(doc["verdict"]) or {"claim": "", "paper": "", "measured": "", "verdict": ""}
        cal = doc.get("calibration") or {}
        rate = f"ResNet-20 {cal.get('resnet20_fp32_train_img_per_s', 0):.0f} img/s fp32"
        if cal.get("precision") == "bf16":
            rate += f", {cal.get('resnet20_train_img_per_s', 0):.0f} bf16 (ran)"
        threads = cal.get("threads", "?")
        device = (f"{cal.get('cpu', '?')} ({cal.get('cpu_features', '?')}), "
                  f"{cal.get('cores', '?')} cores, {threads} thread{'' if threads == 1 else 's'}; "
                  f"{rate}")
        command = (f"python -m launchers.study {name} --form cpu --tarball "
                   f"../shared/datasets/cifar10-jpeg.tar.gz" + "".join(
                       f" --set {o}" for o in doc.get("overrides") or []))
        print(f"| {name} | {cell(top['claim'])} | {cell(top['paper'])} | {cell(top['measured'])} "
              f"| {cell(top['verdict'])} ({verdict_tally(doc['verdict'])}) | {cell(device)} "
              f"| {doc['wall_time_s'] / 60:.1f} min | `{cell(command)}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
