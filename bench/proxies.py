"""Zero-cost proxies: scores of an untrained network from one minibatch, meant to rank
architectures before (or instead of) training them; a registry (``register_proxy``) like the
design axes, and the ``proxies:`` section of a space file.

Registered (all "larger predicts better"; the comparison is Abdelfattah et al. 2021,
*Zero-Cost Proxies for Lightweight NAS*):

- ``naswot``: Mellor et al. 2021, *Neural Architecture Search without Training*: the log
  determinant of the kernel K[i, j] = number of ReLUs on which inputs i and j agree (on or off).
- ``synflow``: Tanaka et al. 2020, *Pruning neural networks without any data by iteratively
  conserving synaptic flow*: with every parameter replaced by its absolute value and an all-ones
  input, R = sum of the outputs; score = sum over conv / linear weights of theta * dR/dtheta
  (float64, batch norm in inference mode with its initial statistics).
- ``grad_norm``: sum over conv / linear weights of the L2 norm of the cross-entropy gradient.
- ``snip``: Lee et al. 2019, *SNIP*: sum over conv / linear weights of |theta * dL/dtheta|.
- ``jacob_cov``: Mellor et al. 2020 (first version of the NASWOT paper): with the input
  Jacobians J of the minibatch and the eigenvalues v of their correlation matrix,
  -sum(log(v + k) + 1 / (v + k)), k = 1e-5.
- ``params`` and ``macs``: the baselines (a larger network predicted better).

Every proxy gets a freshly built model (the same weights for a seed), in NCHW layout, so one
proxy's changes (synflow's absolute values, gradients) never reach another.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

# The proxy registry and the space-file sections are torch-free, in the spec layer; the
# built-in entries there name the scorers below lazily.
from bench.spec.parts import PROXIES, ProxyDef, register_proxy
from bench.spec.trial import Prescreen, ProxySpec

Scorer = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]
PREFIX = "proxy/"
WEIGHTED = (nn.Conv2d, nn.Linear)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, WEIGHTED) and m.weight is not None]


def _loss_backward(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    model.train()
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(images), labels).backward()


def naswot(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        # agreements = on-on + off-off = 2 c.c' - |c| - |c'| + units: one matmul, exact in
        # float32 while the unit count stays below 2**24
        codes = output.detach().reshape(n, -1) > 0
        units = codes.shape[1]
        c = codes.to(torch.float32 if units < 2 ** 24 else torch.float64)
        on = c.sum(1, dtype=torch.float64)
        kernel.add_(2 * (c @ c.T).double() - on[:, None] - on[None, :] + units)

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        model.train()
        with torch.no_grad():
            model(images)
    finally:
        for h in hooks:
            h.remove()
    _sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet)


def synflow(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad(set_to_none=True)
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64)
    model(ones).sum().backward()
    return float(sum((w * w.grad).sum().item() for w in _weights(model) if w.grad is not None))


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    _loss_backward(model, images, labels)
    return float(sum(w.grad.norm().item() for w in _weights(model) if w.grad is not None))


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    _loss_backward(model, images, labels)
    return float(sum((w.detach() * w.grad).abs().sum().item() for w in _weights(model)
                     if w.grad is not None))


def jacob_cov(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.train()
    x = images.clone().requires_grad_(True)
    out = model(x)
    out.backward(torch.ones_like(out))
    jac = x.grad.reshape(x.shape[0], -1).double()
    corr = torch.corrcoef(jac)
    if not torch.isfinite(corr).all():  # an input with a constant Jacobian: no correlation
        return -math.inf
    v = torch.linalg.eigvalsh(corr).clamp(min=0.0)
    k = 1e-5
    return float(-(torch.log(v + k) + 1.0 / (v + k)).sum())


def params(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    from bench.models import count_params

    return float(count_params(model))


def macs(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    from bench.models import cost

    return float(cost(model, input_size=images.shape[-1], in_chans=images.shape[1]).macs)


# --- scoring -------------------------------------------------------------------------------------


def score(build: Callable[[], nn.Module], images: torch.Tensor, labels: torch.Tensor,
          names: Sequence[str], seed: int = 0) -> dict[str, float]:
    """``{name: score}``; each proxy gets ``build()`` under ``torch.manual_seed(seed)``."""
    out = {}
    for name in names:
        proxy = PROXIES.get(name)
        torch.manual_seed(seed)
        model = build()
        out[name] = float(proxy.score(model, images, labels))
    return out


def minibatch(splits: Any, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded draw of ``batch_size`` training images, normalised as the trainer does (no
    augmentation), as float32 NCHW on the CPU, with their labels."""
    from bench.augment import Normalizer

    train = splits.train
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=gen)[: min(batch_size, len(train))]
    norm = Normalizer.create(splits.mean, splits.std, torch.device("cpu"), False)
    images = norm(train.images[idx].cpu()).float().contiguous()
    return images, train.labels[idx].cpu()


def fit_arch(arch: Any, splits: Any) -> Any:
    """``arch`` with the classes, channels and input size of ``splits`` (as the trainer fits)."""
    fit = {"num_classes": splits.num_classes, "in_chans": splits.in_chans,
           "input_size": splits.image_size}
    if any(getattr(arch, k) != v for k, v in fit.items()):
        arch = dataclasses.replace(arch, **fit)
    return arch


def arch_scores(arch: Any, splits: Any, spec: ProxySpec, names: Sequence[str] | None = None,
                strict: bool = True) -> dict[str, float]:
    """The proxies of an ``ArchSpec`` fitted to ``splits``, on the seeded minibatch.
    ``strict=False``: a proxy that raises is left out with a warning on stderr."""
    from bench.models import build_model

    arch = fit_arch(arch, splits)
    images, labels = minibatch(splits, spec.batch_size, spec.seed)
    out: dict[str, float] = {}
    for name in names or spec.names:
        try:
            out.update(score(lambda: build_model(arch), images, labels, [name], spec.seed))
        except Exception as exc:
            if strict:
                raise
            print(f"warning: proxy {name} failed on {arch.label} ({type(exc).__name__}: {exc})",
                  file=sys.stderr, flush=True)
    return out


def trial_metrics(trial_spec: Any, spec: ProxySpec) -> dict[str, float]:
    """``proxy/<name>`` metrics of a trial's untrained network and ``proxy_time_s``; the data
    come from the trial's own (cached) dataset, scored with the trial's thread count."""
    from bench.data import load_dataset

    if not spec.enabled:
        return {}
    if trial_spec.train.threads:
        torch.set_num_threads(trial_spec.train.threads)
    start = time.perf_counter()
    splits = load_dataset(trial_spec.data, "cpu")
    scores = arch_scores(trial_spec.arch, splits, spec, strict=False)
    out = {PREFIX + k: v for k, v in scores.items()}
    out["proxy_time_s"] = time.perf_counter() - start
    return out


__all__ = [
    "PREFIX",
    "PROXIES",
    "Prescreen",
    "ProxyDef",
    "ProxySpec",
    "arch_scores",
    "fit_arch",
    "minibatch",
    "register_proxy",
    "score",
    "trial_metrics",
]
