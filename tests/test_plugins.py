"""Plugins: a one-file plugin (tests/plugins/resnext_se.py) adds two blocks with their own
parameters, searched by a real sweep; a plugin dataset is priced at its own image size; the
``resbench.plugins`` entry-point group loads installed plugins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

import mlflow
from bench.errors import ConfigError
from bench.plugins import import_plugins

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "tests" / "plugins"


@pytest.fixture(scope="module", autouse=True)
def plugin_path():
    """The plugin folder on sys.path and PYTHONPATH (Ray workers start with the latter)."""
    sys.path.insert(0, str(PLUGINS))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), old) if p)
    yield
    sys.path.remove(str(PLUGINS))
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def test_block_parameters_become_architecture_parameters() -> None:
    import torch

    from bench.models import build_model, cost
    from bench.spec.costs import counts
    from bench.spec.params import arch_from_params, param_keys

    import_plugins(["resnext_se"], "--plugin")
    assert {"cardinality", "se_ratio"} <= set(param_keys())
    arch = arch_from_params({"block": "resnext_bottleneck", "depth": 11, "width": 8,
                             "cardinality": 4, "se_ratio": 2})  # se_ratio: not this block's
    assert dict(arch.stages[0].params) == {"cardinality": 4}
    assert "cardinality4" in arch.label
    model = build_model(arch)
    assert model.stages[0][0].branch[3].groups == 4
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    exact = cost(arch)
    assert counts(arch) == (exact.params, exact.macs)  # measured once per block configuration
    se = arch_from_params({"block": "se_basic", "depth": 8, "width": 8, "se_ratio": 2})
    exact = cost(se)
    assert counts(se) == (exact.params, exact.macs)
    with pytest.raises(ConfigError) as info:
        arch_from_params({"block": "resnext_bottleneck", "depth": 11, "cardinality": 0})
    assert info.value.path == "cardinality" and "got 0" in str(info.value)


def test_plugin_dataset_is_priced_at_its_image_size(tmp_path) -> None:
    """A 1-channel 16x16 dataset under a MACs budget that the same nets at 3x32x32 exceed."""
    from bench.spec.costs import arch_counts
    from bench.spec.parts import DATASETS, register_dataset

    register_dataset("test_gray16", lambda spec: None, num_classes=4, shape=(1, 16, 16),
                     splits=(200, 50))
    try:
        space = {"name": "gray", "dataset": {"name": "test_gray16"},
                 "space": {"depth": {"grid": [8, 14]}}, "arch": {"width": 8},
                 "constraints": {"max_macs": "2M"}}
        path = tmp_path / "gray.yaml"
        path.write_text(yaml.safe_dump(space))
        from bench.space import decode, load_space, search_configs

        loaded = load_space(path)  # no architecture was over 2M at the real size
        specs = [decode(loaded, c) for c in search_configs(loaded)]
        for spec in specs:
            assert (spec.arch.in_chans, spec.arch.input_size, spec.arch.num_classes) == (1, 16, 4)
            assert arch_counts(spec.arch)[1] <= 2_000_000
            assert arch_counts(spec.arch.replace(in_chans=3, input_size=32))[1] > 2_000_000
        with pytest.raises(ConfigError, match="exceeds the 200 training images"):
            load_space(path, ["dataset.subset=500"])
    finally:
        DATASETS.unregister("test_gray16")


def test_a_dataset_in_one_file_trains_and_is_priced_at_its_size(tmp_path) -> None:
    """tests/plugins/bars.py registers a 1-channel 16x16 dataset (loader, classes, shape, split
    sizes): `launchers.train --plugin bars` trains on it with the net fitted to its shape, and a
    sweep's MACs budget is priced at 1x16x16 (the same nets at 3x32x32 are all over it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(REPO)])}
    out = tmp_path / "bars.json"
    ran = subprocess.run(
        [sys.executable, "-m", "launchers.train", "--plugin", "bars", "--arch", "resnet8",
         "--set", "data.name=bars", "--set", "arch.width=4", "--set", "train.epochs=2",
         "--set", "train.device=cpu", "--set", "train.threads=1", "--set", "data.flip=false",
         "--quiet", "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["status"] == "completed"
    assert (record["env"]["in_chans"], record["env"]["input_size"],
            record["env"]["num_classes"]) == ("1", "16", "2")
    assert record["metrics"]["test_images"] == 128 and record["metrics"]["test_acc"] > 70
    for dataset, rc in (("bars", 0), ("digits", 2)):  # digits: 3x32x32, every net over 2M MACs
        space = tmp_path / f"{dataset}.yaml"
        space.write_text(yaml.safe_dump({
            "name": "bars", "plugins": ["bars"], "dataset": dataset, "arch": {"width": 8},
            "space": {"depth": {"grid": [8, 14]}}, "constraints": {"max_macs": "2M"}}))
        dry = subprocess.run([sys.executable, "-m", "launchers.sweep", "--space", str(space),
                              "--dry-run", "--no-estimate"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
        assert dry.returncode == rc, dry.stdout + dry.stderr
        if dataset == "bars":
            assert "0 rejected by constraints, 2 to run" in dry.stdout
        else:
            assert "no architecture of the space meets the budget" in dry.stderr


def test_entry_point_plugins_load_through_importlib_metadata(tmp_path) -> None:
    dist = tmp_path / "resbench_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: resbench-test-plugin\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text("[resbench.plugins]\nresnext_se = resnext_se\n")
    code = ("from bench.spec.params import param_keys\n"
            "from bench.space import from_dict\n"
            "from bench.plugins import load_entry_points\n"
            "load_entry_points()\n"
            "assert 'cardinality' in param_keys(), param_keys()\n"
            "from_dict({'name': 'x', 'space': {'block': {'grid': ['resnext_bottleneck']},"
            " 'cardinality': {'grid': [2]}}, 'arch': {'depth': 11, 'width': 8}})\n"
            "print('ok')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PLUGINS), str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.fixture(scope="module")
def ray_session(plugin_path):
    from launchers.sweep import configure_environment

    configure_environment(local=True)
    import ray

    temp = tempfile.mkdtemp(prefix="rbp-")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp,
             logging_level="WARNING")
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_sweep_searches_the_plugin_blocks_parameters(ray_session, tmp_path, capsys) -> None:
    from launchers.sweep import main

    space = {
        "name": "plugin_blocks",
        "dataset": {"name": "digits", "subset": 200, "test_subset": 50, "val_fraction": 0.2,
                    "image_size": 8},
        "train": {"epochs": 1, "batch_size": 64, "lr": 0.05, "device": "cpu",
                  "eval_batch_size": 256},
        "arch": {"width": 8},
        "proxies": {"enabled": False},
        "space": {
            "block": {"grid": ["resnext_bottleneck", "se_basic"]},
            "cardinality": {"grid": [1, 4], "when": {"block": "resnext_bottleneck"}},
            "se_ratio": {"grid": [2], "when": {"block": "se_basic"}},
            "rx_depth": {"grid": [11], "when": {"block": "resnext_bottleneck"}, "param": "depth"},
            "se_depth": {"grid": [8], "when": {"block": "se_basic"}, "param": "depth"},
        },
        "search": {"algorithm": "grid"},
    }
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc = main(["--space", str(path), "--plugin", "resnext_se", "--tracking-uri", uri,
               "--storage", str(tmp_path / "ray"), "--no-report", "--progress-interval", "3600"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["plugin_blocks"])
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert sorted(children["params.sample.cardinality"].dropna()) == ["1", "4"]
    assert list(children["params.sample.se_ratio"].dropna()) == ["2"]
    assert (children["tags.resbench.status"] == "completed").all()


def test_a_study_in_one_file_lists_runs_judges_and_imports(tmp_path) -> None:
    """tests/plugins/toy_study.py registers a study; with --plugin the study launcher lists it,
    runs its form, writes its verdict and imports it into MLflow, as for a built-in study."""
    env = {**os.environ, "RESBENCH_CACHE": str(tmp_path / "cache")}

    def study(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "launchers.study", *argv,
                               "--plugin", "toy_study"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)

    listed = study("list")
    assert listed.returncode == 0, listed.stderr
    assert "toy_depth_width" in listed.stdout
    live = f"sqlite:///{tmp_path / 'live.db'}"  # the default backend (Ray) records it live
    ran = study("toy_depth_width", "--form", "cpu", "--out", str(tmp_path), "--quiet",
                "--tracking-uri", live, "--storage", str(tmp_path / "ray"))
    assert ran.returncode == 0, ran.stderr[-3000:]
    exp = mlflow.MlflowClient(live).get_experiment_by_name("study-toy_depth_width")
    runs = mlflow.MlflowClient(live).search_runs([exp.experiment_id])
    assert len(runs) == 3 and sum(r.data.tags.get("resbench.study") == "toy_depth_width"
                                  for r in runs) == 1  # the parent carries the verdict
    doc = json.loads((tmp_path / "toy_depth_width.cpu.json").read_text())
    assert [t["role"] for t in doc["trials"]] == ["deep", "wide"]
    assert all(t["status"] == "completed" for t in doc["trials"])
    [judged] = [r for r in doc["verdict"] if r["claim"] == "the deeper net is no worse"]
    assert judged["verdict"] in ("consistent", "not consistent"), judged
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    imported = study("import", str(tmp_path / "toy_depth_width.cpu.json"), "--tracking-uri", uri)
    assert imported.returncode == 0, imported.stderr[-3000:]
    exp = mlflow.MlflowClient(uri).get_experiment_by_name("study-toy_depth_width")
    assert exp is not None
    assert len(mlflow.MlflowClient(uri).search_runs([exp.experiment_id])) == 3  # parent + 2
    missing = subprocess.run([sys.executable, "-m", "launchers.study", "toy_depth_width"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "toy_depth_width" in missing.stderr  # no plugin: unknown
