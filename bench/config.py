"""Typed config parsing: plain dicts (from YAML or ``--set``) to frozen specs, and back.

A spec is a frozen dataclass validated by pydantic (``spec_class``; scalar fields typed ``Int``,
``Float``, ``Bool``, ``Str``), parsed once at the edge (``parse``); pydantic's errors become one
``ConfigError`` naming the key path, the bad value and what is valid (``validation_error``).
Also here: YAML files read safely (``load_yaml``), ``--set`` / ``--unset`` overrides, ``to_dict``
and ``flatten``, and the JSON Schema of a spec. No torch.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import reprlib
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.dataclasses import is_pydantic_dataclass

from bench.errors import ConfigError, did_you_mean

T = TypeVar("T")

# Limits on a YAML file read by resbench (a space or a config): real files are a few KiB, a few
# levels deep, with a handful of aliases; these stop hostile ones (a multi-megabyte file,
# 100,000 nested brackets, a "billion laughs" alias expansion) with a message, not a hang.
YAML_MAX_BYTES = 256 * 1024
YAML_MAX_DEPTH = 64
YAML_MAX_VALUES = 100_000  # scalars + containers once aliases are expanded

_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlist = _SHOW.maxtuple = _SHOW.maxdict = _SHOW.maxset = 8
_SHOW.maxlevel = 3


def shown(value: Any) -> str:
    """``repr(value)`` cut to a few lines' worth (long strings and big or deep containers are
    abbreviated with ``...``): error messages quote what they reject without expanding it."""
    return _SHOW.repr(value)


class _LimitedLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses duplicate keys and nesting deeper than
    ``YAML_MAX_DEPTH`` (the composer recurses once per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > YAML_MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"nested deeper than {YAML_MAX_DEPTH} levels at line "
                                  f"{mark.line + 1}, column {mark.column + 1}; the limit is "
                                  f"{YAML_MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_nodes(root: yaml.Node) -> None:
    """Duplicate keys (with their key path and both lines) and the size of the document once
    its aliases are expanded (a shared node counts once per reference)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, path: str) -> int:
        if id(node) in sizes:  # an alias: counted again without walking it again
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once
        total = 1
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                sub = f"{path}.{name}" if path else str(name)
                if name is not None and name != "<<":
                    if name in first:
                        raise ConfigError(
                            f"duplicate key {shown(name)} at line {key.start_mark.line + 1} "
                            f"(first at line {first[name]}); each key may appear once",
                            sub)
                    first[name] = key.start_mark.line + 1
                total += size(key, sub) + size(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                total += size(item, f"{path}[{i}]")
        sizes[id(node)] = total
        if total > YAML_MAX_VALUES:
            raise ConfigError(
                f"holds more than {YAML_MAX_VALUES:,} values once its aliases (*name) are "
                f"expanded; the limit is {YAML_MAX_VALUES:,}", path)
        return total

    size(root, "")


def load_yaml(path: str | Path, what: str = "file") -> Any:
    """A YAML file read safely: at most ``YAML_MAX_BYTES``, UTF-8 text, safe tags only, no
    duplicate keys, at most ``YAML_MAX_DEPTH`` levels and ``YAML_MAX_VALUES`` values after
    alias expansion. Every problem is a ConfigError naming the file (and line, column or key
    path where there is one)."""
    path = Path(path)
    source = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(YAML_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > YAML_MAX_BYTES:
        raise ConfigError(f"is larger than {YAML_MAX_BYTES // 1024} KiB, the limit for a "
                          f"{what}", source=source)
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ConfigError(f"is a binary file (a NUL byte at offset {nul}), not a YAML {what}",
                          source=source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line} "
                          f"(offset {exc.start}); save the file as UTF-8", source=source) from None
    loader = _LimitedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except ConfigError as exc:
        raise exc.at(source=source) from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(
            f"unsupported YAML tag at {where}{exc.problem}; files are read with YAML's safe "
            "loader: plain mappings, lists, strings, numbers and booleans only (no "
            "!!python/... tags)", source=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"YAML syntax error at {where}{problem}", source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax error: {exc}", source=source) from None


# --- specs: frozen pydantic dataclasses ---------------------------------------------------------


def _whole(value: Any) -> Any:
    """YAML and JSON give 56.0 for 56: a whole float is an integer (a bool never is)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string: a string that is a number is that number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# The scalar types of a spec field. Strict: no bool is a number, no string a bool or an integer,
# no number a string; the two conversions are the ones YAML makes necessary (above).
Int = Annotated[int, Strict(), BeforeValidator(_whole)]
Float = Annotated[float, Strict(), BeforeValidator(_number)]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]

_SPEC_CONFIG = ConfigDict(extra="forbid")


def spec_class(cls: type[T]) -> type[T]:
    """Class decorator: a frozen dataclass validated by pydantic (unknown keys forbidden). It
    stays a dataclass (``dataclasses.fields`` / ``replace`` work; ``replace`` validates again);
    ``__post_init__`` runs after the fields are checked and may raise ``ConfigError``."""
    cls = pydantic_dataclass(frozen=True, config=_SPEC_CONFIG)(cls)
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # direct construction (``ArchSpec(...)``, ``dataclasses.replace``) fails like ``parse``
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            raise validation_error(exc, type(self)) from None

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def doc(text: str, **kwargs: Any) -> Any:
    """A spec field with a description (the JSON Schema shows it): ``doc("...", default=1)``."""
    return Field(description=text, **kwargs)


def field_doc(cls: type, name: str) -> tuple[str, Any]:
    """(description, default) of a spec field; the default is None when the field has none or
    a factory."""
    info = cls.__pydantic_fields__[name]  # type: ignore[attr-defined]
    default = None if info.is_required() or info.default_factory else info.default
    return info.description or "", default


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's fields (Annotated wrappers removed)."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


@functools.cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    if not is_pydantic_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a spec (decorate it with bench.config.spec_class)")
    return TypeAdapter(cls)


def _base(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and, for ``X | None``, without the None."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _walk(cls: Any, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """(the key parts of a pydantic error location, the type it ends in), walking the types of
    ``cls``: fields, tuple items, mapping values. Where a field is a union of several types,
    pydantic adds the member it tried to the location: that part is no key and is dropped (a
    key of the same name is kept: the types, not the words, tell them apart)."""
    keys: list[Any] = []
    tp: Any = cls
    for part in loc:
        tp = _base(tp) if tp is not None else None
        if tp is not None and _is_union(tp):  # this part names a member, not a key
            members = [_base(a) for a in get_args(tp) if a is not type(None)]
            tp = next((m for m in members if dataclasses.is_dataclass(m)
                       and m.__name__ == part), None)
            continue
        if part == "[key]":  # the mapping key itself was rejected: the path ends at the key
            tp = None
            continue
        keys.append(part)
        if tp is None:
            continue
        if dataclasses.is_dataclass(tp) and isinstance(part, str):
            tp = field_types(tp).get(part)
        elif get_origin(tp) in (tuple, list) and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            tp = None
    return tuple(keys), (_base(tp) if tp is not None else None)


# pydantic's member tags in a location where the types are not known (a pydantic model's
# flat fields, ``bench.spec.params``): scalar type names, ``literal[...]``, ``function-...``
_TAGS = {"int", "float", "str", "bool", "none", "list", "dict", "tuple"}


def _loc_path(loc: tuple[Any, ...], cls: Any = None) -> tuple[tuple[Any, ...], str]:
    """(the key parts of a location, as a key path ``a.b[2].c``)."""
    if cls is not None:
        keep = list(_walk(cls, loc)[0])
    else:
        keep = [p for p in loc if not (isinstance(p, str) and (
            "[" in p or p in _TAGS or p.startswith("function-")))]
    path = ""
    for part in keep:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return tuple(keep), path


def _string_keys(value: Any) -> Any:
    """Mapping keys as strings at every level (YAML reads ``1:`` as an integer key)."""
    if isinstance(value, Mapping):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


_EXPECTED = {
    "int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "float_type": "a number", "float_parsing": "a number", "string_type": "a string",
    "dict_type": "a mapping", "model_type": "a mapping", "dataclass_type": "a mapping",
    "tuple_type": "a list", "list_type": "a list", "none_required": "null",
}


def validation_error(exc: ValidationError, cls: Any = None, what: str = "key",
                     valid_keys: Iterable[str] | None = None, drop: int = 0) -> ConfigError:
    """pydantic's errors as one ConfigError: the key path, the bad value and what is valid
    (for an unknown key the valid ones, with the closest match: ``valid_keys``, or the fields of
    the ``cls`` dataclass the key is in; for a union every member). ``drop``: leading location
    parts that are not keys (a discriminated union's tag)."""
    errors = [{**e, "loc": tuple(e["loc"])[drop:]} for e in exc.errors(include_url=False)]
    # an unknown key first (a misspelt required one is also reported missing): it says why
    errors.sort(key=lambda e: e["type"] not in ("extra_forbidden", "unexpected_keyword_argument"))
    err = errors[0]
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    loc, path = _loc_path(err["loc"], cls)
    inner = ctx.get("error")
    if kind == "value_error" and isinstance(inner, ConfigError):  # raised by a __post_init__
        return inner.at(path)
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        key = str(loc[-1])
        if valid_keys is not None:
            valid = list(valid_keys)
        else:
            owner = _walk(cls, err["loc"][:-1])[1] if cls is not None else None
            valid = (sorted(f.name for f in dataclasses.fields(owner))
                     if dataclasses.is_dataclass(owner) else [])
        label = "valid keys" if what == "key" else "valid"
        listed = f"; {label}: {', '.join(valid)}" if valid else ""
        return ConfigError(f"unknown {what} {key!r}{did_you_mean(key, valid)}{listed}", path)
    if kind in ("missing", "missing_argument"):
        return ConfigError("required key is missing", path)
    got = f", got {shown(value)}"
    if kind == "literal_error":  # pydantic writes "'a', 'b' or 'c'"
        shown_valid = [v.strip() for v in str(ctx.get("expected", "")).replace(" or ", ", ")
                       .split(",")]
        expected = ", ".join(shown_valid)
        valid = [v.strip("'") for v in shown_valid]
    # a union: every member failed at the same place; name them all
    same = [e for e in errors if _loc_path(e["loc"], cls)[0] == loc]
    if len(same) > 1:
        wants = []
        for e in same:
            if e["type"] == "literal_error":
                wants.append(str((e.get("ctx") or {}).get("expected", "")))
            else:
                wants.append(_EXPECTED.get(e["type"], e["msg"]))
        return ConfigError(f"expected {' or '.join(dict.fromkeys(wants))}{got}", path)
    if kind == "literal_error":
        return ConfigError(f"invalid value {shown(value)}{did_you_mean(str(value), valid)}; "
                           f"valid: {expected}", path)
    bounds = {
        "greater_than_equal": f"must be an integer >= {ctx.get('ge')}"
        if isinstance(value, int) else f"must be >= {ctx.get('ge')}",
        "greater_than": f"must be > {ctx.get('gt')}",
        "less_than_equal": f"must be <= {ctx.get('le')}",
        "less_than": f"must be < {ctx.get('lt')}",
    }
    if kind in bounds:
        return ConfigError(f"{bounds[kind]}{got}", path)
    if kind in _EXPECTED:
        return ConfigError(f"expected {_EXPECTED[kind]}{got}", path)
    return ConfigError(f"{err['msg']}{got}", path)


def parse(cls: type[T], data: Any, path: str = "", source: str = "") -> T:
    """Build spec ``cls`` (a ``spec_class`` dataclass) from a mapping, validating every field; raise
    ConfigError naming the key path (under ``path``), the bad value and what is valid."""
    try:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping ({cls.__name__}), got {shown(data)}", path)
        try:
            return _adapter(cls).validate_python(_string_keys(data))
        except ValidationError as exc:
            raise validation_error(exc, cls).at(path) from None
    except ConfigError as exc:
        if source:
            raise exc.at(source=source) from None
        raise


def to_dict(obj: Any) -> Any:
    """A dataclass (or nested containers of them) as plain YAML/JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def flatten(data: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists of mappings are indexed (``stages.0.depth``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name, sep))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                out.update(flatten(v, f"{name}{sep}{i}", sep))
        else:
            out[name] = value
    return out


def _split_assignment(text: str) -> tuple[str, str]:
    """``key=value`` at the first ``=`` outside quotes (a quoted key part may hold one)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "=":
            return text[:i], text[i + 1:]
    return text.split("=", 1)[0], text.split("=", 1)[1]


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=0.1"`` -> ``("train.lr", 0.1)``; the value is read as YAML (so lists work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = _split_assignment(text)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


_KEY_PART = re.compile(r"""\["([^"]*)"\]|\['([^']*)'\]|"([^"]*)"|'([^']*)'|([^.\["']+)""")


def split_key(key: str) -> list[str]:
    """``a.b.c`` -> ``[a, b, c]``; a part holding dots is quoted or bracketed:
    ``space."train.lr".choice``, ``space["train.lr"].choice`` -> ``[space, train.lr, choice]``."""
    parts, pos = [], 0
    while pos < len(key):
        m = _KEY_PART.match(key, pos)
        if not m:
            raise ConfigError(f"cannot read key {key!r} at {key[pos:]!r}; write a name with "
                              'dots as space["train.lr"] or space."train.lr"')
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        if pos < len(key):
            if key[pos] == ".":
                pos += 1
                if pos == len(key):
                    raise ConfigError(f"key {key!r} ends with a dot")
            elif key[pos] != "[":
                raise ConfigError(f"cannot read key {key!r} at {key[pos:]!r}")
    if not parts or any(p == "" for p in parts):
        raise ConfigError(f"key {key!r} has an empty part")
    return parts


def _existing(data: Mapping[str, Any], parts: list[str]) -> list[str]:
    """``parts`` with runs joined back where the mapping has a key with dots: an unquoted
    ``space.train.lr.choice`` finds the axis ``train.lr`` the file already has."""
    out: list[str] = []
    node: Any = data
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(node, Mapping) and part not in node:
            for j in range(len(parts), i + 1, -1):  # the longest dotted key that is there
                joined = ".".join(parts[i:j])
                if joined in node:
                    part, i = joined, j - 1
                    break
        out.append(part)
        node = node.get(part) if isinstance(node, Mapping) else None
        i += 1
    return out


def remove_keys(data: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``data`` without each key (``split_key`` paths); a key that is not there
    is an error naming the keys that are."""
    import copy

    out = copy.deepcopy(dict(data))
    for key in keys:
        parts = _existing(out, split_key(key.strip()))
        node: Any = out
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:i]) or "the top level"
                have = ", ".join(sorted(map(str, node))) if isinstance(node, dict) else "none"
                raise ConfigError(f"cannot unset {key!r}: no {part!r} under {where} (keys "
                                  f"there: {have})")
            if i == len(parts) - 1:
                del node[part]
            else:
                node = node[part]
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key.path=value`` set (intermediate mappings created;
    a part holding dots is quoted: ``space."train.lr".choice=[0.1]``)."""
    import copy

    out = copy.deepcopy(dict(data))
    for text in overrides:
        key, value = parse_override(text)
        node = out
        parts = _existing(out, split_key(key))
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"cannot set {key!r}: {'.'.join(parts[: i + 1])!r} is not a mapping"
                )
            node = child
        node[parts[-1]] = value
    return out


def json_schema(cls: type) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of spec ``cls``, for editors; unknown keys rejected."""
    schema = _adapter(cls).json_schema()
    defs = schema.pop("$defs", {})
    defs[cls.__name__] = schema  # every class under $defs, the root a reference to its own
    for definition in defs.values():
        if definition.get("type") == "object" and "properties" in definition:
            definition["additionalProperties"] = False
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"#/$defs/{cls.__name__}", "$defs": defs}


__all__ = [
    "Bool",
    "Float",
    "Int",
    "Str",
    "apply_overrides",
    "doc",
    "field_doc",
    "field_types",
    "flatten",
    "json_schema",
    "parse",
    "parse_override",
    "remove_keys",
    "spec_class",
    "split_key",
    "to_dict",
    "validation_error",
]
