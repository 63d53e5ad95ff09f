"""The on-device batch pipeline: uint8 batches to normalised float inputs, random crop / flip /
cutout drawn from an explicit generator (so a checkpoint can restore it), and a no-grad
evaluation loop over a device-resident split that syncs once at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.data import Split


@dataclass
class Normalizer:
    """``(x / 255 - mean) / std`` folded into one multiply-add per channel."""

    scale: torch.Tensor  # [1, C, 1, 1] float32
    shift: torch.Tensor
    channels_last: bool = False

    @classmethod
    def create(
        cls, mean: Sequence[float], std: Sequence[float], device: torch.device, channels_last: bool = False
    ) -> Normalizer:
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        return cls(1.0 / (255.0 * s), -m / s, channels_last)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self.shift, images.float(), self.scale)  # float32 [B, C, H, W]
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def crop_flip(images: torch.Tensor, gen: torch.Generator, padding: int, flip: bool) -> torch.Tensor:
    """Random crop after zero padding plus random horizontal flip, as one gather on uint8."""
    b, c, h, w = images.shape
    if padding <= 0 and not flip:
        return images
    dev = images.device
    if padding > 0:
        images = F.pad(images, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=gen, device=dev)
        dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=gen, device=dev)
    else:
        dy = dx = torch.zeros((b, 1), dtype=torch.long, device=dev)
    rows = torch.arange(h, device=dev)[None] + dy  # [B, H]
    cols = torch.arange(w, device=dev)[None].expand(b, w)
    if flip:
        mirror = torch.randint(0, 2, (b, 1), generator=gen, device=dev) == 1
        cols = torch.where(mirror, cols.flip(1), cols)
    cols = cols + dx  # [B, W]
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chans = torch.arange(c, device=dev)[None, :, None, None]
    return images[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def cutout(x: torch.Tensor, gen: torch.Generator, size: int) -> torch.Tensor:
    """Zero (the mean, after normalisation) a ``size`` square at a random centre per image;
    squares may run off the edge (DeVries & Taylor 2017)."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    dev = x.device
    cy = torch.randint(0, h, (b, 1, 1), generator=gen, device=dev)
    cx = torch.randint(0, w, (b, 1, 1), generator=gen, device=dev)
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    lo = size // 2
    inside = (ys >= cy - lo) & (ys < cy - lo + size) & (xs >= cx - lo) & (xs < cx - lo + size)
    return x.masked_fill(inside[:, None], 0.0)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device when asked, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    norm: Normalizer,
    *,
    batch_size: int = 1000,
    bf16: bool = False,
) -> dict[str, float]:
    """Cross-entropy (no label smoothing), top-1 and top-5 accuracy in percent over a split.

    Sums stay on the device; the single ``tolist`` at the end is the only sync. An empty split
    gives NaNs."""
    n = len(split)
    if n == 0:
        return {"loss": float("nan"), "acc": float("nan"), "top5": float("nan")}
    was_training = model.training
    model.eval()
    dev = split.images.device
    loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
    top1 = torch.zeros((), dtype=torch.int64, device=dev)
    top5 = torch.zeros((), dtype=torch.int64, device=dev)
    for start in range(0, n, batch_size):
        x = norm(split.images[start : start + batch_size])
        y = split.labels[start : start + batch_size]
        with autocast(dev, bf16):
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices == y[:, None]
        top1 += hits[:, 0].sum()
        top5 += hits.any(dim=1).sum()
    model.train(was_training)
    loss, c1, c5 = torch.stack([loss_sum.double(), top1.double(), top5.double()]).tolist()
    return {"loss": loss / n, "acc": 100.0 * c1 / n, "top5": 100.0 * c5 / n}
