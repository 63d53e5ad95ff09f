"""Strided 1x1 convolutions as "subsample, then a stride-1 1x1 convolution".

torch 2.14.1's oneDNN AVX2 kernel for the backward of a 1x1, stride-2 convolution in
channels_last at one intra-op thread corrupts the heap for small channel counts (4 -> 8 aborts
the process; where it does not crash it may write out of bounds silently). A 1x1 convolution
with stride s and no padding is exactly ``conv1x1(x[:, :, ::s, ::s])``: same function, same
parameters, same output shape and MACs, and the stride-1 kernel is sound. ``route_strided_pointwise``
switches every such ``nn.Conv2d`` of a built model (ours and timm's) to ``SubsampledConv2d``,
a subclass that differs only in ``forward``, so state dicts, initialisation and
``isinstance(m, nn.Conv2d)`` stay as they were.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SubsampledConv2d(nn.Conv2d):
    """A 1x1, padding-0 ``nn.Conv2d`` whose stride is applied as a subsampling of its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.stride
        x = x[:, :, ::sh, ::sw]
        if x.shape[1] > 1 and x.stride(1) == 1:
            # A channels_last input stays channels_last (the slice is only a strided view).
            x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, self.weight, self.bias, 1, 0, self.dilation, self.groups)


def _reroutable(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and tuple(m.kernel_size) == (1, 1)
        and tuple(m.stride) != (1, 1)
        and tuple(m.padding) == (0, 0)
        and tuple(m.dilation) == (1, 1)
        and m.padding_mode == "zeros"
    )


def route_strided_pointwise(model: nn.Module) -> nn.Module:
    """Switch every strided 1x1 convolution of ``model`` to ``SubsampledConv2d`` (in place);
    returns ``model``."""
    for m in model.modules():
        if _reroutable(m):
            m.__class__ = SubsampledConv2d
    return model


def strided_pointwise_count(model: nn.Module) -> int:
    """How many 1x1 convolutions of ``model`` still stride in the kernel (0 after routing)."""
    return sum(1 for m in model.modules() if _reroutable(m))
