"""One runner: a space file's listed trials (``trials:``), and a study run by the sweep
machinery (real Ray Tune, real MLflow) writing the same records as the sequential backend,
its verdict on the sweep's parent run and in the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import mlflow
from bench.errors import ConfigError
from bench.space import dataset_shape, decode, from_dict, search_configs
from launchers.study import main as study_main
from launchers.sweep import main as sweep_main

REPO = Path(__file__).resolve().parents[1]

LISTED = {
    "name": "listed",
    "dataset": {"name": "digits", "subset": 64, "test_subset": 32},
    "train": {"epochs": 1, "batch_size": 32},
    "proxies": {"enabled": False},
    "trials": [
        {"name": "r8", "arch": {"depth": 8, "width": 4}},
        {"name": "plain8", "arch": {"depth": 8, "width": 4, "skip": "none"},
         "train": {"epochs": 2}},
        {"name": "m14", "arch": {"depth": 14, "width": 4}, "measure_only": True},
    ],
}


def test_listed_trials_decode_each_over_the_files_sections() -> None:
    space = from_dict(LISTED)
    configs = search_configs(space)
    assert configs == [{"trial": 0}, {"trial": 1}, {"trial": 2}]
    specs = [decode(space, c) for c in configs]
    assert [s.name for s in specs] == ["r8", "plain8", "m14"]
    assert [s.train.epochs for s in specs] == [1, 2, 1]  # the trial's own, else the file's
    assert [s.train.batch_size for s in specs] == [32, 32, 32]
    assert specs[1].arch.label == "plain8-w4" and specs[2].arch.depth == 14
    classes, chans, side = dataset_shape(space.dataset)  # as for searched trials
    assert (specs[0].arch.num_classes, specs[0].arch.in_chans, specs[0].arch.input_size) == \
        (classes, chans, side)
    sixteen = from_dict({**LISTED, "trials": [{"name": "a", "arch": {"depth": 8},
                                               "dataset": {"image_size": 16}}]})
    assert decode(sixteen, {"trial": 0}).arch.input_size == 16  # the trial's own dataset


@pytest.mark.parametrize("change, path, words", [
    ({"trials": [{"name": "a", "arch": {"depth": 8}}, {"name": "a", "arch": {"depth": 14}}]},
     "trials[1].name", "duplicate trial name 'a'"),
    ({"space": {"depth": {"choice": [8, 14]}}}, "trials", "not both"),
    ({"trials": [{"name": "a", "arch": {"dpeth": 8}}]}, "trials[0].arch.dpeth", "depth"),
    ({"trials": [{"name": "a", "arch": {"depth": 8}, "train": {"epohcs": 2}}]},
     "trials[0].train.epohcs", "did you mean 'epochs'"),
    ({"search": {"algorithm": "random"}}, "search.algorithm", "listed trials run once"),
    ({"trials": [{"name": "bad name", "arch": {"depth": 8}}]}, "trials[0].name", "invalid name"),
])
def test_listed_trial_errors_name_the_key(change: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict({**LISTED, **change})
    assert info.value.path == path, str(info.value)
    assert words in str(info.value)


def test_listed_trials_dry_run_shows_their_names(tmp_path: Path, capsys) -> None:
    path = tmp_path / "listed.yaml"
    path.write_text(yaml.safe_dump(LISTED))
    assert sweep_main(["--space", str(path), "--dry-run", "--no-estimate"]) == 0
    out = capsys.readouterr().out
    assert "3 listed trials, each once" in out and "m14 (measure only)" in out
    assert "dry run: 3 trials" in out


def test_a_study_on_ray_writes_the_sequential_records_and_its_verdict(tmp_path: Path,
                                                                     monkeypatch) -> None:
    """The skips study's smoke form, two trials: on Ray (the default backend) the children are
    live in MLflow and the parent carries the verdict; the results JSON holds the same records
    (roles, specs, metric names, accuracies) as the in-process backend's."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "RESBENCH_CACHE": str(tmp_path / "cache")}
    common = ["skips", "--smoke", "--trials", "identity,none", "--quiet"]
    ran = subprocess.run(
        [sys.executable, "-m", "launchers.study", *common, "--out", str(tmp_path / "ray.json"),
         "--tracking-uri", uri, "--storage", str(tmp_path / "ray")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "skips: verdict" in ran.stdout and "browse the runs" in ran.stdout
    monkeypatch.setenv("RESBENCH_CACHE", env["RESBENCH_CACHE"])  # the same cache folder
    assert study_main([*common, "--backend", "sequential", "--out",
                       str(tmp_path / "seq.json")]) == 0
    on_ray = json.loads((tmp_path / "ray.json").read_text())
    in_process = json.loads((tmp_path / "seq.json").read_text())
    assert [t["role"] for t in on_ray["trials"]] == ["identity", "none"]
    for a, b in zip(on_ray["trials"], in_process["trials"], strict=True):
        assert set(a) == set(b) and a["status"] == b["status"] == "completed"
        assert a["spec"] == b["spec"] and a["label"] == b["label"]
        assert set(a["metrics"]) == set(b["metrics"]) and a["env"]["torch"]
        assert [set(h) for h in a["history"]] == [set(h) for h in b["history"]]
        assert a["metrics"]["test_acc"] == pytest.approx(b["metrics"]["test_acc"])
    assert [r["verdict"] for r in on_ray["verdict"]] == [r["verdict"] for r in in_process["verdict"]]

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("study-skips")
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("resbench.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2
    assert {c.data.params["trial"] for c in children} == {"identity", "none"}
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED" and parent.data.tags["resbench.study"] == "skips"
    assert parent.data.params["verdict.01"] and parent.data.tags["resbench.verdict"]
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"verdict.json", "verdict.md", "study.json", "space.yaml"} <= names
    assert on_ray["sweep"]["parent_run_id"] == parent.info.run_id

    from bench.report import write_report

    html = write_report(uri, ["study-skips"], tmp_path / "report.html").read_text()
    assert "without shortcuts the same net is the worst" in html  # the claims section


def test_ray_backend_refused_where_ray_is_missing(tmp_path: Path) -> None:
    """A host without Ray (the GPU host) is told to use the sequential backend."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "import importlib.util as u; real = u.find_spec\n"
            "u.find_spec = lambda n, *a: None if n == 'ray' else real(n, *a)\n"
            "from launchers.study import main\n"
            "sys.exit(main(['skips', '--smoke', '--backend', 'ray']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--backend sequential" in proc.stderr, proc.stderr


def test_an_interrupted_study_continues_where_it_stopped(tmp_path: Path) -> None:
    """Ctrl-C during a study on Ray: exit 130 with the parent run ended, not lost; the same
    command again continues the same run (resume is on by default), so the study ends with one
    parent run, one child per trial, every epoch logged once, and its verdict."""
    import signal
    import time

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plugins = os.pathsep.join(p for p in (str(REPO / "tests" / "plugins"),
                                          os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "RESBENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": plugins}
    epochs = 60
    cmd = [sys.executable, "-m", "launchers.study", "toy_depth_width", "--plugin", "toy_study",
           "--form", "cpu", "--set", f"train.epochs={epochs}", "--out", str(tmp_path),
           "--tracking-uri", uri, "--storage", str(tmp_path / "ray")]
    client = mlflow.MlflowClient(uri)
    client.search_experiments()  # the store exists before it is polled

    def epochs_logged() -> list[int]:
        exp = client.get_experiment_by_name("study-toy_depth_width")
        if exp is None:
            return []
        return [len(client.get_metric_history(r.info.run_id, "val_acc"))
                for r in client.search_runs([exp.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]

    log = tmp_path / "first.log"
    with open(log, "w") as out:  # SIGINT at its default in the child (see test_sweep's Ctrl-C)
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and not any(n >= 2 for n in epochs_logged()):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert proc.poll() is None, "the study ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = log.read_text()
    assert proc.returncode == 130, first[-3000:]
    assert "Traceback" not in first
    assert min(epochs_logged() or [0]) < epochs  # it was stopped before it could finish

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing" in again.stdout + again.stderr
    exp = client.get_experiment_by_name("study-toy_depth_width")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    kids = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(kids) == 2, [r.data.tags for r in runs]
    assert all(k.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for k in kids)
    assert all(k.info.status == "FINISHED" for k in kids) and parents[0].info.status == "FINISHED"
    for kid in kids:  # every epoch once: the resumed trial went on from its checkpoint
        steps = [m.step for m in client.get_metric_history(kid.info.run_id, "val_acc")]
        assert sorted(steps) == list(range(1, epochs + 1)), steps
    assert parents[0].data.tags["resbench.study"] == "toy_depth_width"
    doc = json.loads((tmp_path / "toy_depth_width.cpu.json").read_text())
    assert [t["status"] for t in doc["trials"]] == ["completed", "completed"]
