"""The config layer: dict -> frozen dataclass with errors that name key path, value and choices."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from bench.config import (
    Bool,
    Float,
    Int,
    Str,
    apply_overrides,
    doc,
    flatten,
    json_schema,
    parse,
    parse_override,
    spec_class,
    to_dict,
)
from bench.errors import ConfigError
from bench.registry import Registry


@spec_class
class Inner:
    depth: Int
    mode: Literal["a", "b"] = "a"


@spec_class
class Outer:
    name: Str
    lr: Float = 0.1
    stages: tuple[Inner, ...] = ()
    tag: Str | None = None
    flag: Bool = False


def test_parse_nested_and_coerce():
    out = parse(Outer, {"name": "x", "lr": 1, "stages": [{"depth": 3}, {"depth": 4, "mode": "b"}]})
    assert out == Outer("x", 1.0, (Inner(3), Inner(4, "b")))
    assert isinstance(out.lr, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.name = "y"  # type: ignore[misc]
    assert parse(Outer, {"name": "x", "lr": "1e-3"}).lr == 0.001


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"name": "x", "lrr": 1}, ["lrr", "did you mean 'lr'", "valid keys"]),
        ({}, ["name", "required"]),
        ({"name": 3}, ["name", "expected a string"]),
        ({"name": "x", "flag": "yes"}, ["flag", "true or false"]),
        ({"name": "x", "stages": [{"depth": 2.5}]}, ["stages[0].depth", "integer", "2.5"]),
        ({"name": "x", "stages": [{"depth": 2, "mode": "c"}]}, ["stages[0].mode", "'c'", "'a', 'b'"]),
        ({"name": "x", "stages": {"depth": 2}}, ["stages", "expected a list"]),
        ({"name": "x", "flag": 1}, ["flag"]),
    ],
)
def test_parse_errors_name_path_value_and_choices(data, fragments):
    with pytest.raises(ConfigError) as info:
        parse(Outer, data, source="space.yaml")
    msg = str(info.value)
    assert msg.startswith("space.yaml: ")
    for fragment in fragments:
        assert fragment in msg


@spec_class
class Keep:
    keep: Int = 1


@spec_class
class Holder:
    model: Str  # a key spelt like one of pydantic's location tags
    opt: Keep | None = None
    mixed: Str | Int = "a"
    table: dict[str, Keep] = doc("a mapping of specs", default_factory=dict)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"model": 5}, ["h.yaml: model: expected a string, got 5"]),
        ({"modle": "x"}, ["modle: unknown key 'modle' (did you mean 'model'?); valid keys: "
                          "mixed, model, opt, table"]),  # not "model: required key is missing"
        ({"model": "x", "opt": {"kep": 1}},
         ["opt.kep: unknown key 'kep' (did you mean 'keep'?); valid keys: keep"]),
        ({"model": "x", "table": {"model": {"kep": 2}}},
         ["table.model.kep: unknown key 'kep' (did you mean 'keep'?); valid keys: keep"]),
        ({"model": "x", "table": {"model": {"keep": "2"}}},
         ["table.model.keep: expected an integer, got '2'"]),
        ({"model": "x", 1: 2}, ["1: unknown key '1'; valid keys: mixed, model, opt, table"]),
        ({"model": "x", "mixed": 1.5}, ["mixed: expected a string or an integer, got 1.5"]),
    ],
)
def test_error_paths_follow_the_types(data, fragments):
    """Key paths come from walking the spec's types: a union's member tag is dropped, a key of
    the same name kept; an unknown key is reported before the required key it misspells, with
    the valid keys of the spec it is in (an optional one too)."""
    with pytest.raises(ConfigError) as info:
        parse(Holder, data, source="h.yaml")
    for fragment in fragments:
        assert fragment in str(info.value)


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="integer"):
        parse(Inner, {"depth": True})


def test_overrides_and_flatten_round_trip():
    base = {"name": "x", "train": {"lr": 0.1}}
    out = apply_overrides(base, ["train.lr=0.05", "train.epochs=3", "tags=[a, b]", "data.name=digits"])
    assert out == {
        "name": "x",
        "train": {"lr": 0.05, "epochs": 3},
        "tags": ["a", "b"],
        "data": {"name": "digits"},
    }
    assert base == {"name": "x", "train": {"lr": 0.1}}  # not mutated
    assert flatten(out)["train.epochs"] == 3
    assert parse_override("a.b=") == ("a.b", "")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="not a mapping"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_to_dict_and_flatten_of_nested_stages():
    spec = Outer("x", stages=(Inner(3), Inner(4, "b")))
    data = to_dict(spec)
    assert parse(Outer, data) == spec
    flat = flatten(data)
    assert flat["stages.1.mode"] == "b" and flat["stages.0.depth"] == 3


def test_json_schema_rejects_unknown_keys():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema(Outer)
    jsonschema.validate({"name": "x", "stages": [{"depth": 1}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "bogus": 1}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "stages": [{"depth": 1, "mode": "z"}]}, schema)


def test_registry_lists_valid_names():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    reg.register("beta", 2)
    assert reg.get("beta") == 2 and "alpha" in reg and reg.names() == ["alpha", "beta"]
    with pytest.raises(ConfigError) as info:
        reg.get("alpah")
    assert "unknown widget 'alpah'" in str(info.value)
    assert "did you mean 'alpha'" in str(info.value)
    assert "valid: alpha, beta" in str(info.value)
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("alpha", 3)
    reg.register("alpha", 3, overwrite=True)
    assert reg.get("alpha") == 3
