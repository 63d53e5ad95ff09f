"""The model design space: frozen specs, one registry per axis, the builder and the cost model.

Blocks, skip styles and stems are registries (``register_block`` / ``register_skip`` /
``register_stem``); an ``ArchSpec`` names entries of each and ``build_model`` composes them, so
every block x skip x stem combination is one spec, never one class per combination. The specs,
registries and presets themselves are torch-free (``bench.spec``); this package holds the torch
side (modules, builder, cost model) and re-exports the rest.
"""

from bench.models.blocks import BLOCKS, Block, BlockDef, register_block
from bench.models.builder import StagedNet, build_model, residual_blocks
from bench.models.cost import ModelCost, cost, count_params
from bench.models.skips import SKIPS, Skip, SkipDef, register_skip
from bench.models.stems import STEMS, StemDef, register_stem
from bench.spec.arch import ArchSpec, StageSpec
from bench.spec.presets import (
    CANONICAL,
    cifar_resnet,
    densenet,
    imagenet_resnet,
    timm_arch,
    wide_resnet,
)

__all__ = [
    "BLOCKS",
    "CANONICAL",
    "SKIPS",
    "STEMS",
    "ArchSpec",
    "Block",
    "BlockDef",
    "ModelCost",
    "Skip",
    "SkipDef",
    "StageSpec",
    "StagedNet",
    "StemDef",
    "arch_from_params",
    "build_model",
    "cifar_resnet",
    "cost",
    "count_params",
    "densenet",
    "imagenet_resnet",
    "register_block",
    "register_skip",
    "register_stem",
    "residual_blocks",
    "timm_arch",
    "wide_resnet",
]


def __getattr__(name: str):
    # The flat parameter language builds one pydantic model per family (and again when a plugin
    # registers a block): loaded on first use, so the trainer does not pay for it.
    if name == "arch_from_params":
        from bench.spec.params import arch_from_params

        return arch_from_params
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
