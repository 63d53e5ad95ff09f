"""Parameter and MAC counts of an ``ArchSpec`` computed from the spec, without building it: the
same numbers as the exact counter (``bench.models.cost``, FlopCounterMode on the meta device),
in microseconds instead of about half a second per architecture, and without importing torch.

Conventions are the cost model's: MACs of convolutions and linear layers plus one per output
element of each normalisation layer; parameters of every layer. Convolutions pad ``k // 2``, so a
stride-s layer maps a side of H to ceil(H / s), as do the stems' max-pools and the transitions'
ceil-mode average pools. The built-in stems, blocks, skips, transitions and the head are counted
here; a block registered with a ``BlockDef.cost`` function is counted by it, any other block is
built once per configuration on the meta device and measured (torch imported then, cached). A
spec with a stem or skip style unknown here, or a timm model, falls back to the exact counter.
"""

from __future__ import annotations

import functools
from typing import Any

from bench.spec.arch import ArchSpec
from bench.spec.parts import BLOCKS, Lazy

Counts = tuple[int, int]  # (params, macs)


def _out(side: int, stride: int) -> int:
    return -(-side // stride)


def conv(cin: int, cout: int, k: int, side_out: int, bias: bool = False) -> Counts:
    """A k x k convolution producing ``side_out`` x ``side_out`` outputs."""
    weights = cin * cout * k * k
    return weights + (cout if bias else 0), weights * side_out * side_out


def norm(channels: int, side: int) -> Counts:
    """A BatchNorm (weight and bias; one MAC per output element)."""
    return 2 * channels, channels * side * side


def _sum(*parts: Counts) -> Counts:
    return sum(p for p, _ in parts), sum(m for _, m in parts)


def _stem(name: str, cin: int, width: int, norm_: bool, side: int) -> tuple[Counts, int] | None:
    if name == "cifar":
        parts = [conv(cin, width, 3, side)] + ([norm(width, side)] if norm_ else [])
        return _sum(*parts), side
    if name == "imagenet":
        s1 = _out(side, 2)
        return _sum(conv(cin, width, 7, s1), norm(width, s1)), _out(s1, 2)
    if name == "deep":
        half, s1 = width // 2, _out(side, 2)
        return _sum(conv(cin, half, 3, s1), norm(half, s1), conv(half, half, 3, s1),
                    norm(half, s1), conv(half, width, 3, s1), norm(width, s1)), _out(s1, 2)
    return None


def _branch(block: str, cin: int, width: int, cout: int, stride: int, side: int,
            kwargs: dict[str, Any]) -> Counts:
    so = _out(side, stride)
    if block == "basic":
        return _sum(conv(cin, width, 3, so), norm(width, so), conv(width, cout, 3, so),
                    norm(cout, so))
    if block == "preact_basic":
        return _sum(conv(cin, width, 3, so), norm(width, so), conv(width, cout, 3, so))
    if block in ("bottleneck", "preact_bottleneck"):
        parts = [conv(cin, width, 1, side), norm(width, side), conv(width, width, 3, so),
                 norm(width, so), conv(width, cout, 1, so)]
        if block == "bottleneck":
            parts.append(norm(cout, so))
        return _sum(*parts)
    if block == "dense":
        growth = cout - cin
        if kwargs.get("dense_bottleneck"):
            inner = kwargs["bottleneck_ratio"] * growth
            return _sum(norm(cin, side), conv(cin, inner, 1, side), norm(inner, side),
                        conv(inner, growth, 3, side))
        return _sum(norm(cin, side), conv(cin, growth, 3, side))
    bdef = BLOCKS.get(block)
    if bdef.cost is not None:
        return bdef.cost(cin, width, cout, stride, side, **kwargs)
    return _measured(block, cin, width, cout, stride, side, tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=4096)
def _measured(block: str, cin: int, width: int, cout: int, stride: int, side: int,
              kwargs: tuple[tuple[str, Any], ...]) -> Counts:
    """A block without an analytic count: built once per configuration on the meta device."""
    import torch

    from bench.models.cost import cost

    factory = BLOCKS.get(block).factory
    with torch.device("meta"):
        module = factory(cin, width, cout, stride, **dict(kwargs))
    c = cost(module, input_size=side, in_chans=cin)
    return c.params, c.macs


def _skip(skip: str, cin: int, cout: int, stride: int, preact: bool, side: int
          ) -> Counts | None:
    so = _out(side, stride)
    if skip in ("identity", "none", "concat"):
        return 0, 0
    if skip in ("projection", "projection_all"):
        if skip == "projection" and stride == 1 and cin == cout:
            return 0, 0
        parts = [conv(cin, cout, 1, so)] + ([] if preact else [norm(cout, so)])
        return _sum(*parts)
    if skip == "gated":
        return conv(cin, cout, 1, so, bias=True)
    return None


_BUILT_IN = {"stems": ("cifar", "imagenet", "deep"),
             "skips": ("identity", "none", "concat", "projection", "projection_all", "gated")}


def _is_built_in(ref: Any, module: str) -> bool:
    return isinstance(ref, Lazy) and ref.ref.startswith(module + ":")


def counts(arch: ArchSpec) -> Counts | None:
    """(params, macs) of ``arch`` for one image, or None where only the exact counter knows
    (timm models, stems or skip styles registered by plugins)."""
    from bench.spec.parts import SKIPS, STEMS

    if arch.family == "timm":
        return None
    if arch.stem not in _BUILT_IN["stems"] or not _is_built_in(STEMS.get(arch.stem).factory,
                                                                 "bench.models.stems"):
        return None
    if arch.skip not in _BUILT_IN["skips"] or not _is_built_in(SKIPS.get(arch.skip).factory,
                                                                 "bench.models.skips"):
        return None
    dense = arch.family == "densenet"
    side = arch.input_size
    stem = _stem(arch.stem, arch.in_chans, arch.scaled(arch.stem_width), not dense, side)
    if stem is None:
        return None
    total, side = stem
    params, macs = total
    channels = arch.channels()
    for index, (stage, (cin, cout)) in enumerate(zip(arch.stages, channels, strict=True)):
        bdef = stage.block_def
        width = arch.scaled(stage.width)
        kwargs = stage.block_kwargs(arch)
        if bdef.kind == "dense":
            if index > 0:  # transition: BN-ReLU-Conv1x1 then the pool
                start = cout - stage.depth * width
                p, m = _sum(norm(cin, side), conv(cin, start, 1, side))
                params, macs = params + p, macs + m
                cin = start
            side = _out(side, stage.stride)
            for _ in range(stage.depth):
                p, m = _branch(stage.block, cin, width, cin + width, 1, side, kwargs)
                params, macs = params + p, macs + m
                cin += width
            continue
        for j in range(stage.depth):
            stride = stage.stride if j == 0 else 1
            c_in = cin if j == 0 else cout
            pre = bdef.preact and (index, j) != (0, 0)
            parts = [_branch(stage.block, c_in, width, cout, stride, side, kwargs)]
            skip = _skip(arch.skip, c_in, cout, stride, bdef.preact, side)
            if skip is None:
                return None
            parts.append(skip)
            if pre:
                parts.append(norm(c_in, side))
            p, m = _sum(*parts)
            params, macs = params + p, macs + m
            side = _out(side, stride)
    last = arch.stages[-1].block_def
    final = channels[-1][1]
    if last.preact or last.kind == "dense":
        p, m = norm(final, side)
        params, macs = params + p, macs + m
    params += final * arch.num_classes + arch.num_classes  # the linear classifier
    macs += final * arch.num_classes
    return params, macs


@functools.lru_cache(maxsize=4096)
def arch_counts(arch: ArchSpec) -> Counts:
    """(params, macs): computed from the spec where possible, else the exact counter (torch)."""
    got = counts(arch)
    if got is not None:
        return got
    from bench.models.cost import cost

    c = cost(arch)
    return c.params, c.macs


__all__ = ["arch_counts", "conv", "counts", "norm"]
