"""The trial engine: metrics and reports, determinism, divergence, checkpoint/resume, schedules,
optimiser groups, spec parsing, the standalone launcher, and import hygiene for GPU hosts."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.config import to_dict
from bench.errors import ConfigError
from bench.trainer import LRSchedule, TrainSpec, TrialSpec, make_optimizer, parse_trial, train

REPO = Path(__file__).resolve().parents[1]
EPOCH_KEYS = {
    "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "best_val_acc",
    "epoch_time_s", "train_img_per_s",
}
FINAL_KEYS = {"test_loss", "test_acc", "test_top5", "params", "macs", "activations", "best_val_acc", "train_time_s"}


def test_reports_every_epoch_with_stable_metric_names(tiny_trial) -> None:
    reports = []
    spec = tiny_trial(train={"epochs": 3})
    result = train(spec, report=lambda m, ckpt: reports.append((m, ckpt)))
    assert result.status == "completed" and result.message == ""
    assert [m["epoch"] for m, _ in reports] == [1.0, 2.0, 3.0]
    for m, _ in reports:
        assert EPOCH_KEYS <= set(m)
        assert all(isinstance(v, float) for v in m.values())
        assert 0 <= m["val_acc"] <= m["val_top5"] <= 100
    assert not (FINAL_KEYS - {"best_val_acc"}) & set(reports[0][0])  # finals only in the last report
    assert FINAL_KEYS <= set(reports[-1][0]) and FINAL_KEYS <= set(result.metrics)
    assert result.metrics["params"] > 1000 and result.metrics["macs"] > result.metrics["params"]
    sizes = [result.metrics[f"{s}_images"] for s in ("train", "val", "test")]
    assert all(n > 0 for n in sizes) and sizes[0] > sizes[1]  # the splits the accuracies are on
    assert [h["epoch"] for h in result.history] == [1.0, 2.0, 3.0]
    assert result.metrics["best_val_acc"] == max(h["val_acc"] for h in result.history)
    assert result.env["device"] == "cpu" and result.env["torch"] == torch.__version__
    # learning happens: the loss falls over three epochs
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_test_split_every_n_epochs(tiny_trial) -> None:
    every = train(tiny_trial(train={"epochs": 3, "test_every": 1}))
    assert all({"test_loss", "test_acc", "test_top5"} <= set(h) for h in every.history)
    assert every.metrics["test_acc"] == every.history[-1]["test_acc"]  # the last epoch's, not re-run
    plain = train(tiny_trial(train={"epochs": 3}))
    assert not any("test_acc" in h for h in plain.history)
    assert [h["train_loss"] for h in plain.history] == [h["train_loss"] for h in every.history]
    assert plain.metrics["test_acc"] == every.metrics["test_acc"]  # evaluation changes nothing
    second = train(tiny_trial(train={"epochs": 3, "test_every": 2}))
    assert ["test_acc" in h for h in second.history] == [False, True, False]
    assert second.metrics["test_acc"] == plain.metrics["test_acc"]  # still measured at the end
    with pytest.raises(ConfigError, match="test_every"):
        tiny_trial(train={"test_every": -1})


def test_same_seed_same_loss_curve_on_cpu(tiny_trial) -> None:
    spec = tiny_trial(train={"epochs": 2, "seed": 3})
    a, b = train(spec), train(spec)
    curve = lambda r: [(h["train_loss"], h["val_loss"], h["train_acc"]) for h in r.history]  # noqa: E731
    assert curve(a) == curve(b)
    assert a.metrics["test_loss"] == b.metrics["test_loss"]
    c = train(tiny_trial(train={"epochs": 2, "seed": 4}))
    assert curve(c) != curve(a)


def test_huge_lr_diverges_without_exception(tiny_trial) -> None:
    spec = tiny_trial(train={"lr": 1e6, "schedule": "constant", "epochs": 3})
    result = train(spec)
    assert result.status == "diverged"
    assert "nan" in result.message or "inf" in result.message
    assert "train.lr" in result.message
    assert len(result.history) < 3


def test_checkpoint_resume_is_bitwise_identical(tiny_trial) -> None:
    spec = tiny_trial(
        train={"epochs": 3, "schedule": "onecycle", "label_smoothing": 0.1},
        data={"cutout": 4},
        diagnostics={"grad_norms": True},
    )
    saved = {}

    def report(metrics, checkpoint) -> None:
        if metrics["epoch"] == 1.0:
            buf = io.BytesIO()
            torch.save(checkpoint(), buf)  # must survive serialisation
            saved["state"] = buf.getvalue()

    full = train(spec, report=report)
    state = torch.load(io.BytesIO(saved["state"]), weights_only=False)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    resumed = train(spec, resume=state)
    assert resumed.status == "completed"
    timing = {"epoch_time_s", "train_img_per_s"}
    strip = lambda hist: [{k: v for k, v in h.items() if k not in timing} for h in hist]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)  # bitwise: floats compared exactly
    for key in ("test_loss", "test_acc", "val_loss", "train_loss"):
        assert resumed.metrics[key] == full.metrics[key]
    # the resumed run only trained the remaining epochs
    assert resumed.metrics["train_time_s"] >= state["train_time_s"]


def test_checkpoint_is_a_snapshot_and_spec_mismatch_is_refused(tiny_trial) -> None:
    spec = tiny_trial(train={"epochs": 2})
    states = []
    train(spec, report=lambda m, ckpt: states.append(ckpt()))
    first, second = states
    w1 = next(iter(first["model"].values()))
    w2 = next(iter(second["model"].values()))
    assert not torch.equal(w1, w2)  # the first snapshot was not mutated by epoch 2
    other = tiny_trial(train={"epochs": 2, "lr": 0.2})
    with pytest.raises(ConfigError, match=r"different spec \(train.lr: 0.05 -> 0.2\)"):
        train(other, resume=first)


def test_adamw_cutout_clip_and_no_val_split(tiny_trial) -> None:
    spec = tiny_trial(
        train={"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05, "grad_clip": 1.0,
               "schedule": "step", "warmup_epochs": 1, "epochs": 2, "eval_test": False},
        data={"cutout": 8, "val_fraction": 0.0},
    )
    result = train(spec)
    assert result.status == "completed"
    assert "val_acc" not in result.metrics and "best_val_acc" not in result.metrics
    assert "test_acc" not in result.metrics and math.isfinite(result.metrics["train_loss"])


def test_num_classes_follow_the_data(tiny_trial) -> None:
    spec = tiny_trial(
        data={"name": "synthetic", "num_classes": 3, "synthetic_size": 128, "shape": [3, 16, 16],
              "subset": None, "test_subset": None},
        train={"epochs": 1},
    )
    result = train(spec)
    assert result.status == "completed"
    assert result.metrics["val_top5"] == 100.0  # 3 classes: every label is in the top 5


def test_lr_schedules() -> None:
    def factors(**kw) -> list[float]:
        spec = TrainSpec(**{"epochs": 4, **kw})
        sched = LRSchedule(spec, steps_per_epoch=25)
        return [sched(s) for s in range(100)]

    step = factors(schedule="step")
    assert step[0] == 1.0 and step[49] == 1.0 and step[50] == pytest.approx(0.1) and step[75] == pytest.approx(0.01)
    cos = factors(schedule="cosine", warmup_epochs=1)
    assert cos[0] == pytest.approx(1 / 25) and cos[24] == 1.0 and cos[25] == pytest.approx(1.0)
    assert cos[-1] < 0.01 and all(a >= b for a, b in zip(cos[24:], cos[25:], strict=False))
    one = factors(schedule="onecycle", onecycle_peak=0.2)
    assert one[0] == pytest.approx(1 / 25) and max(one) == one[20] == 1.0 and one[-1] < 0.02
    assert factors(schedule="constant") == [1.0] * 100


def test_weight_decay_groups() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    groups = make_optimizer(model, TrainSpec(weight_decay=0.1), torch.device("cpu")).param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [p.ndim for p in groups[0]["params"]] == [4]
    assert len(groups[1]["params"]) == 3  # conv bias, BN weight and bias
    all_decay = make_optimizer(model, TrainSpec(decay_bn_bias=True), torch.device("cpu")).param_groups
    assert len(all_decay) == 1
    assert make_optimizer(model, TrainSpec(optimizer="adamw"), torch.device("cpu")).__class__.__name__ == "AdamW"


def test_spec_parsing_flat_and_structured_arch() -> None:
    flat = parse_trial({"arch": {"depth": 32, "skip": "projection"}, "train": {"lr": "1e-2"}})
    assert flat.arch.label == "resnet32-projection-w16" and flat.train.lr == 0.01
    round_trip = parse_trial(to_dict(flat))
    assert round_trip == flat
    assert parse_trial({}) == TrialSpec()
    with pytest.raises(ConfigError, match=r"arch.depth: depth 21 is not 6n\+2"):
        parse_trial({"arch": {"depth": 21}})
    with pytest.raises(ConfigError, match=r"train.schedule: invalid value 'cosin' \(did you mean 'cosine'\?\)"):
        parse_trial({"train": {"schedule": "cosin"}})
    with pytest.raises(ConfigError, match=r"train.warmup_epochs: must be in \[0, epochs=10\)"):
        parse_trial({"train": {"warmup_epochs": 10}})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_cuda_requested_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="train.device: cuda requested but no CUDA device"):
        train(parse_trial({"train": {"device": "cuda"}}))


def _launch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "launchers.train", "--set", "train.threads=1", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def test_launcher_runs_a_trial_and_writes_json(tmp_path) -> None:
    out = tmp_path / "res" / "trial.json"
    ckpt = tmp_path / "ckpt.pt"
    proc = _launch(
        "--arch", "resnet8", "--set", "arch.width=4", "--set", "data.subset=300",
        "--set", "data.test_subset=100", "--set", "train.epochs=2", "--set", "train.device=cpu",
        "--json", str(out), "--json", "-", "--checkpoint", str(ckpt),
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1/2" in proc.stderr and "epoch   2/2" in proc.stderr
    printed = json.loads(proc.stdout)
    written = json.loads(out.read_text())
    assert printed == written and written["status"] == "completed"
    assert written["arch"] == "resnet8-identity-w4" and written["spec"]["train"]["epochs"] == 2
    assert "test_acc" in written["metrics"] and len(written["history"]) == 2
    assert torch.load(ckpt, weights_only=False)["epoch"] == 2
    # resuming from the last checkpoint only recomputes the final numbers
    again = _launch(
        "--arch", "resnet8", "--set", "arch.width=4", "--set", "data.subset=300",
        "--set", "data.test_subset=100", "--set", "train.epochs=2", "--set", "train.device=cpu",
        "--resume", str(ckpt), "--quiet", "--json", "-",
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["metrics"]["test_acc"] == written["metrics"]["test_acc"]


def test_launcher_errors_and_exit_codes(tmp_path, capsys) -> None:
    from bench.errors import DataError
    from launchers.train import main

    assert main(["--set", "train.lr=-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: train.lr: must be > 0, got -1.0"
    cfg = tmp_path / "t.yaml"
    cfg.write_text("arch: {depth: 20}\ndata: {name: cifar10, root: " + str(tmp_path / "none") + "}\n")
    assert main(["--config", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cifar10: no local copy found") and "Traceback" not in err
    assert "cifar-10-batches-py" in err and "data.download=true" in err
    with pytest.raises(DataError):  # --debug lets the exception (and its traceback) through
        main(["--config", str(cfg), "--debug", "--quiet"])
    structured = tmp_path / "s.yaml"
    structured.write_text(json.dumps({"arch": to_dict(parse_trial({}).arch)}))
    assert main(["--config", str(structured), "--set", "arch.depth=56"]) == 2
    assert "structured form" in capsys.readouterr().err
    assert main(["--arch", "resnet9"]) == 2
    assert "depth 9 is not 6n+2" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err
    diverged = main([
        "--arch", "resnet8", "--set", "arch.width=4", "--set", "data.subset=200",
        "--set", "train.lr=1e6", "--set", "train.schedule=constant", "--set", "train.epochs=2",
        "--set", "train.device=cpu", "--set", "train.threads=1", "--quiet", "--json", "-",
    ])
    out = capsys.readouterr()
    assert diverged == 1 and "trial diverged" in out.err
    assert json.loads(out.out)["status"] == "diverged"


def test_engine_imports_without_ray_mlflow_sklearn() -> None:
    """The GPU host has torch, torchvision, timm, numpy, PyYAML and Pillow; pydantic travels as
    wheels (scripts/fetch_wheels.sh): the engine loads nothing else."""
    code = (
        "import sys\n"
        "for m in ('ray', 'mlflow', 'sklearn', 'optuna'): sys.modules[m] = None\n"
        "import bench.trainer, bench.data, bench.measure, bench.diagnostics, launchers.train\n"
        "import runpy; sys.argv = ['gpu_bench', '--help']\n"
        "try:\n"
        "    runpy.run_path('scripts/gpu_bench.py', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "import json, importlib.metadata as md\n"
        "names = {m.split('.')[0] for m, v in list(sys.modules.items()) if v is not None}\n"
        "dists = md.packages_distributions()\n"
        "print(json.dumps(sorted({d for n in names for d in dists.get(n, [])})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--cpu-smoke" in proc.stdout
    loaded = {_dist(d) for d in json.loads(proc.stdout.strip().splitlines()[-1])}
    listed = subprocess.run(["bash", "scripts/fetch_wheels.sh", "--list"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True).stdout.split()
    brought = {_dist(line.split("==")[0]) for line in listed}
    assert {"pydantic", "pydantic-core"} <= brought
    host = _closure(["torch", "torchvision", "timm", "numpy", "pyyaml", "pillow"])
    assert loaded - host - brought - {"resbench"} == set()


def _dist(name: str) -> str:
    return name.lower().replace("_", "-")


def _closure(names: list[str]) -> set[str]:
    """Installed distributions ``names`` need (Requires-Dist without extras), themselves too."""
    import importlib.metadata as md
    import re

    seen: set[str] = set()
    todo = list(names)
    while todo:
        try:
            dist = md.distribution(todo.pop())
        except md.PackageNotFoundError:
            continue
        name = _dist(dist.metadata["Name"])
        if name in seen:
            continue
        seen.add(name)
        todo += [re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in dist.requires or []
                 if "extra ==" not in r]
    return seen


# GPU hosts may lack scikit-learn (digits): the gpu tests use synthetic data.
_SYNTHETIC = {"name": "synthetic", "synthetic_size": 1024, "subset": None, "test_subset": None}


@pytest.mark.gpu
def test_cuda_bf16_channels_last_path(tiny_trial) -> None:
    spec = tiny_trial(
        train={"device": "cuda", "epochs": 2, "compile": False},
        data=_SYNTHETIC,
        measure={"enabled": True, "iters": 3, "latency_iters": 5},
        diagnostics={"grad_norms": True},
    )
    result = train(spec)
    assert result.status == "completed", result.message
    assert result.metrics["peak_mem_mb"] > 0 and result.env["device"] != "cpu"
    for h in result.history:  # random labels: the loss stays near ln(10)
        assert 1.5 < h["train_loss"] < 3.5 and h["grad_norm/stem"] > 0
    assert result.history[-1]["train_img_per_s"] > 0


@pytest.mark.gpu
def test_cuda_data_resident_and_augmented_on_device(tiny_trial) -> None:
    from bench.augment import crop_flip
    from bench.data import load_dataset

    spec = tiny_trial(data=_SYNTHETIC)
    splits = load_dataset(spec.data, "cuda")
    assert splits.train.images.is_cuda and splits.train.images.dtype == torch.uint8
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = crop_flip(splits.train.images[:64], gen, 4, True)
    assert out.is_cuda and out.shape == splits.train.images[:64].shape
