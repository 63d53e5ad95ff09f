"""The sweep driver behind ``python -m launchers.sweep``: the Ray / Tune environment, planning
to preflight to the Tune run, the MLflow parent and its children reconciled with what Ray
reports, the best model exported, the report written. ``run(args)`` takes the parsed command
line (``launchers.sweep.build_parser``)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench import plugins
from bench.config import to_dict
from bench.errors import ConfigError, ResbenchError
from bench.outcomes import _csv, summarize
from bench.plan import Planned, _screen, dry_run, plan, schedule_warnings
from bench.preflight import check_address, check_cluster, check_data, check_resources, check_storage
from bench.record import TrialRecord
from bench.sweep_state import (
    find_latest,
    find_resumable,
    is_uri,
    join_uri,
    read_state,
    write_state,
)

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
        "TUNE_GLOBAL_CHECKPOINT_S": "1",
        # The experiment snapshot --resume restores from (and the storage's copy of the trial
        # results) is written every second (above), which Tune would warn about each time.
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


# --- the sweep ------------------------------------------------------------------------------------


Finish = Callable[[Any, str, list[TrialRecord]], None]


def run(args: argparse.Namespace, space: Any = None, source_text: str | None = None,
        finish: Finish | None = None) -> int:
    """A sweep of ``args.space`` (a file), or of ``space`` (a parsed SearchSpace: a study's,
    with ``source_text`` its YAML and ``args.space`` its label); ``finish(tracker, parent,
    records)`` runs once every trial has ended, before the parent run ends (a study's verdict)."""
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

    if space is None:
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
        sweep_dir = join_uri(storage.rstrip("/"), sweep_id)
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
    return execute(args, space, digest, state, sweep_dir, search, refs, source_text, finish)


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
            sweep_dir: str, search: list[Planned] | None, refs: list[Planned],
            source_text: str | None = None, finish: Finish | None = None) -> int:
    """The preflight (nothing written yet; each failure is exit 2), then the sweep on a Ray
    that is shut down on the way out when this process started it."""
    from bench import tune as rt

    preflight_store(args, state, sweep_dir, space)
    quiet_libraries(space.search.is_optuna)
    owns_ray = not rt.ray_initialized()
    temp_dir = tempfile.mkdtemp(prefix="rb-ray-") if owns_ray and not args.address else None
    try:
        preflight_ray(args, space, sweep_dir, state["tracking_uri"], temp_dir)
        return run_sweep(args, space, digest, state, sweep_dir, search, refs, source_text, finish)
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
              sweep_dir: str, search: list[Planned] | None, refs: list[Planned],
              source_text: str | None = None, finish: Finish | None = None) -> int:
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
    source = source_text if source_text is not None else \
        Path(args.space).read_text(encoding="utf-8")
    texts = {"space.yaml": redact_uri(source),
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
        found: list[TrialRecord] = []
        logged: dict[str, set[int]] = {}
        jobs = []
        if search is None:
            jobs.append(("search", None))
        elif any(not p.rejected for p in search):
            jobs.append(("search", [p.config for p in search if not p.rejected]))
        if refs:
            jobs.append(("references", [p.config for p in refs]))
        for name, configs in jobs:
            path = join_uri(sweep_dir, name)
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
            logged.update(callbacks[0].logged())  # a restored tuner's own copy stays unknown
        found += [_rejected_outcome(p) for p in rejected]
        _reconcile(tracker, target, space, found, logged)
        failed = [o for o in found if o.status == "failed"]
        lines, metrics, best = summarize(space, found, args.top)
        print("\n".join(lines))
        _export_best(args, tracker, parent, space, found, sweep_dir)
        for name in tracker.restore_texts(parent, texts):
            print(f"warning: the parent run's {name} was missing from its artifact folder "
                  "(deleted during the sweep?); logged it again", file=sys.stderr)
        tracker.log_text(parent, _csv(space, found), "trials.csv")
        if finish is not None:
            finish(tracker, parent, found)
        tracker.end_sweep(parent, "failed" if failed else "completed", metrics,
                          {"resbench.best_trial": best} if best else {})
        status = "failed" if failed else "completed"
        ended = True
        if args.report:
            make_report(state, parent, args.report_dir)
        print(f"\nbrowse the runs: {ui_command(redact_uri(state['tracking_uri']))}")
        if failed:
            print(f"{len(failed)} trial(s) failed; first error: "
                  f"{failed[0].message.splitlines()[0] if failed[0].message else '?'}", file=sys.stderr)
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


def _record_rejected(tracker: Any, target: Any, space: Any, rejected: list[Planned]) -> None:
    """Over-budget grid / random trials: KILLED children, created once (stable ids)."""
    from bench.tune import trial_params

    ended = tracker.ended_trials(target.parent_id) if rejected else {}
    for p in rejected:
        trial_id = f"rejected-{p.index:04d}"
        if ended.get(trial_id) is not None:
            continue
        run_id, _ = tracker.trial_run(
            target.parent_id, trial_id, p.spec.arch.label, trial_params(space, p.config, p.spec),
            {"resbench.kind": "search", "resbench.label": p.spec.arch.label,
             "resbench.sweep_id": target.sweep_id, **target.tags})
        tracker.end_trial(run_id, "rejected", {"params": p.params, "macs": p.macs},
                          error=p.rejected)


def _rejected_outcome(p: Planned) -> Any:
    return TrialRecord(f"rejected-{p.index:04d}", "search", p.config, p.spec.arch.label,
                       "rejected", {"params": float(p.params), "macs": float(p.macs)}, p.rejected)


def _reconcile(tracker: Any, target: Any, space: Any, found: list[Any],
               logged: Mapping[str, set[int]]) -> None:
    """Make MLflow agree with Ray's final state: every trial exactly once, ended with its status,
    with every epoch Ray holds (repairs runs a killed driver left RUNNING or never created, and
    epochs a tracking outage kept out). ``logged``: trial id -> the epochs the live callbacks
    know are in the store; a trial they do not vouch for is read back from the store."""
    from bench.tune import TrackingCallback, epoch_metrics

    runs = tracker.trial_runs(target.parent_id)
    fixer = TrackingCallback(target, space, tracker=tracker)
    for o in found:
        if o.status == "rejected" and o.trial_id.startswith("rejected-"):
            continue  # recorded before the sweep
        status, run_id = runs.get(o.trial_id, (None, ""))
        if status == o.status:  # ended as it should be; fill a gap only (it stays ended)
            epochs = {int(row.get("epoch") or 0) for row in o.history} - {0}
            have = logged.get(o.trial_id)
            if have is None or not epochs <= have:
                have = tracker.logged_steps(run_id)
            for row in o.history:
                if int(row.get("epoch") or 0) in epochs - have:
                    tracker.log_metrics(run_id, epoch_metrics(row), step=int(row["epoch"]))
            continue
        for row in o.history:
            fixer.log_result(o.trial_id, o.config, row)
        fixer.finish(o.trial_id, o.config, o.metrics, o.status, o.message)
