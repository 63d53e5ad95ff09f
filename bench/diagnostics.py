"""Training diagnostics: per-block gradient norms (gradient flow: vanishing / exploding
gradients, plain vs residual) and the lesion study of Veit et al. 2016 (accuracy with single
blocks, or k random blocks, deleted: residual branch removed, skip kept).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from bench.augment import Normalizer, evaluate
from bench.data import Splits
from bench.models import residual_blocks

GRAD_PREFIX = "grad_norm/"
LESION_PREFIX = "lesion/"


def lesion_metrics(lesion: Mapping[str, Any]) -> dict[str, float]:
    """A lesion study (``lesion_study``'s dict) flattened to the metric names the report reads:
    ``lesion/baseline``, ``lesion/single/<block>``, ``lesion/random_k_mean/<k>`` and
    ``lesion/random_k_std/<k>``; non-numeric entries are left out."""
    out: dict[str, float] = {}
    if isinstance(lesion.get("baseline"), (int, float)):
        out[f"{LESION_PREFIX}baseline"] = float(lesion["baseline"])
    for group in ("single", "random_k_mean", "random_k_std"):
        for key, value in (lesion.get(group) or {}).items():
            if isinstance(value, (int, float)):
                out[f"{LESION_PREFIX}{group}/{key}"] = float(value)
    return out


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "_orig_mod", model)  # torch.compile wrapper


def grad_groups(model: nn.Module) -> list[tuple[str, list[torch.nn.Parameter]]]:
    """Parameter groups whose gradient norms are tracked: ``stem``, every block in forward
    order (``stage1.block1``, ...) and ``head`` for our nets; the top-level children otherwise."""
    model = _unwrap(model)
    blocks = residual_blocks(model)
    if hasattr(model, "stem") and hasattr(model, "head") and blocks:
        groups = [("stem", list(model.stem.parameters()))]
        groups += [(name, list(block.parameters())) for name, block in blocks]
        groups.append(("head", list(model.head.parameters())))
    else:
        groups = [(name, list(child.parameters())) for name, child in model.named_children()]
    return [(name, params) for name, params in groups if params]


def gradient_norms(
    model: nn.Module, groups: list[tuple[str, list[torch.nn.Parameter]]] | None = None
) -> dict[str, float]:
    """L2 norm of the current gradients of each group, as ``{"grad_norm/<group>": value}``;
    one device sync for all groups. Groups without gradients are left out."""
    groups = grad_groups(model) if groups is None else groups
    names, norms = [], []
    for name, params in groups:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            continue
        names.append(GRAD_PREFIX + name)
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
    if not norms:
        return {}
    return dict(zip(names, torch.stack(norms).tolist(), strict=True))


def lesion_study(
    model: nn.Module,
    splits: Splits,
    *,
    split: str = "test",
    k_values: Iterable[int] = (2, 4, 8),
    samples: int = 5,
    seed: int = 0,
    batch_size: int = 1000,
    bf16: bool = False,
    channels_last: bool = False,
) -> dict:
    """Top-1 accuracy (percent) on ``split`` of the intact model, with each single block lesioned
    and with ``k`` random blocks lesioned (``samples`` draws per k; k larger than the number of
    blocks is skipped). Plain data: ``{"split", "baseline", "single": {block: acc},
    "random_k": {k: [accs]}, "random_k_mean": {k: mean}, "random_k_std": {k: std}}``.
    Every block's ``lesioned`` flag is restored afterwards."""
    blocks = residual_blocks(model)
    data = splits.split(split)
    norm = Normalizer.create(splits.mean, splits.std, data.images.device, channels_last)

    def acc() -> float:
        return evaluate(model, data, norm, batch_size=batch_size, bf16=bf16)["acc"]

    original = [b.lesioned for _, b in blocks]
    rng = random.Random(seed)
    try:
        baseline = acc()
        single: dict[str, float] = {}
        for name, block in blocks:
            block.lesioned = True
            single[name] = acc()
            block.lesioned = False
        random_k: dict[int, list[float]] = {}
        for k in sorted(set(int(k) for k in k_values)):
            if not 1 <= k <= len(blocks):
                continue
            accs = []
            for _ in range(samples):
                chosen = rng.sample(range(len(blocks)), k)
                for i in chosen:
                    blocks[i][1].lesioned = True
                accs.append(acc())
                for i in chosen:
                    blocks[i][1].lesioned = False
            random_k[k] = accs
    finally:
        for (_, block), flag in zip(blocks, original, strict=True):
            block.lesioned = flag
    return {
        "split": split,
        "baseline": baseline,
        "single": single,
        "random_k": random_k,
        "random_k_mean": {k: statistics.fmean(v) for k, v in random_k.items()},
        "random_k_std": {k: statistics.pstdev(v) for k, v in random_k.items()},
    }
