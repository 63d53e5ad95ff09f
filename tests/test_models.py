"""The model design space: every block x skip x stem combination, rule violations, registries,
presets, arch_from_params, lesioning and timm reference models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.config import parse
from bench.errors import ConfigError
from bench.models import (
    BLOCKS,
    SKIPS,
    STEMS,
    ArchSpec,
    Block,
    BlockDef,
    SkipDef,
    StageSpec,
    StemDef,
    arch_from_params,
    build_model,
    cifar_resnet,
    count_params,
    densenet,
    imagenet_resnet,
    register_block,
    register_skip,
    register_stem,
    residual_blocks,
    timm_arch,
    wide_resnet,
)
from bench.models.skips import Skip

RESIDUAL_BLOCKS = ["basic", "bottleneck", "preact_basic", "preact_bottleneck"]
RESIDUAL_SKIPS = ["identity", "projection", "projection_all", "gated", "none"]
BUILTIN_STEMS = ["cifar", "imagenet", "deep"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one intra-op thread is as fast and robust to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_builtin_registries() -> None:
    assert set(RESIDUAL_BLOCKS + ["dense"]) <= set(BLOCKS.names())
    assert set(RESIDUAL_SKIPS + ["concat"]) <= set(SKIPS.names())
    assert set(BUILTIN_STEMS) <= set(STEMS.names())


def tiny_arch(stem: str, block: str, skip: str, **kw) -> ArchSpec:
    size = 224 if stem == "imagenet" else 32
    if BLOCKS.get(block).kind == "dense":
        return ArchSpec(
            family="densenet", stem=stem, stem_width=8, skip=skip, growth_rate=4,
            stages=(StageSpec(2, 4, 1, block), StageSpec(2, 4, 2, block)),
            compression=0.5, input_size=size, **kw,
        )
    return ArchSpec(
        stem=stem, stem_width=4, skip=skip, bottleneck_ratio=2, input_size=size,
        stages=(StageSpec(1, 4, 1, block), StageSpec(2, 8, 2, block)), **kw,
    )


def forward_backward(model: nn.Module, size: int, in_chans: int = 3) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(2, in_chans, size, size)
    y = model(x)
    y.square().mean().backward()
    assert torch.isfinite(y).all()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads[:1])  # gradient reaches the stem's first conv
    return y


COMBOS = [
    (stem, block, skip)
    for stem in BUILTIN_STEMS
    for block in RESIDUAL_BLOCKS + ["dense"]
    for skip in RESIDUAL_SKIPS + ["concat"]
]
VALID = [c for c in COMBOS if (c[1] == "dense") == (c[2] == "concat")]
INVALID = [c for c in COMBOS if c not in VALID]


@pytest.mark.parametrize(("stem", "block", "skip"), VALID)
def test_valid_combination_builds_and_trains(stem: str, block: str, skip: str) -> None:
    arch = tiny_arch(stem, block, skip)
    model = build_model(arch)
    y = forward_backward(model, arch.input_size)
    assert y.shape == (2, 10)
    assert len(model.stages) == 2


@pytest.mark.parametrize(("stem", "block", "skip"), INVALID)
def test_invalid_combination_names_the_rule(stem: str, block: str, skip: str) -> None:
    with pytest.raises(ConfigError) as info:
        tiny_arch(stem, block, skip)
    msg = str(info.value)
    assert info.value.path == "skip"
    if block == "dense":
        assert "concatenation" in msg and "'concat'" in msg and repr(skip) in msg
    else:
        assert "'concat' is for dense blocks" in msg and "identity" in msg and "gated" in msg


def test_densenet_bc_layer_and_compression() -> None:
    arch = tiny_arch("cifar", "dense", "concat", dense_bottleneck=True)
    model = build_model(arch)
    forward_backward(model, 32)
    # stem 8 -> +2*4 = 16 -> transition floor(0.5 * 16) = 8 -> +2*4 = 16 channels at the head
    assert arch.channels() == [(8, 16), (16, 16)]
    assert model.head.fc.in_features == 16
    convs = [m for m in model.stages[0][0].branch.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (3, 3)]
    assert convs[0].out_channels == 4 * 4  # DenseNet-B inner width: bottleneck_ratio (4) x k


@pytest.mark.parametrize(
    "arch",
    [
        cifar_resnet(11, block="bottleneck", width=4),
        cifar_resnet(8, block="preact_basic", skip="gated", width=4, widen=2),
        wide_resnet(10, 2, width=4),
        densenet(10, growth_rate=4, bc=True),
        densenet(7, growth_rate=4),
        imagenet_resnet(18, width=4, input_size=64, num_classes=5),
        arch_from_params({"family": "plain", "depth": 8, "width": 4, "in_chans": 1}),
    ],
    ids=lambda a: a.label,
)
def test_presets_build_and_train(arch: ArchSpec) -> None:
    y = forward_backward(build_model(arch), arch.input_size, arch.in_chans)
    assert y.shape == (2, arch.num_classes)


# -- rule violations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "path", "needles"),
    [
        (lambda: cifar_resnet(21), "depth",
         ["depth 21 is not 6n+2", "'basic'", "8, 14, 20, 26, 32", "56", "110", "nearest: 20, 26"]),
        (lambda: cifar_resnet(20, block="preact_bottleneck"), None, None),  # 9n+2: valid
        (lambda: cifar_resnet(21, block="bottleneck"), "depth", ["9n+2", "11, 20, 29", "164"]),
        (lambda: cifar_resnet(1), "depth", ["6n+2", "nearest: 8"]),
        (lambda: cifar_resnet(20, block="dense"), "block", ["residual block", "densenet"]),
        (lambda: cifar_resnet(20, block="basci"), "block", ["unknown block 'basci'", "'basic'"]),
        (lambda: cifar_resnet(20, skip="projektion"), "skip",
         ["unknown skip style 'projektion'", "did you mean 'projection'", "projection_all"]),
        (lambda: cifar_resnet(20, stem="imagenett"), "stem", ["unknown stem", "'imagenet'"]),
        (lambda: densenet(41), "depth", ["3n+4", "40"]),
        (lambda: densenet(40, bc=True), None, None),  # 6n+4 as well
        (lambda: densenet(102, bc=True), "depth", ["6n+4", "DenseNet-BC", "100"]),
        (lambda: densenet(100, stem="imagenet"), "depth", ["ImageNet DenseNet", "121"]),
        (lambda: imagenet_resnet(51), "depth", ["18, 34, 50, 101, 152"]),
        (lambda: imagenet_resnet(50, block="basic"), "block",
         ["3-layer blocks", "bottleneck, preact_bottleneck"]),
        (lambda: wide_resnet(14, 4), "depth", ["6n+4", "10, 16, 22, 28"]),
        (lambda: cifar_resnet(20, width_multiplier=0.3), "width_multiplier",
         ["x width_multiplier 0.3 = 4.8", "whole number of channels", "1/16"]),
        (lambda: cifar_resnet(20, stem="deep", width=15), "stem_width",
         ["not divisible by 2", "'deep'"]),
        (lambda: ArchSpec(stages=(StageSpec(1, 32), StageSpec(1, 16, 2))), "stages[1].width",
         ["cannot reduce channels", "32 to 16", "projection"]),
        (lambda: ArchSpec(stages=(StageSpec(1, 32), StageSpec(1, 16, 2)), skip="projection"),
         None, None),
        (lambda: ArchSpec(family="densenet", skip="concat", stages=(StageSpec(2, 8, 1, "dense"),)),
         "stages[0].width", ["growth rate", "expected 12"]),
        (lambda: ArchSpec(family="densenet", skip="concat", stages=(StageSpec(2, 12, 1, "basic"),)),
         "stages[0].block", ["needs dense blocks", "'basic'", "valid blocks: dense"]),
        (lambda: densenet(40, compression=1.5), "compression", ["(0, 1]", "1.5"]),
        (lambda: ArchSpec(stages=()), "stages", ["at least one stage"]),
        (lambda: StageSpec(0, 16), "depth", [">= 1", "got 0"]),
        (lambda: ArchSpec(family="vit"), "family", ["unknown family 'vit'", "densenet"]),
        (lambda: timm_arch("resnet5O"), "timm_model",
         ["unknown timm model 'resnet5O'", "close matches", "resnet50"]),
    ],
)
def test_rule_violations(make, path: str | None, needles: list[str] | None) -> None:
    if needles is None:
        assert isinstance(make(), ArchSpec)
        return
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == path
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_parsed_spec_errors_carry_key_paths() -> None:
    with pytest.raises(ConfigError) as info:
        parse(ArchSpec, {"stages": [{"depth": 1, "width": 4, "block": "nope"}]}, "arch")
    assert info.value.path == "arch.stages[0].block"
    with pytest.raises(ConfigError) as info:
        parse(ArchSpec, {"family": "densenet", "stages": [{"depth": 1, "width": 12, "block": "dense"}]})
    assert info.value.path == "skip" and "concatenation" in str(info.value)
    spec = cifar_resnet(20)
    from bench.config import to_dict

    assert parse(ArchSpec, to_dict(spec)) == spec  # round trip; specs are frozen and hashable
    assert hash(parse(ArchSpec, to_dict(spec))) == hash(spec)
    with pytest.raises(AttributeError):
        spec.skip = "none"  # type: ignore[misc]


def test_labels() -> None:
    assert cifar_resnet(56, skip="projection").label == "resnet56-projection-w16"
    assert arch_from_params({"family": "plain", "depth": 20}).label == "plain20-w16"
    assert densenet(100, bc=True).label == "densenet-bc100-k12"
    assert wide_resnet(16, 4).label == "wrn16-4"
    assert timm_arch("resnet18").label == "timm-resnet18"
    assert cifar_resnet(20, name="mine").label == "mine"
    assert imagenet_resnet(50).nominal_depth == 50
    assert densenet(121, stem="imagenet").nominal_depth == 121
    assert ArchSpec(stages=(StageSpec(3, 16),) * 3).nominal_depth == 20


# -- arch_from_params ----------------------------------------------------------------------------


def test_arch_from_params_families() -> None:
    assert arch_from_params({}) == cifar_resnet(20)
    assert arch_from_params({"depth": 56.0, "skip": "projection"}) == cifar_resnet(56, skip="projection")
    plain = arch_from_params({"family": "plain", "depth": 56})
    assert plain.skip == "none" and plain.family == "resnet"
    assert arch_from_params({"family": "wrn", "depth": 16, "widen": 4}) == wide_resnet(16, 4)
    bc = arch_from_params({"family": "densenet", "depth": 100, "bc": True})
    assert bc == densenet(100, bc=True) and bc.compression == 0.5 and bc.stem_width == 24
    r50 = arch_from_params({"depth": 50, "stem": "imagenet", "num_classes": 1000})
    assert r50 == imagenet_resnet(50) and r50.input_size == 224
    assert arch_from_params({"model": "resnet56-b"}) == cifar_resnet(56, skip="projection")
    assert arch_from_params({"model": "resnet56", "depth": 110}).depth == 110
    t = arch_from_params({"model": "timm:resnet18", "num_classes": 7})
    assert (t.family, t.timm_model, t.num_classes) == ("timm", "resnet18", 7)
    assert arch_from_params({"family": "timm", "timm_model": "resnet18"}).timm_model == "resnet18"
    assert arch_from_params({"family": "timm", "model": "resnet18"}).timm_model == "resnet18"
    # keys another family uses are ignored, so a joint sweep space can set them everywhere
    assert arch_from_params({"depth": 20, "growth_rate": 24, "bc": True}) == cifar_resnet(20)


@pytest.mark.parametrize(
    ("params", "path", "needles"),
    [
        ({"dpeth": 20}, "dpeth", ["unknown architecture parameter 'dpeth'", "did you mean 'depth'"]),
        ({"family": "densnet"}, "family", ["did you mean 'densenet'", "plain"]),
        ({"family": "densenet", "skip": "identity"}, "skip", ["concatenation", "'identity'"]),
        ({"family": "plain", "skip": "identity"}, "skip", ["no skip connections"]),
        ({"depth": "twenty"}, "depth", ["expected an integer"]),
        ({"bc": "yes", "family": "densenet"}, "bc", ["true or false"]),
        ({"model": "resnet57"}, "model", ["did you mean 'resnet56'", "timm:<name>"]),
        ({"model": "timm:not_a_model_xyz"}, "timm_model", ["unknown timm model"]),
        ({"depth": 21}, "depth", ["6n+2"]),
        ({"stem": "imagenet", "depth": 20}, "depth", ["18, 34, 50, 101, 152"]),
    ],
)
def test_arch_from_params_errors(params: dict, path: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        arch_from_params(params)
    assert info.value.path == path
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


# -- user registrations --------------------------------------------------------------------------


@pytest.fixture
def registered():
    """Register entries for one test and remove them afterwards."""
    added = []

    def add(registry, name: str, entry) -> None:
        registry.register(name, entry)
        added.append((registry, name))

    yield add
    for registry, name in added:
        registry.unregister(name)


def test_custom_block_skip_and_stem_by_name(registered) -> None:
    def single_conv(cin: int, width: int, cout: int, stride: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))

    class Scaled(Skip):
        def __init__(self, cin: int, cout: int, stride: int, preact: bool = False) -> None:
            super().__init__()
            self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False)

        def shortcut(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * self.proj(x)

    def patchify(in_chans: int, width: int, norm: bool = True) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_chans, width, 2, 2), nn.BatchNorm2d(width), nn.ReLU())

    registered(BLOCKS, "test_single", BlockDef(single_conv, layers=1))
    registered(SKIPS, "test_scaled", SkipDef(Scaled))
    registered(STEMS, "test_patch", StemDef(patchify, reduction=2))
    with pytest.raises(ConfigError, match="already registered"):
        register_block("test_single", BlockDef(single_conv, layers=1))
    with pytest.raises(TypeError):
        register_skip("test_bad", single_conv)  # type: ignore[arg-type]

    arch = cifar_resnet(5, block="test_single", skip="test_scaled", stem="test_patch", width=4)
    assert [s.depth for s in arch.stages] == [1, 1, 1]  # 3 * 1 * n + 2 with 1-layer blocks
    model = build_model(arch)
    forward_backward(model, 32)
    assert isinstance(model.stages[0][0].skip, Scaled)
    with pytest.raises(ConfigError, match="3n\\+2"):
        cifar_resnet(6, block="test_single")
    arch = arch_from_params({"block": "test_single", "depth": 8, "stem": "test_patch", "width": 4})
    assert arch.stages[0].block == "test_single"


def test_register_stem_validates(registered) -> None:
    with pytest.raises(TypeError):
        register_stem("test_bad", lambda c, w, n: nn.Identity())  # type: ignore[arg-type]
    assert "test_bad" not in STEMS


def test_custom_block_is_removed_after_test() -> None:
    assert "test_single" not in BLOCKS and "test_scaled" not in SKIPS
    with pytest.raises(ConfigError, match="unknown block 'test_single'"):
        StageSpec(1, 4, 1, "test_single")


# -- structure and lesioning ---------------------------------------------------------------------


def test_residual_blocks_in_forward_order() -> None:
    model = build_model(cifar_resnet(20))
    blocks = residual_blocks(model)
    assert [n for n, _ in blocks] == [f"stage{s}.block{b}" for s in (1, 2, 3) for b in (1, 2, 3)]
    assert all(isinstance(b, Block) and b.lesioned is False for _, b in blocks)
    order = []
    hooks = [b.register_forward_hook(lambda m, i, o, n=n: order.append(n)) for n, b in blocks]
    model(torch.randn(1, 3, 32, 32))
    assert order == [n for n, _ in blocks]
    for h in hooks:
        h.remove()
    assert len(residual_blocks(build_model(densenet(40)))) == 36


def _block(arch: ArchSpec, stage: int = 0, index: int = 1) -> Block:
    return build_model(arch).stages[stage][index]


def _lesioned(block: Block, x: torch.Tensor) -> torch.Tensor:
    calls = []
    hook = block.branch.register_forward_hook(lambda *a: calls.append(1))
    block.eval()
    with torch.no_grad():
        full = block(x)
        block.lesioned = True
        out = block(x)
    hook.remove()
    assert len(calls) == 1  # the lesioned forward never runs the residual branch
    assert not torch.allclose(out, full)
    return out


def test_lesioned_block_returns_its_skip_path() -> None:
    torch.manual_seed(0)
    raw = torch.randn(2, 16, 8, 8)
    kept = raw.clone()
    # post-activation: relu(x + 0), and the input is left as it was
    assert torch.equal(_lesioned(_block(cifar_resnet(20)), raw), raw.relu())
    assert torch.equal(raw, kept)
    x = raw.relu()  # a post-activation block's input is non-negative
    # pre-activation: the identity path carries x untouched
    assert torch.equal(_lesioned(_block(cifar_resnet(20, block="preact_basic")), raw), raw)
    # downsampling option A: subsample and zero-pad
    down = _block(cifar_resnet(20), stage=1, index=0)
    out = _lesioned(down, x)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()
    # option B: relu(BN(conv1x1(x)))
    proj = _block(cifar_resnet(20, skip="projection"), stage=1, index=0)
    assert torch.equal(_lesioned(proj, x), torch.relu(proj.skip.shortcut(x)))
    # gate: (1 - T(x)) * x with T = sigmoid(conv(x)); the negative bias keeps T small at init
    gated = _block(cifar_resnet(20, skip="gated"))
    t = torch.sigmoid(gated.skip.gate(x))
    assert t.mean() < 0.5
    assert torch.allclose(_lesioned(gated, x), torch.relu((1 - t) * x))
    # plain net: nothing is left
    assert not _lesioned(_block(cifar_resnet(20, skip="none")), x).any()
    # dense layer: its k new channels are zero
    dense = _block(densenet(40), index=0)
    y = torch.randn(2, 16, 8, 8)
    out = _lesioned(dense, y)
    assert out.shape == (2, 28, 8, 8) and torch.equal(out[:, :16], y) and not out[:, 16:].any()


def test_skip_modules_compose_with_branch_output() -> None:
    fx = torch.randn(2, 32, 4, 4)
    x = torch.randn(2, 16, 8, 8)
    for name in RESIDUAL_SKIPS:
        skip = SKIPS.get(name).factory(16, 32, 2, False)
        y = skip(x, fx)
        assert y.shape == fx.shape, name
    assert torch.equal(SKIPS.get("none").factory(16, 32, 2, False)(x, fx), fx)
    ident = SKIPS.get("identity").factory(16, 32, 2, False)
    assert count_params(ident) == 0
    assert count_params(SKIPS.get("projection").factory(16, 16, 1, False)) == 0
    assert count_params(SKIPS.get("projection_all").factory(16, 16, 1, False)) == 16 * 16 + 32
    assert count_params(SKIPS.get("projection").factory(16, 32, 2, True)) == 16 * 32  # no BN


# -- timm reference models -----------------------------------------------------------------------


def test_timm_model_adapted_to_classes_and_channels() -> None:
    arch = arch_from_params({"model": "timm:resnet18", "num_classes": 7, "in_chans": 1})
    model = build_model(arch)
    assert model.get_classifier().out_features == 7
    y = forward_backward(model, 32, in_chans=1)
    assert y.shape == (2, 7)
    assert residual_blocks(model) == []
