"""Cost model: parameters, MACs and activations of a model at an input size, per stage and total.

Conventions: ``macs`` counts the multiply-accumulates of convolutions and matrix products
(linear layers) as ``torch.utils.flop_counter.FlopCounterMode`` sees them (it reports
FLOPs = 2 x MACs; we store MACs, ``flops`` = 2 * macs), plus one MAC per output element of each
normalisation layer (BN at inference is a per-channel scale-and-shift), which is how timm's
published GMACs count (resnet50 4.11 G, densenet121 2.87 G). Activation functions, pooling,
residual additions and gating products are not counted (well under 1% in these nets).
``activations`` is the number of output elements of every conv and linear layer (Radosavovic et
al. 2020, "Designing Network Design Spaces"). All counts
are for one image (batch 1), in eval mode, without gradients; an ``ArchSpec`` is built and run on
the meta device (no memory, no arithmetic), so even ResNet-152 costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.models.builder import StagedNet, build_model
from bench.models.spec import ArchSpec

CONV_LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
NORMS = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
)


@dataclass(frozen=True)
class ModelCost:
    """``params``, ``macs`` (FLOPs = 2 * MACs) and ``activations`` (conv/linear output
    elements) for one image; ``per_stage`` maps ``stem``, ``stage1``..., ``head`` (or, for
    foreign models, top-level child names) to dicts with the same three keys."""

    params: int
    macs: int
    activations: int
    input_size: int
    per_stage: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def as_dict(self) -> dict[str, int]:
        return {"params": self.params, "macs": self.macs, "activations": self.activations}


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def _groups(model: nn.Module) -> dict[str, nn.Module]:
    """Display name -> module for the per-stage breakdown."""
    if isinstance(model, StagedNet):
        groups = {"stem": model.stem}
        groups.update({f"stage{i + 1}": s for i, s in enumerate(model.stages)})
        groups["head"] = model.head
        return groups
    return dict(model.named_children())


def cost(
    model_or_arch: nn.Module | ArchSpec, input_size: int | None = None, in_chans: int | None = None
) -> ModelCost:
    """Cost of a model or spec for one ``in_chans x input_size x input_size`` image.

    ``input_size`` / ``in_chans`` default to the spec's (for a module built by ``build_model``, to
    its ``arch``; else 224 / 3); a spec is built with ``in_chans`` input channels. A module is
    run where its parameters live, in eval mode under ``no_grad`` (its training flag is restored
    afterwards)."""
    arch = model_or_arch if isinstance(model_or_arch, ArchSpec) else getattr(model_or_arch, "arch", None)
    if arch is not None and not isinstance(arch, ArchSpec):
        arch = None
    size = input_size or (arch.input_size if arch else 224)
    chans = in_chans or (arch.in_chans if arch else 3)
    if isinstance(model_or_arch, ArchSpec):
        if chans != model_or_arch.in_chans:
            model_or_arch = model_or_arch.replace(in_chans=chans)
        with torch.device("meta"):
            model = build_model(model_or_arch)
    else:
        model = model_or_arch
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32

    groups = _groups(model)
    owner = {}
    for gname, gmod in groups.items():
        for sub in gmod.modules():
            owner.setdefault(id(sub), gname)
    acts = dict.fromkeys(groups, 0)
    norm_macs = dict.fromkeys(groups, 0)

    def record(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        group = owner.get(id(module), "other")
        tally = norm_macs if isinstance(module, NORMS) else acts
        tally[group] = tally.get(group, 0) + output.numel()

    hooks = [
        m.register_forward_hook(record)
        for m in model.modules()
        if isinstance(m, CONV_LINEAR + NORMS)
    ]
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(1, chans, size, size, device=device, dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    flops_by_module = counter.get_flop_counts()
    root = type(model).__name__
    per_stage = {}
    for gname, gmod in groups.items():
        fqn = _fqn(model, gmod)
        gflops = sum(flops_by_module.get(f"{root}.{fqn}", {}).values()) if fqn else 0
        per_stage[gname] = {
            "params": count_params(gmod),
            "macs": int(gflops) // 2 + norm_macs.get(gname, 0),
            "activations": acts.get(gname, 0),
        }
    return ModelCost(
        params=count_params(model),
        macs=int(counter.get_total_flops()) // 2 + sum(norm_macs.values()),
        activations=sum(acts.values()),
        input_size=size,
        per_stage=per_stage,
    )


def _fqn(model: nn.Module, target: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is target:
            return name
    return ""
