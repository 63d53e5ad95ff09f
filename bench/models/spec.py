"""``ArchSpec`` and ``StageSpec`` live in the torch-free spec layer (``bench.spec.arch``)."""

from bench.spec.arch import *  # noqa: F403
from bench.spec.arch import (  # noqa: F401
    FAMILIES,
    MAX_BLOCKS,
    MAX_INPUT,
    MAX_STAGES,
    MAX_WIDTH,
    TIMM_PREFIX,
    ArchSpec,
    StageSpec,
    _check_int,
    check_timm_model,
)
