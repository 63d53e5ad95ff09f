"""MLflow bookkeeping against a real SQLite store: the default locations, parent/child layout,
exactly-once runs by tag, per-epoch history without duplicates, status mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlflow
from bench.tracking import (
    MLFLOW_STATUS,
    REDACTED,
    Tracker,
    default_artifact_location,
    default_tracking_uri,
    is_secret_key,
    local_store,
    repo_root,
    ui_command,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'store' / 'mlflow.db'}"
    return uri, default_artifact_location(uri)


def test_default_locations_are_absolute_and_under_the_repo():
    root = repo_root()
    assert (root / "pyproject.toml").is_file() and (root / "bench" / "tracking.py").is_file()
    uri = default_tracking_uri()
    assert uri == f"sqlite:///{root}/mlflow/mlflow.db" and uri.startswith("sqlite:////")
    assert local_store(uri) == root / "mlflow" / "mlflow.db"
    assert default_artifact_location(uri) == (root / "mlflow" / "artifacts").as_uri()
    assert default_artifact_location("http://localhost:5000") is None
    assert ui_command(uri) == f"mlflow ui --backend-store-uri {uri}"


def test_parent_children_history_and_exactly_once(store):
    uri, artifacts = store
    tracker = Tracker(uri, "exp-a", artifacts)
    exp_id = tracker.setup()
    assert Path(local_store(uri)).is_file()
    assert mlflow.MlflowClient(uri).get_experiment(exp_id).artifact_location == artifacts

    parent = tracker.start_sweep("sweep-1", "sweep-1", {"resbench.space_hash": "abc"},
                                 {"algorithm": "grid"}, {"space.yaml": "name: x\n"})
    assert tracker.start_sweep("sweep-1", "sweep-1", {}, {}, {}) == parent  # re-opened, not new

    run, last = tracker.trial_run(parent, "t1", "resnet8", {"arch.depth": 8, "train.lr": 0.1},
                                  {"resbench.kind": "search"})
    assert last == set()
    for epoch in (1, 2):
        tracker.log_metrics(run, {"epoch": epoch, "val_acc": 10.0 * epoch, "lr": 0.1}, step=epoch)
    again, last = tracker.trial_run(parent, "t1", "resnet8", {"arch.depth": 8}, {})
    assert again == run and last == {1, 2}  # a restore continues after the logged epochs
    tracker.end_trial(run, "completed", {"test_acc": 55.0, "params": 5006}, step=2)

    other, _ = tracker.trial_run(parent, "t2", "plain8", {"arch.depth": 8}, {})
    tracker.end_trial(other, "diverged", {}, error="training loss became nan in epoch 1")
    rejected, _ = tracker.trial_run(parent, "t3", "resnet110", {}, {})
    tracker.end_trial(rejected, "rejected", {"macs": 2.5e8}, error="macs 254M > max_macs 100M")
    tracker.end_sweep(parent, "completed", {"rejected_trials": 1})

    client = mlflow.MlflowClient(uri)
    children = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(c.data.tags["resbench.trial_id"] for c in children) == ["t1", "t2", "t3"]
    by_id = {c.data.tags["resbench.trial_id"]: c for c in children}
    assert by_id["t1"].info.status == "FINISHED" and by_id["t1"].data.params["arch.depth"] == "8"
    assert [(m.step, m.value) for m in client.get_metric_history(run, "val_acc")] == [(1, 10.0), (2, 20.0)]
    assert by_id["t1"].data.metrics["test_acc"] == 55.0
    assert by_id["t2"].info.status == "FAILED" and "nan" in by_id["t2"].data.tags["resbench.error"]
    assert by_id["t3"].info.status == "KILLED" and by_id["t3"].data.tags["resbench.status"] == "rejected"
    p = client.get_run(parent)
    assert p.info.status == "FINISHED" and p.data.metrics["rejected_trials"] == 1
    assert p.data.tags["resbench.role"] == "sweep" and p.data.tags["resbench.sweep_id"] == "sweep-1"
    assert [a.path for a in client.list_artifacts(parent)] == ["space.yaml"]
    assert {r.info.run_id for r in tracker.children(parent)} == {c.info.run_id for c in children}


def test_second_tracker_on_the_same_experiment_and_status_map(store):
    uri, artifacts = store
    a = Tracker(uri, "exp-b", artifacts)
    b = Tracker(uri, "exp-b", artifacts)
    assert a.setup() == b.setup()
    assert set(MLFLOW_STATUS) == {"completed", "stopped", "rejected", "interrupted", "diverged", "failed"}
    assert set(MLFLOW_STATUS.values()) == {"FINISHED", "KILLED", "FAILED"}


def test_processes_opening_a_new_store_at_once_do_not_corrupt_it(tmp_path):
    """Alembic's schema migrations race when several processes create one SQLite store; the
    tracker serialises that with a lock file."""
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    code = ("import sys; from bench.tracking import Tracker; "
            "print(Tracker(sys.argv[1], 'race').setup())")
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1]) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs[0][1][-2000:]
    assert len({out.strip() for out, _ in outs}) == 1  # one experiment, the same id everywhere


@pytest.mark.parametrize("key", ["aws_secret_access_key", "api_key", "API_KEY", "apiKey",
                                 "db.password", "auth-token", "MLFLOW_TRACKING_PASSWORD",
                                 "client_secret", "key", "passwd", "x.ApiKey"])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["monkey", "keys", "tokenizer", "passwords_policy_url",
                                 "train.lr", "arch.stages.0.width", "keyboard", "hotkeys",
                                 "resbench.space_hash", "mlflow.parentRunId", "secretary"])
def test_ordinary_keys(key):
    assert not is_secret_key(key)


def test_secrets_are_redacted_before_they_reach_mlflow(store):
    uri, artifacts = store
    tracker = Tracker(uri, "exp-secrets", artifacts)
    parent = tracker.start_sweep(
        "sweep-s", "sweep-s", {"aws_secret_access_key": "AKIA-tag-secret", "resbench.note": "ok",
                               "resbench.store": "http://alice:hunter2@mlflow.example:5000"},
        {"api_key": "sk-param-secret", "monkey": "banana"}, {})
    run, _ = tracker.trial_run(parent, "t1", "resnet8", {"data.auth_token": "tok-123"},
                               {"Password": "pw-tag"})
    tracker.log_params(run, {"apiKey": "sk-later"})
    tracker.log_tags(run, {"client_secret": "cs-later"})

    client = mlflow.MlflowClient(uri)
    p, c = client.get_run(parent).data, client.get_run(run).data
    assert p.tags["aws_secret_access_key"] == REDACTED and p.tags["resbench.note"] == "ok"
    assert p.tags["resbench.store"] == "http://***@mlflow.example:5000"
    assert p.params == {"api_key": REDACTED, "monkey": "banana"}
    assert c.params == {"data.auth_token": REDACTED, "apiKey": REDACTED}
    assert c.tags["Password"] == REDACTED and c.tags["client_secret"] == REDACTED
    stored = repr([p.tags, p.params, c.tags, c.params])
    for secret in ("AKIA-tag-secret", "hunter2", "sk-param-secret", "tok-123", "pw-tag",
                   "sk-later", "cs-later"):
        assert secret not in stored


def test_experiments_open_on_training_runs_in_the_mlflow_3_ui(store, tmp_path):
    """MLflow 3's UI picks an experiment's first page from the ``mlflow.experimentKind`` tag:
    resbench's experiments are model training (new ones, and older ones on their next sweep),
    and a kind someone chose in the UI stays."""
    uri, artifacts = store
    client = mlflow.MlflowClient(uri)
    exp_id = Tracker(uri, "exp-kind", artifacts).setup()
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"
    bundle = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    assert any('CUSTOM_MODEL_DEVELOPMENT="custom_model_development"' in f.read_text(errors="ignore")
               for f in bundle.glob("*.js")), "the UI no longer knows this experiment kind"
    old = client.create_experiment("exp-kind-old")
    Tracker(uri, "exp-kind-old", artifacts).setup()
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    chosen = client.create_experiment("exp-kind-chosen", tags={"mlflow.experimentKind": "genai_development"})
    Tracker(uri, "exp-kind-chosen", artifacts).setup()
    assert client.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"


def test_stopped_trials_finish_and_failed_ones_fail(store):
    uri, artifacts = store
    tracker = Tracker(uri, "exp-stopped", artifacts)
    parent = tracker.start_sweep("sweep-x", "sweep-x", {}, {}, {})
    stopped, _ = tracker.trial_run(parent, "s", "resnet8", {}, {})
    tracker.end_trial(stopped, "stopped", {"val_acc": 40.0}, step=2)
    failed, _ = tracker.trial_run(parent, "f", "resnet8", {}, {})
    tracker.end_trial(failed, "failed", {}, error="boom")
    client = mlflow.MlflowClient(uri)
    s, f = client.get_run(stopped), client.get_run(failed)
    assert s.info.status == "FINISHED" and s.data.tags["resbench.status"] == "stopped"
    assert s.data.tags["resbench.epochs"] == "2" and "after 2 epoch" in s.data.tags["mlflow.note.content"]
    assert f.info.status == "FAILED" and f.data.tags["resbench.status"] == "failed"
    tracker.interrupt_children(parent)  # nothing RUNNING: the ended runs keep their status
    assert client.get_run(stopped).info.status == "FINISHED"


def test_resolved_params_and_dataset_inputs_are_logged_once(store):
    uri, artifacts = store
    tracker = Tracker(uri, "exp-inputs", artifacts)
    parent = tracker.start_sweep("sweep-i", "sweep-i", {}, {}, {})
    run, _ = tracker.trial_run(parent, "t", "resnet8", {"train.lr": 0.1}, {})
    tracker.log_missing_params(run, {"train.lr": 0.2, "train.precision": "fp32"})
    tracker.log_missing_params(run, {"train.precision": "bf16"})  # set once: kept
    for _ in range(2):
        tracker.log_dataset(run, "digits[300]", "abc123", "sklearn.datasets.load_digits",
                            {"sizes": "train=240,val=60,test=100", "shape": "3x8x8"})
    got = mlflow.MlflowClient(uri).get_run(run)
    assert got.data.params == {"train.lr": "0.1", "train.precision": "fp32"}
    [inp] = got.inputs.dataset_inputs
    assert (inp.dataset.name, inp.dataset.digest) == ("digits[300]", "abc123")
    assert "sklearn" in inp.dataset.source and "3x8x8" in inp.dataset.profile
    assert [(t.key, t.value) for t in inp.tags] == [("mlflow.data.context", "training")]


def test_a_pytorch_model_is_logged_with_a_signature_and_registered(store):
    import mlflow.pytorch
    import numpy as np
    import torch

    uri, artifacts = store
    tracker = Tracker(uri, "exp-model", artifacts)
    parent = tracker.start_sweep("sweep-m", "sweep-m", {}, {}, {})
    run, _ = tracker.trial_run(parent, "t", "tiny", {"arch.depth": 8}, {})
    tracker.end_trial(run, "completed", {"val_acc": 50.0}, step=1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    example = torch.rand(2, 3, 2, 2)
    assert tracker.logged_model(run, "model") is None
    model_uri, version = tracker.log_pytorch_model(run, net, example, register="tiny-best")
    assert version == "1" and tracker.logged_model(run, "model") == model_uri
    client = mlflow.MlflowClient(uri)
    assert client.get_run(run).info.status == "FINISHED"  # logging touched no status
    [mv] = client.search_model_versions("name = 'tiny-best'")
    assert mv.run_id == run and str(mv.version) == "1"
    mlflow.set_tracking_uri(uri)  # load_model reads the process-wide URI (the user's side)
    for ref in (model_uri, f"runs:/{run}/model", "models:/tiny-best/1"):
        loaded = mlflow.pytorch.load_model(ref)
        assert torch.equal(loaded(example), net(example))
    info = mlflow.models.get_model_info(model_uri)
    [inp] = info.signature.inputs.inputs
    assert inp.shape == (-1, 3, 2, 2) and inp.type == np.dtype("float32")


def test_reconcile_fills_a_gap_in_a_run_that_ended_right(store):
    """An epoch a tracking outage kept out of a run that then ended as it should: the end-of-
    sweep reconcile logs that epoch alone (once) and leaves the run ended, not re-opened."""
    from bench.record import TrialRecord
    from bench.sweep import _reconcile
    from bench.tune import TrackingTarget

    uri, artifacts = store
    tracker = Tracker(uri, "exp-gap", artifacts)
    parent = tracker.start_sweep("sweep-gap", "sweep-gap", {}, {}, {})
    run, _ = tracker.trial_run(parent, "t1", "resnet8", {}, {})
    history = [{"epoch": e, "val_acc": 10.0 * e, "train_loss": 1.0 / e} for e in (1, 2, 3)]
    for row in history[1:]:  # epoch 1 lost
        tracker.log_metrics(run, row, step=row["epoch"])
    tracker.end_trial(run, "completed", {"test_acc": 30.0}, step=3)
    target = TrackingTarget(uri, "exp-gap", artifacts, parent, "sweep-gap")
    found = [TrialRecord("t1", "search", {}, "resnet8", "completed", {"epoch": 3}, history=history)]
    for logged in ({"t1": {2, 3}}, {}, {"t1": {1, 2, 3}}):  # the callback's view, none, all
        _reconcile(tracker, target, None, found, logged)
    client = mlflow.MlflowClient(uri)
    assert sorted(m.step for m in client.get_metric_history(run, "val_acc")) == [1, 2, 3]
    ended = client.get_run(run)
    assert ended.info.status == "FINISHED" and ended.data.tags["resbench.status"] == "completed"
    tracker.end_sweep(parent, "completed", {})
