"""The cost model and the exactness table: parameter counts exact, MACs within 1% of the
published figures (10 classes for CIFAR nets, 1000 for ImageNet ones)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.models import (
    ArchSpec,
    build_model,
    cifar_resnet,
    cost,
    count_params,
    densenet,
    imagenet_resnet,
    timm_arch,
    wide_resnet,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one intra-op thread is as fast and robust to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("depth", "params"),
    [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962)],
)
def test_cifar_resnet_param_counts(depth: int, params: int) -> None:
    assert count_params(build_model(cifar_resnet(depth))) == params  # option A
    # option B adds the two 1x1 projections: 16*32 + 2*32 and 32*64 + 2*64
    assert cost(cifar_resnet(depth, skip="projection")).params == params + 2_752


@pytest.mark.parametrize(
    ("arch", "params"),
    [
        (cifar_resnet(20, skip="projection"), 272_474),
        (cifar_resnet(56, skip="none"), 853_018),  # the plain net has the same weights
        (densenet(40, growth_rate=12), 1_019_722),
        (densenet(100, growth_rate=12, bc=True, compression=0.5), 769_162),
        (wide_resnet(16, 4), 2_748_890),  # Zagoruyko & Komodakis' reference implementation
        (imagenet_resnet(50), 25_557_032),
        (densenet(121, stem="imagenet", num_classes=1000), 7_978_856),
    ],
    ids=lambda v: v.label if isinstance(v, ArchSpec) else str(v),
)
def test_param_counts(arch: ArchSpec, params: int) -> None:
    assert cost(arch).params == params


@pytest.mark.parametrize(
    ("ours", "timm_name"),
    [
        (imagenet_resnet(50, num_classes=1000), "resnet50"),
        (imagenet_resnet(50, block="preact_bottleneck", num_classes=1000), "resnetv2_50"),
        (imagenet_resnet(50, stem="deep", num_classes=1000), "resnet50d"),
        (imagenet_resnet(18, num_classes=1000), "resnet18"),
        (densenet(121, stem="imagenet", num_classes=1000), "densenet121"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.label,
)
def test_registry_built_nets_match_timm(ours: ArchSpec, timm_name: str) -> None:
    theirs = cost(timm_arch(timm_name))
    mine = cost(ours)
    assert mine.params == theirs.params
    assert mine.macs == pytest.approx(theirs.macs, rel=0.005)


@pytest.mark.parametrize(
    ("arch", "macs"),
    [
        (cifar_resnet(20), 40.8e6),
        (cifar_resnet(56), 125.7e6),
        (timm_arch("resnet50"), 4.1e9),
        (timm_arch("densenet121"), 2.87e9),
    ],
    ids=lambda v: v.label if isinstance(v, ArchSpec) else str(v),
)
def test_macs_within_one_percent(arch: ArchSpec, macs: float) -> None:
    c = cost(arch)
    assert c.macs == pytest.approx(macs, rel=0.01)
    assert c.flops == 2 * c.macs


def test_timm_densenet121_params() -> None:
    assert cost(timm_arch("densenet121")).params == 7_978_856


def test_resnet20_breakdown_by_hand() -> None:
    c = cost(cifar_resnet(20))
    hw = 32 * 32
    # stage 1: six 3x3 16->16 convs at 32x32 (+ one MAC per BN output element)
    conv = 6 * 16 * 16 * 9 * hw
    assert c.per_stage["stage1"]["macs"] == conv + 6 * 16 * hw
    assert c.per_stage["stage1"]["params"] == 6 * (16 * 16 * 9 + 2 * 16)
    # activations: outputs of every conv and of the linear layer
    assert c.activations == 16 * hw * 7 + 32 * (hw // 4) * 6 + 64 * (hw // 16) * 6 + 10 == 188_426
    assert c.per_stage["head"] == {"params": 64 * 10 + 10, "macs": 640, "activations": 10}
    assert list(c.per_stage) == ["stem", "stage1", "stage2", "stage3", "head"]
    for key in ("params", "macs", "activations"):
        assert sum(s[key] for s in c.per_stage.values()) == getattr(c, key)
    assert c.as_dict() == {"params": c.params, "macs": c.macs, "activations": c.activations}


def test_cost_of_a_module_matches_spec_and_leaves_it_untouched() -> None:
    arch = cifar_resnet(8, width=8)
    model = build_model(arch)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    c = cost(model)
    assert model.training  # mode restored
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics not updated
    assert c == cost(arch)
    # at twice the resolution conv MACs and activations scale by 4; parameters do not
    big = cost(arch, input_size=64)
    assert big.params == c.params
    assert big.macs == pytest.approx(4 * c.macs, rel=0.001)
    assert cost(arch, in_chans=1).per_stage["stem"]["params"] == 8 * 9 + 16


def test_cost_of_foreign_modules() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    c = cost(model, input_size=8)
    assert c.macs == 3 * 4 * 9 * 64 + 256 * 2
    assert c.activations == 4 * 64 + 2
    assert set(c.per_stage) == {"0", "1", "2"}
    t = cost(timm_arch("resnet18"))
    assert "layer4" in t.per_stage and t.per_stage["fc"]["params"] == 512 * 1000 + 1000


def test_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    from launchers.summary import main

    assert main(["--arch", "resnet56", "--arch", "densenet-bc100"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs = 2 x MACs" in out.splitlines()[0]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["resnet56"][3] == "853,018" and rows["densenet-bc100"][3] == "769,162"
    assert main(["--arch", "resnet56", "--set", "skip=projection"]) == 0
    assert "855,770" in capsys.readouterr().out


def test_summary_config_error_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from launchers.summary import main

    assert main(["--set", "depth=21"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        "error: depth: depth 21 is not 6n+2 for 'basic' blocks (2 layers each); valid depths: "
        "8, 14, 20, 26, 32, 44, 56, 110, 164, 1202, ... (nearest: 20, 26)"
    ]


def _cross_check_specs() -> list[ArchSpec]:
    """Every built-in block x skip style (where the block takes it), each stem, the other
    families, odd input sides (the ceil of strided layers and pools), and widths not a multiple
    of the bottleneck expansion: the cases where a counting formula could drift."""
    from bench.spec.params import arch_from_params

    out = []
    for block in ("basic", "preact_basic", "bottleneck", "preact_bottleneck"):
        depth = 11 if "bottleneck" in block else 8
        for skip in ("identity", "projection", "projection_all", "gated", "none"):
            out.append(arch_from_params({"depth": depth, "block": block, "skip": skip,
                                         "width": 6, "input_size": 15}))
    for stem, side in (("imagenet", 37), ("deep", 33)):  # ImageNet stems: ImageNet depths
        out.append(arch_from_params({"depth": 18, "stem": stem, "width": 8, "input_size": side}))
    out += [
        arch_from_params({"family": "plain", "depth": 14, "width": 4, "input_size": 17}),
        arch_from_params({"family": "wrn", "depth": 10, "widen": 2, "input_size": 31}),
        arch_from_params({"family": "densenet", "depth": 22, "growth_rate": 6, "input_size": 29}),
        arch_from_params({"family": "densenet", "depth": 28, "growth_rate": 4, "bc": True,
                          "compression": 0.5, "input_size": 32}),
        densenet(121, stem="imagenet", num_classes=1000).replace(input_size=65),
        imagenet_resnet(50).replace(input_size=65),
    ]
    return out


@pytest.mark.parametrize("arch", _cross_check_specs(), ids=lambda a: f"{a.label}@{a.input_size}")
def test_spec_counts_equal_the_exact_counter(arch: ArchSpec) -> None:
    """The dry run's counts (from the spec, no torch) are the FlopCounterMode counts exactly."""
    from bench.spec.costs import counts

    exact = cost(arch)
    assert counts(arch) == (exact.params, exact.macs)
