"""Stem registry: the layers before the first stage.

A stem factory is ``(in_chans, width, norm) -> module``. With ``norm=True`` the stem ends in
BN-ReLU (and pooling), so the first block of a pre-activation net does not pre-activate again
(He et al. 2016b). DenseNets pass ``norm=False``: their layers normalise their own input and the
raw first-conv features are concatenated on (Huang et al. 2017); stems that pool normalise anyway.

- ``cifar``: 3x3 conv (16 channels in the CIFAR nets) [+ BN + ReLU], no downsampling.
- ``imagenet``: 7x7/2 conv + BN + ReLU + 3x3/2 max-pool (as timm's ``resnet50``).
- ``deep``: three 3x3 convs (width/2, width/2, width; the first stride 2) + 3x3/2 max-pool,
  the ResNet-C stem of Bag of Tricks (timm's ``stem_type="deep"``).

``layout`` picks the depth convention the presets use with this stem: ``cifar`` (3 stages,
depth 6n+2 / 9n+2) or ``imagenet`` (4 stages, ResNet-18/34/50/101/152, DenseNet-121/...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from bench.registry import Registry

# (in_chans, width, norm) -> module mapping [N, in_chans, H, W] to [N, width, H / reduction, ...]
StemFactory = Callable[[int, int, bool], nn.Module]


@dataclass(frozen=True)
class StemDef:
    """A stem type: ``reduction`` is its total stride, ``width_divisor`` what its width must be a
    multiple of, ``layout`` the depth convention presets use with it (see the module doc)."""

    factory: StemFactory
    reduction: int = 1
    width_divisor: int = 1
    layout: Literal["cifar", "imagenet"] = "cifar"
    description: str = ""


STEMS: Registry[StemDef] = Registry("stem")


def register_stem(name: str, stem: StemDef, *, overwrite: bool = False) -> StemDef:
    """Add a stem type (usable by name in ``ArchSpec.stem``)."""
    if not isinstance(stem, StemDef):
        raise TypeError(f"register_stem expects a StemDef, got {type(stem).__name__}")
    return STEMS.register(name, stem, overwrite=overwrite)


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def _cifar(in_chans: int, width: int, norm: bool = True) -> nn.Module:
    if not norm:
        return nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1, bias=False))
    return nn.Sequential(*_conv_bn_relu(in_chans, width, 3))


def _imagenet(in_chans: int, width: int, norm: bool = True) -> nn.Module:
    return nn.Sequential(
        *_conv_bn_relu(in_chans, width, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1)
    )


def _deep(in_chans: int, width: int, norm: bool = True) -> nn.Module:
    half = width // 2
    return nn.Sequential(
        *_conv_bn_relu(in_chans, half, 3, stride=2),
        *_conv_bn_relu(half, half, 3),
        *_conv_bn_relu(half, width, 3),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


STEMS.register("cifar", StemDef(_cifar, reduction=1, description="3x3 conv [+ BN + ReLU]"))
STEMS.register(
    "imagenet",
    StemDef(_imagenet, reduction=4, layout="imagenet", description="7x7/2 conv + BN + ReLU + max-pool"),
)
STEMS.register(
    "deep",
    StemDef(
        _deep, reduction=4, width_divisor=2, layout="imagenet",
        description="three 3x3 convs (ResNet-C) + max-pool",
    ),
)
