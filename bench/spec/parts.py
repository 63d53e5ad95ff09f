"""The registries of the design axes and their entries' definitions, without torch.

Blocks (``BLOCKS``), skip styles (``SKIPS``), stems (``STEMS``), datasets (``DATASETS``) and
zero-cost proxies (``PROXIES``). An entry's metadata (layers, kind, shape, split sizes, ...) is
plain data that validation and the cost model read; its torch code (a factory, a loader, a
scorer) is either a callable or a ``Lazy("module:attr")`` reference imported on first call, so
the built-in entries are registered here while their modules (``bench.models.blocks``, ...) are
only imported when a model is built or a dataset loaded.

A plugin registers its own entries with ``register_block`` / ``register_skip`` /
``register_stem`` / ``register_dataset`` / ``register_proxy``; a block's own parameters
(``BlockDef.params``) become architecture parameters (axis names) with no other edit.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bench.errors import ConfigError
from bench.registry import Registry

if TYPE_CHECKING:
    from bench.spec.trial import DataSpec


class Lazy:
    """A callable standing for ``module:attr``, imported on the first call (keeps torch out of
    the import of the registries)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self._target: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        if self._target is None:
            module, _, attr = self.ref.partition(":")
            self._target = getattr(importlib.import_module(module), attr)
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        return {"ref": self.ref}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.ref, self._target = state["ref"], None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lazy) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(self.ref)

    def __repr__(self) -> str:
        return f"Lazy({self.ref!r})"


# --- blocks -------------------------------------------------------------------------------------

Scalar = int | float | bool | str


@dataclass(frozen=True)
class BlockParam:
    """A parameter of one block type (e.g. ResNeXt's ``cardinality``): an architecture parameter
    of that name, type ``type(default)``, within ``[minimum, maximum]`` or one of ``choices``."""

    default: Scalar
    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Scalar, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        """``value`` coerced to the parameter's type, or a ConfigError naming what is valid."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"expected {kind.__name__}, got {value!r}", name)
        if self.choices and value not in self.choices:
            raise ConfigError(f"invalid value {value!r}; valid: "
                              f"{', '.join(map(repr, self.choices))}", name)
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"must be >= {self.minimum:g}, got {value!r}", name)
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"must be <= {self.maximum:g}, got {value!r}", name)
        return value


# (in_channels, width, out_channels, stride, **params) -> module computing F(x). ``width`` is the
# stage width (the 3x3 width; the bottleneck's inner width); for dense layers it is the growth
# rate k and F(x) must return ``out_channels - in_channels`` (= k) channels. ``params`` are the
# block's own parameters (``BlockDef.params``) and the ArchSpec fields it names in ``uses``.
BranchFactory = Callable[..., Any]


@dataclass(frozen=True)
class BlockDef:
    """A block type.

    ``layers``: weighted layers per block, for depth conventions (CIFAR ResNet depth is
    3 * layers * n + 2; a dense layer counts 1, or 2 with the DenseNet-B bottleneck).
    ``kind``: ``residual`` blocks combine F(x) with a residual skip style; ``dense`` blocks
    concatenate (only ``default_skip``). ``preact``: the block pre-activates its input
    (BN-ReLU before F, no ReLU after the sum). ``bottleneck``: output width is
    ``width * arch.bottleneck_ratio`` (else ``width * expansion``). ``params``: the block's own
    parameters, passed to the factory as keywords; ``uses``: ArchSpec fields passed likewise.
    ``cost``: optional ``(cin, width, cout, stride, side, **params) -> (params, macs)`` of F(x)
    for an input of ``side`` pixels, to price the block without building it (else the block is
    built once per configuration on the meta device).
    """

    factory: BranchFactory
    layers: int
    kind: Literal["residual", "dense"] = "residual"
    preact: bool = False
    bottleneck: bool = False
    expansion: int = 1
    default_skip: str = ""
    description: str = ""
    params: Mapping[str, BlockParam] = field(default_factory=dict, hash=False)
    uses: tuple[str, ...] = ()
    cost: Callable[..., tuple[int, int]] | None = field(default=None, compare=False)

    def out_channels(self, in_channels: int, width: int, bottleneck_ratio: int) -> int:
        """Channels a block of this type outputs for a stage of ``width``."""
        if self.kind == "dense":
            return in_channels + width
        return width * (bottleneck_ratio if self.bottleneck else self.expansion)


BLOCKS: Registry[BlockDef] = Registry("block")


def register_block(name: str, block: BlockDef, *, overwrite: bool = False) -> BlockDef:
    """Add a block type (usable by name in any ``StageSpec.block``; its ``params`` become
    architecture parameters)."""
    if not isinstance(block, BlockDef):
        raise TypeError(f"register_block expects a BlockDef, got {type(block).__name__}")
    for pname, param in block.params.items():
        if not isinstance(param, BlockParam):
            raise TypeError(f"block {name!r}: params[{pname!r}] must be a BlockParam")
    return BLOCKS.register(name, block, overwrite=overwrite)


def block_params() -> dict[str, BlockParam]:
    """Every registered block's own parameters by name (the first registration of a name wins)."""
    out: dict[str, BlockParam] = {}
    for name in BLOCKS.names():
        for pname, param in BLOCKS.get(name).params.items():
            out.setdefault(pname, param)
    return out


def _lazy(name: str) -> Lazy:
    return Lazy(f"bench.models.blocks:{name}")


for _name, _def in {
    "basic": BlockDef(_lazy("_basic"), layers=2,
                      description="3x3-3x3, post-activation (He et al. 2015)"),
    "bottleneck": BlockDef(
        _lazy("_bottleneck"), layers=3, bottleneck=True,
        description="1x1-3x3-1x1 bottleneck, post-activation (He et al. 2015)",
    ),
    "preact_basic": BlockDef(
        _lazy("_preact_basic"), layers=2, preact=True,
        description="BN-ReLU-3x3-BN-ReLU-3x3, full pre-activation (He et al. 2016b)",
    ),
    "preact_bottleneck": BlockDef(
        _lazy("_preact_bottleneck"), layers=3, preact=True, bottleneck=True,
        description="pre-activation 1x1-3x3-1x1 bottleneck (He et al. 2016b)",
    ),
    "dense": BlockDef(
        _lazy("_dense"), layers=1, kind="dense", default_skip="concat",
        uses=("dense_bottleneck", "bottleneck_ratio"),
        description="DenseNet layer BN-ReLU-Conv3x3(k); with dense_bottleneck the B variant",
    ),
}.items():
    BLOCKS.register(_name, _def)


# --- skips and stems ----------------------------------------------------------------------------

# (in_channels, out_channels, stride, preact) -> Skip; ``preact``: the block is pre-activation.
SkipFactory = Callable[[int, int, int, bool], Any]


@dataclass(frozen=True)
class SkipDef:
    """A skip style. ``kind`` must match the block's kind (residual or dense);
    ``reduces_channels`` is False for styles that cannot map to fewer channels (zero padding)."""

    factory: SkipFactory
    kind: Literal["residual", "dense"] = "residual"
    reduces_channels: bool = True
    description: str = ""


SKIPS: Registry[SkipDef] = Registry("skip style")


def register_skip(name: str, skip: SkipDef, *, overwrite: bool = False) -> SkipDef:
    """Add a skip style (usable by name in ``ArchSpec.skip``)."""
    if not isinstance(skip, SkipDef):
        raise TypeError(f"register_skip expects a SkipDef, got {type(skip).__name__}")
    return SKIPS.register(name, skip, overwrite=overwrite)


for _name, _def in {
    "identity": SkipDef(
        Lazy("bench.models.skips:IdentityA"), reduces_channels=False,
        description="option A: parameter-free, subsample + zero-pad channels",
    ),
    "projection": SkipDef(Lazy("bench.models.skips:Projection"),
                          description="option B: 1x1 conv + BN where the shape changes"),
    "projection_all": SkipDef(
        Lazy("bench.models.skips:projection_all"),
        description="option C: 1x1 conv + BN on every block",
    ),
    "gated": SkipDef(Lazy("bench.models.skips:Gated"), reduces_channels=False,
                     description="highway gate T*F + (1-T)*x, T = sigmoid(1x1 conv)"),
    "none": SkipDef(Lazy("bench.models.skips:NoSkip"), description="plain net (no shortcut)"),
    "concat": SkipDef(Lazy("bench.models.skips:Concat"), kind="dense",
                      description="DenseNet concatenation"),
}.items():
    SKIPS.register(_name, _def)

# (in_chans, width, norm) -> module mapping [N, in_chans, H, W] to [N, width, H / reduction, ...]
StemFactory = Callable[[int, int, bool], Any]


@dataclass(frozen=True)
class StemDef:
    """A stem type: ``reduction`` is its total stride, ``width_divisor`` what its width must be a
    multiple of, ``layout`` the depth convention presets use with it (see bench.models.stems)."""

    factory: StemFactory
    reduction: int = 1
    width_divisor: int = 1
    layout: Literal["cifar", "imagenet"] = "cifar"
    description: str = ""


STEMS: Registry[StemDef] = Registry("stem")


def register_stem(name: str, stem: StemDef, *, overwrite: bool = False) -> StemDef:
    """Add a stem type (usable by name in ``ArchSpec.stem``)."""
    if not isinstance(stem, StemDef):
        raise TypeError(f"register_stem expects a StemDef, got {type(stem).__name__}")
    return STEMS.register(name, stem, overwrite=overwrite)


STEMS.register("cifar", StemDef(Lazy("bench.models.stems:_cifar"), reduction=1,
                                description="3x3 conv [+ BN + ReLU]"))
STEMS.register("imagenet", StemDef(Lazy("bench.models.stems:_imagenet"), reduction=4,
                                   layout="imagenet",
                                   description="7x7/2 conv + BN + ReLU + max-pool"))
STEMS.register("deep", StemDef(Lazy("bench.models.stems:_deep"), reduction=4, width_divisor=2,
                               layout="imagenet",
                               description="three 3x3 convs (ResNet-C) + max-pool"))


# --- datasets -----------------------------------------------------------------------------------

# spec -> RawData (uint8 NCHW CPU tensors, int64 labels); see bench.data.
Loader = Callable[["DataSpec"], Any]


@dataclass(frozen=True)
class DatasetDef:
    """A dataset: its ``loader`` and what is known without loading it, which validation and the
    cost model use: ``num_classes``, ``shape`` (channels, height, width as loaded, before
    ``image_size``) and ``splits`` (official train and test images). ``facts`` computes them
    from the data spec where they depend on it (the synthetic set). None: known only once
    loaded (an image folder)."""

    loader: Loader
    num_classes: int | None = None
    shape: tuple[int, int, int] | None = None
    splits: tuple[int, int] | None = None
    facts: Callable[[DataSpec], DatasetDef] | None = field(default=None, compare=False)
    description: str = ""

    def __call__(self, spec: DataSpec) -> Any:
        return self.loader(spec)

    def resolved(self, spec: DataSpec) -> DatasetDef:
        return self.facts(spec) if self.facts is not None else self

    def image_shape(self, spec: DataSpec) -> tuple[int, int, int] | None:
        """(num_classes, channels, image side) of ``spec`` as trials see it, or None."""
        d = self.resolved(spec)
        if d.num_classes is None or d.shape is None:
            return None
        return d.num_classes, d.shape[0], spec.image_size or d.shape[1]


DATASETS: Registry[DatasetDef] = Registry("dataset")


def register_dataset(name: str, loader: Loader | DatasetDef, *, num_classes: int | None = None,
                     shape: tuple[int, int, int] | None = None,
                     splits: tuple[int, int] | None = None,
                     overwrite: bool = False) -> DatasetDef:
    """Add a dataset: ``loader(spec) -> RawData`` (or a whole ``DatasetDef``), with the class
    count, ``(C, H, W)`` shape and ``(train, test)`` split sizes when known, so that budgets are
    priced at the real image size and subsets checked before loading."""
    entry = loader if isinstance(loader, DatasetDef) else DatasetDef(
        loader, num_classes=num_classes, shape=None if shape is None else tuple(shape),
        splits=None if splits is None else tuple(splits))
    if entry.shape is not None and (len(entry.shape) != 3 or min(entry.shape) < 1):
        raise ConfigError(f"dataset {name!r}: shape must be (channels, height, width), "
                          f"got {entry.shape!r}")
    return DATASETS.register(name, entry, overwrite=overwrite)


DIGITS_SPLITS = (1797 - 1797 // 5, 1797 // 5)


def _synthetic(spec: DataSpec) -> DatasetDef:
    return DatasetDef(_SYNTHETIC_LOADER, num_classes=spec.num_classes,
                      shape=tuple(spec.shape),  # type: ignore[arg-type]
                      splits=(spec.synthetic_size, max(1, spec.synthetic_size // 5)))


_SYNTHETIC_LOADER = Lazy("bench.data:load_synthetic")

register_dataset("digits", DatasetDef(
    Lazy("bench.data:load_digits"), num_classes=10, shape=(3, 32, 32), splits=DIGITS_SPLITS,
    description="scikit-learn's 8x8 digits, upsampled (32x32 unless image_size)"))
register_dataset("cifar10", Lazy("bench.data:load_cifar10"), num_classes=10, shape=(3, 32, 32),
                 splits=(50_000, 10_000))
register_dataset("cifar100", Lazy("bench.data:load_cifar100"), num_classes=100,
                 shape=(3, 32, 32), splits=(50_000, 10_000))
register_dataset("imagefolder", Lazy("bench.data:load_imagefolder"))
register_dataset("synthetic", DatasetDef(_SYNTHETIC_LOADER, facts=_synthetic))


# --- zero-cost proxies --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyDef:
    """A proxy: ``score(model, images, labels) -> float`` (larger predicts better)."""

    score: Callable[..., float]
    description: str
    source: str


PROXIES: Registry[ProxyDef] = Registry("proxy")


def register_proxy(name: str, proxy: ProxyDef, *, overwrite: bool = False) -> ProxyDef:
    return PROXIES.register(name, proxy, overwrite=overwrite)


for _name, _desc, _src in (
    ("naswot", "log|K| of the ReLU on/off agreement kernel of the minibatch",
     "Mellor et al. 2021"),
    ("synflow", "synaptic flow: sum theta * dR/dtheta with |theta| and an all-ones input",
     "Tanaka et al. 2020"),
    ("grad_norm", "sum of the L2 norms of the loss gradient of each weight",
     "Abdelfattah et al. 2021"),
    ("snip", "connection sensitivity: sum |theta * dL/dtheta|", "Lee et al. 2019"),
    ("jacob_cov", "spread of the correlations of the input Jacobians", "Mellor et al. 2020"),
    ("params", "parameter count (baseline)", "baseline"),
    ("macs", "multiply-accumulates per image (baseline)", "baseline"),
):
    register_proxy(_name, ProxyDef(Lazy(f"bench.proxies:{_name}"), _desc, _src))


__all__ = [
    "BLOCKS", "DATASETS", "PROXIES", "SKIPS", "STEMS", "BlockDef", "BlockParam", "DatasetDef",
    "Lazy", "ProxyDef", "SkipDef", "StemDef", "block_params", "register_block",
    "register_dataset", "register_proxy", "register_skip", "register_stem",
]
