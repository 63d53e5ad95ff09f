"""Block registry: each block type is data (a ``BlockDef``) whose factory builds the residual
function F(x); the generic ``Block`` wrapper composes F with any skip module from ``skips``.

Registered: ``basic`` and ``bottleneck`` (He et al. 2015, post-activation), ``preact_basic`` and
``preact_bottleneck`` (He et al. 2016b, full pre-activation) and ``dense`` (one DenseNet layer,
Huang et al. 2017; with ``ArchSpec.dense_bottleneck`` it is the DenseNet-B 1x1-bottleneck layer).

timm's ResNet blocks are not reused: they hard-wire ``act(F(x) + downsample(x))``, whereas here
the combination (identity, projection, gate, none, concatenation) is its own registry axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from bench.registry import Registry

if TYPE_CHECKING:
    from bench.models.skips import Skip
    from bench.models.spec import ArchSpec

# (in_channels, width, out_channels, stride, arch) -> module computing F(x).
# ``width`` is the stage width (the 3x3 width; the bottleneck's inner width); for dense layers it
# is the growth rate k and F(x) must return ``out_channels - in_channels`` (= k) channels.
BranchFactory = Callable[[int, int, int, int, "ArchSpec"], nn.Module]


@dataclass(frozen=True)
class BlockDef:
    """A block type.

    ``layers``: weighted layers per block, for depth conventions (CIFAR ResNet depth is
    3 * layers * n + 2; a dense layer counts 1, or 2 with the DenseNet-B bottleneck).
    ``kind``: ``residual`` blocks combine F(x) with a residual skip style; ``dense`` blocks
    concatenate (only ``default_skip``). ``preact``: the block pre-activates its input
    (BN-ReLU before F, no ReLU after the sum). ``bottleneck``: output width is
    ``width * arch.bottleneck_ratio`` (else ``width * expansion``).
    """

    factory: BranchFactory
    layers: int
    kind: Literal["residual", "dense"] = "residual"
    preact: bool = False
    bottleneck: bool = False
    expansion: int = 1
    default_skip: str = ""
    description: str = ""

    def out_channels(self, in_channels: int, width: int, bottleneck_ratio: int) -> int:
        """Channels a block of this type outputs for a stage of ``width``."""
        if self.kind == "dense":
            return in_channels + width
        return width * (bottleneck_ratio if self.bottleneck else self.expansion)


BLOCKS: Registry[BlockDef] = Registry("block")


def register_block(name: str, block: BlockDef, *, overwrite: bool = False) -> BlockDef:
    """Add a block type (usable by name in any ``StageSpec.block``)."""
    if not isinstance(block, BlockDef):
        raise TypeError(f"register_block expects a BlockDef, got {type(block).__name__}")
    return BLOCKS.register(name, block, overwrite=overwrite)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def _basic(cin: int, width: int, cout: int, stride: int, arch: ArchSpec) -> nn.Module:
    return nn.Sequential(
        conv3x3(cin, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, cout), nn.BatchNorm2d(cout),
    )


def _bottleneck(cin: int, width: int, cout: int, stride: int, arch: ArchSpec) -> nn.Module:
    # Stride on the 3x3 (ResNet v1.5, as torchvision and timm), not on the first 1x1.
    return nn.Sequential(
        conv1x1(cin, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv1x1(width, cout), nn.BatchNorm2d(cout),
    )


def _preact_basic(cin: int, width: int, cout: int, stride: int, arch: ArchSpec) -> nn.Module:
    # The leading BN-ReLU lives in ``Block.pre`` so that it can feed the shortcut as well.
    return nn.Sequential(
        conv3x3(cin, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, cout),
    )


def _preact_bottleneck(cin: int, width: int, cout: int, stride: int, arch: ArchSpec) -> nn.Module:
    return nn.Sequential(
        conv1x1(cin, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv1x1(width, cout),
    )


def _dense(cin: int, width: int, cout: int, stride: int, arch: ArchSpec) -> nn.Module:
    growth = cout - cin
    if arch.dense_bottleneck:  # DenseNet-B: BN-ReLU-Conv1x1(ratio*k)-BN-ReLU-Conv3x3(k)
        inner = arch.bottleneck_ratio * growth
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


for _name, _def in {
    "basic": BlockDef(_basic, layers=2, description="3x3-3x3, post-activation (He et al. 2015)"),
    "bottleneck": BlockDef(
        _bottleneck, layers=3, bottleneck=True,
        description="1x1-3x3-1x1 bottleneck, post-activation (He et al. 2015)",
    ),
    "preact_basic": BlockDef(
        _preact_basic, layers=2, preact=True,
        description="BN-ReLU-3x3-BN-ReLU-3x3, full pre-activation (He et al. 2016b)",
    ),
    "preact_bottleneck": BlockDef(
        _preact_bottleneck, layers=3, preact=True, bottleneck=True,
        description="pre-activation 1x1-3x3-1x1 bottleneck (He et al. 2016b)",
    ),
    "dense": BlockDef(
        _dense, layers=1, kind="dense", default_skip="concat",
        description="DenseNet layer BN-ReLU-Conv3x3(k); with dense_bottleneck the B variant",
    ),
}.items():
    BLOCKS.register(_name, _def)
