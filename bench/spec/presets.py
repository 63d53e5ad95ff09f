"""Presets: nominal depth -> stages, with each family's depth convention (torch-free). The flat
parameters of a sweep or the command line map onto them in ``bench.spec.params``.

Depth conventions: CIFAR ResNet 6n+2 (2-layer blocks) / 9n+2 (3-layer bottlenecks), 3 stages of
n blocks at widths 16, 32, 64 (He et al. 2015); Wide ResNet WRN-d-k, d = 6n+4 (Zagoruyko &
Komodakis 2016); DenseNet L with (L-4)/3 layers per block, (L-4)/6 for DenseNet-BC (Huang et al.
2017); ImageNet ResNet-18/34/50/101/152 and DenseNet-121/161/169/201 stage depths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.errors import ConfigError
from bench.spec.arch import ArchSpec, StageSpec, _check_int
from bench.spec.parts import BLOCKS, STEMS

IMAGENET_RESNETS: dict[int, tuple[int, tuple[int, ...]]] = {
    # depth: (layers per block, blocks per stage)
    18: (2, (2, 2, 2, 2)),
    34: (2, (3, 4, 6, 3)),
    50: (3, (3, 4, 6, 3)),
    101: (3, (3, 4, 23, 3)),
    152: (3, (3, 8, 36, 3)),
}
IMAGENET_DENSENETS: dict[int, tuple[int, tuple[int, ...]]] = {
    # depth: (growth rate, layers per dense block); all DenseNet-BC
    121: (32, (6, 12, 24, 16)),
    161: (48, (6, 12, 36, 24)),
    169: (32, (6, 12, 32, 32)),
    201: (32, (6, 12, 48, 32)),
}
_NOTABLE_DEPTHS = (20, 32, 40, 44, 56, 100, 110, 164, 190, 250, 1001, 1202)


def _depth_rule(depth: int, step: int, offset: int, what: str) -> int:
    """n for ``depth == step * n + offset`` (n >= 1), else a ConfigError listing valid depths."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise ConfigError(f"depth must be an integer, got {depth!r}", "depth")
    n, rem = divmod(depth - offset, step)
    if rem == 0 and n >= 1:
        return n
    first = [step * i + offset for i in range(1, 6)]
    notable = [d for d in _NOTABLE_DEPTHS if (d - offset) % step == 0 and d > first[-1]]
    lower = max(offset + step, depth - (depth - offset) % step)
    nearest = sorted({lower, lower + step} if depth > offset + step else {offset + step})
    raise ConfigError(
        f"depth {depth} is not {step}n+{offset} for {what}; valid depths: "
        f"{', '.join(map(str, first + notable))}, ... (nearest: {', '.join(map(str, nearest))})",
        "depth",
    )


def cifar_resnet(
    depth: int,
    block: str = "basic",
    skip: str = "identity",
    width: int = 16,
    widen: int = 1,
    num_classes: int = 10,
    input_size: int = 32,
    *,
    stem: str = "cifar",
    width_multiplier: float = 1.0,
    bottleneck_ratio: int = 4,
    in_chans: int = 3,
    name: str = "",
    params: Mapping[str, Any] | None = None,
) -> ArchSpec:
    """CIFAR ResNet (He et al. 2015): 3 stages of n blocks at widths (1, 2, 4) x width x widen.

    depth = 6n+2 with 2-layer blocks (basic, preact_basic), 9n+2 with 3-layer bottlenecks
    (ResNet-164 = 18 preact_bottleneck blocks per stage). ``skip="none"`` gives the plain net.
    ``params``: the block's own parameters (e.g. ``cardinality``), the same in every stage."""
    bdef = BLOCKS.get(block, "block")
    if bdef.kind != "residual":
        raise ConfigError(
            f"cifar_resnet needs a residual block, got {bdef.kind} block {block!r}; "
            f"use densenet() or family: densenet",
            "block",
        )
    n = _depth_rule(depth, 3 * bdef.layers, 2, f"{block!r} blocks ({bdef.layers} layers each)")
    _check_int(widen, "widen")
    w = width * widen
    bp = dict(params or {})
    return ArchSpec(
        family="resnet", name=name, stem=stem, stem_width=width,
        stages=(StageSpec(n, w, 1, block, bp), StageSpec(n, 2 * w, 2, block, bp),
                StageSpec(n, 4 * w, 2, block, bp)),
        skip=skip, width_multiplier=width_multiplier, bottleneck_ratio=bottleneck_ratio,
        num_classes=num_classes, input_size=input_size, in_chans=in_chans, depth=depth,
    )


def wide_resnet(
    depth: int,
    k: int,
    num_classes: int = 10,
    input_size: int = 32,
    *,
    block: str = "preact_basic",
    skip: str = "projection",
    width: int = 16,
    stem: str = "cifar",
    width_multiplier: float = 1.0,
    in_chans: int = 3,
    name: str = "",
    params: Mapping[str, Any] | None = None,
) -> ArchSpec:
    """WRN-d-k (Zagoruyko & Komodakis 2016): pre-activation basic blocks, (d-4)/6 per stage at
    widths 16k, 32k, 64k, 1x1 projection where the shape changes (no dropout)."""
    bdef = BLOCKS.get(block, "block")
    n = _depth_rule(depth, 3 * bdef.layers, 4, f"Wide ResNets with {block!r} blocks")
    _check_int(k, "widen")
    if not name:
        name = f"wrn{depth}-{k}" + (f"-{block}" if block != "preact_basic" else "")
        name += f"-{skip}" if skip != "projection" else ""
    w = width * k
    bp = dict(params or {})
    return ArchSpec(
        family="resnet", name=name, stem=stem, stem_width=width,
        stages=(StageSpec(n, w, 1, block, bp), StageSpec(n, 2 * w, 2, block, bp),
                StageSpec(n, 4 * w, 2, block, bp)),
        skip=skip, width_multiplier=width_multiplier, num_classes=num_classes,
        input_size=input_size, in_chans=in_chans, depth=depth,
    )


def imagenet_resnet(
    depth: int,
    skip: str = "projection",
    stem: str = "imagenet",
    num_classes: int = 1000,
    input_size: int = 224,
    *,
    block: str | None = None,
    width: int = 64,
    widen: int = 1,
    width_multiplier: float = 1.0,
    bottleneck_ratio: int = 4,
    in_chans: int = 3,
    name: str = "",
    params: Mapping[str, Any] | None = None,
) -> ArchSpec:
    """ImageNet ResNet-18/34 (basic) and -50/101/152 (bottleneck): 4 stages at widths
    (1, 2, 4, 8) x width x widen; with ``stem="deep"`` the ResNet-C variant (timm ``resnet50d``
    minus its average-pool downsampling)."""
    if depth not in IMAGENET_RESNETS:
        raise ConfigError(
            f"depth {depth} is not an ImageNet ResNet depth; valid: "
            f"{', '.join(map(str, IMAGENET_RESNETS))}",
            "depth",
        )
    layers, counts = IMAGENET_RESNETS[depth]
    block = block or ("basic" if layers == 2 else "bottleneck")
    bdef = BLOCKS.get(block, "block")
    if bdef.kind != "residual" or bdef.layers != layers:
        valid = [b for b in BLOCKS.names() if BLOCKS.get(b).layers == layers and BLOCKS.get(b).kind == "residual"]
        raise ConfigError(
            f"ResNet-{depth} uses {layers}-layer blocks, {block!r} is a {bdef.layers}-layer "
            f"{bdef.kind} block; valid blocks for depth {depth}: {', '.join(valid)}",
            "block",
        )
    _check_int(widen, "widen")
    w = width * widen
    stages = tuple(
        StageSpec(c, w * 2**i, 1 if i == 0 else 2, block, dict(params or {}))
        for i, c in enumerate(counts)
    )
    return ArchSpec(
        family="resnet", name=name, stem=stem, stem_width=width, stages=stages, skip=skip,
        width_multiplier=width_multiplier, bottleneck_ratio=bottleneck_ratio,
        num_classes=num_classes, input_size=input_size, in_chans=in_chans, depth=depth,
    )


def densenet(
    depth: int,
    growth_rate: int | None = None,
    bc: bool | None = None,
    compression: float | None = None,
    num_classes: int = 10,
    input_size: int | None = None,
    *,
    stem: str = "cifar",
    width_multiplier: float = 1.0,
    bottleneck_ratio: int = 4,
    in_chans: int = 3,
    name: str = "",
) -> ArchSpec:
    """DenseNet (Huang et al. 2017). CIFAR layout (``stem="cifar"``): 3 dense blocks of (L-4)/3
    layers, (L-4)/6 for BC; first conv 16 channels, 2k for BC; k defaults to 12. ImageNet layout
    (``stem`` imagenet/deep): DenseNet-121/161/169/201 (always BC, k from the paper).
    ``bc`` = bottleneck layers + compression (default theta 0.5); ``compression`` alone gives -C.
    ``input_size`` defaults to 32 (CIFAR layout) or 224 (ImageNet layout)."""
    layout = STEMS.get(stem, "stem").layout
    if input_size is None:  # unset; an explicit 0 is an error, not the default
        input_size = 224 if layout == "imagenet" else 32
    if growth_rate is not None:
        _check_int(growth_rate, "growth_rate", what="channels added per dense layer")
    if layout == "imagenet":
        if depth not in IMAGENET_DENSENETS:
            raise ConfigError(
                f"depth {depth} is not an ImageNet DenseNet depth; valid: "
                f"{', '.join(map(str, IMAGENET_DENSENETS))}",
                "depth",
            )
        if bc is False:
            raise ConfigError("ImageNet DenseNets are DenseNet-BC; drop bc: false", "bc")
        k_default, counts = IMAGENET_DENSENETS[depth]
        k = k_default if growth_rate is None else growth_rate
        bc, strides = True, (1, 2, 2, 2)
    else:
        bc = bool(bc)
        k = 12 if growth_rate is None else growth_rate
        what = "DenseNet-BC (2-layer bottleneck dense layers)" if bc else "DenseNet (1-layer dense layers)"
        n = _depth_rule(depth, 6 if bc else 3, 4, what)
        counts, strides = (n, n, n), (1, 2, 2)
    theta = compression if compression is not None else (0.5 if bc else 1.0)
    return ArchSpec(
        family="densenet", name=name, stem=stem, stem_width=2 * k if bc else 16,
        stages=tuple(StageSpec(c, k, s, "dense") for c, s in zip(counts, strides, strict=True)),
        skip="concat", width_multiplier=width_multiplier, bottleneck_ratio=bottleneck_ratio,
        growth_rate=k, compression=theta, dense_bottleneck=bc, num_classes=num_classes,
        input_size=input_size, in_chans=in_chans, depth=depth,
    )


def timm_arch(name: str, num_classes: int = 1000, input_size: int = 224, in_chans: int = 3) -> ArchSpec:
    """A reference model from timm (``pretrained=False``), its classifier sized to num_classes."""
    return ArchSpec(
        family="timm", timm_model=name, num_classes=num_classes, input_size=input_size,
        in_chans=in_chans,
    )


# -- canonical models and flat parameters ------------------------------------------------------

CANONICAL: dict[str, dict[str, Any]] = {
    **{f"resnet{d}": {"depth": d} for d in (20, 32, 44, 56, 110)},
    **{f"resnet{d}-b": {"depth": d, "skip": "projection"} for d in (20, 32, 44, 56, 110)},
    "plain20": {"family": "plain", "depth": 20},
    "plain56": {"family": "plain", "depth": 56},
    "densenet40": {"family": "densenet", "depth": 40},
    "densenet-bc100": {"family": "densenet", "depth": 100, "bc": True},
    "wrn16-4": {"family": "wrn", "depth": 16, "widen": 4},
    "resnet50-imagenet": {
        "depth": 50, "stem": "imagenet", "num_classes": 1000, "input_size": 224,
    },
}
"""Named models of the design space (``model: <name>`` in ``arch_from_params``)."""
