"""``build_model(arch)``: an ``ArchSpec`` to a ``torch.nn.Module``.

Our nets (ResNet / plain / WRN / DenseNet families) are a ``StagedNet``: ``.stem``, ``.stages``
(a ModuleList of stages, each an ``nn.Sequential`` of ``Block``s, dense stages led by a
transition) and ``.head`` (optional BN-ReLU, global average pool, linear). The builder is our own
rather than timm's ``ResNet`` because the CIFAR nets have 3 stages, a 16-wide 3x3 stem and
option-A shortcuts, and blocks and skips must compose freely; the head reuses timm's
``create_classifier``. ``family: timm`` models come from ``timm.create_model``. Every model
leaves the builder with its strided 1x1 convolutions routed as subsample + stride-1 convolution
(``bench.models.strided``: the same function, avoiding a heap-corrupting torch kernel on CPU).
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.models.blocks import Block, bn_relu, conv1x1
from bench.models.strided import route_strided_pointwise
from bench.spec.arch import ArchSpec
from bench.spec.parts import SKIPS, STEMS


class Head(nn.Module):
    """[BN-ReLU (pre-activation and dense nets)] - global average pool - linear."""

    def __init__(self, channels: int, num_classes: int, norm: bool) -> None:
        super().__init__()
        from timm.layers import create_classifier  # lazy: importing timm costs seconds

        self.norm = bn_relu(channels) if norm else nn.Identity()
        self.global_pool, self.fc = create_classifier(channels, num_classes, pool_type="avg")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.global_pool(self.norm(x)))


class Transition(nn.Sequential):
    """DenseNet transition: BN-ReLU-Conv1x1(theta * C)-AvgPool(stride)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        layers: list[nn.Module] = [bn_relu(cin), conv1x1(cin, cout)]
        if stride > 1:
            layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True))
        super().__init__(*layers)


class StagedNet(nn.Module):
    """stem -> stages -> head; ``arch`` is the spec it was built from."""

    def __init__(self, arch: ArchSpec, stem: nn.Module, stages: list[nn.Module], head: nn.Module):
        super().__init__()
        self.arch = arch
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))


def build_model(arch: ArchSpec) -> nn.Module:
    """The model ``arch`` describes, freshly initialised (He init; timm's own for timm models)."""
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"build_model expects an ArchSpec, got {type(arch).__name__}")
    if arch.family == "timm":
        import timm

        return route_strided_pointwise(timm.create_model(
            arch.timm_model, pretrained=False, num_classes=arch.num_classes, in_chans=arch.in_chans
        ))
    dense = arch.family == "densenet"
    stem = STEMS.get(arch.stem).factory(arch.in_chans, arch.scaled(arch.stem_width), not dense)
    build = _dense_stage if dense else _residual_stage
    channels = arch.channels()
    stages = [build(arch, i, cin, cout) for i, (cin, cout) in enumerate(channels)]
    last = arch.stages[-1].block_def
    head = Head(channels[-1][1], arch.num_classes, norm=last.preact or last.kind == "dense")
    model = StagedNet(arch, stem, stages, head)
    _init_weights(model)
    return route_strided_pointwise(model)


def _residual_stage(arch: ArchSpec, index: int, cin: int, cout: int) -> nn.Module:
    stage = arch.stages[index]
    bdef, sdef = stage.block_def, SKIPS.get(arch.skip)
    width = arch.scaled(stage.width)
    blocks = []
    for j in range(stage.depth):
        stride = stage.stride if j == 0 else 1
        c_in = cin if j == 0 else cout
        reshapes = stride != 1 or c_in != cout
        # Every stem ends in BN-ReLU, so the net's first pre-activation block does not repeat it
        # and both of its paths start from the activated stem output (He et al. 2016b).
        pre = bn_relu(c_in) if bdef.preact and (index, j) != (0, 0) else None
        blocks.append(
            Block(
                bdef.factory(c_in, width, cout, stride, **stage.block_kwargs(arch)),
                sdef.factory(c_in, cout, stride, bdef.preact),
                pre=pre,
                # not in-place: a lesioned identity block would otherwise overwrite its input
                act=None if bdef.preact else nn.ReLU(),
                share_pre=pre is not None and reshapes,
            )
        )
    return nn.Sequential(*blocks)


def _dense_stage(arch: ArchSpec, index: int, cin: int, cout: int) -> nn.Module:
    stage = arch.stages[index]
    bdef, sdef = stage.block_def, SKIPS.get(arch.skip)
    k = arch.scaled(stage.width)
    layers: list[nn.Module] = []
    if index > 0:
        start = cout - stage.depth * k  # floor(theta * cin), as ArchSpec.channels computed
        layers.append(Transition(cin, start, stage.stride))
        cin = start
    elif stage.stride > 1:
        layers.append(nn.AvgPool2d(stage.stride, stage.stride, ceil_mode=True))
    kwargs = stage.block_kwargs(arch)
    for _ in range(stage.depth):
        layers.append(Block(bdef.factory(cin, k, cin + k, 1, **kwargs),
                            sdef.factory(cin, cin + k, 1, False)))
        cin += k
    return nn.Sequential(*layers)


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def residual_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks with a ``lesioned`` flag, in forward order, named ``stage2.block3`` (1-based).

    For a ``StagedNet`` that is every block (residual, plain and dense layers); other models
    (timm) list whatever modules carry a ``lesioned`` attribute, under their module path.
    """
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    if isinstance(model, StagedNet):
        out = []
        for i, stage in enumerate(model.stages):
            blocks = [m for m in stage if isinstance(m, Block)]
            out += [(f"stage{i + 1}.block{j + 1}", b) for j, b in enumerate(blocks)]
        return out
    return [(name, m) for name, m in model.named_modules() if hasattr(m, "lesioned")]
