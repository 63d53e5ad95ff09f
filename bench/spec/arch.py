"""Frozen, validated architecture specs: ``StageSpec`` (one stage) and ``ArchSpec`` (a model).

Validation happens at construction, so an ``ArchSpec`` that exists can be built. Rules checked
here are the ones that hold for any spec (registered names, block/skip/family compatibility,
integral widths, channel flow); depth conventions (6n+2, ...) belong to the presets that map a
nominal depth to stages (``bench.spec.presets``). No torch here: the registries checked are the
torch-free definitions of ``bench.spec.parts``; ``bench.models.build_model`` builds a spec.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from typing import Any

from bench.config import Bool, Float, Int, Str, doc, spec_class
from bench.errors import ConfigError, did_you_mean
from bench.spec.parts import BLOCKS, SKIPS, STEMS, BlockDef

FAMILIES = ("resnet", "densenet", "timm")
# Bounds of a buildable model: ResNet-1202 (He et al.) has 600 blocks, WRN-28-10 640 channels,
# DenseNet-BC-190 93 dense layers; far beyond that, building even the meta-device cost model
# takes hours (a depth of 10^9 satisfies 6n+2).
MAX_BLOCKS = 2000
MAX_STAGES = 16
MAX_WIDTH = 8192
MAX_INPUT = 2048
TIMM_PREFIX = "timm:"


def _check_int(value: object, name: str, minimum: int = 1, what: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = f" ({what})" if what else ""
        raise ConfigError(f"must be an integer >= {minimum}{extra}, got {value!r}", name)


class Params(dict):  # type: ignore[type-arg]
    """A block's parameters: a dict that hashes (specs are dict keys and set members)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


@spec_class
class StageSpec:
    """One stage: ``depth`` blocks of type ``block`` at ``width``; the first block strides.

    For dense stages ``width`` is the growth rate and ``stride`` is applied by the transition
    (BN-ReLU-Conv1x1-AvgPool) that precedes every stage but the first."""

    depth: Int = doc("blocks (dense layers) in this stage")
    width: Int = doc("stage width: 3x3 / bottleneck inner width; growth rate k for dense stages")
    stride: Int = doc("stride of the stage's first block (or transition)", default=1)
    block: Str = doc("block type (a name in BLOCKS)", default="basic")
    params: dict[str, Any] = doc("the block's own parameters (BlockDef.params), e.g. "
                                 "cardinality; unset ones take the block's defaults",
                                 default_factory=dict)

    def __post_init__(self) -> None:
        _check_int(self.depth, "depth", what="blocks in this stage")
        _check_int(self.width, "width", what="channels")
        _check_int(self.stride, "stride")
        declared = BLOCKS.get(self.block, "block").params
        checked = {}
        for key, value in dict(self.params or {}).items():
            if key not in declared:
                valid = ", ".join(sorted(declared)) or "none"
                raise ConfigError(f"block {self.block!r} has no parameter {key!r}"
                                  f"{did_you_mean(str(key), declared)}; valid: {valid}",
                                  f"params.{key}")
            checked[key] = declared[key].check(key, value)
        object.__setattr__(self, "params", Params(sorted(checked.items())))

    def block_kwargs(self, arch: ArchSpec) -> dict[str, Any]:
        """The keywords the block factory gets: its own parameters (defaults filled in) and the
        ArchSpec fields its definition ``uses``."""
        bdef = self.block_def
        out = {name: self.params.get(name, p.default) for name, p in bdef.params.items()}
        out.update({name: getattr(arch, name) for name in bdef.uses})
        return out

    @property
    def block_def(self) -> BlockDef:
        return BLOCKS.get(self.block)


@spec_class
class ArchSpec:
    """A model in the design space (ResNet/plain/WRN family, DenseNet family or a timm model)."""

    family: Str = doc("model family: resnet | densenet | timm", default="resnet")
    name: Str = doc("display label; empty: derived (see .label)", default="")
    stem: Str = doc("stem type (a name in STEMS)", default="cifar")
    stem_width: Int = doc("stem output channels (before width_multiplier)", default=16)
    stages: tuple[StageSpec, ...] = doc("the stages, in forward order", default=())
    skip: Str = doc("skip style (a name in SKIPS); 'concat' for dense blocks", default="identity")
    width_multiplier: Float = doc("scales stem and stage widths (must give whole channels)", default=1.0)
    bottleneck_ratio: Int = doc("bottleneck expansion; DenseNet-B inner width = ratio * k", default=4)
    growth_rate: Int = doc("DenseNet growth rate k", default=12)
    compression: Float = doc("DenseNet transition compression theta in (0, 1]", default=1.0)
    dense_bottleneck: Bool = doc("DenseNet-B 1x1 bottleneck in each dense layer", default=False)
    num_classes: Int = doc("classifier outputs", default=10)
    input_size: Int = doc("input height = width in pixels", default=32)
    in_chans: Int = doc("input channels", default=3)
    timm_model: Str = doc("timm model name (family timm)", default="")
    depth: Int = doc("nominal depth (informational; 0: derived from the stages)", default=0)

    def __post_init__(self) -> None:
        stages = tuple(
            StageSpec(**s) if isinstance(s, Mapping) else s for s in (self.stages or ())
        )
        object.__setattr__(self, "stages", stages)
        if self.timm_model.startswith(TIMM_PREFIX):
            object.__setattr__(self, "timm_model", self.timm_model[len(TIMM_PREFIX):])
        if self.family not in FAMILIES:
            raise ConfigError(
                f"unknown family {self.family!r}; valid: {', '.join(FAMILIES)}", "family"
            )
        for key in ("num_classes", "input_size", "in_chans", "stem_width", "bottleneck_ratio",
                    "growth_rate"):
            _check_int(getattr(self, key), key)
        _check_int(self.depth, "depth", minimum=0)
        if not isinstance(self.width_multiplier, (int, float)) or not self.width_multiplier > 0:
            raise ConfigError(f"must be > 0, got {self.width_multiplier!r}", "width_multiplier")
        if not isinstance(self.compression, (int, float)) or not 0 < self.compression <= 1:
            raise ConfigError(
                f"DenseNet compression theta must be in (0, 1], got {self.compression!r}",
                "compression",
            )
        if self.family == "timm":
            check_timm_model(self.timm_model)
            return
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, StageSpec):
                raise ConfigError(f"expected a StageSpec, got {stage!r}", f"stages[{i}]")
        if not self.stages:
            raise ConfigError(f"family {self.family!r} needs at least one stage", "stages")
        self._check_size()
        for key, reg in (("stem", STEMS), ("skip", SKIPS)):
            reg.get(getattr(self, key), key)
        self._check_kinds()
        divisor = STEMS.get(self.stem).width_divisor
        if self.scaled(self.stem_width) % divisor:
            raise ConfigError(
                f"stem width {self.scaled(self.stem_width)} is not divisible by {divisor} for "
                f"stem {self.stem!r}; valid: multiples of {divisor} (e.g. 16, 32, 64)",
                "stem_width",
            )
        self.channels()  # checks widths and the channel flow

    # -- validation helpers -------------------------------------------------------------------

    def _check_size(self) -> None:
        """Stages, blocks, widths and input side within the bounds of a buildable model."""
        if len(self.stages) > MAX_STAGES:
            raise ConfigError(f"{len(self.stages)} stages; the limit is {MAX_STAGES}", "stages")
        blocks = sum(stage.depth for stage in self.stages)
        if blocks > MAX_BLOCKS:
            where = f"depth {self.depth} gives" if self.depth else "the stages have"
            raise ConfigError(f"{where} {blocks:,} blocks; the limit is {MAX_BLOCKS:,} blocks "
                              "per model", "depth" if self.depth else "stages")
        widest = max([self.stem_width, *(stage.width for stage in self.stages)])
        if widest * self.width_multiplier > MAX_WIDTH:
            raise ConfigError(f"a width of {widest * self.width_multiplier:g} channels; the "
                              f"limit is {MAX_WIDTH:,}", "width")
        if self.input_size > MAX_INPUT:
            raise ConfigError(f"must be at most {MAX_INPUT} pixels, got {self.input_size}",
                              "input_size")

    def _check_kinds(self) -> None:
        need = "dense" if self.family == "densenet" else "residual"
        skip_def = SKIPS.get(self.skip)
        for i, stage in enumerate(self.stages):
            bdef = stage.block_def
            if bdef.kind != need:
                valid = [n for n in BLOCKS.names() if BLOCKS.get(n).kind == need]
                raise ConfigError(
                    f"family {self.family!r} needs {need} blocks, but stage {i + 1} uses "
                    f"{bdef.kind} block {stage.block!r}; valid blocks: {', '.join(valid)}",
                    f"stages[{i}].block",
                )
            if bdef.kind == "dense":
                if self.skip != bdef.default_skip:
                    raise ConfigError(
                        f"dense blocks combine by concatenation: skip must be "
                        f"{bdef.default_skip!r} for block {stage.block!r}, got {self.skip!r}",
                        "skip",
                    )
                if stage.width != self.growth_rate:
                    raise ConfigError(
                        f"a dense stage's width is the growth rate: expected "
                        f"{self.growth_rate} (growth_rate), got {stage.width}",
                        f"stages[{i}].width",
                    )
            elif skip_def.kind != "residual":
                valid = [n for n in SKIPS.names() if SKIPS.get(n).kind == "residual"]
                raise ConfigError(
                    f"skip {self.skip!r} is for {skip_def.kind} blocks; valid skips for "
                    f"residual block {stage.block!r}: {', '.join(valid)}",
                    "skip",
                )

    def scaled(self, width: int) -> int:
        """``width * width_multiplier``, which must be a whole number of channels."""
        value = width * self.width_multiplier
        if abs(value - round(value)) > 1e-9 or round(value) < 1:
            raise ConfigError(
                f"width {width} x width_multiplier {self.width_multiplier:g} = {value:g} is not a "
                f"whole number of channels; valid multipliers for width {width}: multiples of "
                f"1/{width} = {1 / width:g} (e.g. 0.5, 1, 2 when width is even)",
                "width_multiplier",
            )
        return round(value)

    def channels(self) -> list[tuple[int, int]]:
        """(in, out) channels of every stage (after width_multiplier), checking the flow."""
        skip_def = SKIPS.get(self.skip)
        cin = self.scaled(self.stem_width)
        out: list[tuple[int, int]] = []
        for i, stage in enumerate(self.stages):
            bdef = stage.block_def
            width = self.scaled(stage.width)
            if bdef.kind == "dense":
                start = cin if i == 0 else max(1, math.floor(self.compression * cin))
                cout = start + stage.depth * width
            else:
                cout = bdef.out_channels(cin, width, self.bottleneck_ratio)
                if cout < cin and not skip_def.reduces_channels:
                    raise ConfigError(
                        f"skip {self.skip!r} pads with zeros and cannot reduce channels: stage "
                        f"{i + 1} goes from {cin} to {cout}; use non-decreasing widths or a "
                        f"projection skip (projection, projection_all)",
                        f"stages[{i}].width",
                    )
            out.append((cin, cout))
            cin = cout
        return out

    # -- derived names --------------------------------------------------------------------------

    @property
    def nominal_depth(self) -> int:
        """``depth`` if set, else weighted layers: blocks x layers + stem + head (+ transitions)."""
        if self.depth or self.family == "timm":
            return self.depth
        layers = 0
        for stage in self.stages:
            per = stage.block_def.layers
            if stage.block_def.kind == "dense" and self.dense_bottleneck:
                per *= 2
            layers += stage.depth * per
        transitions = len(self.stages) - 1 if self.family == "densenet" else 0
        return layers + transitions + 2

    @property
    def label(self) -> str:
        """``name`` if set, else e.g. ``resnet56-projection-w16``, ``densenet-bc100-k12``."""
        if self.name:
            return self.name
        if self.family == "timm":
            return f"timm-{self.timm_model}"
        extra = []
        if self.width_multiplier != 1:
            extra.append(f"x{self.width_multiplier:g}")
        if self.stem != "cifar":
            extra.append(self.stem)
        if self.family == "densenet":
            variant = ("b" if self.dense_bottleneck else "") + ("c" if self.compression < 1 else "")
            base = f"densenet-{variant}" if variant else "densenet"
            return "-".join([f"{base}{self.nominal_depth}", f"k{self.growth_rate}", *extra])
        blocks = {s.block for s in self.stages}
        parts = ["plain" if self.skip == "none" else "resnet"]
        parts[0] += str(self.nominal_depth)
        if blocks != {"basic"}:
            parts.append(blocks.pop() if len(blocks) == 1 else "mixed")
        if self.skip != "none":
            parts.append(self.skip)
        parts.append(f"w{self.stages[0].width}")
        parts += [f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}"
                  for k, v in self.stages[0].params.items()]
        return "-".join(parts + extra)

    def replace(self, **changes: Any) -> ArchSpec:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def check_timm_model(name: str) -> None:
    """ConfigError unless timm knows ``name`` (lists close matches from timm.list_models)."""
    import timm  # lazy: importing timm costs seconds

    if not name:
        raise ConfigError("family 'timm' needs a model name, e.g. timm_model: resnet50", "timm_model")
    if timm.is_model(name):
        return
    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    if not close:
        close = [n for n in names if name.lower() in n][:5]
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ConfigError(
        f"unknown timm model {name!r}{hint} (all names: timm.list_models())", "timm_model"
    )
