"""Sweeps on an existing multi-node Ray cluster (``--address``), for real: a head and a worker
node started with ``ray start`` on this machine (1 CPU each, separate temp folders), the launcher
joining them as its own process. Covers the refusal of node-local storage on a multi-node
cluster, trials spreading over both nodes (tag ``resbench.node_id`` on each child run), and the
worker node killed (SIGKILL of its whole process group) in the middle of a trial: the sweep
completes on the head, the interrupted trial is retried from its checkpoint and recorded once.

Every process the test starts is stopped by process group and by its temp folder in the
finalizer; ``ray stop`` is never used (it would stop other people's Ray on the machine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from procs import descendants, kill_pids, processes_mentioning

import mlflow

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")
TINY: dict[str, Any] = {
    "name": "cluster",
    "dataset": {"name": "digits", "subset": 300, "test_subset": 100, "val_fraction": 0.2,
                "image_size": 8},
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.05, "device": "cpu", "eval_batch_size": 256,
              "threads": 1},
    "arch": {"depth": 8, "width": 4},
    "resources": {"cpu": 1},
    "space": {"skip": {"grid": ["identity", "none"]}, "train.lr": {"grid": [0.05, 0.1]}},
    "search": {"algorithm": "grid", "max_failures": 2},
}
# The head's GCS declares a dead node dead within ~2 s instead of ~30 s.
FAST_HEALTH_CHECK = {"RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "500",
                     "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "3"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_node(proc: subprocess.Popen) -> None:
    """A node failure: SIGKILL ``ray start --block``'s process group and everything below it."""
    below = descendants(proc.pid)
    _kill_group(proc)
    kill_pids(below)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of a process started with start_new_session=True."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class Cluster:
    """A running 2-node Ray cluster: its GCS address, temp folders and node ids."""

    address: str
    head: subprocess.Popen
    worker: subprocess.Popen
    head_tmp: str
    worker_tmp: str
    head_id: str
    worker_id: str
    env: dict[str, str]


def _ray_start(args: list[str], temp: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    ports = ["--dashboard-agent-listen-port", str(_free_port()), "--runtime-env-agent-port",
             str(_free_port()), "--metrics-export-port", str(_free_port())]
    with open(log, "w") as out:
        return subprocess.Popen(
            [RAY, "start", "--block", "--temp-dir", temp, "--num-cpus", "1", "--num-gpus", "0",
             "--disable-usage-stats", *ports, *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=temp)


def _node_ids(address: str, env: dict[str, str], count: int, procs: list[subprocess.Popen],
              timeout: float = 60) -> dict[str, str]:
    """{node id: 'head' | 'worker'} of the alive nodes, once ``count`` of them are alive."""
    code = ("import json, sys, ray; ray.init(address=sys.argv[1], log_to_driver=False, "
            "logging_level='ERROR'); print(json.dumps({n['NodeID']: sorted(n['Resources']) "
            "for n in ray.nodes() if n['Alive']}))")
    deadline = time.monotonic() + timeout
    nodes: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[:3]} exited: see {proc.args}")
        out = subprocess.run([sys.executable, "-c", code, address], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 0:
            nodes = json.loads(out.stdout.strip().splitlines()[-1])
            if len(nodes) == count:
                return {nid: "head" if "head" in res else "worker" for nid, res in nodes.items()}
        time.sleep(1)
    raise AssertionError(f"expected {count} alive nodes, got {nodes}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("ray-logs")
    head_tmp = tempfile.mkdtemp(prefix="rbh-")  # short: Ray's socket paths have a length limit
    worker_tmp = tempfile.mkdtemp(prefix="rbw-")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": str(REPO)}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _ray_start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                       "--include-dashboard", "false", "--resources", '{"head": 1}'],
                      head_tmp, {**env, **FAST_HEALTH_CHECK}, logs / "head.log")
    worker = None
    try:
        ids = _node_ids(address, env, 1, [head])
        worker = _ray_start(["--address", address, "--node-ip-address", "127.0.0.1",
                             "--resources", '{"worker": 1}'], worker_tmp, env, logs / "worker.log")
        ids = _node_ids(address, env, 2, [head, worker])
        by_role = {role: nid for nid, role in ids.items()}
        yield Cluster(address, head, worker, head_tmp, worker_tmp, by_role["head"],
                      by_role["worker"], env)
    finally:
        for proc in (worker, head):
            if proc is not None:
                _kill_node(proc)
        time.sleep(0.5)
        for temp in (worker_tmp, head_tmp):
            kill_pids(processes_mentioning(temp))  # raylets, agents, workers left behind
        shutil.rmtree(head_tmp, ignore_errors=True)
        shutil.rmtree(worker_tmp, ignore_errors=True)


class Sweep:
    """The launcher as its own process, joined to the cluster."""

    def __init__(self, cluster: Cluster, tmp_path: Path, name: str, **sections: Any) -> None:
        self.cluster = cluster
        self.name = name
        self.uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
        self.storage = tmp_path / "ray"
        self.space = tmp_path / f"{name}.yaml"
        self.space.write_text(yaml.safe_dump({**TINY, "name": name, **sections}, sort_keys=False))
        self.log = tmp_path / f"{name}.log"
        mlflow.MlflowClient(self.uri).search_experiments()  # the store exists before polling

    def start(self, *extra: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "launchers.sweep", "--space", str(self.space),
               "--address", self.cluster.address, "--storage", str(self.storage),
               "--tracking-uri", self.uri, "--no-report", "--progress-interval", "3600", *extra]
        with open(self.log, "w") as out:
            return subprocess.Popen(cmd, cwd=REPO, env=self.cluster.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def children(self) -> list:
        client = mlflow.MlflowClient(self.uri)
        exp = client.get_experiment_by_name(self.name)
        runs = client.search_runs([exp.experiment_id]) if exp else []
        return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _finish(proc: subprocess.Popen, sweep: Sweep, timeout: float = 150) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    return sweep.log.read_text()


def test_multi_node_cluster_refuses_node_local_storage(cluster, tmp_path):
    sweep = Sweep(cluster, tmp_path, "refused")
    proc = sweep.start()
    log = _finish(proc, sweep, timeout=60)
    assert proc.returncode == 2, log
    assert "the Ray cluster has 2 nodes" in log and "--shared-storage" in log
    assert "s3://" in log and "Traceback" not in log
    assert sweep.children() == []  # refused before any trial


def test_trials_spread_over_both_nodes(cluster, tmp_path):
    sweep = Sweep(cluster, tmp_path, "spread")
    proc = sweep.start("--shared-storage")
    log = _finish(proc, sweep)
    assert proc.returncode == 0, log
    children = sweep.children()
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    nodes = {r.data.tags["resbench.node_id"] for r in children}
    assert nodes == {cluster.head_id, cluster.worker_id}


# Kills real processes at a moment chosen by polling: on a loaded 2-core machine the
# moment can be missed, so a failed run is retried before it counts.
@pytest.mark.flaky(reruns=2, reruns_delay=2)
def test_worker_node_killed_mid_sweep_completes_on_the_head(cluster, tmp_path):
    epochs = 8
    sweep = Sweep(cluster, tmp_path, "nodekill",
                  dataset={**TINY["dataset"], "image_size": 16},  # a few seconds per trial
                  train={**TINY["train"], "epochs": epochs})
    client = mlflow.MlflowClient(sweep.uri)
    proc = sweep.start("--shared-storage")
    victim = None
    try:
        # Tune's per-trial result.json (written by the driver as results arrive) is the fastest
        # view of which trial runs where and how far it got.
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            for path in sweep.storage.glob("*/search/*/result.json"):
                rows = [json.loads(line) for line in path.read_text().splitlines()
                        if line.endswith("}")]
                last = rows[-1] if rows else {}
                # on the worker, with at least three epochs left: killed before it can finish
                if last.get("resbench_node_id") == cluster.worker_id and \
                        1 <= int(last.get("epoch", 0)) <= epochs - 3 and not last.get("done"):
                    victim = path.parent.name
                    break
            else:
                time.sleep(0.05)
        assert victim is not None, f"no trial seen mid-training on the worker:\n{sweep.log.read_text()}"
        _kill_node(cluster.worker)  # the raylet, its agents and the trial's worker process
        kill_pids(processes_mentioning(cluster.worker_tmp))
    finally:
        log = _finish(proc, sweep)
    assert proc.returncode == 0, log

    children = sweep.children()
    ids = [r.data.tags["resbench.trial_id"] for r in children]
    log = log[-4000:]  # in the messages below
    assert len(children) == 4 and len(set(ids)) == 4, (ids, log)  # the retried trial: once
    assert all(r.info.status == "FINISHED" for r in children)
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert steps == list(range(1, epochs + 1)), (run.data.tags["resbench.trial_id"], steps)
    retried = next(r for r in children if r.data.tags["resbench.trial_id"] == victim)
    assert retried.data.tags["resbench.node_id"] == cluster.head_id, log  # finished on the head

    # Retried from its checkpoint: the epochs Ray recorded for the trial never go back to 1.
    [result_file] = sweep.storage.glob(f"*/search/{victim}/result.json")
    rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
    epochs_seen = [int(r["epoch"]) for r in rows if r.get("epoch")]
    restarts = [r for r in rows if r.get("iterations_since_restore") == 1 and r.get("epoch", 0) > 1]
    assert restarts, (rows, log)  # a restore happened after the first epoch ...
    # ... that did not start over: at most the epoch in flight (or one whose checkpoint the
    # driver had not registered yet) is trained again
    assert epochs_seen.count(1) == 1 and set(epochs_seen) == set(range(1, epochs + 1)), epochs_seen
    assert len(epochs_seen) <= epochs + 1 and epochs_seen == sorted(epochs_seen), epochs_seen
