"""The search-space format: every shipped file loads and matches the JSON Schema; errors name the
file, the key path, the bad value and the valid values; enumeration, conditional axes, decoding,
constraints and the --smoke shrink. No Ray here (Optuna's define-by-run space runs on a real
Optuna study)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.errors import ConfigError
from bench.space import (
    Axis,
    Constraints,
    architectures,
    decode,
    enumerate_samples,
    from_dict,
    load_space,
    parse_count,
    search_configs,
    shrink,
    space_hash,
    space_schema,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))
EXPECTED = {"quickstart", "resnet_depth", "degradation", "resnet_vs_densenet", "block_skip",
            "timm_reference", "study_lesion", "study_skips", "study_width", "exhaustive_cifar"}


def base(**extra) -> dict:
    data = {
        "name": "t",
        "dataset": {"name": "digits", "subset": 200},
        "train": {"epochs": 2, "device": "cpu"},
        "arch": {"width": 4},
        "space": {"depth": {"grid": [8, 14]}, "skip": {"grid": ["identity", "none"]}},
    }
    data.update(extra)
    return data


def write(tmp_path: Path, data: dict | str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(tmp_path: Path, data: dict | str, overrides=()) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_space(path, overrides)
    return str(info.value)


def test_every_shipped_space_loads_and_matches_the_schema():
    import jsonschema

    assert {p.stem for p in SHIPPED} == EXPECTED
    schema = space_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in SHIPPED:
        space = load_space(path)
        assert space.name == path.stem
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, f"{path.name}: {errors[0].message}"
    # the schema rejects what the loader rejects: unknown keys and two distributions on an axis
    assert list(validator.iter_errors({"name": "x", "serach": {}}))
    assert list(validator.iter_errors({"name": "x", "space": {"d": {"choice": [1], "grid": [2]}}}))


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda d: d.update(serach={}), ["space.yaml", "serach", "did you mean 'search'", "valid keys"]),
        (lambda d: d.update(search={"algorithm": "bayes"}),
         ["search.algorithm", "'bayes'", "'grid'", "'optuna_tpe'"]),
        (lambda d: d["train"].update(lr="fast"), ["train.lr", "expected a number", "'fast'"]),
        (lambda d: d["space"].update(depth={"grid": [8], "choice": [14]}),
         ["space.depth", "exactly one distribution", "choice", "qrandint"]),
        (lambda d: d["space"].update(depth={"grid": [8, 9]}),
         ["space.depth", "depth 9 is not 6n+2", "valid depths"]),
        (lambda d: d["space"].update(skip={"grid": ["identity", "projektion"]}),
         ["space.skip", "projektion", "did you mean 'projection'"]),
        (lambda d: d["space"].update(widht={"grid": [4]}),
         ["space", "widht", "did you mean 'width'"]),
        (lambda d: d["space"].update(**{"trian.lr": {"grid": [0.1]}}),
         ["space.trian.lr", "did you mean 'train'"]),
        (lambda d: d["space"].update(**{"train.lrr": {"grid": [0.1]}}),
         ["space.train.lrr", "did you mean 'lr'"]),
        (lambda d: d["space"].update(growth={"grid": [12], "when": {"famly": "densenet"}}),
         ["space.growth.when.famly", "not an earlier axis"]),
        (lambda d: d["space"].update(g={"grid": [1], "when": {"skip": "identiti"}}),
         ["space.g.when.skip", "'identiti'", "did you mean 'identity'", "'none'"]),
        (lambda d: d.update(search={"objectives": {"val_accuracy": "max"}}),
         ["search.objectives.val_accuracy", "did you mean 'val_acc'"]),
        (lambda d: d.update(search={"algorithm": "grid", "num_samples": 4}),
         ["search.num_samples", "grid runs every combination"]),
        (lambda d: d.update(search={"algorithm": "optuna_tpe"}),
         ["space.depth.grid", "Optuna samplers cannot enumerate a grid"]),
        (lambda d: d.update(search={"algorithm": "optuna_nsga2", "objectives": {"val_acc": "max"}},
                            space={"depth": {"choice": [8, 14]}}),
         ["search.objectives", "two or more objectives"]),
        (lambda d: d.update(scheduler={"type": "asha", "grace_period": 2}),
         ["scheduler.grace_period", "below train.epochs"]),
        (lambda d: d.update(constraints={"max_macs": "lots"}),
         ["constraints.max_macs", "'lots'", "40M"]),
        (lambda d: d.update(dataset="mnist"), ["dataset", "'mnist'", "digits", "cifar10"]),
        (lambda d: d.update(arch={"width": 4, "stem": "cifra"}),
         ["arch.stem", "'cifra'", "did you mean 'cifar'"]),
        (lambda d: d.update(name="my sweep"), ["name", "'my sweep'"]),
    ],
)
def test_errors_name_file_key_path_value_and_valid_values(tmp_path, mutate, fragments):
    data = base()
    mutate(data)
    msg = error_of(tmp_path, data)
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    msg = error_of(tmp_path, "name: t\nspace:\n  depth: {grid: [8, 14}\n")
    assert "space.yaml" in msg and "line 3" in msg and "column" in msg


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_space(tmp_path / "nope.yaml")
    msg = error_of(tmp_path, base(), ["trian.epochs=3"])
    assert "trian" in msg and "did you mean 'train'" in msg
    msg = error_of(tmp_path, base(), ["novalue"])
    assert "key=value" in msg


def test_overrides_apply_and_change_the_hash(tmp_path):
    path = write(tmp_path, base())
    a = load_space(path)
    b = load_space(path, ["train.epochs=5", "space.depth.grid=[8]"])
    assert b.train.epochs == 5 and len(enumerate_samples(b)) == 2
    assert space_hash(a) != space_hash(b) and space_hash(a) == space_hash(load_space(path))


def test_grid_enumeration_with_conditional_axes_and_param_alias():
    space = from_dict(base(
        arch={"width": 4, "bc": True},
        space={
            "family": {"grid": ["resnet", "densenet"]},
            "resnet_depth": {"grid": [8, 14], "param": "depth", "when": {"family": "resnet"}},
            "densenet_depth": {"grid": [16], "param": "depth", "when": {"family": "densenet"}},
            "growth_rate": {"choice": [4, 6], "when": {"family": "densenet"}},
            "train.lr": {"grid": [0.05]},
        },
    ))
    samples = enumerate_samples(space)
    assert len(samples) == 2 + 2  # resnet x 2 depths, densenet x 1 depth x 2 growth rates
    assert all("growth_rate" not in s for s in samples if s["family"] == "resnet")
    labels = [decode(space, {"sample": s}).arch.label for s in samples]
    assert labels[0].startswith("resnet8") and any(label.startswith("densenet-bc16-k6") for label in labels)
    spec = decode(space, {"sample": samples[-1]})
    assert spec.train.lr == 0.05 and spec.arch.family == "densenet" and spec.arch.depth == 16
    # the dataset decides the input: digits are 10 classes of 3 x 32 x 32
    assert (spec.arch.num_classes, spec.arch.in_chans, spec.arch.input_size) == (10, 3, 32)


def test_random_search_is_seeded_and_respects_bounds():
    data = base(
        space={
            "depth": {"grid": [8, 14]},
            "train.lr": {"loguniform": [1e-3, 1e-1]},
            "width": {"qrandint": [4, 12, 4]},
            "train.weight_decay": {"uniform": [0, 1e-3]},
            "train.batch_size": {"randint": [16, 32]},
        },
        search={"algorithm": "random", "num_samples": 5, "seed": 3},
    )
    space = from_dict(data)
    a, b = enumerate_samples(space), enumerate_samples(from_dict(data))
    assert a == b and len(a) == 10  # 5 draws x 2 grid values
    assert all(1e-3 <= s["train.lr"] <= 1e-1 and s["width"] in (4, 8, 12) for s in a)
    assert all(16 <= s["train.batch_size"] <= 32 for s in a)
    data["search"]["seed"] = 4
    assert enumerate_samples(from_dict(data)) != a


def test_architectures_cover_the_reachable_set_for_optuna():
    space = from_dict(base(
        space={"depth": {"choice": [8, 14]}, "width_multiplier": {"uniform": [0.5, 1.0]},
               "train.lr": {"loguniform": [1e-3, 1e-1]}},
        search={"algorithm": "optuna_tpe", "num_samples": 3},
    ))
    archs, cut = architectures(space)
    assert not cut and len(archs) == 4  # 2 depths x the two ends of width_multiplier
    assert all(set(a) == {"depth", "width_multiplier"} for a in archs)


def test_optuna_define_by_run_suggests_conditional_axes_only_when_active():
    import optuna

    from bench.tune import OptunaSpace

    space = from_dict(base(
        arch={"width": 4, "bc": True},
        space={"family": {"choice": ["resnet", "densenet"]},
               "growth_rate": {"choice": [4, 6], "when": {"family": "densenet"}},
               "train.lr": {"loguniform": [1e-3, 1e-1]},
               "width": {"qrandint": [4, 8, 4], "when": {"family": "resnet"}}},
        search={"algorithm": "optuna_tpe", "num_samples": 3},
    ))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fn = OptunaSpace(space.space.items())
    seen = set()
    for _ in range(12):
        trial = study.ask()
        fn(trial)
        params = trial.params
        seen.add(params["family"])
        assert ("growth_rate" in params) == (params["family"] == "densenet")
        assert ("width" in params) == (params["family"] == "resnet")
        study.tell(trial, 0.0)
    assert seen == {"resnet", "densenet"}


def test_constraints_and_counts():
    assert parse_count("1.5M", "x") == 1_500_000 and parse_count("40k", "x") == 40_000
    assert parse_count(250, "x") == 250 and parse_count(None, "x") is None
    c = Constraints(max_params="100K", max_macs="1G")
    assert c.max_params == 100_000 and c.violation(50_000, 10) == ""
    assert "params 200K > max_params 100K" in c.violation(200_000, 10)


def test_axis_rules():
    assert Axis(choice=("1e-3", 2)).choice == (0.001, 2)  # YAML 1.1 reads 1e-3 as a string
    with pytest.raises(ConfigError, match="low must be below high"):
        Axis(uniform=(1.0, 0.5))
    with pytest.raises(ConfigError, match="step must be >= 1 and divide"):
        Axis(qrandint=(4, 10, 4))
    with pytest.raises(ConfigError, match="log scale"):
        Axis(loguniform=(0.0, 1.0))
    with pytest.raises(ConfigError, match="scalars"):
        Axis(choice=({"a": 1},))


def test_references_decode_and_references_only_files_have_no_search_trials():
    space = load_space(REPO / "search_spaces" / "timm_reference.yaml")
    assert search_configs(space) == []
    spec = decode(space, {"reference": 2})
    assert spec.arch.family == "timm" and spec.arch.timm_model == "resnet50"
    assert (spec.arch.input_size, spec.arch.num_classes) == (224, 1000)
    rvd = load_space(REPO / "search_spaces" / "resnet_vs_densenet.yaml")
    ref = decode(rvd, {"reference": 0})
    assert ref.arch.input_size == 32 and ref.arch.num_classes == 10  # the dataset's


def test_smoke_shrinks_every_trial_but_keeps_grids():
    space = load_space(REPO / "search_spaces" / "resnet_depth.yaml", smoke=True)
    assert space.train.epochs == 1 and space.dataset.subset <= 128 and space.dataset.test_subset <= 64
    assert space.measure.iters <= 2 and len(search_configs(space)) == 10
    warm = [decode(space, c).train.warmup_epochs for c in search_configs(space)]
    assert warm == [0.0] * 10  # the sampled 1-epoch warm-up of ResNet-110 fits one epoch
    block = shrink(load_space(REPO / "search_spaces" / "block_skip.yaml"))
    assert block.search.num_samples == 2 and block.scheduler.type == "none"
    quick = load_space(REPO / "search_spaces" / "quickstart.yaml", smoke=True)
    assert quick.scheduler.type == "none"  # ASHA needs more than one epoch
    refs = load_space(REPO / "search_spaces" / "timm_reference.yaml", smoke=True)
    assert all(r.input_size == 32 for r in refs.references)


def test_schema_cli_prints_json(capsys):
    from launchers.sweep import main

    assert main(["--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$defs"]["SearchSpace"]["additionalProperties"] is False
    assert "search" in schema["$defs"]["SearchSpace"]["properties"]


def test_counts_read_the_same_everywhere() -> None:
    """One formatter for K / M / G (tables, figures, progress lines, the summary)."""
    from bench.space import human
    from bench.text import si

    assert [si(v) for v in (999, 1_000, 11_166, 4_370_000, 1.23e9)] == \
        ["999", "1K", "11.2K", "4.37M", "1.23G"]
    assert si(802_000, ".2f", sep=" ") == "802.00 K" and si(12, ".2f", below="") == "12"
    assert (human(19_218), human(7), human(0.125)) == ("19.2K", "7", "0.125")
