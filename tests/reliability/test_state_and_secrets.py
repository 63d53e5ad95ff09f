"""State files, untrusted data, faults and secrets, round two:

- the sweep state file (``sweep.json``) is written atomically (a process SIGKILLed while
  writing it never leaves a partial file), another sweep's corrupt state is skipped with a
  warning, a corrupt state of the sweep asked for is one clear error (exit 2);
- the CIFAR loader reads torchvision's pickled batches without running code from them;
- a trial that ends without its final report where no scheduler stops trials is FAILED with the
  cause (never ``stopped``);
- the parent's ``space.yaml`` deleted mid-sweep is logged again, with a warning;
- credentials inside URIs reach no artifact, state file, Ray file or log line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import mlflow
from launchers.sweep import find_latest, find_resumable, main, read_state, write_state

from .conftest import REPO, space_of, write_space

STATE = {"sweep_id": "tiny-20260101-000000-abcd", "name": "tiny", "space_hash": "0123456789ab",
         "tracking_uri": "sqlite:///x.db", "started": 1.0, "argv": ["--space", "x.yaml"],
         "parent_run_id": "0" * 32}

CORRUPT: dict[str, bytes] = {
    "empty": b"",
    "cut-short": json.dumps(STATE).encode()[:40],
    "binary": bytes(range(256)),
    "a-list": b"[1, 2, 3]",
    "no-keys": b'{"status": "completed"}',
    "whitespace": b"   \n",
}


def _sweep(storage: Path, name: str, state: dict[str, Any] | bytes) -> Path:
    folder = storage / name
    folder.mkdir(parents=True)
    raw = state if isinstance(state, bytes) else json.dumps(state).encode()
    (folder / "sweep.json").write_bytes(raw)
    return folder


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_another_sweeps_corrupt_state_is_skipped_with_a_warning(kind: str, tmp_path: Path,
                                                               capsys) -> None:
    good = _sweep(tmp_path, STATE["sweep_id"], STATE)
    _sweep(tmp_path, "other-20260101-000001-ffff", CORRUPT[kind])
    assert find_latest(str(tmp_path), "tiny") == str(good)
    assert find_resumable(str(tmp_path), "tiny", STATE["space_hash"]) == str(good)
    err = capsys.readouterr().err
    assert "warning: skipped" in err and "other-20260101-000001-ffff" in err and "corrupt" in err


@pytest.mark.parametrize("resume", ["SWEEP_DIR", "latest", "auto"])
@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupt_state_of_the_sweep_asked_for_is_a_clear_error(kind: str, resume: str,
                                                                tmp_path: Path, capsys) -> None:
    """Named explicitly, or the latest sweep of this space (its folder is named after it)."""
    folder = _sweep(tmp_path / "ray", "quickstart-20260101-000000-abcd", CORRUPT[kind])
    capsys.readouterr()
    how = ["--resume", str(folder)] if resume == "SWEEP_DIR" else \
        ["--resume"] if resume == "latest" else ["--resume", "auto"]
    rc = main(["--space", str(REPO / "search_spaces" / "quickstart.yaml"), "--tracking-uri",
               f"sqlite:///{tmp_path / 'store' / 'm.db'}", "--storage", str(tmp_path / "ray"),
               "--no-report", *how])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(folder / "sweep.json") in err and "corrupt" in err
    assert "Traceback" not in err and not (tmp_path / "store").exists()


WRITER = """
import sys
from launchers.sweep import write_state
state = {"sweep_id": "s", "name": "tiny", "space_hash": "h", "pad": "x" * 2_000_000, "n": 0}
print("ready", flush=True)
n = 0
while True:
    n += 1
    write_state(sys.argv[1], {**state, "n": n})
"""


def test_state_writes_are_atomic_under_sigkill(tmp_path: Path) -> None:
    """A writer of a 2 MB state is SIGKILLed at 10 random moments: the file on disk is always a
    whole state (the last one written or an earlier one), never empty or cut short."""
    import random

    folder = tmp_path / "sweep"
    seen = set()
    rng = random.Random(0)
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], cwd=REPO,
                                stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = read_state(str(folder))
        if state is not None:  # killed before its first rename: no file yet
            assert len(state["pad"]) == 2_000_000
            seen.add(state["n"])
    assert seen, "no state was ever written"
    leftovers = [p.name for p in folder.iterdir() if p.name != "sweep.json"]
    assert len(leftovers) <= 10  # temp files of killed writes, never the state itself


def test_state_file_round_trip_and_redaction(tmp_path: Path) -> None:
    secret = "s3cr3t-pw-1234"
    state = {**STATE, "tracking_uri": f"postgresql://bench:{secret}@db.example:5432/mlflow",
             "argv": ["--set", f"dataset.root=s3://AKIAKEY:{secret}@bucket/data"]}
    write_state(str(tmp_path), state)
    text = (tmp_path / "sweep.json").read_text()
    assert secret not in text and "AKIAKEY" not in text
    assert read_state(str(tmp_path))["tracking_uri"] == "postgresql://***@db.example:5432/mlflow"


# --- untrusted data ------------------------------------------------------------------------


class Payload:
    """Unpickling this creates a folder: the proof that a pickle ran code."""

    def __init__(self, marker: Path, call: Any = os.mkdir) -> None:
        self.marker = str(marker)
        self.call = call

    def __reduce__(self):
        return (self.call, (self.marker,))


def _cifar(folder: Path, poison: str, payload: Any) -> None:
    import numpy as np

    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry: dict[str, Any] = {"data": np.zeros((10, 3072), np.uint8), "labels": [0] * 10}
        if name == poison:
            entry["batch_label"] = payload
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta: dict[str, Any] = {"label_names": [f"c{i}" for i in range(10)]}
    if poison == "batches.meta":
        meta["label_names"] = payload
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))


CALLS = {"os.mkdir": os.mkdir, "builtins.exec": exec, "subprocess.call": subprocess.call,
         "pathlib.Path.mkdir": Path.mkdir}


@pytest.mark.parametrize("poison", ["data_batch_1", "data_batch_5", "test_batch", "batches.meta"])
@pytest.mark.parametrize("call", list(CALLS))
def test_cifar_batches_never_run_code(tmp_path: Path, poison: str, call: str) -> None:
    from bench.data import DataSpec, load_dataset
    from bench.errors import DataError

    marker = tmp_path / "pwned"
    arg: Any = marker
    if call == "builtins.exec":
        arg = f"import os; os.mkdir({str(marker)!r})"
    elif call == "subprocess.call":
        arg = ["mkdir", str(marker)]
    payload = Payload(marker, CALLS[call])
    payload.marker = arg  # type: ignore[assignment]
    _cifar(tmp_path / "cifar" / "cifar-10-batches-py", poison, payload)
    with pytest.raises(DataError) as info:
        load_dataset(DataSpec(name="cifar10", root=str(tmp_path / "cifar")), "cpu")
    assert not marker.exists(), "loading the dataset ran code from it"
    assert poison in str(info.value) and "refused" in str(info.value)


def test_a_clean_cifar_copy_still_loads(tmp_path: Path) -> None:
    from bench.data import DataSpec, load_dataset

    _cifar(tmp_path / "cifar" / "cifar-10-batches-py", "none", None)
    splits = load_dataset(DataSpec(name="cifar10", root=str(tmp_path / "cifar"),
                                   val_fraction=0.2), "cpu")
    assert splits.num_classes == 10


# --- faults ----------------------------------------------------------------------------------


def test_no_final_report_without_a_scheduler_is_a_failure() -> None:
    """Under FIFO nothing stops a trial: one that ended without its final report (its
    checkpoint could not be stored, say) failed; under ASHA it was stopped."""
    from bench.tune import status_of

    partial = {"epoch": 2.0, "val_acc": 0.5}
    assert status_of(partial, False, early_stopping=False) == "failed"
    assert status_of(partial, False, early_stopping=True) == "stopped"
    assert status_of({**partial, "resbench_status": "completed"}, False, False) == "completed"


def _sweep_run(tmp: Path, name: str, uri: str, extra: list[str], **sections: Any
               ) -> tuple[int, str, str]:
    space = write_space(tmp / f"{name}.yaml", space_of(name, **sections))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["--space", str(space), "--tracking-uri", uri, "--storage", str(tmp / "ray"),
                   "--progress-interval", "3600", "--no-report", *extra])
    return rc, out.getvalue(), err.getvalue()


def test_parent_artifacts_deleted_mid_sweep_are_logged_again(ray_session, tmp_path: Path) -> None:
    """The artifact folder is removed while the trial trains (a marker from the plugin's
    ``slow`` block): the end of the sweep finds ``space.yaml`` missing, logs it again and says
    so; the parent ends FINISHED with both space artifacts."""
    import shutil
    import threading

    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    artifacts = tmp_path / "db" / "artifacts"
    removed = threading.Event()

    def remove_when_there() -> None:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            found = list(artifacts.rglob("space.yaml")) if artifacts.is_dir() else []
            if found:
                time.sleep(0.5)
                shutil.rmtree(artifacts)
                removed.set()
                return
            time.sleep(0.05)

    threading.Thread(target=remove_when_there, daemon=True).start()
    rc, out, err = _sweep_run(tmp_path, "lost-artifacts", uri, [], plugins=["resbench_faults"],
                              train={"epochs": 2}, space={"block": {"grid": ["slow"]}})
    assert removed.is_set(), "the artifact folder was never removed"
    assert rc == 0, err[-2000:]
    assert "space.yaml was missing" in err and "logged it again" in err
    client = mlflow.MlflowClient(uri)
    parent = next(r for r in client.search_runs(
        [client.get_experiment_by_name("lost-artifacts").experiment_id])
        if r.data.tags.get("resbench.role") == "sweep")
    assert parent.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"space.yaml", "space.resolved.json", "trials.csv"} <= names


# --- secrets ---------------------------------------------------------------------------------


def _files_holding(root: Path, secret: bytes) -> list[str]:
    out = []
    for path in root.rglob("*"):
        if path.is_file() and secret in path.read_bytes():
            out.append(str(path.relative_to(root)))
    return out


def test_credentials_in_uris_reach_no_file_and_no_log(ray_session, tmp_path: Path) -> None:
    """A sweep whose space and command line carry credentials inside URIs (a tracking URI in
    the file and in --set values): no file under the storage folder (sweep.json, Ray's
    tuner.pkl and experiment state, trial results), no MLflow artifact or param and no line
    of the output holds them."""
    secret = "pw-7f3a9c"
    token = "tok-51d0e2"
    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    rc, out, err = _sweep_run(
        tmp_path, "secrets", uri,
        ["--set", f"description=see https://admin:{secret}@wiki.example/page and "
                  f"https://{token}@git.example/repo"],
        tracking={"uri": f"https://user:{secret}@mlflow.example"}, train={"epochs": 1})
    assert rc == 0, err[-2000:]
    for text in (out, err):
        assert secret not in text and token not in text
    assert not _files_holding(tmp_path / "ray", secret.encode())
    assert not _files_holding(tmp_path / "ray", token.encode())
    assert not _files_holding(tmp_path / "db", secret.encode())
    assert not _files_holding(tmp_path / "db", token.encode())
    state = next((tmp_path / "ray").glob("*/sweep.json"))
    assert "***@" in state.read_text()
    assert list((tmp_path / "ray").glob("*/search/tuner.pkl")), "Ray wrote no tuner.pkl"


def test_the_end_of_suite_check_sees_a_running_parent(tmp_path: Path) -> None:
    """The suite's last check (``no_parent_left_running``) reads the stores this way: a parent
    left RUNNING is found, and no longer once it is ended."""
    from bench.tracking import Tracker

    from .conftest import running_parents

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "left-running")
    parent = tracker.start_sweep("s-1", "s-1", {}, {}, {})
    assert running_parents(tmp_path) == [f"{tmp_path / 'mlflow.db'}: s-1"]
    tracker.end_sweep(parent, "failed", {})
    assert running_parents(tmp_path) == []


# --- the storage folder turns read-only mid-sweep ---------------------------------------------


def test_storage_turned_read_only_mid_sweep_fails_the_sweep(ray_session, tmp_path: Path) -> None:
    """The storage folder becomes a read-only file system (a read-only bind mount over it: as
    root, chmod would stop nothing) once the first checkpoint is stored: the trial cannot store its
    checkpoint and is FAILED with the cause, the sweep exits 1 with a clear message, the parent
    run ends FAILED (never left RUNNING), and the state file it had written is still whole."""
    import threading

    from .conftest import mount_read_only

    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    storage = tmp_path / "ray"
    storage.mkdir()
    mounted: dict[str, Any] = {}
    stop = threading.Event()

    def read_only_after_epoch_one() -> None:
        # The file system is watched, not the MLflow store (a second client opening the store
        # while the driver creates it would race its schema creation).
        end = time.monotonic() + 180
        while time.monotonic() < end and not stop.is_set():
            if list(storage.glob("*/search/*/checkpoint_0*")):
                mounted["unmount"] = mount_read_only(storage)
                return
            time.sleep(0.05)

    # A skip inside the thread would be lost: first check that this machine may mount at all.
    mount_read_only(tmp_path / "probe")()
    watcher = threading.Thread(target=read_only_after_epoch_one, daemon=True)
    watcher.start()
    try:
        rc, out, err = _sweep_run(tmp_path, "read-only", uri, [], plugins=["resbench_faults"],
                                  train={"epochs": 4}, space={"block": {"grid": ["slow"]}})
    finally:
        stop.set()
        watcher.join(timeout=10)
        if "unmount" in mounted:
            mounted["unmount"]()
    assert "unmount" in mounted, "the storage never went read-only"
    assert rc == 1, f"exit {rc}\n{out[-2000:]}\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    assert "trial(s) failed" in err or "the sweep failed" in err, err[-3000:]
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("read-only").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("resbench.role") == "sweep")
    kids = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.status == "FAILED", parent.info.status
    assert parent.data.tags["resbench.status"] == "failed"
    assert len(kids) == 1 and kids[0].info.status == "FAILED", [k.info.status for k in kids]
    assert kids[0].data.tags["resbench.status"] == "failed"
    assert "Read-only file system" in kids[0].data.tags.get("resbench.error", ""), \
        kids[0].data.tags.get("resbench.error")
    (state,) = storage.glob("*/sweep.json")
    assert json.loads(state.read_text())["parent_run_id"] == parent.info.run_id  # still whole
    assert not list(storage.rglob(".sweep.json.*")), "a half-written state file was left"


# --- an s3:// storage URI's key pair moves to the environment ----------------------------------


@pytest.fixture
def s3_with_auth(tmp_path: Path):
    """A moto S3 server on 127.0.0.1 that checks signatures: after the bucket, an IAM user
    with S3 rights and its key pair are made, every request must be signed with that pair.
    Yields (endpoint, key, secret, boto3 client factory)."""
    import socket

    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "moto.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"})

    def client(service: str, key: str = "anything", secret: str = "anything"):
        return boto3.client(service, endpoint_url=url, aws_access_key_id=key,
                            aws_secret_access_key=secret, region_name="us-east-1")

    try:
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "moto.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto did not start"
                time.sleep(0.2)
        client("s3").create_bucket(Bucket="sweeps")
        iam = client("iam")
        iam.create_user(UserName="sweeper")
        iam.put_user_policy(UserName="sweeper", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        pair = iam.create_access_key(UserName="sweeper")["AccessKey"]
        yield url, pair["AccessKeyId"], pair["SecretAccessKey"], client
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


@pytest.mark.slow  # a sweep in its own process (its own Ray: the workers must inherit the pair)
def test_s3_storage_key_pair_moves_to_the_environment(s3_with_auth, tmp_path: Path,
                                                     monkeypatch) -> None:
    """``--storage s3://KEY:SECRET@bucket/prefix`` against a real S3 API (moto, refusing
    unsigned or wrongly signed requests): the sweep succeeds, so the state file, Ray's files and
    the trial's checkpoints were written with the pair taken from the URI, and no object in the
    bucket, no file of the MLflow store and no line of the output holds the key or the
    secret."""
    from urllib.parse import quote

    from .conftest import launcher_cmd, run_subprocess

    url, key, secret, client = s3_with_auth
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError):  # the server does check the pair
        client("s3", key, "not-" + secret).list_objects_v2(Bucket="sweeps")
    space = write_space(tmp_path / "s3.yaml", space_of("s3-storage", train={"epochs": 1}))
    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    storage = f"s3://{quote(key, safe='')}:{quote(secret, safe='')}@sweeps/tune"
    env = {"AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "RAY_AUTH_MODE": "disabled"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)  # the pair comes only from the URI
    cmd = [c if c != str(tmp_path / "placeholder") else storage
           for c in launcher_cmd(space, uri, tmp_path / "placeholder", "--no-report")]
    rc, out, err = run_subprocess(cmd, timeout=240, env=env)
    assert rc == 0, f"exit {rc}\n{out[-2000:]}\n{err[-3000:]}"
    s3 = client("s3", key, secret)
    names = [o["Key"] for o in s3.list_objects_v2(Bucket="sweeps", Prefix="tune/")["Contents"]]
    assert any(n.endswith("/sweep.json") for n in names), names
    assert any(n.endswith("/search/tuner.pkl") for n in names), names
    assert any("checkpoint" in n for n in names), names
    for name in names:
        body = s3.get_object(Bucket="sweeps", Key=name)["Body"].read()
        assert secret.encode() not in body and key.encode() not in body, name
    assert not _files_holding(tmp_path / "db", secret.encode())
    for text in (out, err):
        assert secret not in text and quote(secret, safe="") not in text
    state = json.loads(next(s3.get_object(Bucket="sweeps", Key=n)["Body"].read()
                            for n in names if n.endswith("/sweep.json")))
    assert state.get("status") == "completed"
