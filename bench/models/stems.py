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

from torch import nn

# StemDef and the STEMS registry live in the torch-free bench.spec.parts (its built-in entries
# name the factories below lazily); re-exported here.
from bench.spec.parts import STEMS, StemDef, StemFactory, register_stem


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


__all__ = ["STEMS", "StemDef", "StemFactory", "register_stem"]
