"""Skip-style registry: how a block combines its shortcut with the branch output F(x).

A skip module is ``forward(x, fx)`` (x: the block input as the shortcut sees it, fx: F(x)),
``shortcut(x)`` (the skip path alone) and ``lesion(x)`` (the block's combination with F removed).
Registered styles (He et al. 2015 options A/B/C, a highway-style gate, a plain net, DenseNet):

- ``identity``: option A, parameter-free; stride subsampling and zero-padded channels on
  downsampling. timm has no option-A shortcut (its ResNets are ImageNet option B), hence our own.
- ``projection``: option B, 1x1 conv + BN only where the shape changes (without the BN in
  pre-activation blocks, whose shortcut input is already normalised: He et al. 2016b, WRN, timm
  ``ResNetV2``).
- ``projection_all``: option C, 1x1 conv + BN on every block (BN likewise).
- ``gated``: ``T(x) * F(x) + (1 - T(x)) * shortcut(x)``, ``T = sigmoid(1x1 conv)`` with a negative
  bias so blocks start close to the carry (shortcut) path (Srivastava et al. 2015; He et al. 2016b
  "exclusive gating"); the shortcut is option A.
- ``none``: plain net, no shortcut.
- ``concat``: DenseNet, ``cat([x, F(x)])``; the only style for ``dense`` blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# SkipDef and the SKIPS registry live in the torch-free bench.spec.parts (its built-in entries
# name the classes below lazily); re-exported here.
from bench.spec.parts import SKIPS, SkipDef, SkipFactory, register_skip

GATE_BIAS_INIT = -2.0  # T = sigmoid(-2) ~ 0.12: mostly carry at init (Srivastava et al.: -1..-3)


class Skip(nn.Module):
    """Base skip module: residual sum ``shortcut(x) + fx``; subclasses override what differs."""

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + fx

    def lesion(self, x: torch.Tensor) -> torch.Tensor:
        """The output with the residual branch deleted (F(x) := 0)."""
        return self.shortcut(x)


def _out_hw(x: torch.Tensor, stride: int) -> tuple[int, int]:
    # A stride-s conv with "same" padding gives ceil(H / s), as does x[..., ::s, ::s].
    return -(-x.shape[-2] // stride), -(-x.shape[-1] // stride)


class IdentityA(Skip):
    """Option A: ``x[:, :, ::s, ::s]`` with zero channels appended up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, preact: bool = False) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("an identity shortcut cannot reduce channels")
        self.pad = out_channels - in_channels
        self.stride = stride

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x


class Projection(Skip):
    """Options B (``always=False``: only where the shape changes) and C (``always=True``)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, preact: bool = False, always: bool = False
    ) -> None:
        super().__init__()
        if always or stride != 1 or in_channels != out_channels:
            conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.proj: nn.Module = (
                conv if preact else nn.Sequential(conv, nn.BatchNorm2d(out_channels))
            )
        else:
            self.proj = nn.Identity()

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Gated(Skip):
    """``T * F(x) + (1 - T) * shortcut(x)`` with ``T = sigmoid(conv1x1(x))`` per output channel."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, preact: bool = False) -> None:
        super().__init__()
        self.carry = IdentityA(in_channels, out_channels, stride)
        self.gate = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=True)
        nn.init.constant_(self.gate.bias, GATE_BIAS_INIT)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.carry.shortcut(x)

    def forward(self, x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x))
        return t * fx + (1 - t) * self.carry.shortcut(x)

    def lesion(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - torch.sigmoid(self.gate(x))) * self.carry.shortcut(x)


class NoSkip(Skip):
    """Plain net: the block is F(x) alone; its skip path is zero."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, preact: bool = False) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], self.out_channels, *_out_hw(x, self.stride)))

    def forward(self, x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        return fx


class Concat(Skip):
    """DenseNet: ``cat([x, F(x)])``; lesioned, the new channels are zero."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, preact: bool = False) -> None:
        super().__init__()
        if stride != 1:
            raise ValueError("a dense layer cannot stride; transitions downsample")
        self.growth = out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, fx], 1)

    def lesion(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, 0, 0, self.growth))


def projection_all(cin: int, cout: int, stride: int, preact: bool = False) -> Projection:
    """Option C: a projection on every block."""
    return Projection(cin, cout, stride, preact, always=True)


__all__ = ["SKIPS", "Concat", "Gated", "IdentityA", "NoSkip", "Projection", "Skip", "SkipDef",
           "SkipFactory", "projection_all", "register_skip"]
