"""MLflow bookkeeping of sweeps (the only module that imports mlflow).

Layout: one parent run per sweep (tag ``resbench.sweep_id``) and one nested child run per trial
(tags ``mlflow.parentRunId`` and ``resbench.trial_id``). Every write goes through an explicit
``MlflowClient`` on the driver, never the fluent API, so there is no process-global active run and
SQLite sees one writer. Runs are looked up by those tags before one is created, so a resumed
sweep re-opens its runs instead of duplicating them, and per-epoch metrics already logged (by
``step``) are not logged twice.

Statuses: ``resbench.status`` is one of completed, diverged, failed, stopped (early stopping),
rejected (over the constraints budget, never trained) or interrupted; the MLflow status follows
``MLFLOW_STATUS``: a trial stopped early by the scheduler ended as the search meant it to, so it
is FINISHED (with ``resbench.status=stopped``, the epochs it reached in ``resbench.epochs`` and a
run description saying so), never KILLED like an interrupt nor FAILED like a crash. A failed or
diverged trial carries its message in ``resbench.error``.

Experiments are created as ``custom_model_development`` (the ``mlflow.experimentKind`` tag of
MLflow 3's UI), so they open on their training runs rather than the GenAI overview. Datasets go
in as run inputs (``log_dataset``), models as MLflow 3 logged models (``log_pytorch_model``),
optionally registered.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from bench.errors import ResbenchError
from bench.locations import (  # noqa: F401 - re-exported: the store's defaults
    default_artifact_location,
    default_tracking_uri,
    local_store,
    repo_root,
    ui_command,
)
from bench.redaction import REDACTED, SECRET_WORDS, is_secret_key, redact, redact_uri, redacted

MLFLOW_STATUS = {
    "completed": "FINISHED",
    "stopped": "FINISHED",
    "rejected": "KILLED",
    "interrupted": "KILLED",
    "diverged": "FAILED",
    "failed": "FAILED",
}
TAG_SWEEP = "resbench.sweep_id"
TAG_TRIAL = "resbench.trial_id"
TAG_STATUS = "resbench.status"
TAG_ERROR = "resbench.error"
TAG_PARENT = "mlflow.parentRunId"
TAG_EPOCHS = "resbench.epochs"
TAG_NOTE = "mlflow.note.content"  # the run's description in the UI
# MLflow 3's UI opens an experiment by this tag (mlflow/server/js: ExperimentKind); without it
# the UI guesses, and an experiment without traces opens on the GenAI overview.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
_MAX_TAG = 5000
_MAX_PARAM = 6000
PROBE_TIMEOUT_S = 5.0


def quiet_store_logs() -> None:
    """Silence MLflow's INFO lines about creating / migrating the database (mlflow sets its
    logger level on import, so this runs after it) and its per-download artifact progress bars
    (a report downloads a few small JSON files); a user's explicit setting wins."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def clip_error(error: str, limit: int = _MAX_TAG) -> str:
    """An error text within a tag's size: the first line (the cause) and as much of the end
    (where a traceback names the failing call) as fits."""
    if len(error) <= limit:
        return error
    first, _, _rest = error.partition("\n")
    first = first[: limit // 2]
    marker = "\n[...]\n"
    return first + marker + error[-(limit - len(first) - len(marker)):]


def _probe_http(uri: str, timeout: float) -> None:
    """One short GET of the server (no retries): ResbenchError when nothing answers, or when it
    refuses the credentials of MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD."""
    shown = redact_uri(uri)
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    request = urllib.request.Request(url)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        pair = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ResbenchError(
                f"the MLflow tracking server {shown} refused the credentials (HTTP {exc.code}); "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None
        return  # it answered: reachable (the client reports other errors itself)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ResbenchError(
            f"cannot reach the MLflow tracking server {shown} ({reason}); start it, or pass "
            "another --tracking-uri") from None


def unwritable(path: Path) -> str:
    """Why ``path`` (a folder, created later if missing) cannot be written, or '' when it can;
    checked without writing: the nearest existing folder at or above it must be a writable
    directory (``os.access`` also sees a read-only file system)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{str(probe)!r} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{str(probe)!r} is not writable"
    return ""


def _probe_folder(folder: Path, what: str, role: str = "store") -> None:
    """ResbenchError unless ``folder`` can be created and written (nothing is written)."""
    why = unwritable(folder)
    if why:
        raise ResbenchError(
            f"cannot write the MLflow {role} of {what}: {folder} is not a writable folder "
            f"({why}); pass another --tracking-uri") from None


SQLITE_MAGIC = b"SQLite format 3\0"
DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def _probe_sqlite(uri: str, db: Path) -> None:
    """An existing database file must be a readable SQLite database (not another file, not
    corrupt) and writable; a missing one is created in a writable folder later."""
    if not db.exists():
        _probe_folder(db.parent, uri)
        return
    if not db.is_file():
        raise ResbenchError(f"cannot use the MLflow store {uri}: {db} is not a file")
    with open(db, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head and head != SQLITE_MAGIC:
        raise ResbenchError(f"cannot use the MLflow store {uri}: {db} is not an SQLite "
                            "database; pass another --tracking-uri (or move the file away)")
    if head:
        import sqlite3

        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=PROBE_TIMEOUT_S)
            try:
                con.execute("select count(*) from sqlite_master").fetchone()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise ResbenchError(f"cannot use the MLflow store {uri}: {db} is a corrupt SQLite "
                                f"database ({exc}); pass another --tracking-uri") from None
    if not os.access(db, os.W_OK):
        raise ResbenchError(f"cannot write the MLflow store {uri}: {db} is read-only")
    _probe_folder(db.parent, uri)


def _probe_database(uri: str, timeout: float) -> None:
    """A database URI (postgresql, mysql, mssql): its Python driver installed, its server
    reachable within ``timeout`` seconds, and a connection accepted."""
    import socket
    import threading

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    shown = redact_uri(uri)
    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except Exception as exc:  # noqa: BLE001 - an unparsable URI or an unknown driver
        raise ResbenchError(f"cannot use the tracking URI {shown}: {exc}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        name = getattr(exc, "name", None) or str(exc)
        raise ResbenchError(
            f"the tracking URI {shown} needs the Python database driver {name!r} "
            f"({url.drivername}), which is not installed; install it (pip install {name}) or "
            "pass another --tracking-uri") from None
    host = url.host or "localhost"
    port = url.port or DB_PORTS.get(url.get_backend_name())
    if port:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            raise ResbenchError(
                f"cannot reach the database server {host}:{port} of the tracking URI {shown} "
                f"({exc.strerror or exc}); start it, or pass another --tracking-uri") from None
    failure: list[str] = []

    def connect() -> None:
        try:
            create_engine(uri, poolclass=NullPool).connect().close()
        except Exception as exc:  # noqa: BLE001 - reported below
            failure.append(redact_uri(str(exc).strip().splitlines()[0] if str(exc).strip()
                                      else type(exc).__name__))

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        failure.append(f"no answer within {timeout:g} s")
    if failure:
        raise ResbenchError(f"cannot open the tracking database {shown}: {failure[0]}; check "
                            "it, or pass another --tracking-uri")


def tracking_schemes() -> list[str]:
    """The URI schemes MLflow has a tracking store for (built in and plugins)."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    return sorted(k for k in _tracking_store_registry._registry if k)


def artifact_schemes() -> list[str]:
    """The URI schemes MLflow has an artifact repository for (built in and plugins)."""
    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry,
    )

    return sorted(k for k in _artifact_repository_registry._registry if k)


def stored_artifact_location(uri: str, experiment: str) -> str | None:
    """The artifact location an existing ``experiment`` of a local SQLite store already has
    (it wins over the one a new experiment would get), read without writing; None when the
    experiment or the store does not exist yet (servers and other databases: None)."""
    import sqlite3

    db = local_store(uri)
    if db is None or not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            row = con.execute("select artifact_location from experiments where name = ?",
                              (experiment,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:  # no schema yet: MLflow creates it, and the experiment, later
        return None
    return row[0] if row else None


def _probe_artifacts(location: str, what: str) -> None:
    """ResbenchError unless MLflow can write artifacts to ``location``: a scheme it has a
    repository for, and a local folder that can be created and written (nothing is written)."""
    from urllib.parse import unquote, urlparse

    scheme = urlparse(location).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path (or a drive letter)
        path = unquote(urlparse(location).path) if scheme == "file" else location
        _probe_folder(Path(path), what, role="artifact folder")
    elif scheme not in artifact_schemes():
        raise ResbenchError(
            f"unknown artifact location scheme {scheme!r} in {redact_uri(location)} (the "
            f"artifacts of {what}); valid: {', '.join(artifact_schemes())} (or a local folder)")


def check_store(uri: str, timeout: float = PROBE_TIMEOUT_S,
                artifact_location: str | None = None, experiment: str | None = None) -> None:
    """Fail fast, before anything is written, on a tracking store that cannot be used: a
    scheme MLflow has no store for; an http(s) server that does not answer within ``timeout``
    seconds (or refuses the credentials); a database whose driver is missing, whose server is
    unreachable or refuses the connection; a SQLite file that is not a database, is corrupt or
    read-only; a local store or artifact folder that cannot be written, or an artifact
    location of a scheme MLflow has no repository for. The artifact location probed is the
    one used: ``experiment``'s when it exists already, else ``artifact_location``, else for a
    database used directly MLflow's default root (``./mlruns``). Nothing is written."""
    from urllib.parse import urlparse

    shown = redact_uri(uri)
    scheme = urlparse(uri).scheme if "://" in uri or uri.startswith("file:") else ""
    backend = scheme.split("+")[0]
    if scheme and backend not in tracking_schemes():
        raise ResbenchError(
            f"unknown tracking URI scheme {scheme!r} in {shown}; valid: "
            f"{', '.join(tracking_schemes())} (or a local folder)")
    if backend in ("http", "https"):
        _probe_http(uri, timeout)
    elif backend in DB_PORTS:
        _probe_database(uri, timeout)
    elif (db := local_store(uri)) is not None:
        _probe_sqlite(uri, db)
    elif backend == "file" or not scheme:
        path = uri[len("file://"):] if uri.startswith("file://") else uri.removeprefix("file:")
        _probe_folder(Path(path), shown)
    stored = stored_artifact_location(uri, experiment) if experiment else None
    if stored:
        _probe_artifacts(stored, f"experiment {experiment!r} in {shown}")
    elif artifact_location:
        _probe_artifacts(artifact_location, shown)
    elif backend in DB_PORTS:
        # A database used directly (no server): a new experiment's artifacts go under MLflow's
        # default root, a folder relative to this process's working folder.
        from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH as root

        _probe_artifacts(str(Path(root).resolve()),
                         f"new experiments in {shown} (MLflow's default artifact root, in the "
                         "working folder: run from a writable folder, or use an MLflow server)")


def _finite(value: Any) -> float | None:
    try:  # numbers, bools, numpy / torch scalars
        return float(value)
    except (TypeError, ValueError):
        return None


def _param_value(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Tracker:
    """Parent and child runs of one sweep in one experiment."""

    def __init__(self, uri: str, experiment: str, artifact_location: str | None = None) -> None:
        self.uri = uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    @property
    def client(self) -> MlflowClient:
        """The client. Opening a new SQLite store creates its schema, and two processes doing
        that at once corrupt it (alembic's migrations race): a lock file next to the database
        (``mlflow.db-init.lock``) serialises the opening."""
        if self._client is None:
            db = local_store(self.uri)
            if db is None:
                self._client = MlflowClient(tracking_uri=self.uri)
            else:
                db.parent.mkdir(parents=True, exist_ok=True)
                with open(f"{db}-init.lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    try:
                        self._client = MlflowClient(tracking_uri=self.uri)
                    finally:
                        fcntl.flock(lock, fcntl.LOCK_UN)
        return self._client

    # --- experiment and parent ------------------------------------------------------------

    def setup(self) -> str:
        """Create the store (SQLite: its folder and schema) and the experiment; return its id."""
        if self._experiment_id is not None:
            return self._experiment_id
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                self._experiment_id = self.client.create_experiment(
                    self.experiment, artifact_location=self.artifact_location,
                    tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND})
            except MlflowException:  # created meanwhile by another driver
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
                self._experiment_id = exp.experiment_id
        else:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            self._experiment_id = exp.experiment_id
            if TAG_EXPERIMENT_KIND not in exp.tags:  # older experiments; a user's choice stays
                self.client.set_experiment_tag(exp.experiment_id, TAG_EXPERIMENT_KIND,
                                               EXPERIMENT_KIND)
        return self._experiment_id

    def _find(self, filter_string: str) -> list:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.setup()], filter_string=filter_string, run_view_type=ViewType.ALL,
                max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def start_sweep(self, sweep_id: str, run_name: str, tags: Mapping[str, str],
                    params: Mapping[str, Any], texts: Mapping[str, str]) -> str:
        """The parent run of ``sweep_id`` (re-opened when it exists); artifacts from ``texts``
        (artifact file name -> content)."""
        found = self._find(f"tags.`{TAG_SWEEP}` = '{sweep_id}' and tags.`resbench.role` = 'sweep'")
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            self.log_tags(run_id, {**tags, TAG_STATUS: "running"})
            return run_id
        run = self.client.create_run(
            self.setup(), run_name=run_name, tags=redact(
                {**tags, TAG_SWEEP: sweep_id, "resbench.role": "sweep", TAG_STATUS: "running"}))
        run_id = run.info.run_id
        self.log_params(run_id, params)
        for name, text in texts.items():
            self.client.log_text(run_id, text, name)
        return run_id

    def restore_texts(self, run_id: str, texts: Mapping[str, str]) -> list[str]:
        """Log again each of ``texts`` (artifact name -> content) missing from the run's
        artifacts (its folder was deleted meanwhile); the names logged again."""
        present = {a.path for a in self.client.list_artifacts(run_id)}
        missing = [name for name in texts if name not in present]
        for name in missing:
            self.client.log_text(run_id, texts[name], name)
        return missing

    def end_sweep(self, run_id: str, status: str, metrics: Mapping[str, Any],
                  tags: Mapping[str, str] | None = None) -> None:
        self.log_metrics(run_id, metrics)
        self.log_tags(run_id, {**(tags or {}), TAG_STATUS: status})
        self.client.set_terminated(run_id, status=MLFLOW_STATUS.get(status, "FINISHED"))

    # --- children -------------------------------------------------------------------------

    def find_trial(self, parent_id: str, trial_id: str):
        found = self._find(f"tags.`{TAG_PARENT}` = '{parent_id}' and tags.`{TAG_TRIAL}` = '{trial_id}'")
        return found[0] if found else None

    def trial_run(self, parent_id: str, trial_id: str, run_name: str, params: Mapping[str, Any],
                  tags: Mapping[str, str]) -> tuple[str, set[int]]:
        """(run id, the per-epoch steps it has logged) of a trial's child run, creating it
        once. The steps, not only the last one: an epoch lost to an outage leaves a gap that
        a repair must see."""
        run = self.find_trial(parent_id, trial_id)
        if run is not None:
            run_id = run.info.run_id
            if run.info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            self.log_tags(run_id, {TAG_STATUS: "running"})
            return run_id, self.logged_steps(run_id)
        run = self.client.create_run(
            self.setup(), run_name=run_name,
            tags=redact({**tags, TAG_PARENT: parent_id, TAG_TRIAL: trial_id, TAG_STATUS: "running"}))
        self.log_params(run.info.run_id, params)
        return run.info.run_id, set()

    def logged_steps(self, run_id: str, key: str = "epoch") -> set[int]:
        """The steps at which ``key`` was logged (an epoch's metrics go in one batch, so its
        ``epoch`` stands for all of them)."""
        return {int(m.step) for m in self.client.get_metric_history(run_id, key)}

    def end_trial(self, run_id: str, status: str, metrics: Mapping[str, Any] | None = None,
                  step: int = 0, error: str = "", tags: Mapping[str, str] | None = None) -> None:
        self.log_metrics(run_id, metrics or {}, step=step)
        extra = {**(tags or {}), TAG_STATUS: status}
        if step:
            extra[TAG_EPOCHS] = str(step)
        if status == "stopped":
            extra[TAG_NOTE] = (f"Stopped early by the scheduler after {step} epoch(s): the "
                               "search ended it as planned (not a failure).")
        if error:
            extra[TAG_ERROR] = clip_error(error)
        self.log_tags(run_id, extra)
        self.client.set_terminated(run_id, status=MLFLOW_STATUS[status])

    def ended_trials(self, parent_id: str) -> dict[str, str | None]:
        """trial id -> the resbench status of each child run of ``parent_id`` (None while its
        run is still RUNNING): what a reconcile or an import compares with."""
        return {trial: status for trial, (status, _) in self.trial_runs(parent_id).items()}

    def trial_runs(self, parent_id: str) -> dict[str, tuple[str | None, str]]:
        """trial id -> (status as in ``ended_trials``, run id) of each child of ``parent_id``."""
        return {r.data.tags.get(TAG_TRIAL, ""): (None if r.info.status == "RUNNING"
                                                 else r.data.tags.get(TAG_STATUS), r.info.run_id)
                for r in self.children(parent_id)}

    def children(self, parent_id: str) -> list:
        return self._find(f"tags.`{TAG_PARENT}` = '{parent_id}'")

    def interrupt_children(self, parent_id: str) -> int:
        """End the children still RUNNING as ``interrupted`` (KILLED); a resume re-opens them."""
        running = [r for r in self.children(parent_id) if r.info.status == "RUNNING"]
        for run in running:
            self.end_trial(run.info.run_id, "interrupted")
        return len(running)

    # --- batched writes ---------------------------------------------------------------------

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int = 0,
                    timestamp_ms: int | None = None) -> None:
        ts = timestamp_ms or int(time.time() * 1000)
        rows = []
        for key, value in metrics.items():
            v = _finite(value)
            if v is not None and not (math.isnan(v) and key == "epoch"):
                rows.append(Metric(key, v, ts, step))
        for chunk in _chunks(rows, 1000):
            self.client.log_batch(run_id, metrics=chunk)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        rows = [Param(str(k)[:250], _param_value(v)) for k, v in redact(params).items()]
        for chunk in _chunks(rows, 100):
            self.client.log_batch(run_id, params=chunk)

    def log_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        rows = [RunTag(k, str(v)[:_MAX_TAG]) for k, v in redact(tags).items()]
        for chunk in _chunks(rows, 100):
            self.client.log_batch(run_id, tags=chunk)

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_missing_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log the params the run does not hold yet (MLflow params cannot change once set)."""
        held = self.client.get_run(run_id).data.params
        self.log_params(run_id, {k: v for k, v in params.items() if str(k)[:250] not in held})

    def log_dataset(self, run_id: str, name: str, digest: str, source: str,
                    profile: Mapping[str, Any], context: str = "training") -> None:
        """The data a run trained on, as an MLflow run input (the UI's Datasets column); the
        same (name, digest) logged again is not duplicated."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        run = self.client.get_run(run_id)
        held = {(d.dataset.name, d.dataset.digest) for d in (run.inputs.dataset_inputs or [])}
        if (name, digest) in held:
            return
        dataset = Dataset(name=name, digest=digest, source_type="local",
                          source=json.dumps({"uri": redact_uri(source)}),
                          profile=json.dumps(dict(profile), sort_keys=True))
        tag = InputTag(key="mlflow.data.context", value=context)
        self.client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset, tags=[tag])])

    def logged_model(self, run_id: str, name: str) -> str | None:
        """The ``models:/<id>`` URI of the run's logged model called ``name``, or None."""
        run = self.client.get_run(run_id)
        for output in (run.outputs.model_outputs if run.outputs else None) or []:
            if self.client.get_logged_model(output.model_id).name == name:
                return f"models:/{output.model_id}"
        return None

    def log_pytorch_model(self, run_id: str, model: Any, example: Any, name: str = "model",
                          register: str | None = None, metadata: Mapping[str, Any] | None = None,
                          pip_requirements: list[str] | None = None) -> tuple[str, str | None]:
        """``model`` (a torch module) as an MLflow 3 logged model of the run, with the
        signature of ``example`` (an input batch) and the model's output; registered as a new
        version of ``register`` when given. Through this client only (no process-wide active
        run or tracking URI). Returns (``models:/<id>`` URI, registered version or None)."""
        import tempfile

        import mlflow.pytorch
        import torch
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model, infer_signature

        run = self.client.get_run(run_id)
        with torch.no_grad():
            output = model(example)
        signature = infer_signature(example.numpy(), output.numpy())
        logged = self.client.create_logged_model(
            run.info.experiment_id, name=name, source_run_id=run_id,
            params={k: v for k, v in run.data.params.items()},
            tags={"mlflow.loggedModel.flavor": "pytorch"})
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        meta = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                     run_id=run_id, model_id=logged.model_id, metadata=dict(metadata or {}))
        with tempfile.TemporaryDirectory(prefix="resbench-model-") as tmp:
            path = Path(tmp) / "model"
            # Explicit requirements: inferring them loads the model in a subprocess (slow).
            # Pickled (the module's classes by reference: loading needs resbench importable);
            # MLflow's default, torch.export, is slow and not every network exports.
            # The pickle format is chosen knowingly (above): MLflow's warning about it, printed
            # at every save, is silenced for this call only.
            log = logging.getLogger("mlflow.pytorch")
            level = log.level
            log.setLevel(logging.ERROR)
            try:
                mlflow.pytorch.save_model(
                    model, str(path), mlflow_model=meta, signature=signature,
                    serialization_format="pickle",
                    pip_requirements=pip_requirements or [
                        f"torch=={torch.__version__.split('+')[0]}"])
            finally:
                log.setLevel(level)
            self.client.log_model_artifacts(logged.model_id, str(path))
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        uri = f"models:/{logged.model_id}"
        if not register:
            return uri, None
        try:
            self.client.create_registered_model(register)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        # The artifact location, not models:/<id>: the registry store resolves that URI with
        # the process-wide tracking URI, not this client's.
        version = self.client.create_model_version(
            register, source=logged.artifact_location, run_id=run_id, model_id=logged.model_id)
        self.client.set_logged_model_tags(logged.model_id, {"mlflow.modelVersions": json.dumps(
            [{"name": version.name, "version": version.version}])})
        return uri, str(version.version)


__all__ = [
    "MLFLOW_STATUS",
    "REDACTED",
    "SECRET_WORDS",
    "check_store",
    "is_secret_key",
    "redact",
    "redact_uri",
    "redacted",
    "quiet_store_logs",
    "Tracker",
    "default_artifact_location",
    "default_tracking_uri",
    "local_store",
    "repo_root",
    "ui_command",
]
