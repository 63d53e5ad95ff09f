"""``python -m launchers.sweep``: run a search-space file as a Ray Tune sweep tracked in MLflow.

    python -m launchers.sweep --space search_spaces/quickstart.yaml
    python -m launchers.sweep --space FILE --dry-run          # trials, params and MACs; no training
    python -m launchers.sweep --space FILE --smoke            # every trial tiny: 1 epoch, small subset,
                                                              # into the experiment <name>-smoke
    python -m launchers.sweep --space FILE --resume           # continue the latest interrupted sweep
    python -m launchers.sweep --space FILE --resume auto      # continue it if there is one, else start
    python -m launchers.sweep --space FILE --address auto --storage s3://bucket/tune  # on a cluster
    python -m launchers.sweep --space FILE --set train.epochs=3 --set search.num_samples=4
    python -m launchers.sweep --space FILE --register NAME    # best model(s) into the registry
    python -m launchers.sweep --space FILE --set 'space["train.lr"].choice=[0.05,0.1]' --unset space.skip
    python -m launchers.sweep --schema > search-space.schema.json

Exit codes: 0 success, 1 the sweep failed (a trial crashed or Ray failed), 2 bad input (one
message, nothing written), 130 interrupted (Ctrl-C; continue with --resume).

Where things go: Ray's experiment state and checkpoints under ``--storage`` (default
``<repo>/.ray_results/<sweep id>/``; ``s3://`` works), Ray's session files in a temporary folder,
MLflow runs in ``--tracking-uri`` / ``MLFLOW_TRACKING_URI`` / the file's ``tracking.uri`` (default
``sqlite:///<repo>/mlflow/mlflow.db``, artifacts in ``<repo>/mlflow/artifacts/``).

One preflight runs before anything is written (no parent run, no storage folder), exit 2 on
the first problem: the storage scheme and folder, the tracking store (its scheme, an http(s)
server answering within 5 s, a database driver installed and its server reachable, a SQLite
file that is a database, writable store and artifact folders), the dataset, a ``--address``
answering within 15 s, and the per-trial CPUs and GPUs against the largest node. On a running cluster (``--address``)
trials spread over the nodes by their resources; with more than one node, ``--storage`` must be
``s3://...`` (or gs://...) or a shared filesystem (``--shared-storage``). At the end the sweep's
HTML report is written to ``<repo>/reports/<experiment>.html`` (``--report-dir``,
``--no-report``) and attached to the parent run under ``report/``.

MLflow layout: a parent run per sweep and a nested child per trial (see ``bench.tracking``).
Architectures over the ``constraints`` budget are never trained; each is recorded as a KILLED
child with ``resbench.status=rejected`` and the reason in ``resbench.error``, and counted in the
parent metric ``rejected_trials`` (grid / random reject them before Ray starts; under Optuna the
trial reports the worst objective values at once so the sampler learns).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import plugins
from bench.config import to_dict
from bench.errors import ConfigError, ResbenchError

STATE_FILE = "sweep.json"


# --- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launchers.sweep",
        description="Run a search-space YAML as a Ray Tune sweep tracked in MLflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 ok, 1 sweep failed, 2 bad input, 130 interrupted",
    )
    p.add_argument("--space", metavar="FILE", help="search-space YAML (see search_spaces/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the file, e.g. train.epochs=3 (repeatable); a name "
                        "with dots is quoted: 'space[\"train.lr\"].choice=[0.1,0.2]'")
    p.add_argument("--unset", action="append", default=[], metavar="KEY",
                   help="remove a key of the file before the --set overrides, e.g. "
                        "space.skip or 'space[\"train.warmup_epochs\"]' (repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the trials (or the space) with params and MACs; train nothing")
    p.add_argument("--estimate", action=argparse.BooleanOptionalAction, default=True,
                   help="--dry-run: estimate each trial's time from a short, cached "
                        "calibration of its architecture (default on)")
    p.add_argument("--smoke", action="store_true",
                   help="shrink every trial (1 epoch, small subset) to check a space quickly; "
                        "its runs go to the experiment <experiment>-smoke (tagged "
                        "resbench.smoke=true) unless --experiment or --set "
                        "tracking.experiment=... names one")
    p.add_argument("--experiment", metavar="NAME",
                   help="MLflow experiment of the sweep (default: the file's tracking.experiment, "
                        "else its name; with --smoke, that name + '-smoke')")
    p.add_argument("--resume", nargs="?", const="latest", metavar="SWEEP_DIR|auto",
                   help="continue an interrupted sweep: the latest one of this space, SWEEP_DIR, "
                        "or 'auto' (continue the latest unfinished sweep of this space under "
                        "--storage if there is one, else start a new sweep)")
    p.add_argument("--address", metavar="ADDR",
                   help="join a running Ray cluster: auto, HOST:PORT or ray://host:10001 "
                        "(default: start a local one)")
    p.add_argument("--storage", metavar="PATH",
                   help="Ray results and checkpoints: a folder or s3://bucket/prefix "
                        "(default <repo>/.ray_results); a multi-node cluster needs s3://... or "
                        "a shared filesystem (--shared-storage)")
    p.add_argument("--shared-storage", action="store_true",
                   help="the local --storage path is a filesystem every Ray node shares "
                        "(NFS, a ReadWriteMany volume): allow it on a multi-node cluster")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, the file's "
                        "tracking.uri, else sqlite:///<repo>/mlflow/mlflow.db)")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write the sweep's HTML report at the end and attach it to the parent "
                        "run (default on)")
    p.add_argument("--report-dir", metavar="DIR",
                   help="folder of the report (default <repo>/reports); the file is "
                        "<experiment>.html")
    p.add_argument("--top", type=int, default=10, help="rows of the final table (default 10)")
    p.add_argument("--register", metavar="NAME",
                   help="also register the best trial(s)' models in the MLflow model registry "
                        "as versions of NAME (they are logged as models either way)")
    p.add_argument("--progress-interval", type=float, default=15.0, metavar="S",
                   help="seconds between progress tables (default 15)")
    p.add_argument("--schema", action="store_true",
                   help="print the JSON Schema of the search-space format and exit")
    p.add_argument("--debug", action="store_true",
                   help="tracebacks on errors, worker logs on the console, keep Ray's temp files")
    plugins.add_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ResbenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; continue with --resume", file=sys.stderr)
        return 130


# --- environment -------------------------------------------------------------------------------


def configure_environment(local: bool) -> None:
    """Settings Ray / Tune read from the environment; set before they are imported."""
    defaults = {
        # Explicit JSON/CSV loggers instead of the auto ones (TensorBoard imports torch in the
        # driver for nothing).
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        # Ctrl-C raises KeyboardInterrupt here (exit 130); the experiment state saved every few
        # seconds is what --resume continues from.
        "TUNE_DISABLE_SIGINT_HANDLER": "1",
        "TUNE_GLOBAL_CHECKPOINT_S": "5",
        # Each per-epoch checkpoint forces an experiment snapshot (that is what makes --resume
        # lose at most an epoch); Tune warns about it on every one of them.
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if local:
        defaults["RAY_AUTH_MODE"] = "disabled"  # no token written under the home folder
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def quiet_libraries(optuna: bool) -> None:
    """INFO chatter off (MLflow's schema migrations, Optuna's study creation); after their
    import, since both set their own levels when imported."""
    from bench.tracking import quiet_store_logs

    quiet_store_logs()
    if optuna:
        import optuna as ot

        ot.logging.set_verbosity(ot.logging.WARNING)


# --- storage (local folders or s3:// via pyarrow) ------------------------------------------------


def _fs(uri: str) -> tuple[Any, str]:
    import pyarrow.fs

    if "://" in uri:
        return pyarrow.fs.FileSystem.from_uri(uri)
    return pyarrow.fs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def write_state(sweep_dir: str, state: dict[str, Any]) -> None:
    """The sweep's state file, whole or not at all: a local one through a temp file and a
    rename (a kill mid-write leaves the previous one), an object store's put is atomic."""
    from bench.jsonio import write_atomic
    from bench.redaction import redacted

    text = json.dumps(redacted(state), indent=2, default=str)
    fs, path = _fs(sweep_dir)
    if not is_uri(sweep_dir):
        write_atomic(_join(path, STATE_FILE), text)
        return
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(_join(path, STATE_FILE)) as f:
        f.write(text.encode())


def read_state(sweep_dir: str) -> dict[str, Any] | None:
    """The state of the sweep in ``sweep_dir``; None when it has none. A file that is not a
    state (empty, cut short, not JSON) raises ConfigError naming it."""
    import pyarrow.fs

    fs, path = _fs(sweep_dir)
    target = _join(path, STATE_FILE)
    if fs.get_file_info(target).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(target) as f:
        raw = f.read()
    try:
        state = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        why = "it is empty" if not raw.strip() else f"not JSON ({exc})"
        raise ConfigError(f"the sweep state {_join(sweep_dir, STATE_FILE)} is corrupt: {why}; "
                          "it cannot be resumed (start a new sweep, or restore the file)") from None
    if not isinstance(state, dict) or not {"sweep_id", "name", "space_hash"} <= set(state):
        raise ConfigError(f"the sweep state {_join(sweep_dir, STATE_FILE)} is corrupt: not a "
                          "sweep's state (sweep_id, name, space_hash missing)")
    return state


def find_latest(storage: str, name: str) -> str | None:
    """The most recently started sweep of space ``name`` under ``storage``; other sweeps'
    corrupt state files are skipped with a warning (one of them cannot block every space)."""
    import pyarrow.fs

    fs, path = _fs(storage)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return None
    best: tuple[float, str] | None = None
    for info in fs.get_file_info(pyarrow.fs.FileSelector(path)):
        if info.type != pyarrow.fs.FileType.Directory:
            continue
        sweep_dir = _join(storage.rstrip("/"), info.base_name)
        try:
            state = read_state(sweep_dir)
        except ConfigError as exc:
            if re.fullmatch(rf"{re.escape(name)}-\d{{8}}-\d{{6}}-[0-9a-f]{{4}}", info.base_name):
                raise  # named as a sweep of this space: resuming another would be wrong
            print(f"warning: skipped {sweep_dir}: {exc}", file=sys.stderr)
            continue
        if state and state.get("name") == name:
            started = float(state.get("started", 0))
            if best is None or started > best[0]:
                best = (started, sweep_dir)
    return best[1] if best else None


def find_resumable(storage: str, name: str, digest: str) -> str | None:
    """For ``--resume auto``: the latest sweep of space ``name`` under ``storage`` that has the
    same space hash, did not complete and has something to continue (a Tune experiment Ray can
    restore, or at least its state file); None: start a new sweep."""
    from bench.tune import can_restore

    sweep_dir = find_latest(storage, name)
    state = read_state(sweep_dir) if sweep_dir else None
    if not state or state.get("space_hash") != digest or state.get("status") == "completed":
        return None
    jobs = [_join(sweep_dir, job) for job in ("search", "references")]
    return sweep_dir if any(can_restore(j) for j in jobs) or state.get("parent_run_id") else None


def is_uri(path: str) -> bool:
    """True for ``scheme://...`` storage (s3, gs, ...), False for a local path."""
    return "://" in path and not path.startswith("file://")


def check_cluster(storage: str, shared: bool) -> None:
    """Refuse a multi-node cluster with node-local storage: Tune syncs nothing between nodes,
    so trials on other nodes could neither save nor restore their checkpoints."""
    from bench import tune as rt

    nodes = rt.alive_nodes()
    if nodes > 1 and not is_uri(storage) and not shared:
        raise ConfigError(
            f"the Ray cluster has {nodes} nodes but --storage {storage!r} is a local path; Tune "
            "needs storage every node can reach: --storage s3://bucket/prefix (or gs://...), or "
            "a shared filesystem mounted at the same path on every node (then add "
            "--shared-storage)", "--storage", )


def check_resources(cpu: float, gpu: float) -> None:
    """Refuse a per-trial request that no node can meet (Tune would wait for it forever)."""
    from bench import tune as rt

    cpus, gpus = rt.max_node_resources()
    if cpu > cpus:
        raise ConfigError(
            f"each trial asks for {cpu:g} CPUs but the largest node of the Ray cluster has "
            f"{cpus:g}; valid: a value up to {cpus:g}", "resources.cpu")
    if gpu > 0 and gpus > 0 and gpu > gpus:
        raise ConfigError(
            f"each trial asks for {gpu:g} GPUs but the largest node of the Ray cluster has "
            f"{gpus:g}; valid: a value up to {gpus:g} (fractions share a GPU)", "resources.gpu")


STORAGE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


def check_storage(sweep_dir: str) -> None:
    """``--storage`` must be usable, checked without writing: a scheme pyarrow has a file
    system for, and a local folder that can be created and written (the nearest existing
    folder above it must be a writable directory)."""
    from bench.redaction import redact_uri
    from bench.tracking import unwritable

    if is_uri(sweep_dir):
        scheme = sweep_dir.split("://", 1)[0].lower()
        if scheme not in STORAGE_SCHEMES:
            raise ConfigError(
                f"unknown storage scheme {scheme!r} in {redact_uri(sweep_dir)!r}; valid: a "
                f"local folder or {', '.join(f'{s}://' for s in STORAGE_SCHEMES)}", "--storage")
        try:
            _fs(sweep_dir)
        except Exception as exc:  # noqa: BLE001 - pyarrow's message says what is wrong
            raise ConfigError(f"cannot use {redact_uri(sweep_dir)!r}: "
                              f"{redact_uri(str(exc).splitlines()[0])}", "--storage") from None
        return
    why = unwritable(Path(sweep_dir))
    if why:
        raise ConfigError(f"cannot create {sweep_dir!r}: {why}", "--storage")


ADDRESS_TIMEOUT_S = 15.0
# The HTTP/2 client connection preface followed by an empty SETTINGS frame (RFC 9113, 3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_address(address: str, timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """A ``--address`` HOST:PORT (or ray://HOST:PORT) must accept a connection within
    ``timeout`` seconds; Ray itself would retry for minutes. ``auto`` is left to Ray."""
    import socket

    target = address.removeprefix("ray://")
    if address == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    if not port.isdigit() or not host:
        raise ConfigError(f"expected auto, HOST:PORT or ray://HOST:PORT, got {address!r}",
                          "--address")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            # Ray's GCS and Ray Client both speak gRPC: an HTTP/2 server answers the client
            # preface with a SETTINGS frame at once. A port that accepts and stays silent (or
            # speaks something else) would leave Ray retrying for minutes.
            sock.sendall(H2_PREFACE)
            head = sock.recv(9)
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} within {timeout:g} s "
            f"({exc.strerror or exc}); check the address and that the head node is up",
            "--address") from None
    if len(head) < 4 or head[3] != 0x4:  # frame type 4: SETTINGS
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: something answers there, but not a "
            "Ray head node (no gRPC handshake); check the port (GCS: 6379, Ray Client: 10001)",
            "--address")


def check_data(space: Any) -> None:
    """Load the space's dataset once in the driver (local runs only: on a cluster the data may
    live on the workers). A missing or corrupt copy is then bad input (exit 2) before anything
    is written, and the decoded-dataset cache it fills serves every trial."""
    import logging

    from bench.data import load_dataset
    from bench.data import log as data_log
    from bench.errors import DataError

    handler = logging.StreamHandler(sys.stderr)  # decoding progress of a first load
    handler.setFormatter(logging.Formatter("%(message)s"))
    data_log.addHandler(handler)
    level = data_log.level
    data_log.setLevel(logging.INFO)
    try:
        load_dataset(space.dataset, "cpu")
    except DataError as exc:  # keys as the space file spells them (dataset.root, not data.root)
        text = re.sub(r"\bdata\.(?=[a-z_])", "dataset.", str(exc))
        raise DataError(f"dataset {space.dataset.name!r}: {text}") from None
    except ConfigError as exc:
        path = re.sub(r"^data\.", "dataset.", exc.path)
        raise ConfigError(re.sub(r"\bdata\.(?=[a-z_])", "dataset.", exc.detail), path,
                          exc.source) from None
    finally:
        data_log.removeHandler(handler)
        data_log.setLevel(level)


# --- planning -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Planned:
    """One trial known before the sweep: its config, spec, cost and budget verdict."""

    index: int
    config: dict[str, Any]
    spec: Any
    params: int
    macs: int
    rejected: str = ""


def plan(space: Any, prescreen: dict[str, Any] | None = None
         ) -> tuple[list[Planned] | None, list[Planned]]:
    """(search trials, or None under Optuna; reference trials), with costs and verdicts; with a
    ``prescreen`` screening (``Screening.as_dict``), grid / random run only its kept configs."""
    from bench.space import decode, reference_configs, search_configs
    from bench.spec.costs import arch_counts  # exact, from the spec (cached per architecture)

    def planned(i: int, config: dict[str, Any], check: bool) -> Planned:
        spec = decode(space, config)
        params, macs = arch_counts(spec.arch)
        reason = space.constraints.violation(params, macs) if check else ""
        return Planned(i, config, spec, params, macs, reason)

    search = None
    if not space.search.is_optuna:
        configs = search_configs(space) if prescreen is None else \
            [{"sample": r["sample"]} for r in prescreen["rows"] if r["kept"]]
        search = [planned(i, c, True) for i, c in enumerate(configs)]
    refs = [planned(i, c, False) for i, c in enumerate(reference_configs(space))]
    return search, refs


def describe(space: Any, source: str, digest: str) -> list[str]:
    from bench.space import human

    s, sch, r = space.search, space.scheduler, space.resources
    objectives = ", ".join(f"{k} {v}" for k, v in s.objectives.items())
    count = "every combination" if s.algorithm == "grid" else f"{s.samples} samples"
    sched = (f"{sch.type} (grace {sch.grace_period}, reduction {sch.reduction_factor:g}"
             f"{', tie-break ' + sch.tie_break if sch.type == 'mo_asha' else ''})"
             if sch.type != "none" else "none")
    t, d = space.train, space.dataset
    budget = ", ".join(f"{k} {human(v)}" for k, v in
                       (("max params", space.constraints.max_params),
                        ("max MACs", space.constraints.max_macs)) if v) or "none"
    lines = [
        f"sweep {space.name} ({source}, space hash {digest})",
        f"  search: {s.algorithm}, {count}, objectives {objectives}, seed {s.seed}, "
        f"max concurrent {s.max_concurrent or 'auto'}",
        f"  scheduler: {sched}; per trial {r.cpu:g} CPU, {r.gpu:g} GPU; budget: {budget}",
    ]
    trains = space.space or space.arch or any(ref.train for ref in space.references)
    if trains:
        lines.append(
            f"  data: {d.name} (subset {d.subset or 'all'}, val {d.val_fraction:g}); train: "
            f"{t.epochs} epochs, {t.optimizer} lr {t.lr:g}, batch {t.batch_size}, {t.schedule}")
    if space.space:
        lines.append("  axes:")
        for name, axis in space.space.items():
            values = getattr(axis, axis.kind)
            when = f"  when {axis.when}" if axis.when else ""
            lines.append(f"    {name:20s} {axis.kind} {list(values)}{when}")
    return lines


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    from bench.text import columns

    return columns([headers, *rows], indent="  ")


def dry_run(space: Any, source: str, digest: str, estimate: bool = True) -> list[str]:
    from bench.space import architectures, human

    screening = _screen(space)
    search, refs = plan(space, screening.as_dict() if screening else None)
    lines = describe(space, source, digest)
    if screening:
        lines += screening.lines()
    n_rej = 0
    if search is None:
        archs, cut = architectures(space)
        from bench.space import decode
        from bench.spec.costs import arch_counts

        rows = []
        for a in archs:
            spec = decode(space, {"sample": a})
            params, macs = arch_counts(spec.arch)
            reason = space.constraints.violation(params, macs)
            rows.append([spec.arch.label, ", ".join(f"{k}={v}" for k, v in a.items()),
                         human(params), human(macs), f"rejected: {reason}" if reason else "ok"])
            n_rej += bool(reason)
        specs = [decode(space, {"sample": a}) for a in archs]
        ok = [sp for sp, r in zip(specs, rows, strict=True) if r[-1] == "ok"]
        est, timing = _estimates(space, ok, estimate)
        per_arch = dict(zip((id(sp) for sp in ok), est, strict=True))
        for sp, r in zip(specs, rows, strict=True):
            r.append(_duration(per_arch.get(id(sp))))
        lines.append(f"  reachable architectures{' (first 200)' if cut else ''} "
                     f"(continuous axes at their ends); Optuna proposes the trials at run time:")
        lines += _table(["arch", "sampled", "params", "MACs", "budget", "est. time"], rows)
        known = [e for e in est if e is not None]
        mean = sum(known) / len(known) if known else None
        lines += _estimate_lines(space, [mean] * space.search.samples if mean else [], timing,
                                 "each trial at the mean of the architectures")
        lines.append(f"dry run: {space.search.samples} trials proposed by {space.search.algorithm} "
                     f"over {len(archs)} architectures ({n_rej} over budget), "
                     f"{len(refs)} references")
        return lines
    rows = []
    todo = [p for p in search if not p.rejected]
    est, timing = _estimates(space, [p.spec for p in todo], estimate)
    seconds = dict(zip((p.index for p in todo), est, strict=True))
    for p in search:
        sample = p.config["sample"]
        rows.append([str(p.index), p.spec.arch.label,
                     ", ".join(f"{k}={v}" for k, v in sample.items()) or "-",
                     human(p.params), human(p.macs),
                     f"rejected: {p.rejected}" if p.rejected else "ok",
                     _duration(seconds.get(p.index))])
        n_rej += bool(p.rejected)
    if rows:
        lines.append("  trials:")
        lines += _table(["#", "arch", "sampled", "params", "MACs", "budget", "est. time"], rows)
        lines += _estimate_lines(space, [e for e in est if e is not None], timing,
                                 "every trial trained fully")
    if refs:
        lines.append("  references:")
        lines += _table(["#", "model", "mode", "input", "params", "MACs"], [
            [str(p.index), p.spec.arch.timm_model,
             "train" if space.references[p.index].train else "measure only",
             str(p.spec.arch.input_size), human(p.params), human(p.macs)] for p in refs])
    lines.append(f"dry run: {len(search)} trials ({n_rej} rejected by constraints, "
                 f"{len(search) - n_rej} to run), {len(refs)} references")
    return lines


def _duration(seconds: float | None) -> str:
    from bench.estimate import duration

    return duration(seconds)


def _estimates(space: Any, specs: list[Any], enabled: bool = True
               ) -> tuple[list[float | None], str]:
    """Estimated seconds of each trial spec on this machine (None where unknown) and what the
    calibration did ('' when trials run on a GPU: no CPU estimate; 'off': --no-estimate)."""
    from bench.estimate import trial_estimates

    if not enabled:
        return [None] * len(specs), "off"
    if not specs:
        return [], "nothing to train"
    if not _on_cpu(space):
        return [None] * len(specs), ""
    est, measured = trial_estimates(specs, space.resources.cpu, space.dataset.cache_dir)
    archs = len({sp.arch for sp in specs})
    how = (f"calibrated {measured} architecture(s) now, {archs - measured} cached"
           if measured else f"{archs} architecture(s), calibration cached")
    return [e.seconds for e in est], how


def _on_cpu(space: Any) -> bool:
    device = space.train.device
    if device == "cpu":
        return True
    if device != "auto" or space.resources.gpu:
        return False
    if not space.resources.gpu:  # Ray hides every GPU from a trial that asked for none
        return True
    import torch

    return not torch.cuda.is_available()


def _estimate_lines(space: Any, seconds: list[float], timing: str, basis: str) -> list[str]:
    """The dry run's time estimate: per trial and the sweep's wall time on this machine."""
    from bench.estimate import parallel_trials, total_seconds
    from bench.host import cpu_model

    if timing in ("off", "nothing to train"):
        return [f"  time estimate: {'off (--no-estimate)' if timing == 'off' else 'none (nothing to train)'}"]
    if not timing:
        return ["  time estimate: none (trials run on a GPU; the calibration times this CPU)"]
    if not seconds:
        return ["  time estimate: none (the calibration could not time these architectures)"]
    par = parallel_trials(space.search.max_concurrent, space.resources.cpu)
    total = total_seconds(seconds, par)
    early = "; at most: ASHA stops weak trials earlier" if space.scheduler.type != "none" else ""
    return [f"  time estimate on this machine ({cpu_model()}, {par} trial(s) at a time, "
            f"{timing}): per trial {_duration(min(seconds))}"
            + (f" to {_duration(max(seconds))}" if max(seconds) > min(seconds) + 0.5 else "")
            + f", sweep about {_duration(total)} ({basis}{early}; references not included)"]


# --- the sweep ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.schema:
        from bench.space import space_schema

        plugins.import_plugins(args.plugin, "--plugin")  # their block parameters join the schema
        print(json.dumps(space_schema(), indent=2))
        return 0
    if not args.space:
        raise ConfigError("--space FILE is required (e.g. --space search_spaces/quickstart.yaml)")
    if args.resume and args.dry_run:
        raise ConfigError("--resume cannot be combined with --dry-run")
    configure_environment(local=not args.address)

    from bench.locations import (
        default_artifact_location,
        default_tracking_uri,
        repo_root,
        resolve_paths,
    )
    from bench.redaction import redact_uri
    from bench.space import load_space, space_hash

    space = load_space(args.space, args.set, smoke=args.smoke, unset=args.unset,
                       plugins=args.plugin)
    for warning in schedule_warnings(space):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    digest = space_hash(space)
    space = dataclasses.replace(space, dataset=_absolute(resolve_paths(space.dataset, os.environ)))
    if args.dry_run:
        print("\n".join(dry_run(space, args.space, digest, args.estimate)))
        return 0

    root = repo_root()
    storage = args.storage or str(root / ".ray_results")
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
    check_storage(storage)
    storage = _credentials_to_environment(storage)
    if args.resume == "auto":
        found = find_resumable(storage, space.name, digest)
        args.resume = found  # None: a new sweep
        if found:
            print(f"--resume auto: continuing {found}", flush=True)
    if args.resume:
        sweep_dir = find_latest(storage, space.name) if args.resume == "latest" else args.resume
        state = read_state(sweep_dir) if sweep_dir else None
        if state is None:
            where = sweep_dir or f"{storage} (no sweep of {space.name!r})"
            raise ConfigError(f"nothing to resume at {where}")
        if state["space_hash"] != digest:
            raise ConfigError(
                f"the space changed since sweep {state['sweep_id']} started (hash "
                f"{state['space_hash']} -> {digest}); resume with the same file and options "
                f"(were: {' '.join(state.get('argv', []))})")
        state["tracking_uri"] = _resumed_uri(args, state["tracking_uri"])
    else:
        uri = (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or space.tracking.uri
               or default_tracking_uri(root))
        sweep_id = f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        state = {
            "sweep_id": sweep_id, "name": space.name, "space_hash": digest,
            "space_file": str(args.space), "argv": _argv(args), "tracking_uri": uri,
            "experiment": experiment_name(args, space),
            "artifact_location": default_artifact_location(uri), "started": time.time(),
        }
        sweep_dir = _join(storage.rstrip("/"), sweep_id)
    # What Ray persists (tuner.pkl holds the space) never holds credentials: the space's free
    # text and tracking URI go to Ray redacted (trials use neither).
    space = dataclasses.replace(
        space, description=redact_uri(space.description),
        tracking=dataclasses.replace(space.tracking, uri=space.tracking.uri and redact_uri(
            space.tracking.uri)))
    if space.search.prescreen is not None and "prescreen" not in state:  # a resume reuses it
        screening = _screen(space)
        print(screening.lines()[0], flush=True)
        state["prescreen"] = screening.as_dict()
    search, refs = plan(space, state.get("prescreen"))  # before anything is written
    return execute(args, space, digest, state, sweep_dir, search, refs)


SMOKE_SUFFIX = "-smoke"


def experiment_name(args: argparse.Namespace, space: Any) -> str:
    """The MLflow experiment of a new sweep: ``--experiment``, else the space's; a ``--smoke``
    run goes to ``<that>-smoke`` (its tiny trials never sit beside real ones in a report)
    unless the command line names the experiment (``--experiment`` or ``--set
    tracking.experiment=...``)."""
    if args.experiment:
        if not args.experiment.strip():
            raise ConfigError("must not be empty", "--experiment")
        return args.experiment
    named = any(s.split("=", 1)[0].strip() == "tracking.experiment" for s in args.set)
    if args.smoke and not named:
        return space.experiment + SMOKE_SUFFIX
    return space.experiment


def schedule_warnings(space: Any) -> list[str]:
    """The trainer's warnings about a schedule too long for the epochs, for the space's recipe
    and for every value an axis may give ``train.epochs`` (--smoke's one epoch is expected)."""
    import dataclasses as dc

    from bench.spec.trial import schedule_warnings as of_train

    epochs, warmups = {space.train.epochs}, {space.train.warmup_epochs}
    for name, axis in space.space.items():
        if axis.target(name) == "train.epochs" and axis.values:
            epochs |= {int(v) for v in axis.values}
        if axis.target(name) == "train.warmup_epochs" and axis.values:
            warmups |= {float(v) for v in axis.values}
    out: list[str] = []
    for n in sorted(epochs):
        for w in sorted(warmups):
            if n > 1:
                train = dc.replace(space.train, epochs=n, warmup_epochs=w)
                out += [m for m in of_train(train) if m not in out]
    return out


def _screen(space: Any) -> Any:
    """The prescreen of the space (``bench.prescreen``), or None without one."""
    if space.search.prescreen is None:
        return None
    from bench.prescreen import screen

    return screen(space)


def _resumed_uri(args: argparse.Namespace, stored: str) -> str:
    """The tracking URI of a resumed sweep: the state's, whose credentials (never stored)
    come again from --tracking-uri or MLFLOW_TRACKING_URI."""
    from bench.redaction import REDACTED, redact_uri

    given = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if args.tracking_uri and redact_uri(args.tracking_uri) != stored:
        raise ConfigError(f"--tracking-uri differs from the sweep's ({stored})")
    if f"{REDACTED}@" not in stored:
        return stored
    if given and redact_uri(given) == stored:
        return given
    raise ConfigError(f"the sweep's tracking URI {stored} held credentials, which are never "
                      "stored; pass the URI again with --tracking-uri or MLFLOW_TRACKING_URI")


def _credentials_to_environment(storage: str) -> str:
    """``s3://KEY:SECRET@bucket/...`` -> ``s3://bucket/...`` with the key pair in
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for this process and the Ray workers it starts
    (where the file system reads them), so Ray's state files never hold them."""
    from urllib.parse import unquote, urlsplit

    from bench.redaction import has_credentials

    if not (is_uri(storage) and has_credentials(storage)):
        return storage
    parts = urlsplit(storage)
    if parts.scheme != "s3" or parts.password is None:
        raise ConfigError(f"credentials in a {parts.scheme}:// storage URI are not supported; "
                          "give them in the environment instead", "--storage")
    os.environ["AWS_ACCESS_KEY_ID"] = unquote(parts.username or "")
    os.environ["AWS_SECRET_ACCESS_KEY"] = unquote(parts.password)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _absolute(data: Any) -> Any:
    """Relative data folders made absolute: trials run in their own working directories."""
    changes = {k: str(Path(v).expanduser().resolve()) for k in ("root", "cache_dir")
               if (v := getattr(data, k)) and "://" not in v}
    return dataclasses.replace(data, **changes)


def _argv(args: argparse.Namespace) -> list[str]:
    out = ["--space", str(args.space)]
    for s in args.unset:
        out += ["--unset", s]
    for s in args.set:
        out += ["--set", s]
    if args.smoke:
        out.append("--smoke")
    if args.experiment:
        out += ["--experiment", args.experiment]
    return out


def execute(args: argparse.Namespace, space: Any, digest: str, state: dict[str, Any],
            sweep_dir: str, search: list[Planned] | None, refs: list[Planned]) -> int:
    """The preflight (nothing written yet; each failure is exit 2), then the sweep on a Ray
    that is shut down on the way out when this process started it."""
    from bench import tune as rt

    preflight_store(args, state, sweep_dir, space)
    quiet_libraries(space.search.is_optuna)
    owns_ray = not _ray_initialized()
    temp_dir = tempfile.mkdtemp(prefix="rb-ray-") if owns_ray and not args.address else None
    try:
        preflight_ray(args, space, sweep_dir, state["tracking_uri"], temp_dir)
        return run_sweep(args, space, digest, state, sweep_dir, search, refs)
    finally:
        if owns_ray:
            rt.shutdown()
        if temp_dir and not args.debug:
            shutil.rmtree(temp_dir, ignore_errors=True)


def preflight_store(args: argparse.Namespace, state: dict[str, Any], sweep_dir: str,
                    space: Any) -> None:
    """Before Ray starts, without writing: the storage folder writable, the tracking store
    reachable and writable (database and the artifact location the experiment uses: its own
    when it exists already), the dataset present (local runs: on a cluster the data may live
    on the workers)."""
    from bench.tracking import check_store

    check_storage(sweep_dir)
    check_store(state["tracking_uri"], artifact_location=state["artifact_location"],
                experiment=state["experiment"])
    if not args.address:
        check_data(space)


@contextlib.contextmanager
def _stderr_to(target: Any) -> Iterator[None]:
    """File descriptor 2 (what C extensions write to) pointed at ``target`` for the block;
    ``None``: left alone."""
    if target is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def preflight_ray(args: argparse.Namespace, space: Any, sweep_dir: str, state_uri: str,
                  temp_dir: str | None) -> None:
    """Start or join Ray (a cluster address must answer within ``ADDRESS_TIMEOUT_S``), then
    refuse node-local storage on a multi-node cluster and per-trial resources no node has."""
    from bench import tune as rt

    if args.address:
        check_address(args.address)
    log = tempfile.TemporaryFile()
    try:
        # Ray's core logs each failed attempt to join on the process's stderr: kept aside, so
        # that a failure is one message (shown whole with --debug).
        with _stderr_to(log if args.address and not args.debug else None):
            rt.init_ray(args.address, temp_dir, log_to_driver=args.debug)
    except Exception as exc:  # noqa: BLE001 - a wrong --address is the usual cause
        if args.debug:
            traceback.print_exc()
        if args.address:
            raise ConfigError(f"cannot reach the Ray cluster at {args.address}: Ray could not "
                              f"join it ({type(exc).__name__}: {exc})", "--address") from None
        raise ResbenchError(f"cannot start a local Ray: {type(exc).__name__}: {exc}") from None
    finally:
        log.close()
    if args.address and args.address.startswith("ray://") and state_uri.startswith("sqlite:"):
        print("warning: with Ray Client (ray://) the Tune loop and its MLflow callback run on the "
              "cluster's head node; use a tracking server (--tracking-uri http://...) and shared "
              "storage (--storage s3://...)", file=sys.stderr)
    check_cluster(sweep_dir, args.shared_storage)
    check_resources(space.resources.cpu, space.resources.gpu)


def run_sweep(args: argparse.Namespace, space: Any, digest: str, state: dict[str, Any],
              sweep_dir: str, search: list[Planned] | None, refs: list[Planned]) -> int:
    """The sweep on a running Ray: parent run, the Tune jobs, the MLflow reconcile, the summary
    and the report; returns the exit code."""
    from bench import tune as rt
    from bench.measure import environment
    from bench.redaction import redact_uri, redacted
    from bench.tracking import Tracker, ui_command

    tracker = Tracker(state["tracking_uri"], state["experiment"], state["artifact_location"])
    tracker.setup()
    env = environment()
    tags = {"resbench.space_hash": digest, "resbench.git_sha": env.get("git_sha", "unknown"),
            "resbench.space": space.name, "resbench.sweep_dir": sweep_dir,
            "resbench.smoke": str(bool(args.smoke)).lower(),
            **{f"resbench.env.{k}": v for k, v in env.items()}}
    params = {"algorithm": space.search.algorithm, "objectives": json.dumps(space.search.objectives),
              "num_samples": space.search.samples, "scheduler": space.scheduler.type,
              "seed": space.search.seed, "dataset": space.dataset.name,
              "epochs": space.train.epochs}
    if space.search.prescreen is not None:
        params["prescreen"] = json.dumps(dataclasses.asdict(space.search.prescreen))
    texts = {"space.yaml": redact_uri(Path(args.space).read_text(encoding="utf-8")),
             "space.resolved.json": json.dumps(redacted(to_dict(space)), indent=2, default=str)}
    parent = tracker.start_sweep(state["sweep_id"], state["sweep_id"], tags, params, texts)
    status, ended = "failed", False  # every way out below ends the parent run with a status
    try:
        state["parent_run_id"] = parent
        write_state(sweep_dir, state)
        print(f"sweep {state['sweep_id']}: MLflow experiment {state['experiment']!r}, parent "
              f"run {parent}; Ray results in {redact_uri(sweep_dir)}", flush=True)
        target = rt.TrackingTarget(state["tracking_uri"], state["experiment"],
                                   state["artifact_location"], parent, state["sweep_id"],
                                   smoke=bool(args.smoke))
        rejected = [p for p in (search or []) if p.rejected]
        _record_rejected(tracker, target, space, rejected)
        points = None
        if state.get("prescreen"):
            from bench.prescreen import Screening, record

            screening = Screening.from_dict(state["prescreen"])
            record(tracker, parent, screening)
            points = [r.sample for r in screening.kept] if search is None else None
        gpu = space.resources.gpu
        if gpu and not rt.cluster_gpus():
            print(f"note: resources.gpu={gpu:g} but the cluster has no GPU; trials run on CPU")
            gpu = 0.0
        found: list[rt.Outcome] = []
        jobs = []
        if search is None:
            jobs.append(("search", None))
        elif any(not p.rejected for p in search):
            jobs.append(("search", [p.config for p in search if not p.rejected]))
        if refs:
            jobs.append(("references", [p.config for p in refs]))
        for name, configs in jobs:
            path = _join(sweep_dir, name)
            callbacks = [rt.TrackingCallback(target, space),
                         rt.ProgressCallback(space, name, args.progress_interval,
                                             len(configs) if configs is not None else 0)]
            if args.resume and rt.can_restore(path):
                tuner = rt.restore_tuner(path, space, gpu)
            else:
                tuner = rt.make_tuner(space, "search" if name == "search" else "references",
                                      configs, sweep_dir, name, callbacks, gpu, points)
            results = tuner.fit()
            found += rt.outcomes(results, space)
        found += [_rejected_outcome(p) for p in rejected]
        _reconcile(tracker, target, space, found)
        failed = [o for o in found if o.status == "failed"]
        lines, metrics, best = summarize(space, found, args.top)
        print("\n".join(lines))
        _export_best(args, tracker, parent, space, found, sweep_dir)
        for name in tracker.restore_texts(parent, texts):
            print(f"warning: the parent run's {name} was missing from its artifact folder "
                  "(deleted during the sweep?); logged it again", file=sys.stderr)
        tracker.log_text(parent, _csv(space, found), "trials.csv")
        tracker.end_sweep(parent, "failed" if failed else "completed", metrics,
                          {"resbench.best_trial": best} if best else {})
        status = "failed" if failed else "completed"
        ended = True
        if args.report:
            make_report(state, parent, args.report_dir)
        print(f"\nbrowse the runs: {ui_command(redact_uri(state['tracking_uri']))}")
        if failed:
            print(f"{len(failed)} trial(s) failed; first error: "
                  f"{failed[0].error.splitlines()[0] if failed[0].error else '?'}", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except ResbenchError:
        status = "failed"
        raise
    except Exception as exc:  # Ray or tracking failures: exit 1 with the cause
        if args.debug:
            traceback.print_exc()
        print(f"error: the sweep failed: {type(exc).__name__}: {redact_uri(str(exc))}",
              file=sys.stderr)
        print(f"continue it with --resume (state in {redact_uri(sweep_dir)})", file=sys.stderr)
        return 1
    finally:
        if not ended:
            try:
                if status == "interrupted":
                    tracker.interrupt_children(parent)
                tracker.end_sweep(parent, status, {})
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        try:  # --resume auto starts a new sweep after a completed one
            write_state(sweep_dir, {**state, "status": status})
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


def make_report(state: dict[str, Any], parent: str, report_dir: str | None) -> Path | None:
    """The sweep's HTML report in ``report_dir`` (default ``<repo>/reports``), attached to the
    parent run; a report that cannot be made is a warning, never a failed sweep."""
    from bench.locations import repo_root
    from bench.report import default_stem, log_report, write_report

    folder = Path(report_dir).expanduser() if report_dir else repo_root() / "reports"
    out = folder.resolve() / f"{default_stem([state['experiment']])}.html"
    try:
        html = write_report(state["tracking_uri"], [state["experiment"]], out,
                            sweeps=[state["sweep_id"]])
        log_report(state["tracking_uri"], parent, html)
    except ResbenchError as exc:
        print(f"warning: no report: {exc}", file=sys.stderr)
        return None
    except Exception as exc:  # noqa: BLE001 - the report must never fail a finished sweep
        print(f"warning: no report ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    print(f"report: {html}", flush=True)
    return html


def _export_best(args: argparse.Namespace, tracker: Any, parent: str, space: Any,
                 found: list[Any], sweep_dir: str) -> None:
    """The best trial(s) as MLflow models (``--register``: registry versions) and the best
    config as ``best.yaml`` in the sweep folder (the report folder for remote storage); a
    failure here is a warning, never a failed sweep."""
    from bench import export
    from bench.locations import repo_root

    try:
        best = export.best_trials(space, found)
        if not best:
            return
        done = export.export_best(tracker, parent, space, best, args.register)
        folder = Path(sweep_dir) if not is_uri(sweep_dir) else (
            Path(args.report_dir).expanduser() if args.report_dir else repo_root() / "reports")
        path = export.write_best_yaml(space, best[0], folder)
        print("\n" + "\n".join(export.lines(done, path.resolve(), args.register)), flush=True)
    except Exception as exc:  # noqa: BLE001 - the sweep itself is done
        if args.debug:
            traceback.print_exc()
        print(f"warning: the best models were not logged ({type(exc).__name__}: {exc})",
              file=sys.stderr)


def _ray_initialized() -> bool:
    import ray

    return ray.is_initialized()


def _record_rejected(tracker: Any, target: Any, space: Any, rejected: list[Planned]) -> None:
    """Over-budget grid / random trials: KILLED children, created once (stable ids)."""
    from bench.tune import trial_params

    for p in rejected:
        trial_id = f"rejected-{p.index:04d}"
        run = tracker.find_trial(target.parent_id, trial_id)
        if run is not None and run.info.status != "RUNNING":
            continue
        run_id, _ = tracker.trial_run(
            target.parent_id, trial_id, p.spec.arch.label, trial_params(space, p.config, p.spec),
            {"resbench.kind": "search", "resbench.label": p.spec.arch.label,
             "resbench.sweep_id": target.sweep_id, **target.tags})
        tracker.end_trial(run_id, "rejected", {"params": p.params, "macs": p.macs},
                          error=p.rejected)


def _rejected_outcome(p: Planned) -> Any:
    from bench.tune import Outcome

    return Outcome(f"rejected-{p.index:04d}", "search", p.config, p.spec.arch.label, "rejected",
                   {"params": float(p.params), "macs": float(p.macs)}, p.rejected)


def _reconcile(tracker: Any, target: Any, space: Any, found: list[Any]) -> None:
    """Make MLflow agree with Ray's final state: every trial exactly once, ended with its status
    (repairs runs a killed driver left RUNNING or never created)."""
    from bench.tune import TrackingCallback

    children = {r.data.tags.get("resbench.trial_id"): r for r in tracker.children(target.parent_id)}
    fixer = TrackingCallback(target, space)
    fixer._tracker = tracker
    for o in found:
        run = children.get(o.trial_id)
        if run is not None and run.info.status != "RUNNING" and \
                run.data.tags.get("resbench.status") == o.status:
            continue
        if o.status == "rejected" and o.trial_id.startswith("rejected-"):
            continue  # recorded before the sweep
        for row in o.history:
            fixer.log_result(o.trial_id, o.config, row)
        fixer.finish(o.trial_id, o.config, o.metrics, o.status, o.error)


# --- the final report ------------------------------------------------------------------------------


def pareto(points: list[Any], objectives: dict[str, str]) -> list[Any]:
    """The non-dominated outcomes (every objective present), in their order."""
    from bench.pareto import nondominated_fronts, oriented

    pts = [o for o in points if all(k in o.metrics for k in objectives)]
    fronts = nondominated_fronts([oriented(o.metrics, objectives) for o in pts])
    return [pts[i] for i in sorted(fronts[0])] if fronts else []


def summarize(space: Any, found: list[Any], top: int) -> tuple[list[str], dict[str, float], str]:
    from bench.space import human
    from bench.tune import MESSAGE_KEY, fmt, placeholders

    objectives = space.search.objectives
    metric, mode = space.search.primary
    counts: dict[str, int] = {}
    for o in found:
        counts[o.status] = counts.get(o.status, 0) + 1
    search = [o for o in found if o.kind == "search"]
    stand_ins = {o.trial_id: placeholders(o.metrics) for o in found}

    def has(o: Any, k: str) -> bool:
        return k in o.metrics and k not in stand_ins[o.trial_id]

    ranked = [o for o in search if o.status in ("completed", "stopped") and has(o, metric)]
    ranked.sort(key=lambda o: o.metrics[metric], reverse=(mode == "max"))
    cols = list(dict.fromkeys([*objectives, "val_acc", "test_acc", "params", "macs"]))

    def row(o: Any) -> list[str]:
        cells = [o.trial_id, o.label, o.status, str(o.epochs)]
        for k in cols:
            v = o.metrics.get(k) if has(o, k) else None
            cells.append("-" if v is None else (human(v) if k in ("params", "macs") else fmt(v)))
        return cells

    headers = ["trial", "arch", "status", "epochs", *cols]
    state = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [f"\n{len(found)} trials: {state or 'none'}"]
    if ranked:
        lines.append(f"\ntop {min(top, len(ranked))} by {metric} ({mode}):")
        lines += _table(headers, [row(o) for o in ranked[:top]])
    front: list[Any] = []
    if len(objectives) > 1:
        full = [o for o in search if o.status == "completed"
                and all(has(o, k) for k in objectives)]
        front = pareto(full, dict(objectives))
        front.sort(key=lambda o: o.metrics[metric], reverse=(mode == "max"))
        lines.append(f"\nPareto set ({', '.join(f'{k} {m}' for k, m in objectives.items())}; "
                     f"fully trained trials only): {len(front)} of {len(full)}")
        if front:
            lines += _table(headers, [row(o) for o in front])
    if space.search.repeats > 1:
        lines += repeats_table(space, search, has)
    refs = [o for o in found if o.kind == "reference"]
    if refs:
        ref_cols = [c for c in ["val_acc", "test_acc", "params", "macs", "infer_img_per_s",
                                "latency_ms_p50"] if any(has(o, c) for o in refs)]
        lines.append("\nreferences:")
        lines += _table(["trial", "arch", "status", *ref_cols], [
            [o.trial_id, o.label, o.status] + [
                "-" if not has(o, k) else (human(o.metrics[k]) if k in ("params", "macs")
                                           else fmt(o.metrics[k])) for k in ref_cols]
            for o in refs])
    bad = [o for o in found if o.status in ("failed", "diverged")]
    for o in bad[:5]:
        first = (o.error or str(o.metrics.get(MESSAGE_KEY, ""))).splitlines()
        lines.append(f"  {o.status}: {o.trial_id} {o.label}: {first[0] if first else '?'}")
    metrics = {
        "trials_total": float(len(found)),
        "rejected_trials": float(counts.get("rejected", 0)),
        **{f"trials_{s}": float(counts.get(s, 0))
           for s in ("completed", "stopped", "diverged", "failed")},
    }
    best = ""
    if ranked:
        metrics[f"best_{metric}"] = float(ranked[0].metrics[metric])
        best = ranked[0].trial_id
    if len(objectives) > 1:
        metrics["pareto_size"] = float(len(front))
    return lines, metrics, best


def repeats_table(space: Any, search: list[Any], has: Any) -> list[str]:
    """``search.repeats``: each configuration's completed seeds as mean +- std (sample std) of
    the primary objective and the test accuracy, beside the noise of one evaluation: the
    binomial standard error of an accuracy on the split's size."""
    import statistics

    from bench.estimate import split_sizes
    from bench.space import REPEAT_KEY, sample_of
    from bench.tune import fmt

    metric, mode = space.search.primary
    groups: dict[str, list[Any]] = {}
    labels: dict[str, str] = {}
    for o in search:
        rest = {k: v for k, v in sample_of(o.config).items() if k != REPEAT_KEY}
        key = json.dumps(rest, sort_keys=True, default=str)
        labels[key] = f"{o.label} ({', '.join(f'{k}={v}' for k, v in rest.items())})" \
            if any(not space.is_arch_axis(k) for k in rest if k in space.space) else o.label
        if o.status == "completed":
            groups.setdefault(key, []).append(o)
        else:
            groups.setdefault(key, [])
    d = space.dataset
    train_n, test_n = split_sizes(d)
    used = d.subset or train_n
    n_split = {"val_acc": round(d.val_fraction * used), "test_acc": d.test_subset or test_n}
    cols = list(dict.fromkeys([metric, "test_acc"]))

    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        if len(values) == 1:
            return f"{fmt(values[0])} (1 seed)"
        return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"

    def se(key: str, values: list[float]) -> str:
        n = n_split.get(key)
        if not values or not n or not key.endswith("_acc"):
            return ""
        p = min(max(statistics.fmean(values) / 100.0, 0.0), 1.0)
        return f"{100.0 * (p * (1 - p) / n) ** 0.5:.2f}"

    def mean_of(key: str) -> float:
        values = [o.metrics[metric] for o in groups[key] if has(o, metric)]
        if not values:
            return float("-inf")
        return statistics.fmean(values) * (1 if mode == "max" else -1)

    rows = []
    for key in sorted(groups, key=mean_of, reverse=True):
        row = [labels[key], f"{len(groups[key])}/{space.search.repeats}"]
        for c in cols:
            values = [float(o.metrics[c]) for o in groups[key] if has(o, c)]
            row += [cell(values), se(c, values)]
        rows.append(row)
    headers = ["configuration", "seeds"]
    for c in cols:
        headers += [f"{c} mean ± std", f"{c} SE (n={n_split.get(c, '?')})"]
    out = [f"\nper configuration over {space.search.repeats} seeds (completed trials; SE: the "
           "binomial standard error of one accuracy on that many images, the noise of a single "
           "evaluation):"]
    return out + _table(headers, rows)


def _csv(space: Any, found: list[Any]) -> str:
    keys = sorted({k for o in found for k, v in o.metrics.items() if isinstance(v, (int, float))
                   and not isinstance(v, bool)})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial_id", "kind", "arch", "status", *keys])
    for o in found:
        w.writerow([o.trial_id, o.kind, o.label, o.status, *[o.metrics.get(k, "") for k in keys]])
    return buf.getvalue()


if __name__ == "__main__":
    sys.exit(main())
