"""Load: a sweep of 200 very short trials (synthetic 8x8 images, ResNet-8 at width 4, one epoch)
through the launcher on this machine: all 200 complete and are in MLflow with all their metrics.
Prints trials per minute and the overhead per trial (slot time not spent in ``train()``), the
figures the README quotes. About 50 s on 2 shared cores, so not marked ``slow``."""

from __future__ import annotations

import io
import json
import time
from contextlib import redirect_stderr, redirect_stdout

import mlflow
from launchers.sweep import main

from .conftest import space_of, write_space

N_TRIALS = 200
CONCURRENCY = 2  # 2 CPUs, 1 per trial
EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "best_val_acc",
              "epoch_time_s", "lr", "epoch")
FINAL_KEYS = ("test_acc", "test_loss", "params", "macs", "train_time_s", "wall_time_s")


def test_200_short_trials_all_complete_and_are_tracked(ray_session, tmp_path, request):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    space = write_space(tmp_path / "load.yaml", space_of(
        "load",
        dataset={"name": "synthetic", "shape": [3, 8, 8], "synthetic_size": 40, "num_classes": 4,
                 "subset": None, "test_subset": None, "val_fraction": 0.2, "image_size": None,
                 "augment": False},
        train={"epochs": 1, "batch_size": 32, "eval_batch_size": 64},
        space={"train.seed": {"grid": list(range(N_TRIALS))}},
        search={"algorithm": "grid", "max_concurrent": CONCURRENCY}))
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["--space", str(space), "--tracking-uri", uri, "--storage",
                   str(tmp_path / "ray"), "--progress-interval", "3600", "--no-report"])
    wall = time.monotonic() - start
    assert rc == 0, err.getvalue()[-3000:]

    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_names=["load"], max_results=10_000)
    kids = df[df["tags.mlflow.parentRunId"].notna()]
    assert len(kids) == N_TRIALS and kids["tags.resbench.trial_id"].is_unique
    assert (kids["status"] == "FINISHED").all()
    assert (kids["tags.resbench.status"] == "completed").all()
    assert sorted(kids["params.sample.train.seed"].astype(int)) == list(range(N_TRIALS))
    for key in (*EPOCH_KEYS, *FINAL_KEYS):
        assert kids[f"metrics.{key}"].notna().all(), f"{key} missing in some runs"
    client = mlflow.MlflowClient(uri)
    for run_id in kids.run_id[:: N_TRIALS // 10]:  # every epoch metric is logged at step 1 once
        assert [m.step for m in client.get_metric_history(run_id, "val_acc")] == [1]

    trained = float(kids["metrics.wall_time_s"].sum())
    figures = {
        "trials": N_TRIALS,
        "wall_s": round(wall, 1),
        "trials_per_min": round(N_TRIALS / wall * 60, 1),
        "train_s_per_trial": round(trained / N_TRIALS, 3),
        "overhead_s_per_trial": round((wall * CONCURRENCY - trained) / N_TRIALS, 3),
        "concurrency": CONCURRENCY,
    }
    print("\nload figures: " + json.dumps(figures))
    request.node.user_properties.append(("load_figures", figures))
