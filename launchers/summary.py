"""``python -m launchers.summary``: parameters and MACs of the design space's canonical models.

    python -m launchers.summary                               # the canonical table
    python -m launchers.summary --arch resnet56 --arch densenet-bc100
    python -m launchers.summary --arch resnet56 --set skip=projection
    python -m launchers.summary --set depth=110 --set block=preact_basic --set widen=2
    python -m launchers.summary --arch timm:resnet50

``--set key=value`` are ``arch_from_params`` keys applied on top of each ``--arch`` (or, without
``--arch``, defining one model). Costs are for one image at each model's input size, counted on
the meta device (nothing is allocated), so the whole table takes seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import plugins
from bench.config import parse_override
from bench.errors import ConfigError
from bench.models import CANONICAL, arch_from_params, cost

HEADER = (
    "MACs = multiply-accumulates for one image (conv and linear layers, plus one per "
    "normalisation output); FLOPs = 2 x MACs"
)


def _rows(arches: Sequence[str], sets: dict[str, object]) -> list[tuple[str, dict]]:
    if not arches:
        return [("custom", sets)] if sets else [(name, {"model": name}) for name in CANONICAL]
    return [(name, {"model": name, **sets}) for name in arches]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launchers.summary",
        description="Parameters and MACs of the design space's canonical models.",
    )
    parser.add_argument(
        "--arch", action="append", default=[], metavar="NAME",
        help=f"a canonical model ({', '.join(CANONICAL)}) or timm:<name>; repeatable",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="an architecture parameter (depth, block, skip, width, widen, stem, ...); repeatable",
    )
    plugins.add_argument(parser)
    args = parser.parse_args(argv)
    try:
        plugins.import_plugins(args.plugin, "--plugin")
        sets = dict(parse_override(text) for text in args.set)
        table = []
        for name, params in _rows(args.arch, sets):
            arch = arch_from_params(params)
            c = cost(arch)
            table.append((name, arch.label, arch.input_size, c.params, c.macs, c.activations))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(HEADER)
    cols = ("model", "label", "input", "params", "MACs", "activations")
    w0 = max(len(cols[0]), *(len(r[0]) for r in table))
    w1 = max(len(cols[1]), *(len(r[1]) for r in table))
    print(f"{cols[0]:<{w0}}  {cols[1]:<{w1}}  {cols[2]:>5}  {cols[3]:>12}  {cols[4]:>9}  {cols[5]:>11}")
    for name, label, size, params, macs, acts in table:
        print(
            f"{name:<{w0}}  {label:<{w1}}  {size:>5}  {params:>12,}  {_si(macs):>9}  {_si(acts):>11}"
        )
    return 0


def _si(n: int) -> str:
    from bench.text import si

    return si(n, ".2f", below="", sep=" ")


if __name__ == "__main__":
    sys.exit(main())
