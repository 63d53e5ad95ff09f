"""The architecture language of space files, ``--set`` and ``--arch``: flat parameters (the axis
names of a search space) as one pydantic model per family, a union discriminated by ``family``.

Families: ``resnet`` (CIFAR 6n+2 / 9n+2, or the ImageNet depths with an imagenet-layout stem),
``plain`` (resnet without shortcuts), ``wrn`` (WRN-d-k, 6n+4), ``densenet`` ((L-4)/3, (L-4)/6
for BC; ImageNet DenseNet-121/...) and ``timm`` (any timm model). Every family accepts every key
and ignores the ones it does not use, so a joint space can set them for all families; an
unknown key is an error. Each registered block's own parameters (``BlockDef.params``, e.g. a
plugin's ``cardinality``) are fields too: the model is rebuilt when the block registry changes.
``model`` names a ``CANONICAL`` preset or ``timm:<name>`` as the base the other keys override.

An unset key is ``None`` (its family default applies); ``0`` is a value, checked like any other.
Parsed models resolve to the buildable ``ArchSpec`` through the presets (``to_arch``).
pydantic's errors become the project's ``ConfigError`` (key path, bad value, what is valid).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)

from bench.config import shown, validation_error
from bench.errors import ConfigError, did_you_mean
from bench.spec.arch import TIMM_PREFIX, ArchSpec
from bench.spec.parts import BLOCKS, STEMS, BlockParam, block_params
from bench.spec.presets import (
    CANONICAL,
    cifar_resnet,
    densenet,
    imagenet_resnet,
    timm_arch,
    wide_resnet,
)

PARAM_FAMILIES = ("resnet", "plain", "wrn", "densenet", "timm")


def _whole(value: Any) -> Any:
    """YAML and JSON give 56.0 for 56: a whole float is an integer (a bool never is)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_whole)]

# name -> (type, field constraints, description). The common vocabulary of every family.
_COMMON: dict[str, tuple[Any, dict[str, Any], str]] = {
    "model": (str, {}, "a CANONICAL preset (resnet56, wrn16-4, ...) or timm:<name>, as the base "
                       "the other keys override"),
    "depth": (Int, {"ge": 1}, "nominal depth: 6n+2 / 9n+2 (resnet, plain), 6n+4 (wrn), "
                              "(L-4)/3 or (L-4)/6 (densenet), or an ImageNet depth"),
    "block": (str, {}, "block type (a registered name: basic, bottleneck, preact_basic, ...)"),
    "skip": (str, {}, "skip style (identity, projection, projection_all, gated, none; concat "
                      "for densenet)"),
    "width": (Int, {"ge": 1}, "first-stage width (channels)"),
    "widen": (Int, {"ge": 1}, "width factor k (WRN-d-k; resnet: multiplies every stage)"),
    "stem": (str, {}, "stem type (cifar, imagenet, deep); its layout picks the depth convention"),
    "growth_rate": (Int, {"ge": 1}, "densenet: channels added per dense layer (k)"),
    "compression": (float, {"gt": 0, "le": 1}, "densenet: transition compression theta"),
    "bc": (bool, {}, "densenet: DenseNet-BC (bottleneck layers + compression 0.5)"),
    "bottleneck_ratio": (Int, {"ge": 1}, "bottleneck expansion; DenseNet-B inner width ratio*k"),
    "width_multiplier": (float, {"gt": 0}, "scales every width (must give whole channels)"),
    "timm_model": (str, {}, "timm: the model name"),
    "num_classes": (Int, {"ge": 1}, "classifier outputs (default: the dataset's)"),
    "input_size": (Int, {"ge": 1}, "input side in pixels (default: the dataset's)"),
    "in_chans": (Int, {"ge": 1}, "input channels (default: the dataset's)"),
    "name": (str, {}, "display label (default: derived, e.g. resnet20-identity-w16)"),
}
_FAMILY_DOC = {
    "resnet": "ResNet: CIFAR layout (3 stages, 6n+2 / 9n+2) or ImageNet layout (imagenet/deep "
              "stem: ResNet-18/34/50/101/152)",
    "plain": "the resnet family without shortcuts (skip none)",
    "wrn": "Wide ResNet WRN-d-k: pre-activation blocks, depth 6n+4, widths 16k, 32k, 64k",
    "densenet": "DenseNet / DenseNet-BC (CIFAR (L-4)/3 or (L-4)/6; ImageNet 121/161/169/201)",
    "timm": "a timm model, built by timm.create_model (pretrained=False)",
}


class ArchParams(BaseModel):
    """Flat architecture parameters; ``to_arch`` resolves them with the family's presets."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    def value(self, key: str, default: Any = None) -> Any:
        got = getattr(self, key)
        return default if got is None else got

    def own_params(self, block: str) -> dict[str, Any]:
        """The parameters of ``block`` that are set (the others take the block's defaults)."""
        declared = BLOCKS.get(block, "block").params
        return {k: getattr(self, k) for k in declared
                if k in type(self).model_fields and getattr(self, k) is not None}

    def common(self) -> dict[str, Any]:
        return {"num_classes": self.value("num_classes", 10), "in_chans": self.value("in_chans", 3)}

    def to_arch(self) -> ArchSpec:
        family = self.family  # type: ignore[attr-defined]  # each family model defines it
        if family == "timm":
            return timm_arch(self.value("timm_model", ""),
                             input_size=self.value("input_size", 224), **self.common())
        stem = self.value("stem", "cifar")
        layout = STEMS.get(stem, "stem").layout
        common = {**self.common(), "stem": stem, "name": self.value("name", ""),
                  "input_size": self.value("input_size", 224 if layout == "imagenet" else 32),
                  "width_multiplier": self.value("width_multiplier", 1.0)}
        ratio = self.value("bottleneck_ratio", 4)
        if family == "densenet":
            skip = self.value("skip", "concat")
            if skip != "concat":
                raise ConfigError(
                    f"dense blocks combine by concatenation: skip must be 'concat' for family "
                    f"'densenet', got {skip!r}", "skip")
            block = self.value("block", "dense")
            if block != "dense" and BLOCKS.get(block, "block").kind != "dense":
                raise ConfigError(f"family 'densenet' needs a dense block, got {block!r}", "block")
            return densenet(self.value("depth", 121 if layout == "imagenet" else 40),
                            growth_rate=self.growth_rate, bc=self.bc,
                            compression=self.compression, bottleneck_ratio=ratio, **common)
        skip = self.skip
        if family == "plain":
            if skip not in (None, "none"):
                raise ConfigError(f"family 'plain' has no skip connections, got skip {skip!r}",
                                  "skip")
            skip = "none"
        widen = self.value("widen", 1)
        if family == "wrn":
            block = self.value("block", "preact_basic")
            return wide_resnet(self.value("depth", 28), widen, block=block,
                               skip=skip or "projection", width=self.value("width", 16),
                               params=self.own_params(block), **common)
        if layout == "imagenet":
            block = self.block
            return imagenet_resnet(self.value("depth", 50), skip=skip or "projection", block=block,
                                   width=self.value("width", 64), widen=widen,
                                   bottleneck_ratio=ratio,
                                   params=self.own_params(block) if block else None, **common)
        block = self.value("block", "basic")
        return cifar_resnet(self.value("depth", 20), block=block, skip=skip or "identity",
                            width=self.value("width", 16), widen=widen, bottleneck_ratio=ratio,
                            params=self.own_params(block), **common)


def _field(tp: Any, constraints: dict[str, Any], doc: str) -> tuple[Any, Any]:
    if tp is Int:  # the bounds first, then the whole-float coercion (keeps them in the schema)
        inner: Any = Annotated[int, Field(**constraints), BeforeValidator(_whole)]
    else:
        inner = Annotated[tp, Field(**constraints)] if constraints else tp
    return (inner | None, Field(None, description=doc))


def _param_field(param: BlockParam) -> tuple[Any, Any]:
    kind = type(param.default)
    tp: Any = Int if kind is int else kind
    if param.choices:
        tp = Literal[param.choices]  # type: ignore[valid-type]
    bounds = {k: v for k, v in (("ge", param.minimum), ("le", param.maximum)) if v is not None}
    return _field(tp, bounds, f"{param.doc} (block parameter; default {param.default!r})")


@functools.lru_cache(maxsize=8)
def _models(signature: tuple[tuple[str, BlockParam], ...]) -> tuple[type[ArchParams], ...]:
    fields = {k: _field(*v) for k, v in _COMMON.items()}
    for name, param in signature:
        if name not in fields:
            fields[name] = _param_field(param)
    out = []
    for family in PARAM_FAMILIES:
        cls = create_model(  # type: ignore[call-overload]
            f"{family.capitalize()}Params", __base__=ArchParams, __doc__=_FAMILY_DOC[family],
            family=(Literal[family], Field(family, description="model family")), **fields)
        out.append(cls)
    return tuple(out)


def _signature() -> tuple[tuple[str, BlockParam], ...]:
    return tuple(sorted(block_params().items()))


def family_models() -> tuple[type[ArchParams], ...]:
    """One model per family, with the block parameters registered now."""
    return _models(_signature())


@functools.lru_cache(maxsize=8)
def _adapter(signature: tuple[tuple[str, BlockParam], ...]) -> TypeAdapter[Any]:
    union = Annotated[Union[_models(signature)], Field(discriminator="family")]  # noqa: UP007
    return TypeAdapter(union)


def param_keys() -> tuple[str, ...]:
    """Every architecture parameter name (the bare axis names a space may use)."""
    return ("family", *_COMMON, *(k for k, _ in _signature() if k not in _COMMON))


PARAM_KEYS = ("family", *_COMMON)  # the built-in ones; param_keys() adds registered blocks'


def arch_schema() -> dict[str, Any]:
    """JSON Schema of the flat parameters: any family's model (``family`` defaults to resnet)."""
    schema = _adapter(_signature()).json_schema()
    schema.pop("discriminator", None)
    if "oneOf" in schema:  # every family has a default tag: anyOf, as family may be omitted
        schema["anyOf"] = schema.pop("oneOf")
    return schema


# --- errors -------------------------------------------------------------------------------------


def config_error(exc: ValidationError, valid_keys: Any = (), what: str = "key",
                 tagged: bool = False) -> ConfigError:
    """pydantic's first error as a ConfigError (``bench.config.validation_error``); an unknown
    family names the families, an unknown key ``valid_keys``. ``tagged``: the location starts
    with the family tag of the discriminated union."""
    err = exc.errors(include_url=False)[0]
    if err["type"] == "union_tag_invalid":
        tag = str((err.get("ctx") or {}).get("tag", err.get("input")))
        return ConfigError(f"unknown family {tag!r}{did_you_mean(tag, PARAM_FAMILIES)}; valid: "
                           f"{', '.join(PARAM_FAMILIES)}", "family")
    return validation_error(exc, what=what, valid_keys=list(valid_keys), drop=1 if tagged else 0)


# --- parsing ------------------------------------------------------------------------------------


def parse_params(params: Mapping[str, Any]) -> ArchParams:
    """Validate flat parameters (``model`` expanded first) into their family's model."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"expected a mapping of architecture parameters, got {shown(params)}")
    model = params.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise ConfigError(f"expected a string, got {shown(model)}", "model")
        if model.startswith(TIMM_PREFIX):
            params = {"family": "timm", **params, "timm_model": model[len(TIMM_PREFIX):]}
        elif model in CANONICAL:
            params = {**CANONICAL[model], **params}
        elif params.get("family") == "timm":
            params = {**params, "timm_model": model}
        elif model:
            raise ConfigError(
                f"unknown model {model!r}{did_you_mean(model, CANONICAL)}; valid: "
                f"{', '.join(CANONICAL)}, or timm:<name> for any timm model", "model")
        params = {k: v for k, v in params.items() if k != "model"}
    data = {"family": "resnet", **{str(k): v for k, v in params.items()}}
    if data["family"] is None:
        data["family"] = "resnet"
    signature = _signature()
    try:
        return _adapter(signature).validate_python(data)
    except ValidationError as exc:
        raise config_error(exc, param_keys(), "architecture parameter", tagged=True) from None


def arch_from_params(params: Mapping[str, Any]) -> ArchSpec:
    """An ``ArchSpec`` from flat parameters (a sweep trial's config, ``--set`` overrides).

    Keys (all optional; see the module doc and ``arch_schema``): ``family``, ``model``,
    ``depth``, ``block``, ``skip``, ``width``, ``widen``, ``stem``, ``growth_rate``,
    ``compression``, ``bc``, ``bottleneck_ratio``, ``width_multiplier``, ``timm_model``,
    ``num_classes``, ``input_size``, ``in_chans``, ``name`` and every registered block's own
    parameters. The depth convention follows the stem's layout; ``input_size`` defaults to 32
    with cifar stems, 224 with imagenet stems and timm models. Keys a family (or block) does
    not use are ignored; unknown keys are an error.
    """
    return parse_params(params).to_arch()


@functools.lru_cache(maxsize=256)
def _value_adapter(signature: tuple[tuple[str, BlockParam], ...], key: str) -> TypeAdapter[Any]:
    info = _models(signature)[0].model_fields[key]
    return TypeAdapter(Annotated[info.annotation, info], config=ConfigDict(strict=True))


def check_key(key: str, path: str) -> None:
    """ConfigError at ``path`` unless ``key`` is an architecture parameter."""
    keys = param_keys()
    if key not in keys:
        raise ConfigError(f"unknown architecture parameter {key!r}{did_you_mean(key, keys)}; "
                          f"valid: {', '.join(keys)}", path)


def check_value(key: str, value: Any, path: str) -> None:
    """ConfigError at ``path`` when ``value`` has the wrong type or range for parameter ``key``
    (the rules that need the other parameters, depth conventions say, are checked at decode)."""
    if key == "family":
        if value not in PARAM_FAMILIES:
            raise ConfigError(f"unknown family {shown(value)}{did_you_mean(str(value), PARAM_FAMILIES)}"
                              f"; valid: {', '.join(PARAM_FAMILIES)}", path)
        return
    try:
        _value_adapter(_signature(), key).validate_python(value)
    except ValidationError as exc:
        err = config_error(exc)
        raise ConfigError(err.detail, path) from None


__all__ = [
    "PARAM_FAMILIES",
    "PARAM_KEYS",
    "ArchParams",
    "arch_from_params",
    "arch_schema",
    "check_key",
    "check_value",
    "config_error",
    "family_models",
    "param_keys",
    "parse_params",
]
