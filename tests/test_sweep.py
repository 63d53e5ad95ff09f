"""Sweeps end to end with real Ray Tune, Optuna and MLflow on CPU: the MLflow layout, Pareto
sets, ASHA, constraints, --dry-run, bad input, a driver killed with SIGKILL then --resume, and
--dry-run / --smoke of every shipped space. One Ray session serves the module (the launcher joins
it); tiny models on a few hundred 8x8 digits keep the whole file within a few minutes on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from procs import descendants, kill_pids, processes_mentioning

import mlflow
from launchers.sweep import configure_environment, main

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))


def dataset_name(path: Path) -> str:
    dataset = yaml.safe_load(path.read_text()).get("dataset")
    return str(dataset if isinstance(dataset, str) else (dataset or {}).get("name", ""))


def uses_cifar(path: Path) -> bool:
    """Whether a shipped space trains on CIFAR (its smoke run gets a tiny fake copy)."""
    return dataset_name(path).startswith("cifar")

SOURCE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".json", ".sh", ".cfg")

TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "digits", "subset": 300, "test_subset": 100, "val_fraction": 0.2,
                "image_size": 8},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.05, "device": "cpu", "eval_batch_size": 256},
    "arch": {"depth": 8, "width": 4},
    "search": {"algorithm": "grid"},
}


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (2 CPUs); the launcher joins it instead of starting one."""
    configure_environment(local=True)
    import ray

    temp = tempfile.mkdtemp(prefix="rbt-")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp,
             logging_level="WARNING")
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def space_file(tmp_path: Path, name: str = "tiny", **sections: Any) -> Path:
    data = {**TINY, "name": name, **sections}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module (each test its own experiment): created once, not per
    test."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


class Sweep:
    """Runs ``launchers.sweep.main`` in-process against a temporary store and storage."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture, uri: str) -> None:
        self.uri = uri
        self.storage = tmp_path / "ray"
        self.reports = tmp_path / "reports"
        self.capsys = capsys

    def __call__(self, space: Path, *extra: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        rc = main(["--space", str(space), "--tracking-uri", self.uri, "--storage",
                   str(self.storage), "--report-dir", str(self.reports), "--progress-interval",
                   "3600", *extra])
        out = self.capsys.readouterr()
        return rc, out.out, out.err

    def runs(self, experiment: str) -> tuple[Any, Any]:
        """(parent row, children frame) through mlflow.search_runs."""
        mlflow.set_tracking_uri(self.uri)
        df = mlflow.search_runs(experiment_names=[experiment])
        is_child = df["tags.mlflow.parentRunId"].notna() if "tags.mlflow.parentRunId" in df else False
        parents, children = df[~is_child], df[is_child]
        assert len(parents) == 1, f"expected one parent run, got {len(parents)}"
        parent = parents.iloc[0]
        assert (children["tags.mlflow.parentRunId"] == parent.run_id).all()
        return parent, children


@pytest.fixture
def sweep(tmp_path: Path, capsys: pytest.CaptureFixture, store: str) -> Sweep:
    return Sweep(tmp_path, capsys, store)


def repo_snapshot() -> set[str]:
    """Untracked and ignored non-source paths of the checkout (others edit sources meanwhile)."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "--", ".",
         ":(exclude).venv"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    keep = set()
    for line in out.splitlines():
        path = line[3:]
        if any(part in path for part in ("__pycache__", ".pytest_cache", ".ruff_cache", ".egg-info")):
            continue
        if path.endswith(SOURCE_SUFFIXES) and not path.startswith(("mlflow/", ".ray_results/")):
            continue
        keep.add(line)
    return keep


def history(uri: str, run_id: str, key: str) -> list[int]:
    return [m.step for m in mlflow.MlflowClient(uri).get_metric_history(run_id, key)]


# --- end to end ---------------------------------------------------------------------------------


def test_quickstart_sized_sweep_end_to_end(ray_session, sweep):
    home = [Path.home() / "ray_results", Path.home() / ".ray"]
    home_before = {p: p.exists() for p in home}
    before = repo_snapshot()
    rc, out, err = sweep(
        REPO / "search_spaces" / "quickstart.yaml", "--set", "dataset.subset=300",
        "--set", "dataset.image_size=8", "--set", "train.epochs=3", "--set", "arch.width=4",
        "--set", "search.repeats=1", "--set", "space.depth.grid=[8,20]",
        "--set", "train.test_every=1")
    assert rc == 0, err
    assert f"mlflow ui --backend-store-uri {sweep.uri}" in out
    assert "top " in out and "by val_acc (max)" in out

    parent, children = sweep.runs("quickstart")
    assert len(children) == 4 and children["tags.resbench.trial_id"].is_unique
    assert parent.status == "FINISHED" and parent["metrics.trials_total"] == 4
    for key in ("resbench.space_hash", "resbench.git_sha", "resbench.env.torch",
                "resbench.env.device", "resbench.sweep_id"):
        assert parent[f"tags.{key}"], key
    client = mlflow.MlflowClient(sweep.uri)
    assert {a.path for a in client.list_artifacts(parent.run_id)} >= {"space.yaml", "trials.csv",
                                                                       "report"}
    report = sweep.reports / "quickstart.html"
    assert f"report: {report}" in out and report.is_file()
    assert {a.path for a in client.list_artifacts(parent.run_id, "report")} == {
        "report/quickstart.html", "report/quickstart.md", "report/quickstart.csv"}

    assert set(children["status"]) <= {"FINISHED", "KILLED"}
    assert set(children["tags.resbench.status"]) <= {"completed", "stopped"}
    for _, child in children.iterrows():
        assert child["params.train.epochs"] == "3" and child["params.arch.stages.0.width"] == "4"
        assert child["params.sample.depth"] in ("8", "14", "20")
        assert child["tags.mlflow.runName"] == child["tags.resbench.label"]
        assert child["metrics.params"] > 0 and child["metrics.macs"] > 0
        steps = history(sweep.uri, child.run_id, "val_acc")
        assert steps == list(range(1, len(steps) + 1)) and steps  # one point per epoch
        if child["tags.resbench.status"] == "completed":
            assert steps == [1, 2, 3] and child["metrics.test_acc"] >= 0
            assert history(sweep.uri, child.run_id, "train_loss") == [1, 2, 3]
        # train.test_every=1: a test point per epoch, each logged once (the last as a final)
        assert history(sweep.uri, child.run_id, "test_acc") == steps
    assert (children["tags.resbench.status"] == "completed").any()

    assert repo_snapshot() == before, "the sweep wrote into the checkout"
    assert {p: p.exists() for p in home} == home_before, "Ray wrote into the home folder"
    ray_dirs = list(sweep.storage.iterdir())
    assert len(ray_dirs) == 1 and (ray_dirs[0] / "sweep.json").is_file()
    assert (ray_dirs[0] / "search" / "tuner.pkl").is_file()


def test_multi_objective_sweep_yields_a_pareto_set(ray_session, sweep, tmp_path):
    space = space_file(
        tmp_path, "pareto",
        space={"depth": {"choice": [8, 14, 20]}, "skip": {"choice": ["identity", "none"]}},
        constraints={"max_params": "12K"},  # depth 20 (~17K at width 4) is over budget
        search={"algorithm": "optuna_nsga2", "objectives": {"val_acc": "max", "params": "min"},
                "num_samples": 5, "population_size": 4, "seed": 1, "max_concurrent": 2},
    )
    rc, out, err = sweep(space)
    assert rc == 0, err
    assert "Pareto set (val_acc max, params min; fully trained trials only)" in out

    parent, children = sweep.runs("pareto")
    assert len(children) == 5
    rejected = children[children["tags.resbench.status"] == "rejected"]
    assert len(rejected) >= 1 and parent["metrics.rejected_trials"] == len(rejected)
    assert (rejected["status"] == "KILLED").all() and (rejected["params.arch.depth"] == "20").all()
    assert all(history(sweep.uri, r, "val_acc") == [] for r in rejected.run_id)  # never trained
    done = children[children["tags.resbench.status"] == "completed"]
    points = [(r["metrics.val_acc"], -r["metrics.params"], r["tags.resbench.trial_id"])
              for _, r in done.iterrows()]
    front = {t for a, p, t in points
             if not any(a2 >= a and p2 >= p and (a2, p2) != (a, p) for a2, p2, _ in points)}
    assert parent["metrics.pareto_size"] == len(front) >= 1
    for trial_id in front:
        assert trial_id in out  # every Pareto trial is in the printed table


def test_asha_stops_weak_trials(ray_session, sweep, tmp_path):
    space = space_file(
        tmp_path, "asha",
        train={**TINY["train"], "epochs": 4},
        space={"train.lr": {"loguniform": [1e-4, 0.5]}, "skip": {"choice": ["identity", "none"]}},
        search={"algorithm": "random", "num_samples": 8, "seed": 0, "max_concurrent": 2,
                "objectives": {"val_loss": "min"}},
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
    )
    rc, out, err = sweep(space)
    assert rc == 0, err
    _, children = sweep.runs("asha")
    assert len(children) == 8
    stopped = children[children["tags.resbench.status"] == "stopped"]
    # Stopped by ASHA is the search working: FINISHED, told apart from failures by its tags.
    assert len(stopped) >= 1 and (stopped["status"] == "FINISHED").all()
    assert (stopped["tags.resbench.epochs"].astype(int) < 4).all()
    assert stopped["tags.mlflow.note.content"].str.contains("Stopped early").all()
    for run_id in stopped.run_id:
        assert len(history(sweep.uri, run_id, "val_loss")) < 4  # stopped before the last epoch
    completed = children[children["tags.resbench.status"] == "completed"]
    assert len(completed) >= 1
    assert all(history(sweep.uri, r, "val_loss") == [1, 2, 3, 4] for r in completed.run_id)


def test_a_sweep_is_readable_and_reusable_from_mlflow(ray_session, sweep, tmp_path):
    """What the MLflow 3 UI shows and what a user takes from it: the experiment opens on its
    runs; each child holds the values that ran (not auto / 0 / the default 32 px), its dataset
    as a run input and a trial.yaml that launchers.train trains as it is; the best trial is a
    logged PyTorch model with a signature, registered with --register, and the sweep prints
    its config as a ready-to-train YAML."""
    import re

    import mlflow.pytorch
    import torch

    from launchers.train import main as train_main

    space = space_file(tmp_path, "reuse", space={"skip": {"grid": ["identity", "none"]}})
    rc, out, err = sweep(space, "--register", "reuse-best")
    assert rc == 0, err
    parent, children = sweep.runs("reuse")
    client = mlflow.MlflowClient(sweep.uri)
    exp = client.get_experiment_by_name("reuse")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert len(children) == 2 and set(children["status"]) == {"FINISHED"}
    digests = set()
    for _, child in children.iterrows():
        assert child["params.train.precision"] in ("fp32", "bf16")
        assert child["params.train.channels_last"] == "true"
        assert int(child["params.train.threads"]) >= 1 and child["params.train.device"] == "cpu"
        assert (child["params.arch.input_size"], child["params.arch.in_chans"],
                child["params.arch.num_classes"]) == ("8", "3", "10")  # fitted to the data
        [inp] = client.get_run(child.run_id).inputs.dataset_inputs
        assert inp.dataset.name == "digits[300]" and "load_digits" in inp.dataset.source
        assert "train=240,val=60,test=100" in inp.dataset.profile
        digests.add(inp.dataset.digest)
    assert len(digests) == 1  # the same data in every trial

    best = children[children["tags.resbench.trial_id"] == parent["tags.resbench.best_trial"]]
    [best_id] = best.run_id
    line = next(ln for ln in out.splitlines() if ln.startswith("best model:"))
    model_uri = re.search(r"models:/m-\w+", line).group(0)
    assert "registered as reuse-best version 1" in line
    [version] = client.search_model_versions("name = 'reuse-best'")
    assert version.run_id == best_id
    mlflow.set_tracking_uri(sweep.uri)
    model = mlflow.pytorch.load_model("models:/reuse-best/1")
    assert mlflow.models.get_model_info(model_uri).signature.inputs.inputs[0].shape == (-1, 3, 8, 8)
    from bench.data import DataSpec, load_dataset

    test = load_dataset(DataSpec(**TINY["dataset"])).test
    with torch.no_grad():
        acc = 100.0 * (model(test.images.float()).argmax(1) == test.labels).float().mean().item()
    assert abs(acc - best["metrics.test_acc"].item()) <= 1.0  # the trial's weights (1 image)

    yaml_path = Path(re.search(r"best config: (\S+)", out).group(1))
    trial_yaml = Path(client.download_artifacts(best_id, "trial.yaml", str(tmp_path)))
    assert yaml_path.read_text() == trial_yaml.read_text()
    rc = train_main(["--config", str(trial_yaml), "--quiet", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    again = yaml.safe_load((tmp_path / "r.json").read_text())
    assert again["metrics"]["val_acc"] == best["metrics.val_acc"].item()  # the same trial


def test_dry_run_counts_and_constraints_reject_before_training(ray_session, sweep, tmp_path):
    space = space_file(
        tmp_path, "budget",
        space={"depth": {"grid": [8, 14, 20]}, "skip": {"grid": ["identity", "none"]}},
        constraints={"max_params": "12K"},  # width 4: resnet8 ~5K, resnet14 ~11K, resnet20 ~17K
    )
    rc, out, err = sweep(space, "--dry-run")
    assert rc == 0, err
    assert "dry run: 6 trials (2 rejected by constraints, 4 to run), 0 references" in out
    assert out.count("rejected: params") == 2 and "resnet20-identity-w4" in out
    assert not sweep.storage.exists()
    mlflow.set_tracking_uri(sweep.uri)
    assert mlflow.get_experiment_by_name("budget") is None  # nothing tracked

    rc, out, err = sweep(space)
    assert rc == 0, err
    parent, children = sweep.runs("budget")
    assert len(children) == 6 and parent["metrics.rejected_trials"] == 2
    rejected = children[children["tags.resbench.status"] == "rejected"]
    assert len(rejected) == 2 and (rejected["status"] == "KILLED").all()
    assert rejected["tags.resbench.error"].str.contains("max_params 12K").all()
    for run_id in rejected.run_id:
        assert history(sweep.uri, run_id, "val_acc") == []  # never trained
    assert (children[children["tags.resbench.status"] != "rejected"]["status"] == "FINISHED").all()


def test_bad_input_exits_2_with_one_message_and_writes_nothing(tmp_path, capsys):
    sweep = Sweep(tmp_path, capsys, f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    space = space_file(tmp_path, "bad", serach={"algorithm": "grid"})
    rc, out, err = sweep(space)
    assert rc == 2
    assert err.count("\n") == 1 and "did you mean 'search'" in err and "bad.yaml" in err
    assert "Traceback" not in err
    rc, _, err = sweep(space_file(tmp_path, "bad2"), "--set", "train.lr=-1")
    assert rc == 2 and "train.lr" in err
    rc, _, err = sweep(tmp_path / "missing.yaml")
    assert rc == 2 and "not found" in err
    assert not sweep.storage.exists() and not (tmp_path / "mlflow").exists()


def test_lesion_results_report_and_resume_auto(ray_session, sweep, tmp_path):
    """A first ``--resume auto`` starts a sweep; the lesion study reaches MLflow as the metrics
    the report reads and as diagnostics.json; the report lands on disk and on the parent; after a
    completed sweep ``--resume auto`` starts a new one (``--no-report``: no report artifact)."""
    space = space_file(tmp_path, "lesion", train={**TINY["train"], "epochs": 1},
                       diagnostics={"lesion": True, "lesion_k": [2], "lesion_samples": 2,
                                    "grad_norms": True})
    rc, out, err = sweep(space, "--resume", "auto")
    assert rc == 0, err
    assert "--resume auto" not in out  # nothing to continue: a new sweep
    parent, children = sweep.runs("lesion")
    child = children.iloc[0]
    blocks = [c[len("metrics.lesion/single/"):] for c in children
              if c.startswith("metrics.lesion/single/")]
    assert sorted(blocks) == ["stage1.block1", "stage2.block1", "stage3.block1"], blocks
    assert 0 <= child["metrics.lesion/baseline"] <= 100
    assert child["metrics.lesion/random_k_std/2"] >= 0 and "metrics.lesion/random_k_mean/2" in child
    assert any(c.startswith("metrics.grad_norm/") for c in children)  # gradient flow per epoch
    assert child["tags.resbench.node_id"]
    client = mlflow.MlflowClient(sweep.uri)
    path = client.download_artifacts(child.run_id, "diagnostics.json", str(tmp_path))
    diagnostics = yaml.safe_load(Path(path).read_text())  # JSON is YAML
    assert diagnostics["lesion"]["baseline"] == pytest.approx(child["metrics.lesion/baseline"])
    assert set(diagnostics["grad_norms"]["groups"]) >= {"stem", "head"}
    html = (sweep.reports / "lesion.html").read_text()
    assert "Lesion study" in html
    assert "report/lesion.html" in {a.path for a in client.list_artifacts(parent.run_id, "report")}

    rc, out, err = sweep(space, "--resume", "auto", "--no-report")
    assert rc == 0, err
    assert len(list(sweep.storage.iterdir())) == 2  # the first one had completed
    mlflow.set_tracking_uri(sweep.uri)
    runs = mlflow.search_runs(experiment_names=["lesion"],
                              filter_string="tags.`resbench.role` = 'sweep'")
    second = runs[runs.run_id != parent.run_id].iloc[0]
    assert [a.path for a in client.list_artifacts(second.run_id, "report")] == []


def test_unreachable_tracking_server_exits_2_before_ray(sweep, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    sweep.uri = uri
    start = time.monotonic()
    rc, out, err = sweep(space_file(tmp_path, "unreachable"))
    assert rc == 2, err
    assert time.monotonic() - start < 15  # no MLflow retry loop
    assert err.count("\n") == 1 and f"cannot reach the MLflow tracking server {uri}" in err
    assert "Traceback" not in err and not sweep.storage.exists()


def test_unwritable_local_store_exits_2(sweep, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    sweep.uri = f"sqlite:///{blocker / 'mlflow.db'}"
    rc, out, err = sweep(space_file(tmp_path, "unwritable"))
    assert rc == 2, err
    assert f"{blocker} is not a writable folder" in err and "Traceback" not in err
    assert not sweep.storage.exists()


# --- interruption -------------------------------------------------------------------------------


def _start(space: Path, sweep: Sweep, ray_tmp: str, log: Path) -> subprocess.Popen:
    """The launcher as its own process, with its own local Ray under ``ray_tmp``; its output
    goes to ``log`` (a pipe nobody reads could fill up and stall it)."""
    env = {**os.environ, "TMPDIR": ray_tmp, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "launchers.sweep", "--space", str(space), "--tracking-uri",
           sweep.uri, "--storage", str(sweep.storage), "--progress-interval", "3600"]
    mlflow.MlflowClient(sweep.uri).search_experiments()  # the store exists before we poll it
    with open(log, "w") as out:
        # SIGINT back to its default in the child: a test run started in the background of a
        # non-interactive shell (nohup, `cmd &`) inherits SIGINT ignored, and Python then never
        # turns Ctrl-C into KeyboardInterrupt.
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _child_runs(client: Any, experiment: str) -> list:
    try:
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id]) if exp else []
    except Exception:  # noqa: BLE001 - the experiment may not exist yet
        return []
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _wait_for(proc: subprocess.Popen, condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not condition():
        time.sleep(0.25)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"


def test_ctrl_c_exits_130_and_shuts_ray_down(ray_session, sweep, tmp_path):
    # Long enough trials that the sweep is still running when the signal comes, on any machine
    # (3 epochs were over in 5 s on a fast one); the sweep is interrupted, so they cost nothing.
    space = space_file(tmp_path, "ctrlc", train={**TINY["train"], "epochs": 40},
                       dataset={**TINY["dataset"], "image_size": 16},
                       space={"depth": {"grid": [8, 14]}, "skip": {"grid": ["identity", "none"]}})
    ray_tmp = tempfile.mkdtemp(prefix="rbc-")
    log = tmp_path / "driver.log"
    proc = _start(space, sweep, ray_tmp, log)
    try:
        client = mlflow.MlflowClient(sweep.uri)
        _wait_for(proc, lambda: len(_child_runs(client, "ctrlc")) >= 1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        err = log.read_text()
        assert proc.returncode == 130, err
        assert "continue with --resume" in err and "Traceback" not in err
        time.sleep(1.0)
        assert not processes_mentioning(ray_tmp), "Ray processes outlived the driver"
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_pids(processes_mentioning(ray_tmp))
        shutil.rmtree(ray_tmp, ignore_errors=True)
    parent, children = sweep.runs("ctrlc")
    assert parent.status == "KILLED" and parent["tags.resbench.status"] == "interrupted"
    assert "RUNNING" not in set(children["status"])


# Kills real processes at a moment chosen by polling: on a loaded 2-core machine the
# moment can be missed, so a failed run is retried before it counts.
@pytest.mark.flaky(reruns=2, reruns_delay=2)
def test_sigkill_then_resume_tracks_each_trial_once(ray_session, sweep, tmp_path):
    name = f"resume-{tmp_path.name}"  # a rerun of this test must not count the last try's runs
    space = space_file(
        tmp_path, name,
        dataset={**TINY["dataset"], "image_size": 16},  # a few seconds per trial: time to kill
        train={**TINY["train"], "epochs": 3},
        space={"depth": {"grid": [8, 14]}, "skip": {"grid": ["identity", "none"]}},
        search={"algorithm": "grid", "max_concurrent": 1},
    )
    ray_tmp = tempfile.mkdtemp(prefix="rbk-")  # the killed driver's Ray lives here
    log = tmp_path / "driver.log"
    proc = _start(space, sweep, ray_tmp, log)
    finished = 0
    client = mlflow.MlflowClient(sweep.uri)

    def some_finished() -> bool:
        nonlocal finished
        finished = sum(r.info.status == "FINISHED" for r in _child_runs(client, name))
        return finished >= 1

    try:
        _wait_for(proc, some_finished)
        assert 1 <= finished < 4, log.read_text()
    finally:
        leftovers = descendants(proc.pid)
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait()
        kill_pids(leftovers)
        time.sleep(0.5)
        kill_pids(processes_mentioning(ray_tmp))  # anything Ray spawned meanwhile
        shutil.rmtree(ray_tmp, ignore_errors=True)

    rc, out, err = sweep(space, "--resume", "auto")  # what a retried cluster job runs
    assert rc == 0, err
    assert "--resume auto: continuing" in out
    parent, children = sweep.runs(name)
    assert len(children) == 4, children[["tags.resbench.trial_id", "status"]]
    assert children["tags.resbench.trial_id"].is_unique
    assert (children["status"] == "FINISHED").all() and parent.status == "FINISHED"
    for run_id in children.run_id:
        assert history(sweep.uri, run_id, "val_acc") == [1, 2, 3]  # no epoch logged twice
    assert len(list(sweep.storage.iterdir())) == 1  # resumed in place, no second sweep


# --- shipped spaces -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_space_dry_run_and_smoke(ray_session, sweep, tmp_path, make_cifar,
                                         make_imagefolder, path):
    experiment = f"smoke-{path.stem}"
    extra = ["--set", f"tracking.experiment={experiment}"]
    if dataset_name(path) == "imagefolder":  # a tiny 10-class tree; one skip style: CI speed
        make_imagefolder(tmp_path / "images", classes=[f"c{i}" for i in range(10)],
                         per_class=13, test_per_class=2, size=32)
        extra += ["--set", f"dataset.root={tmp_path / 'images'}", "--set", "dataset.subset=40",
                  "--set", "dataset.test_subset=20", "--set", "space.skip.grid=[identity]",
                  "--set", "space.depth.grid=[8]"]
    if path.stem == "study_width":  # WRN-28-8 alone is most of a minute on 2 cores: CI speed
        extra += ["--set", "space.widen.grid=[1,4]"]
    if path.stem == "timm_reference":  # two small measurements at a time: CI speed
        extra += ["--set", "resources.cpu=1", "--set", "search.max_concurrent=2"]
    if uses_cifar(path):
        make_cifar(tmp_path / "cifar", per_batch=10, n_test=20)  # 50 train, 20 test images
        # smaller still than --smoke's own 128 / 64 images, and two trials at a time: CI speed
        extra += ["--set", f"dataset.root={tmp_path / 'cifar'}", "--set", "dataset.subset=40",
                 "--set", "dataset.test_subset=20", "--set", "resources.cpu=1"]
    rc, out, err = sweep(path, "--dry-run", "--no-estimate", *extra)
    assert rc == 0, err
    assert "dry run: " in out
    rc, out, err = sweep(path, "--smoke", *extra)
    assert rc == 0, f"{err}\n{out[-3000:]}"
    parent, children = sweep.runs(experiment)
    assert parent["tags.resbench.smoke"] == "true" and len(children) >= 1
    # random CIFAR pixels can make a deep plain net diverge in its one step: still a result
    assert set(children["tags.resbench.status"]) <= {"completed", "rejected", "diverged"}
    trained = children[children["tags.resbench.status"] == "completed"]
    assert (trained["metrics.params"] > 0).all()
