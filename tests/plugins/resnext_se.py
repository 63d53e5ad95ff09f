"""A one-file plugin: a ResNeXt-style grouped bottleneck with ``cardinality`` and a
squeeze-and-excitation basic block with ``se_ratio``, registered through the public registries
only. Load it with ``--plugin resnext_se`` (its folder on PYTHONPATH) or a space's ``plugins:``;
``cardinality`` and ``se_ratio`` then are architecture parameters (axis names).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.models import BlockDef, register_block
from bench.models.blocks import BlockParam, conv1x1, conv3x3


def grouped_bottleneck(cin: int, width: int, cout: int, stride: int, *,
                       cardinality: int = 1) -> nn.Module:
    """1x1 - grouped 3x3 (``cardinality`` groups) - 1x1 (Xie et al. 2017, ResNeXt)."""
    groups = cardinality if width % cardinality == 0 else 1
    return nn.Sequential(
        conv1x1(cin, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False),
        nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv1x1(width, cout), nn.BatchNorm2d(cout),
    )


class SqueezeExcite(nn.Module):
    """Channel gates from the pooled features (Hu et al. 2018)."""

    def __init__(self, channels: int, ratio: int) -> None:
        super().__init__()
        hidden = max(1, channels // ratio)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(s))))


def se_basic(cin: int, width: int, cout: int, stride: int, *, se_ratio: int = 4) -> nn.Module:
    """The basic 3x3-3x3 branch followed by squeeze-and-excitation."""
    return nn.Sequential(
        conv3x3(cin, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, cout), nn.BatchNorm2d(cout), SqueezeExcite(cout, se_ratio),
    )


register_block("resnext_bottleneck", BlockDef(
    grouped_bottleneck, layers=3, bottleneck=True,
    params={"cardinality": BlockParam(1, "groups of the 3x3 convolution", minimum=1)},
    description="ResNeXt grouped bottleneck"), overwrite=True)
register_block("se_basic", BlockDef(
    se_basic, layers=2,
    params={"se_ratio": BlockParam(4, "squeeze-and-excitation reduction ratio", minimum=1)},
    description="basic block with squeeze-and-excitation"), overwrite=True)
