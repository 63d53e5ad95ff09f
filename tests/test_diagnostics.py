"""Gradient-flow norms and the lesion study (Veit et al. 2016) on a tiny trained net."""

from __future__ import annotations

import math

import pytest
import torch

from bench.augment import Normalizer, evaluate
from bench.data import load_dataset
from bench.diagnostics import gradient_norms, lesion_study
from bench.models import build_model, residual_blocks
from bench.trainer import train


@pytest.fixture(scope="module")
def trained(tiny_trial) -> dict:
    """One short run with both diagnostics on; keeps the result and the final checkpoint."""
    spec = tiny_trial(
        arch={"depth": 14, "width": 4},
        train={"epochs": 3, "lr": 0.1, "schedule": "onecycle"},
        diagnostics={"grad_norms": True, "lesion": True, "lesion_k": [1, 2, 50], "lesion_samples": 3},
    )
    states = []
    result = train(spec, report=lambda m, ckpt: states.append(ckpt()))
    return {"spec": spec, "result": result, "state": states[-1]}


def _model_and_splits(trained: dict):
    spec = trained["spec"]
    splits = load_dataset(spec.data)
    arch = spec.arch.replace(num_classes=splits.num_classes)
    model = build_model(arch).to(memory_format=torch.channels_last)
    model.load_state_dict(trained["state"]["model"])
    return model, splits


def test_grad_norms_recorded_per_epoch(trained) -> None:
    result = trained["result"]
    names = ["stem"] + [f"stage{s}.block{b}" for s in (1, 2, 3) for b in (1, 2)] + ["head"]
    assert result.diagnostics["grad_norms"]["groups"] == names
    assert "last training batch" in result.diagnostics["grad_norms"]["measured_on"]
    for h in result.history:
        values = [h[f"grad_norm/{n}"] for n in names]
        assert all(math.isfinite(v) and v > 0 for v in values)
    # and they change as training proceeds
    assert result.history[0]["grad_norm/stem"] != result.history[-1]["grad_norm/stem"]


def test_gradient_norms_match_a_direct_computation() -> None:
    torch.manual_seed(0)
    from bench.models import cifar_resnet

    model = build_model(cifar_resnet(8, width=4))
    model(torch.randn(4, 3, 16, 16)).square().mean().backward()
    norms = gradient_norms(model)
    block = dict(residual_blocks(model))["stage2.block1"]
    direct = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in block.parameters())).item()
    assert norms["grad_norm/stage2.block1"] == pytest.approx(direct, rel=1e-5)
    assert set(norms) == {"grad_norm/stem", "grad_norm/stage1.block1", "grad_norm/stage2.block1",
                          "grad_norm/stage3.block1", "grad_norm/head"}
    model.zero_grad(set_to_none=True)
    assert gradient_norms(model) == {}


def test_lesion_study_from_training(trained) -> None:
    lesion = trained["result"].diagnostics["lesion"]
    assert lesion["split"] == "test"
    assert set(lesion["single"]) == {f"stage{s}.block{b}" for s in (1, 2, 3) for b in (1, 2)}
    assert set(lesion["random_k"]) == {1, 2}  # k = 50 exceeds the 6 blocks: skipped
    assert all(len(v) == 3 for v in lesion["random_k"].values())
    assert lesion["baseline"] == pytest.approx(trained["result"].metrics["test_acc"])
    k2 = lesion["random_k"][2]
    assert lesion["random_k_mean"][2] == pytest.approx(sum(k2) / 3)
    assert lesion["random_k_std"][2] >= 0


def test_lesion_study_direct(trained) -> None:
    model, splits = _model_and_splits(trained)
    norm = Normalizer.create(splits.mean, splits.std, torch.device("cpu"), channels_last=True)
    baseline = evaluate(model, splits.test, norm)["acc"]
    out = lesion_study(model, splits, k_values=(1, 3), samples=2, seed=5)
    assert out["baseline"] == pytest.approx(baseline)
    # deleting a block changes what the net computes: some single lesion moves the accuracy
    assert any(acc != baseline for acc in out["single"].values())
    assert not any(b.lesioned for _, b in residual_blocks(model))  # flags restored
    assert lesion_study(model, splits, k_values=(1, 3), samples=2, seed=5) == out  # seeded
    # on the validation split too
    assert lesion_study(model, splits, split="val", k_values=(), samples=1)["split"] == "val"
