"""Presets (nominal depth -> stages, with each family's depth convention) and ``arch_from_params``,
which maps the flat parameters of a sweep or the command line to an ``ArchSpec``.

Depth conventions: CIFAR ResNet 6n+2 (2-layer blocks) / 9n+2 (3-layer bottlenecks), 3 stages of
n blocks at widths 16, 32, 64 (He et al. 2015); Wide ResNet WRN-d-k, d = 6n+4 (Zagoruyko &
Komodakis 2016); DenseNet L with (L-4)/3 layers per block, (L-4)/6 for DenseNet-BC (Huang et al.
2017); ImageNet ResNet-18/34/50/101/152 and DenseNet-121/161/169/201 stage depths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.errors import ConfigError, did_you_mean
from bench.models.blocks import BLOCKS
from bench.models.spec import TIMM_PREFIX, ArchSpec, StageSpec, _check_int
from bench.models.stems import STEMS

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
) -> ArchSpec:
    """CIFAR ResNet (He et al. 2015): 3 stages of n blocks at widths (1, 2, 4) x width x widen.

    depth = 6n+2 with 2-layer blocks (basic, preact_basic), 9n+2 with 3-layer bottlenecks
    (ResNet-164 = 18 preact_bottleneck blocks per stage). ``skip="none"`` gives the plain net."""
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
    return ArchSpec(
        family="resnet", name=name, stem=stem, stem_width=width,
        stages=(StageSpec(n, w, 1, block), StageSpec(n, 2 * w, 2, block), StageSpec(n, 4 * w, 2, block)),
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
    return ArchSpec(
        family="resnet", name=name, stem=stem, stem_width=width,
        stages=(StageSpec(n, w, 1, block), StageSpec(n, 2 * w, 2, block), StageSpec(n, 4 * w, 2, block)),
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
        StageSpec(c, w * 2**i, 1 if i == 0 else 2, block) for i, c in enumerate(counts)
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
    input_size = input_size or (224 if layout == "imagenet" else 32)
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
        k = growth_rate or k_default
        bc, strides = True, (1, 2, 2, 2)
    else:
        bc = bool(bc)
        k = growth_rate or 12
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

PARAM_KEYS = (
    "family", "model", "depth", "block", "skip", "width", "widen", "stem", "growth_rate",
    "compression", "bc", "bottleneck_ratio", "width_multiplier", "timm_model", "num_classes",
    "input_size", "in_chans", "name",
)
PARAM_FAMILIES = ("resnet", "plain", "wrn", "densenet", "timm")


def _get(params: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = params.get(key)
    if value is None:
        return default
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}", key)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", key)
        value = float(value)
    elif kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", key)
    elif not isinstance(value, str):
        raise ConfigError(f"expected a string, got {value!r}", key)
    return value


def arch_from_params(params: Mapping[str, Any]) -> ArchSpec:
    """An ``ArchSpec`` from flat parameters (a sweep trial's config, ``--set`` overrides).

    Keys (all optional): ``family`` (resnet | plain = resnet with skip none | wrn | densenet |
    timm), ``model`` (a CANONICAL name as the base the other keys override, or ``timm:<name>``),
    ``depth``, ``block``, ``skip``, ``width`` (first-stage width), ``widen`` (WRN k), ``stem``,
    ``growth_rate``, ``compression``, ``bc``, ``bottleneck_ratio``, ``width_multiplier``,
    ``timm_model``, ``num_classes``, ``input_size``, ``in_chans``, ``name``. The depth convention
    follows the stem's layout: cifar stems use 6n+2 / 9n+2 (WRN: 6n+4; DenseNet (L-4)/3, (L-4)/6
    for BC), imagenet stems the ImageNet depths; ``input_size`` defaults to 32 with cifar stems,
    224 with imagenet stems and timm models. Keys a family does not use are ignored (a joint
    sweep space sets them for every family); unknown keys are an error.
    """
    if not isinstance(params, Mapping):
        raise ConfigError(f"expected a mapping of architecture parameters, got {params!r}")
    for key in params:
        if key not in PARAM_KEYS:
            raise ConfigError(
                f"unknown architecture parameter {key!r}{did_you_mean(str(key), PARAM_KEYS)}; "
                f"valid: {', '.join(PARAM_KEYS)}",
                str(key),
            )
    model = _get(params, "model", str, "")
    if model:
        if model.startswith(TIMM_PREFIX):
            params = {"family": "timm", **params, "timm_model": model[len(TIMM_PREFIX):]}
        elif model in CANONICAL:
            params = {**CANONICAL[model], **params}
        elif params.get("family") == "timm":
            params = {**params, "timm_model": model}
        else:
            raise ConfigError(
                f"unknown model {model!r}{did_you_mean(model, CANONICAL)}; valid: "
                f"{', '.join(CANONICAL)}, or timm:<name> for any timm model",
                "model",
            )
        params = {k: v for k, v in params.items() if k != "model"}
    family = _get(params, "family", str, "resnet")
    if family not in PARAM_FAMILIES:
        raise ConfigError(
            f"unknown family {family!r}{did_you_mean(family, PARAM_FAMILIES)}; "
            f"valid: {', '.join(PARAM_FAMILIES)}",
            "family",
        )
    common: dict[str, Any] = {
        "num_classes": _get(params, "num_classes", int, 10),
        "in_chans": _get(params, "in_chans", int, 3),
    }
    if family == "timm":
        name = _get(params, "timm_model", str, "")
        return timm_arch(name, input_size=_get(params, "input_size", int, 224), **common)
    stem = _get(params, "stem", str, "cifar")
    layout = STEMS.get(stem, "stem").layout
    common["stem"] = stem
    common["input_size"] = _get(params, "input_size", int, 224 if layout == "imagenet" else 32)
    common["name"] = _get(params, "name", str, "")
    common["width_multiplier"] = _get(params, "width_multiplier", float, 1.0)
    ratio = _get(params, "bottleneck_ratio", int, 4)
    if family == "densenet":
        skip = _get(params, "skip", str, "concat")
        if skip != "concat":
            raise ConfigError(
                f"dense blocks combine by concatenation: skip must be 'concat' for family "
                f"'densenet', got {skip!r}",
                "skip",
            )
        block = _get(params, "block", str, "dense")
        if block != "dense" and BLOCKS.get(block).kind != "dense":
            raise ConfigError(f"family 'densenet' needs a dense block, got {block!r}", "block")
        return densenet(
            _get(params, "depth", int, 121 if layout == "imagenet" else 40),
            growth_rate=_get(params, "growth_rate", int),
            bc=_get(params, "bc", bool),
            compression=_get(params, "compression", float),
            bottleneck_ratio=ratio,
            **common,
        )
    skip = _get(params, "skip", str, None)
    if family == "plain":
        if skip not in (None, "none"):
            raise ConfigError(f"family 'plain' has no skip connections, got skip {skip!r}", "skip")
        skip = "none"
    block = _get(params, "block", str, None)
    widen = _get(params, "widen", int, 1)
    if family == "wrn":
        return wide_resnet(
            _get(params, "depth", int, 28),
            widen,
            block=block or "preact_basic",
            skip=skip or "projection",
            width=_get(params, "width", int, 16),
            **common,
        )
    if layout == "imagenet":
        return imagenet_resnet(
            _get(params, "depth", int, 50),
            skip=skip or "projection",
            block=block,
            width=_get(params, "width", int, 64),
            widen=widen,
            bottleneck_ratio=ratio,
            **common,
        )
    return cifar_resnet(
        _get(params, "depth", int, 20),
        block=block or "basic",
        skip=skip or "identity",
        width=_get(params, "width", int, 16),
        widen=widen,
        bottleneck_ratio=ratio,
        **common,
    )
