"""The presets live in the torch-free spec layer (``bench.spec.presets``); the flat parameters
in ``bench.spec.params``."""

from bench.spec.params import PARAM_FAMILIES, PARAM_KEYS, arch_from_params  # noqa: F401
from bench.spec.presets import *  # noqa: F403
from bench.spec.presets import (  # noqa: F401
    CANONICAL,
    IMAGENET_DENSENETS,
    IMAGENET_RESNETS,
    cifar_resnet,
    densenet,
    imagenet_resnet,
    timm_arch,
    wide_resnet,
)
