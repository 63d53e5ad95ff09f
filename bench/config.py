"""Typed config parsing: plain dicts (from YAML or ``--set``) to frozen dataclasses, and back.

Parsed once at the edge; every error names the key path, the bad value and what is valid.
Only the standard library and PyYAML are used, so the trainer stays importable on hosts that
have torch alone. Supported field types: bool, int, float, str, None, Literal, Optional/Union,
tuple[X, ...], list[X], dict[str, X] and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
import reprlib
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

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


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (tuple, list):
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"mapping of {_type_name(get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        choices = get_args(tp)
        if value in choices and type(value) in {type(c) for c in choices}:
            return value
        valid = ", ".join(repr(c) for c in choices)
        hint = did_you_mean(str(value), [str(c) for c in choices])
        raise ConfigError(f"invalid value {shown(value)}{hint}; valid: {valid}", path)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"expected {_type_name(tp)}, got {shown(value)}", path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {shown(value)}", path)
        (item_tp, *_rest) = get_args(tp)
        items = [_coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {shown(value)}", path)
        _, val_tp = get_args(tp)
        return {str(k): _coerce(val_tp, v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return parse(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {shown(value)}", path)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"expected an integer, got {shown(value)}", path)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"expected a number, got {shown(value)}", path)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"expected a string, got {shown(value)}", path)
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"expected null, got {shown(value)}", path)
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's fields."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse(cls: type[T], data: Any, path: str = "", source: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, validating every field; raise ConfigError."""
    try:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping ({cls.__name__}), got {shown(data)}", path)
        types_ = field_types(cls)
        for key in data:
            if key not in types_:
                hint = did_you_mean(str(key), types_)
                raise ConfigError(
                    f"unknown key {key!r}{hint}; valid keys: {', '.join(sorted(types_))}",
                    f"{path}.{key}" if path else str(key),
                )
        kwargs = {}
        for f in dataclasses.fields(cls):
            sub = f"{path}.{f.name}" if path else f.name
            if f.name in data:
                kwargs[f.name] = _coerce(types_[f.name], data[f.name], sub)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError("required key is missing", sub)
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            if path and not exc.path.startswith(path):
                raise exc.at(path) from None
            raise
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
    """A JSON Schema (draft 2020-12) of dataclass ``cls``, for editors; unknown keys rejected."""
    defs: dict[str, Any] = {}

    def schema(tp: Any) -> dict[str, Any]:
        origin = get_origin(tp)
        if tp is Any:
            return {}
        if origin is Literal:
            return {"enum": list(get_args(tp))}
        if origin in (Union, types.UnionType):
            return {"anyOf": [schema(a) for a in get_args(tp)]}
        if origin in (tuple, list):
            return {"type": "array", "items": schema(get_args(tp)[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": schema(get_args(tp)[1])}
        if dataclasses.is_dataclass(tp):
            name = tp.__name__
            if name not in defs:
                defs[name] = {}  # placeholder against recursion
                props, required = {}, []
                hints = field_types(tp)
                for f in dataclasses.fields(tp):
                    sub = schema(hints[f.name])
                    if f.default is not dataclasses.MISSING and _jsonable(f.default):
                        sub = {**sub, "default": to_dict(f.default)}
                    doc = (f.metadata or {}).get("doc")
                    if doc:
                        sub = {**sub, "description": doc}
                    props[f.name] = sub
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                        required.append(f.name)
                defs[name] = {
                    "type": "object",
                    "properties": props,
                    "additionalProperties": False,
                    **({"required": required} if required else {}),
                    **({"description": tp.__doc__.strip().splitlines()[0]} if tp.__doc__ else {}),
                }
            return {"$ref": f"#/$defs/{name}"}
        return {
            bool: {"type": "boolean"},
            int: {"type": "integer"},
            float: {"type": "number"},
            str: {"type": "string"},
            type(None): {"type": "null"},
        }[tp]

    root = schema(cls)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **root, "$defs": defs}


def _jsonable(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, type(None), tuple, list)) or (
        dataclasses.is_dataclass(value)
    )


def doc(text: str, **kwargs: Any) -> Any:
    """``dataclasses.field`` with a description that ``json_schema`` shows."""
    return dataclasses.field(metadata={"doc": text}, **kwargs)


__all__ = [
    "apply_overrides",
    "doc",
    "field_types",
    "flatten",
    "json_schema",
    "parse",
    "parse_override",
    "remove_keys",
    "split_key",
    "to_dict",
]
