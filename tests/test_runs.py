"""Running sweeps for real, as a newcomer does: ``--smoke`` runs in their own experiment, time
estimates in ``--dry-run`` and the live progress, ``--set`` on dotted axis names and ``--unset``,
``search.repeats`` (seeds per architecture, mean +- std), schedule warnings for shortened runs,
and the compact end of ``launchers.train``. Real Ray Tune, Optuna and MLflow; tiny models on a
few hundred digits.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from test_sweep import TINY, Sweep, space_file

from launchers.sweep import configure_environment

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (2 CPUs); the launcher joins it instead of starting one."""
    configure_environment(local=True)
    import ray

    temp = tempfile.mkdtemp(prefix="rbr-")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp,
             logging_level="WARNING")
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def sweep(tmp_path: Path, capsys: pytest.CaptureFixture, store: str) -> Sweep:
    return Sweep(tmp_path, capsys, store)


def experiments(uri: str) -> set[str]:
    import mlflow

    return {e.name for e in mlflow.MlflowClient(uri).search_experiments()}


# --- --smoke ----------------------------------------------------------------------------------


def test_smoke_runs_go_to_their_own_experiment_and_are_tagged(ray_session, sweep, tmp_path):
    space = space_file(tmp_path, "smokey", space={"skip": {"grid": ["identity", "none"]}})
    rc, out, err = sweep(space, "--smoke")
    assert rc == 0, err
    assert "MLflow experiment 'smokey-smoke'" in out
    assert "smokey" not in experiments(sweep.uri)  # the real experiment stays clean
    parent, children = sweep.runs("smokey-smoke")
    assert parent["tags.resbench.smoke"] == "true"
    assert len(children) == 2 and (children["tags.resbench.smoke"] == "true").all()
    assert (sweep.reports / "smokey-smoke.html").is_file()

    # told otherwise: --experiment wins; a real run is tagged false
    rc, out, err = sweep(space, "--smoke", "--experiment", "smokey-check")
    assert rc == 0, err
    parent, children = sweep.runs("smokey-check")
    assert parent["tags.resbench.smoke"] == "true"
    rc, out, err = sweep(space, "--set", "train.epochs=1")
    assert rc == 0, err
    parent, children = sweep.runs("smokey")
    assert parent["tags.resbench.smoke"] == "false"
    assert (children["tags.resbench.smoke"] == "false").all()


# --- time estimates -----------------------------------------------------------------------------


def test_dry_run_estimates_time_from_a_cached_calibration(sweep, tmp_path):
    from bench.estimate import CACHE_FILE

    cache = tmp_path / "cache"
    space = space_file(tmp_path, "timed", space={"depth": {"grid": [8, 14]}},
                       dataset={**TINY["dataset"], "cache_dir": str(cache)})
    rc, out, err = sweep(space, "--dry-run")
    assert rc == 0, err
    assert "est. time" in out
    line = next(ln for ln in out.splitlines() if "time estimate on this machine" in ln)
    assert "calibrated 2 architecture(s) now" in line and "sweep about " in line
    rates = json.loads((cache / CACHE_FILE).read_text())
    assert len(rates) == 2 and all(v > 0 for v in rates.values())
    assert all("torch " in k and "threads" in k for k in rates)
    rc, out, err = sweep(space, "--dry-run")  # the second dry run reads the cache
    assert rc == 0, err
    assert "2 architecture(s), calibration cached" in out


def test_progress_shows_elapsed_eta_and_rate(ray_session, sweep, tmp_path):
    space = space_file(tmp_path, "eta", space={"depth": {"grid": [8, 14]}},
                       search={"algorithm": "grid", "max_concurrent": 1})
    rc, out, err = sweep(space, "--progress-interval", "0.2")
    assert rc == 0, err
    done = [ln for ln in out.splitlines() if ln.startswith("[search]") and ": completed" in ln]
    assert len(done) == 2
    assert "1/2 trials done" in done[0] and "ETA " in done[0] and "/min" in done[0]
    assert "2/2 trials done" in done[1] and "ETA 0s" in done[1]
    assert any("elapsed " in ln and "ETA" in ln for ln in out.splitlines()
               if ln.startswith("[search]") and "trials done" in ln and ": completed" not in ln)


def test_decoding_an_image_folder_logs_progress(make_imagefolder, tmp_path, monkeypatch, caplog):
    import logging

    from bench import data

    root = tmp_path / "images"
    make_imagefolder(root, classes=["a", "b"], per_class=20, test_per_class=4, size=8)
    monkeypatch.setattr(data, "PROGRESS_EVERY_S", 0.0)  # every image: the folder is tiny
    with caplog.at_level(logging.INFO, logger="bench.data"):
        data.load_dataset(data.DataSpec(name="imagefolder", root=str(root),
                                        cache_dir=str(tmp_path / "cache")))
    messages = [r.getMessage() for r in caplog.records]
    assert any("decoding " in m and "/40 images" in m and "left" in m for m in messages)
    assert any(m.startswith("decoded ") and "40 images" in m for m in messages)


# --- launchers.train ----------------------------------------------------------------------------


def test_train_prints_a_summary_and_the_json_on_request(tmp_path, capsys):
    from launchers.train import main

    out = tmp_path / "result.json"
    args = ["--arch", "resnet8", "--set", "arch.width=4", "--set", "data.subset=200",
            "--set", "data.image_size=8", "--set", "train.epochs=1", "--set", "train.device=cpu",
            "--set", "train.threads=1", "--quiet"]
    assert main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert 2 <= len(printed) <= 6, printed
    assert printed[0] == "resnet8-identity-w4 on digits: completed after 1 epoch(s)"
    assert "test_acc " in printed[1] and "params 5.01K" in "".join(printed)
    assert printed[-1] == f"  full result: {out}"
    result = json.loads(out.read_text())
    assert result["status"] == "completed" and "history" in result and "spec" in result


# --- schedules of shortened runs ----------------------------------------------------------------


def test_shortened_step_schedule_warns_in_sweep_and_train(sweep, tmp_path, capsys):
    from launchers.train import main

    space = space_file(tmp_path, "short", train={**TINY["train"], "epochs": 40,
                                                 "schedule": "step", "warmup_epochs": 1.0})
    rc, out, err = sweep(space, "--dry-run")
    assert rc == 0, err
    assert "warning" not in err  # 40 epochs: what the step schedule is made for
    rc, out, err = sweep(space, "--dry-run", "--set", "train.epochs=4")
    assert rc == 0, err
    assert "warning: train.schedule step at 4 epochs" in err and "after epoch 2" in err
    assert "train.schedule=cosine" in err
    assert "warning: train.warmup_epochs 1 of 4 epochs: 25%" in err
    rc = main(["--arch", "resnet8", "--set", "arch.width=4", "--set", "data.subset=100",
               "--set", "data.image_size=8", "--set", "train.epochs=2", "--set",
               "train.schedule=step", "--set", "train.device=cpu", "--set", "train.threads=1",
               "--quiet"])
    assert rc == 0
    assert "warning: train.schedule step at 2 epochs" in capsys.readouterr().err


# --- --set / --unset on dotted names, search.repeats ------------------------------------------


def test_set_addresses_dotted_axes_and_unset_removes_keys(sweep, tmp_path):
    space = space_file(tmp_path, "dotted", space={"train.warmup_epochs": {"choice": [0.0, 1.0]},
                                                  "skip": {"grid": ["identity", "none"]}},
                       search={"algorithm": "grid"})
    space.write_text(space.read_text().replace("choice: [0.0, 1.0]", "grid: [0.0, 1.0]")
                     .replace("choice:\n    - 0.0\n    - 1.0", "grid:\n    - 0.0\n    - 1.0"))
    for key in ('space["train.warmup_epochs"].grid=[0.5]', "space.'train.warmup_epochs'.grid=[0.5]",
                "space.train.warmup_epochs.grid=[0.5]"):  # the last: the file's axis, found
        rc, out, err = sweep(space, "--dry-run", "--set", key)
        assert rc == 0, err
        assert "train.warmup_epochs  grid [0.5]" in out and "dry run: 2 trials" in out, key
    rc, out, err = sweep(space, "--dry-run", "--unset", "space.skip")
    assert rc == 0, err
    assert "dry run: 2 trials" in out and "skip" not in out.split("axes:")[1].split("trials:")[0]
    rc, out, err = sweep(space, "--dry-run", "--unset", 'space["train.warmup_epochs"]',
                         "--unset", "space.skip")
    assert rc == 0, err
    assert "dry run: 1 trials" in out
    rc, out, err = sweep(space, "--dry-run", "--unset", "space.depth")
    assert rc == 2
    assert "cannot unset 'space.depth': no 'depth' under space" in err
    assert "train.warmup_epochs" in err  # the keys that are there


def test_train_unset_restores_the_default(tmp_path, capsys):
    import yaml as _yaml

    from launchers.train import main

    config = tmp_path / "trial.yaml"
    config.write_text(_yaml.safe_dump({"train": {"epochs": 2, "milestones": [0.5],
                                                 "schedule": "step", "lr": 0.2}}))
    assert main(["--config", str(config), "--print-spec"]) == 0
    assert "milestones:\n  - 0.5\n" in capsys.readouterr().out
    assert main(["--config", str(config), "--unset", "train.milestones", "--unset", "train.lr",
                 "--set", "train.epochs=3", "--print-spec"]) == 0
    spec = _yaml.safe_load(capsys.readouterr().out)
    assert spec["train"]["milestones"] != [0.5] and spec["train"]["lr"] != 0.2
    assert spec["train"]["epochs"] == 3 and spec["train"]["schedule"] == "step"
    assert main(["--config", str(config), "--unset", "train.nesterov", "--print-spec"]) == 2
    err = capsys.readouterr().err
    assert "cannot unset 'train.nesterov'" in err and "milestones" in err and "(--unset)" in err


def test_repeats_train_each_configuration_with_seeds_mean_std(ray_session, sweep, tmp_path):
    space = space_file(tmp_path, "seeds", space={"skip": {"grid": ["identity", "none"]}},
                       search={"algorithm": "grid", "repeats": 2})
    rc, out, err = sweep(space, "--dry-run")
    assert rc == 0, err
    assert "dry run: 4 trials" in out and "train.seed=1" in out
    rc, out, err = sweep(space)
    assert rc == 0, err
    _, children = sweep.runs("seeds")
    assert len(children) == 4
    assert sorted(children["params.train.seed"]) == ["0", "0", "1", "1"]
    assert "per configuration over 2 seeds" in out
    table = out.split("per configuration over 2 seeds")[1].splitlines()
    assert "val_acc mean ± std" in table[1] and "SE (n=60)" in table[1]
    rows = [ln for ln in table[2:4]]
    assert all(" 2/2 " in r and " ± " in r for r in rows), rows
    for label in ("resnet8-identity-w4", "plain8-w4"):
        accs = children[children["tags.resbench.label"] == label]["metrics.val_acc"]
        row = next(r for r in rows if r.strip().startswith(label + " "))
        assert f"{accs.mean():.2f} ± {accs.std():.2f}" in row
    # Optuna proposes one seed per trial: repeats is refused there
    bad = space_file(tmp_path, "seeds-tpe", space={"skip": {"choice": ["identity", "none"]}},
                     search={"algorithm": "optuna_tpe", "repeats": 2})
    rc, out, err = sweep(bad, "--dry-run")
    assert rc == 2 and "search.repeats: repeats needs algorithm grid or random" in err


# --- class-folder trees -----------------------------------------------------------------------


def test_cifar10_on_a_class_folder_tree_suggests_imagefolder(sweep, tmp_path, make_imagefolder):
    root = tmp_path / "jpeg"
    make_imagefolder(root, classes=[f"c{i}" for i in range(3)], per_class=6, test_per_class=2,
                     size=8)
    space = space_file(tmp_path, "folders", dataset={"name": "cifar10", "root": str(root)})
    rc, out, err = sweep(space)
    assert rc == 2
    assert "class-folder tree" in err and "dataset.name=imagefolder" in err
    assert "data.root" not in err and "data.name" not in err
    # the suggestion works as written
    rc, out, err = sweep(space, "--dry-run", "--set", "dataset.name=imagefolder",
                         "--set", "dataset.subset=null", "--set", "dataset.test_subset=null")
    assert rc == 0, err
    missing = space_file(tmp_path, "nofolder", dataset={"name": "imagefolder"})
    rc, out, err = sweep(missing)
    assert rc == 2 and "needs dataset.root" in err and "data.root" not in err
