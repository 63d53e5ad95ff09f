"""Block registry: each block type is data (a ``BlockDef``) whose factory builds the residual
function F(x); the generic ``Block`` wrapper composes F with any skip module from ``skips``.

Registered: ``basic`` and ``bottleneck`` (He et al. 2015, post-activation), ``preact_basic`` and
``preact_bottleneck`` (He et al. 2016b, full pre-activation) and ``dense`` (one DenseNet layer,
Huang et al. 2017; with ``ArchSpec.dense_bottleneck`` it is the DenseNet-B 1x1-bottleneck layer).

timm's ResNet blocks are not reused: they hard-wire ``act(F(x) + downsample(x))``, whereas here
the combination (identity, projection, gate, none, concatenation) is its own registry axis.

The entries are registered in the torch-free ``bench.spec.parts`` (which names these factories
lazily); a factory is called as ``factory(cin, width, cout, stride, **params)`` with the block's
own parameters and the ArchSpec fields its ``BlockDef.uses`` names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

# BlockDef and the BLOCKS registry live in the torch-free bench.spec.parts (its built-in entries
# name the factories below lazily); re-exported here.
from bench.spec.parts import BLOCKS, BlockDef, BlockParam, BranchFactory, register_block

if TYPE_CHECKING:
    from bench.models.skips import Skip

def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def _basic(cin: int, width: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(
        conv3x3(cin, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, cout), nn.BatchNorm2d(cout),
    )


def _bottleneck(cin: int, width: int, cout: int, stride: int) -> nn.Module:
    # Stride on the 3x3 (ResNet v1.5, as torchvision and timm), not on the first 1x1.
    return nn.Sequential(
        conv1x1(cin, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv1x1(width, cout), nn.BatchNorm2d(cout),
    )


def _preact_basic(cin: int, width: int, cout: int, stride: int) -> nn.Module:
    # The leading BN-ReLU lives in ``Block.pre`` so that it can feed the shortcut as well.
    return nn.Sequential(
        conv3x3(cin, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, cout),
    )


def _preact_bottleneck(cin: int, width: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(
        conv1x1(cin, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv1x1(width, cout),
    )


def _dense(cin: int, width: int, cout: int, stride: int, *, dense_bottleneck: bool = False,
           bottleneck_ratio: int = 4) -> nn.Module:
    growth = cout - cin
    if dense_bottleneck:  # DenseNet-B: BN-ReLU-Conv1x1(ratio*k)-BN-ReLU-Conv3x3(k)
        inner = bottleneck_ratio * growth
        return nn.Sequential(bn_relu(cin), conv1x1(cin, inner), bn_relu(inner), conv3x3(inner, growth))
    return nn.Sequential(bn_relu(cin), conv3x3(cin, growth))


class Block(nn.Module):
    """One block: ``act(skip(s, F(pre(x))))`` where ``s`` is ``pre(x)`` or ``x``.

    ``pre`` is the pre-activation of preact blocks. As in He et al. 2016b, a block that changes
    shape feeds its shortcut the pre-activated input too (both paths share it), a block that keeps
    the shape feeds it the raw ``x`` (a clean identity path). ``act`` is the ReLU after the sum of
    post-activation blocks. With ``lesioned = True`` F is skipped and the block returns its skip
    path alone (Veit et al. 2016): ``act(skip.lesion(s))``.
    """

    def __init__(
        self,
        branch: nn.Module,
        skip: Skip,
        pre: nn.Module | None = None,
        act: nn.Module | None = None,
        share_pre: bool = False,
    ) -> None:
        super().__init__()
        self.pre = pre
        self.branch = branch
        self.skip = skip
        self.act = act
        self.share_pre = share_pre
        self.lesioned = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre(x) if self.pre is not None else x
        s = a if self.share_pre else x
        y = self.skip.lesion(s) if self.lesioned else self.skip(s, self.branch(a))
        return self.act(y) if self.act is not None else y


__all__ = ["BLOCKS", "Block", "BlockDef", "BlockParam", "BranchFactory", "bn_relu", "conv1x1",
           "conv3x3", "register_block"]
