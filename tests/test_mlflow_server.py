"""The shared tracking server for real: mlflow/server.sh with a Postgres backend, artifacts in an
S3-compatible store (moto) behind the server's artifact proxy, and MLflow basic-auth.

The client side only talks HTTP to the server: no S3 endpoint or credentials in its environment.
Postgres runs from Debian's binaries (initdb + postgres) as an unprivileged user; the test is
skipped when they are absent, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import glob
import importlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER_SH = ROOT / "mlflow" / "server.sh"
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_USER, PG_PASSWORD = "resbench", "pg-test-only"
ADMIN_PASSWORD = "admin-test-only-password"
S3_KEY, S3_SECRET, BUCKET = "testing-key", "testing-secret", "resbench-mlflow"


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required here)")
    pytest.skip(reason)


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"Python package {name} not installed (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} not up after {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a process started with start_new_session=True, and its whole process group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    try:  # leftovers in the group (workers) even when the leader is gone
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=15)


@dataclass
class Postgres:
    port: int

    def uri(self, db: str) -> str:
        # no password in the URI: libpq reads PGPASSWORD, as in the Deployment
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        _missing("PostgreSQL server binaries not installed (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    psycopg2 = _import("psycopg2")

    run_as: dict = {}
    if os.geteuid() == 0:  # postgres refuses to run as root
        account = pwd.getpwnam("postgres" if _has_user("postgres") else "nobody")
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    base = Path(tempfile.mkdtemp(prefix="resbench-pg-"))
    procs: list[subprocess.Popen] = []
    try:
        if run_as:
            os.chown(base, run_as["user"], run_as["group"])
        pwfile = base / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if run_as:
            os.chown(pwfile, run_as["user"], run_as["group"])
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(base), "LC_ALL": "C"}
        subprocess.run(
            [bindir / "initdb", "-D", base / "data", "-U", PG_USER, f"--pwfile={pwfile}",
             "--auth-host=scram-sha-256", "--auth-local=trust", "--locale=C", "-E", "UTF8",
             "--no-sync"],
            check=True, capture_output=True, env=env, cwd=base, **run_as,
        )  # fmt: skip
        port = _free_port()
        log = base / "postgres.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [bindir / "postgres", "-D", base / "data", "-p", str(port), "-h", "127.0.0.1",
                 "-k", base, "-c", "fsync=off", "-c", "full_page_writes=off"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=base,
                start_new_session=True, **run_as,
            )  # fmt: skip
        procs.append(proc)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"postgres exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                conn = psycopg2.connect(
                    host="127.0.0.1", port=port, user=PG_USER, password=PG_PASSWORD,
                    dbname="postgres", connect_timeout=2,
                )  # fmt: skip
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE mlflow")
            cur.execute("CREATE DATABASE mlflow_auth")
        conn.close()
        yield Postgres(port)
    finally:
        for proc in procs:
            _stop(proc, signal.SIGINT)  # SIGINT: postgres' fast shutdown
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server with the artifact bucket; yields its endpoint URL."""
    boto3 = _import("boto3")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/moto-api/", proc, log, timeout=30)
        _s3_client(boto3, url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        _stop(proc)


def _s3_client(boto3, url: str):
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )  # fmt: skip


@dataclass
class Server:
    url: str
    s3_url: str


@pytest.fixture(scope="module")
def server(
    postgres: Postgres, s3: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """mlflow/server.sh as documented, configured the way the Kubernetes Deployment is."""
    _import("flask_wtf")  # MLflow's basic-auth app needs mlflow[auth]
    port = _free_port()
    home = tmp_path_factory.mktemp("mlflow-server")
    passthrough = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in passthrough}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        HOME=str(home),
        TMPDIR=str(home),
        MLFLOW_BACKEND_STORE_URI=postgres.uri("mlflow"),
        MLFLOW_AUTH_DATABASE_URI=postgres.uri("mlflow_auth"),
        PGPASSWORD=PG_PASSWORD,
        MLFLOW_ARTIFACTS_DESTINATION=f"s3://{BUCKET}/artifacts",
        MLFLOW_S3_ENDPOINT_URL=s3,
        AWS_ACCESS_KEY_ID=S3_KEY,
        AWS_SECRET_ACCESS_KEY=S3_SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        MLFLOW_HOST="127.0.0.1",
        MLFLOW_PORT=str(port),
        MLFLOW_WORKERS="1",
        MLFLOW_AUTH="basic",
        MLFLOW_AUTH_ADMIN_USERNAME="admin",
        MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
        MLFLOW_FLASK_SERVER_SECRET_KEY="test-only-csrf-key",
    )
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", str(SERVER_SH)], env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/health", proc, log, timeout=90)
        yield Server(url, s3)
    finally:
        _stop(proc)


@pytest.fixture
def client_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A client environment without any S3 endpoint or credentials."""
    for var in list(os.environ):
        if var.startswith("AWS_") or var in ("MLFLOW_S3_ENDPOINT_URL", "MLFLOW_TRACKING_URI"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))


def _request(url: str, auth: tuple[str, str] | None = None, json_body: dict | None = None):
    import requests

    if json_body is None:
        return requests.get(url, auth=auth, timeout=10)
    return requests.post(url, auth=auth, json=json_body, timeout=10)


def _create_user(server: Server, user: str, password: str) -> None:
    """A basic-auth account, created by the admin the way docs/clusters.md describes."""
    created = _request(
        f"{server.url}/api/2.0/mlflow/users/create",
        ("admin", ADMIN_PASSWORD),
        {"username": user, "password": password},
    )
    assert created.status_code == 200, created.text


def test_server_requires_credentials(server: Server) -> None:
    search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _request(search).status_code == 401
    assert _request(search, ("admin", "wrong")).status_code == 401
    assert _request(search, ("admin", ADMIN_PASSWORD)).status_code == 200


def test_runs_metrics_and_artifacts_round_trip(
    server: Server, client_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import boto3
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    user, password = "trials", "trials-test-only-password"
    _create_user(server, user, password)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)

    client = MlflowClient(tracking_uri=server.url)
    exp_id = client.create_experiment("resbench-k8s-test")
    assert client.get_experiment(exp_id).artifact_location.startswith("mlflow-artifacts:")
    run = client.create_run(
        exp_id, run_name="resnet20-identity-w16", tags={"resbench.trial_id": "t0"}
    )
    run_id = run.info.run_id
    values = [41.5, 63.25, 70.0]
    now = int(time.time() * 1000)
    client.log_batch(
        run_id, metrics=[Metric("val_acc", v, now + i, step=i + 1) for i, v in enumerate(values)]
    )
    client.log_param(run_id, "arch.depth", "20")
    notes = tmp_path / "notes.txt"
    notes.write_text("resbench artifact via the proxy\n")
    client.log_artifact(run_id, str(notes), artifact_path="reports")
    client.set_terminated(run_id, "FINISHED")

    history = client.get_metric_history(run_id, "val_acc")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (1, 41.5), (2, 63.25), (3, 70.0),
    ]  # fmt: skip
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"arch.depth": "20"}
    assert got.data.tags["resbench.trial_id"] == "t0"

    # The REST API sees the same run (and still wants credentials).
    rest = _request(f"{server.url}/api/2.0/mlflow/runs/get?run_id={run_id}", (user, password))
    assert rest.status_code == 200
    assert {m["key"]: m["value"] for m in rest.json()["run"]["data"]["metrics"]} == {
        "val_acc": 70.0
    }
    assert _request(f"{server.url}/api/2.0/mlflow/runs/get?run_id={run_id}").status_code == 401

    # Artifacts come back through the server ...
    assert [f.path for f in client.list_artifacts(run_id, "reports")] == ["reports/notes.txt"]
    local = client.download_artifacts(run_id, "reports/notes.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == notes.read_text()
    # ... and live in the bucket, under the server's artifacts destination.
    s3 = _s3_client(boto3, server.s3_url)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    key = next(k for k in keys if k.endswith(f"{run_id}/artifacts/reports/notes.txt"))
    assert key.startswith("artifacts/")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == notes.read_bytes()


def test_a_sweep_lands_on_the_server(
    server: Server, client_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``launchers.sweep`` against the server with credentials from the environment only: the
    parent and its children, their metrics, and the report artifact (stored in the bucket)."""
    import boto3
    import yaml
    from mlflow.tracking import MlflowClient

    user, password = "sweeper", "sweeper-test-only-password"
    _create_user(server, user, password)
    space = tmp_path / "served.yaml"
    space.write_text(yaml.safe_dump({
        "name": "served",
        "dataset": {"name": "digits", "subset": 200, "test_subset": 50, "image_size": 8},
        "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "threads": 1},
        "arch": {"depth": 8, "width": 4},
        "resources": {"cpu": 1},
        "space": {"skip": {"grid": ["identity", "none"]}},
        "search": {"algorithm": "grid"},
    }))
    cmd = [sys.executable, "-m", "launchers.sweep", "--space", str(space), "--tracking-uri",
           server.url, "--storage", str(tmp_path / "ray"), "--report-dir",
           str(tmp_path / "reports"), "--progress-interval", "3600", "--register", "served-best"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_USERNAME": user,
           "MLFLOW_TRACKING_PASSWORD": "wrong"}
    env.pop("TMPDIR", None)  # Ray's socket paths must stay short
    refused = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert f"{server.url} refused the credentials" in refused.stderr
    env["MLFLOW_TRACKING_PASSWORD"] = password
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    client = MlflowClient(tracking_uri=server.url)
    exp = client.get_experiment_by_name("served")
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("resbench.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_total"] == 2
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")]
        assert sorted(steps) == [1, 2] and child.data.metrics["test_acc"] >= 0
    artifacts = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/served.html" in artifacts
    s3 = _s3_client(boto3, server.s3_url)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert any(k.endswith(f"{parent.info.run_id}/artifacts/report/served.html") for k in keys)
    assert any(k.endswith(f"{parent.info.run_id}/artifacts/space.yaml") for k in keys)

    # The MLflow 3 side through the server: the experiment opens on its runs, each child has
    # its dataset input and trial.yaml, the best trial's model is registered and loads.
    import mlflow.pytorch
    import torch

    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    for child in children:
        assert [d.dataset.name for d in child.inputs.dataset_inputs] == ["digits[200]"]
        assert "trial.yaml" in {f.path for f in client.list_artifacts(child.info.run_id)}
        assert child.data.params["arch.input_size"] == "8"
    [version] = client.search_model_versions("name = 'served-best'")
    by_run = {c.info.run_id: c.data.tags["resbench.trial_id"] for c in children}
    assert by_run[version.run_id] == parent.data.tags["resbench.best_trial"]
    # load_model resolves models:/ through the process-wide URIs, which an earlier test in this
    # process may have set (set_tracking_uri beats the environment): set both, then restore.
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    try:
        model = mlflow.pytorch.load_model(f"models:/served-best/{version.version}")
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 10)


def test_server_script_refuses_incomplete_settings(tmp_path: Path) -> None:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    cases = [
        ({}, "set MLFLOW_BACKEND_STORE_URI"),
        ({"MLFLOW_BACKEND_STORE_URI": "postgresql://u@h/db"}, "set MLFLOW_ARTIFACTS_DESTINATION"),
        (
            {
                "MLFLOW_BACKEND_STORE_URI": "postgresql://u@h/db",
                "MLFLOW_ARTIFACTS_DESTINATION": "s3://b",
            },
            "set MLFLOW_FLASK_SERVER_SECRET_KEY",
        ),
        (
            {
                "MLFLOW_BACKEND_STORE_URI": "postgresql://u@h/db",
                "MLFLOW_ARTIFACTS_DESTINATION": "s3://b",
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
            },
            "set MLFLOW_AUTH_DATABASE_URI",
        ),  # fmt: skip
        (
            {
                "MLFLOW_BACKEND_STORE_URI": "postgresql://u@h/db",
                "MLFLOW_ARTIFACTS_DESTINATION": "s3://b",
                "MLFLOW_AUTH": "ldap",
            },
            "MLFLOW_AUTH must be basic or none",
        ),  # fmt: skip
    ]
    for extra, message in cases:
        result = subprocess.run(
            ["bash", str(SERVER_SH)], env={**base, **extra}, capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr, (extra, result.stderr)


def test_a_database_store_probes_its_default_artifact_root(postgres: Postgres, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A Postgres store used directly puts a new experiment's artifacts under ./mlruns of the
    working folder: the preflight probes that folder, so one that cannot be made fails before
    anything is written, naming it; a usable one passes and nothing is created."""
    from bench.errors import ResbenchError
    from bench.tracking import check_store

    psycopg2 = _import("psycopg2")
    conn = psycopg2.connect(host="127.0.0.1", port=postgres.port, user=PG_USER,
                            password=PG_PASSWORD, dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE direct")
    conn.close()
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    blocked, fine = tmp_path / "blocked", tmp_path / "fine"
    blocked.mkdir()
    fine.mkdir()
    (blocked / "mlruns").write_text("a file where the artifact folder would go")
    monkeypatch.chdir(blocked)
    with pytest.raises(ResbenchError, match="default artifact root") as err:
        check_store(postgres.uri("direct"), experiment="new-experiment")
    assert str(blocked / "mlruns") in str(err.value)
    monkeypatch.chdir(fine)
    check_store(postgres.uri("direct"), experiment="new-experiment")
    assert list(fine.iterdir()) == []  # probed, not written
