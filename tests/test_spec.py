"""The torch-free spec layer: the architecture model (pydantic, discriminated by family), its
errors, its JSON Schema, block parameters, dataset definitions and the fast cost counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import ConfigError
from bench.spec.params import arch_from_params, arch_schema, param_keys, parse_params
from bench.spec.presets import densenet

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("params", "path", "needles"),
    [
        # zero is a value, never "unset": it is checked (it used to become the default)
        ({"family": "densenet", "depth": 40, "growth_rate": 0}, "growth_rate", [">= 1", "got 0"]),
        ({"family": "densenet", "depth": 40, "input_size": 0}, "input_size", [">= 1", "got 0"]),
        # a negative growth rate is blamed on growth_rate, not on a stage width
        ({"family": "densenet", "depth": 40, "growth_rate": -3}, "growth_rate", ["got -3"]),
        ({"depth": "20"}, "depth", ["expected an integer", "'20'"]),
        ({"depth": 20.5}, "depth", ["expected an integer", "20.5"]),
        ({"width_multiplier": True}, "width_multiplier", ["expected a number"]),
        ({"family": "densenet", "compression": 0}, "compression", ["> 0"]),
        ({"family": "wrn", "widht": 4}, "widht", ["did you mean 'width'", "valid:"]),
    ],
)
def test_arch_params_errors_name_key_value_and_valid(params, path, needles) -> None:
    with pytest.raises(ConfigError) as info:
        arch_from_params(params)
    assert info.value.path == path
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_preset_zero_growth_rate_is_an_error_on_growth_rate() -> None:
    with pytest.raises(ConfigError) as info:
        densenet(40, growth_rate=0)
    assert info.value.path == "growth_rate"
    assert densenet(40, growth_rate=24).growth_rate == 24


def test_family_models_discriminate_and_ignore_other_families_keys() -> None:
    assert type(parse_params({"family": "wrn"})).__name__ == "WrnParams"
    assert type(parse_params({})).__name__ == "ResnetParams"
    # a joint space sets densenet keys for resnet trials too: accepted, validated, unused
    assert arch_from_params({"depth": 20, "growth_rate": 24}) == arch_from_params({"depth": 20})
    with pytest.raises(ConfigError, match="growth_rate"):
        arch_from_params({"depth": 20, "growth_rate": "many"})


def test_arch_schema_comes_from_the_model() -> None:
    schema = arch_schema()
    families = {name: d for name, d in schema["$defs"].items() if name.endswith("Params")}
    assert set(families) == {"ResnetParams", "PlainParams", "WrnParams", "DensenetParams",
                             "TimmParams"}
    for d in families.values():
        assert d["additionalProperties"] is False
        assert set(d["properties"]) == set(param_keys())
    depth = families["WrnParams"]["properties"]["depth"]
    assert {"type": "integer", "minimum": 1} in depth["anyOf"]


def test_space_schema_checks_the_arch_section() -> None:
    from bench.space import space_schema

    schema = space_schema()
    arch = schema["$defs"]["SearchSpace"]["properties"]["arch"]
    assert {"$ref": "#/$defs/DensenetParams"} in arch["anyOf"]
    json.dumps(schema)  # serialisable


def test_parsing_a_space_imports_neither_torch_nor_timm() -> None:
    code = (
        "import sys\n"
        "from bench.space import load_space, space_schema\n"
        # no timm reference in these (a timm: model imports timm, and timm torch, by design)
        "for f in ('quickstart', 'block_skip', 'exhaustive_cifar', 'resnet_depth'):\n"
        "    load_space(f'search_spaces/{f}.yaml')\n"
        "space_schema()\n"
        "bad = [m for m in ('torch', 'timm', 'ray', 'mlflow') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_dry_run_imports_neither_torch_nor_timm(tmp_path: Path) -> None:
    """The dry run prices every architecture from the spec (bench.spec.costs) and reads cached
    calibrations by the torch version's metadata: with torch, timm, Ray and MLflow made
    unimportable it still prints its table; a seeded calibration cache gives an estimate."""
    import json as _json

    from bench.estimate import CACHE_FILE, rate_key, threads_of
    from bench.space import load_space
    from launchers.sweep import plan

    space = load_space(REPO / "search_spaces" / "quickstart.yaml")
    cache = tmp_path / "cache"
    cache.mkdir()
    specs = [p.spec for p in plan(space, None)[0] if not p.rejected]
    rates = {rate_key(s, threads_of(s, space.resources.cpu)): 500.0 for s in specs}
    (cache / CACHE_FILE).write_text(_json.dumps(rates))
    code = (
        "import sys\n"
        "for m in ('torch', 'timm', 'ray', 'mlflow'): sys.modules[m] = None\n"
        "from launchers.sweep import main\n"
        "for f, extra in (('quickstart', []), ('block_skip', ['--no-estimate']),\n"
        "                 ('exhaustive_cifar', ['--no-estimate'])):\n"
        "    assert main(['--space', f'search_spaces/{f}.yaml', '--dry-run', *extra]) == 0\n"
    )
    env = {**os.environ, "RESBENCH_CACHE": str(cache), "RESBENCH_DATA": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "calibration cached" in proc.stdout and "sweep about" in proc.stdout
    assert proc.stdout.count("dry run: ") == 3
