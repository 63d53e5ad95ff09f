"""Comparison reports for real: a tiny grid sweep run by ``python -m launchers.sweep`` into a
temporary SQLite store (ResNet and plain nets at two depths, a DenseNet, two seeds each, one
diverging trial, a measured-only timm reference), runs logged with ``bench.tracking.Tracker``
(failures, lesion results, hostile names), every report opened in headless Chromium, and a real
``mlflow server`` serving the runs and the report artifact over its REST API.

The sweep and the MLflow server start in the background when the module starts (only if a
selected test needs them), so the tests that do not need them run meanwhile. Chromium tests skip
when no ``chromium`` is installed, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.errors import ConfigError, ResbenchError
from bench.report import build_report, log_report, report_paths, write_report
from bench.report.fetch import fetch_experiment_runs
from bench.report.model import Trial, group_trials, pareto_front
from bench.tracking import Tracker, default_artifact_location
from launchers import report as report_cli

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"
SWEEP_EXP = "report-test"
HOSTILE = "<script>alert(1)</script>"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SPACE = """
name: report-test
dataset: {name: digits, image_size: 8, subset: 192, test_subset: 96, val_fraction: 0.25}
train: {epochs: 2, batch_size: 64, lr: 0.05, device: cpu, eval_batch_size: 256, threads: 1}
arch: {width: 4, growth_rate: 4}
measure: {enabled: true, batch_size: 8, warmup: 1, iters: 2, latency_iters: 3, train_step: false}
diagnostics: {grad_norms: true}
space:
  family: {grid: [resnet, densenet]}
  depth: {grid: [8, 14], when: {family: resnet}}
  skip: {grid: [identity, none], when: {family: resnet}}
  train.seed: {grid: [0, 1]}
  train.lr: {grid: [1.0e+6], when: {family: densenet, train.seed: 1}}   # diverges
references:
  - {model: resnet10t, train: false, input_size: 32}
search: {algorithm: grid, objectives: {val_acc: max}, max_concurrent: 2}
"""
SEARCH_TRIALS, REFERENCE_TRIALS = 10, 1
# Sections a report of the sweep must have (the sweep records no lesion study).
SWEEP_SECTIONS = {"overview", "summary", "trials", "pareto", "curves", "degradation", "depth",
                  "families", "gradients", "failures", "runs", "proxies"}  # every sweep logs proxies


# --- processes ------------------------------------------------------------------------------------


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required here)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, with everything in its process group."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # leftovers of the group (server workers) even when the leader is gone
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class Background:
    base: Path
    uri: str
    sweep: subprocess.Popen | None = None
    sweep_log: Path | None = None
    server: subprocess.Popen | None = None
    server_log: Path | None = None
    port: int = 0


@pytest.fixture(scope="module", autouse=True)
def background(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Background]:
    """Start the sweep and the MLflow server now if a selected test of this module needs them."""
    mine = [i for i in request.session.items if i.module is request.module]
    need_sweep = any("sweep" in i.fixturenames for i in mine)
    need_server = any("server" in i.fixturenames for i in mine)
    base = tmp_path_factory.mktemp("report-store")
    bg = Background(base, f"sqlite:///{base / 'mlflow.db'}")
    if need_sweep or need_server:
        # the schema and the experiment first, so the two processes never both create them
        Tracker(bg.uri, SWEEP_EXP, default_artifact_location(bg.uri)).setup()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    try:
        if need_sweep:
            (base / "space.yaml").write_text(SPACE)
            bg.sweep_log = base / "sweep.log"
            with open(bg.sweep_log, "wb") as out:
                bg.sweep = subprocess.Popen(
                    [sys.executable, "-m", "launchers.sweep", "--space", str(base / "space.yaml"),
                     "--storage", str(base / "ray"), "--tracking-uri", bg.uri],
                    cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)
        if need_server:
            bg.port = _free_port()
            bg.server_log = base / "server.log"
            (base / "served").mkdir()
            with open(bg.server_log, "wb") as out:
                bg.server = subprocess.Popen(
                    [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", bg.uri,
                     "--serve-artifacts", "--artifacts-destination", str(base / "served"),
                     "--host", "127.0.0.1", "--port", str(bg.port), "--workers", "1"],
                    cwd=base, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        yield bg
    finally:
        for proc in (bg.sweep, bg.server):
            if proc is not None:
                _stop(proc)


@dataclass
class Sweep:
    uri: str
    parent_id: str
    children: list[Any]  # MLflow runs of the trials


@pytest.fixture(scope="module")
def sweep(background: Background) -> Sweep:
    """The finished tiny sweep (exit 0) and its runs."""
    proc = background.sweep
    assert proc is not None
    try:
        rc = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sweep did not finish:\n{background.sweep_log.read_text()[-4000:]}")
    assert rc == 0, background.sweep_log.read_text()[-4000:]
    client = Tracker(background.uri, SWEEP_EXP).client
    exp = client.get_experiment_by_name(SWEEP_EXP)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("resbench.role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == SEARCH_TRIALS + REFERENCE_TRIALS
    return Sweep(background.uri, parents[0].info.run_id, children)


@pytest.fixture(scope="module")
def sweep_report(sweep: Sweep, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the sweep's experiment (HTML path; .md and .csv next to it)."""
    return write_report(sweep.uri, [SWEEP_EXP],
                        tmp_path_factory.mktemp("sweep-report") / f"{SWEEP_EXP}.html")


@pytest.fixture(scope="module")
def server(background: Background, sweep: Sweep) -> str:
    """The MLflow server's address, once it answers /health."""
    import requests

    proc = background.server
    assert proc is not None
    url = f"http://127.0.0.1:{background.port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited {proc.returncode}:\n"
                        f"{background.server_log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"mlflow server not up:\n{background.server_log.read_text()[-3000:]}")


# --- Chromium ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        _missing("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (it is in the dev extra)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=BROWSER_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Opened:
    page: Any
    errors: list[str]
    dialogs: list[str]
    requests: list[str]


def open_report(browser: Any, path: Path) -> Opened:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    opened = Opened(page, [], [], [])
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))

    def dialog(d: Any) -> None:
        opened.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.on("request", lambda r: opened.requests.append(r.url)
            if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return opened


def check_renders(o: Opened) -> None:
    """No console errors, no network, every figure drawn, the screenshot not blank."""
    import numpy as np
    from PIL import Image

    page = o.page
    figures = page.evaluate("""() => Array.from(document.querySelectorAll("figure.plot svg"))
        .map(s => { const r = s.getBoundingClientRect();
                    return [r.width, r.height,
                            s.querySelectorAll("path,use,line,rect,polyline,polygon").length,
                            s.querySelectorAll("text").length]; })""")
    for width, height, drawn, texts in figures:
        assert width > 100 and height > 100 and drawn > 20 and texts > 3, figures
    images = page.evaluate("() => Array.from(document.images).map(i => i.naturalWidth)")
    assert all(w > 0 for w in images), images
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L"))
    assert shot.var() > 0
    assert (shot < 200).mean() > 0.01  # more than a few stray pixels are drawn
    assert o.errors == [], o.errors
    assert o.requests == [], o.requests  # works offline: nothing fetched
    assert o.dialogs == [], o.dialogs
    assert "could not be drawn" not in page.content()


def sections(page: Any) -> set[str]:
    return set(page.evaluate("() => Array.from(document.querySelectorAll('section')).map(s => s.id)"))


# --- runs logged with the Tracker -------------------------------------------------------------------


def log_sweep(uri: str, experiment: str, trials: list[dict[str, Any]],
              tags: dict[str, str] | None = None, params: dict[str, str] | None = None
              ) -> list[str]:
    """A sweep's parent run and its trials, as the sweep launcher lays them out. Each trial:
    name, params, status (or "running": left open), optional history rows, final metrics,
    error, artifacts (name -> text). ``tags`` / ``params``: more of the parent's. Returns the
    trial run ids."""
    tracker = Tracker(uri, experiment, default_artifact_location(uri))
    tracker.setup()
    sweep_id = f"{experiment}-sweep"
    parent = tracker.start_sweep(
        sweep_id, sweep_id, {"resbench.git_sha": "0123abc", "resbench.env.device": "cpu",
                             "resbench.env.torch": "2.x", "resbench.env.note": HOSTILE,
                             **(tags or {})},
        {"algorithm": "grid", **(params or {})}, {})
    ids = []
    for i, t in enumerate(trials):
        run_id, _ = tracker.trial_run(
            parent, f"t{i:02d}", t["name"], t["params"],
            {"resbench.kind": t.get("kind", "search"), "resbench.label": t["name"],
             "resbench.sweep_id": sweep_id})
        history = t.get("history", [])
        for epoch, row in enumerate(history, 1):
            tracker.log_metrics(run_id, {"epoch": epoch, **row}, step=epoch)
        for name, text in t.get("artifacts", {}).items():
            tracker.log_text(run_id, text, name)
        if t["status"] != "running":
            tracker.end_trial(run_id, t["status"], t.get("final", {}), step=len(history),
                              error=t.get("error", ""))
        ids.append(run_id)
    tracker.end_sweep(parent, "completed", {})
    return ids


def _curve(start: float, epochs: int = 3) -> list[dict[str, float]]:
    return [{"train_loss": 2.3 - 0.3 * e, "train_acc": start + 10 * e, "val_acc": start + 8 * e,
             "grad_norm/stem": 0.5, "grad_norm/stage1.block1": 0.4, "grad_norm/head": 0.3}
            for e in range(epochs)]


def _dense(seed: int, acc: float, **extra: Any) -> dict[str, Any]:
    return {"name": "densenet40-k12", "status": "completed", "history": _curve(acc - 20),
            "params": {"arch.family": "densenet", "arch.depth": "40", "arch.skip": "concat",
                       "train.seed": str(seed), "train.lr": "0.1", **extra.pop("params", {})},
            "final": {"params": 1.0e6, "macs": 2.7e8, "test_acc": acc, "val_acc": acc + 1},
            **extra}


LESION = {"split": "test", "baseline": 90.0,
          "single": {"stage1.block1": 80.0, "stage1.block2": 85.0, "stage2.block1": 60.0},
          "random_k": {"2": [70.0, 72.0]}, "random_k_mean": {"2": 71.0},
          "random_k_std": {"2": 1.0}}


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store of Tracker-logged sweeps (one migration for all the tests that use it)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('hand-store') / 'mlflow.db'}"
    family = f"<img src=x onerror=alert(2)>{HOSTILE}"
    # MLflow allows any text in run names, parameter values and tags (not in their keys)
    log_sweep(uri, "hostile", [
        _dense(0, 80.0, name=HOSTILE, params={"arch.family": family, "train.lr": HOSTILE}),
        _dense(1, 82.0, name=HOSTILE, params={"arch.family": family, "train.lr": "2"}),
        {"name": HOSTILE, "status": "failed", "params": {"train.lr": HOSTILE},
         "error": f"RuntimeError: {HOSTILE}\n\nTraceback: {HOSTILE}"},
    ])
    log_sweep(uri, "nothing-done", [
        {"name": "resnet20-identity-w16", "status": "failed", "params": {"arch.family": "resnet"},
         "error": "ValueError: bad batch\n\nTraceback (most recent call last): ..."},
        {"name": "resnet32-identity-w16", "status": "running", "params": {"arch.family": "resnet"},
         "history": _curve(10, 1)},
    ])
    Tracker(uri, "empty").setup()
    log_sweep(uri, "dense", [_dense(0, 80.0)])
    return uri


# --- plain data -------------------------------------------------------------------------------------


def test_pareto_front_and_seed_groups() -> None:
    # (cost, accuracy): (3, 70) is dominated by (2, 75)
    assert pareto_front([(1, 60), (2, 75), (3, 70), (4, 80)], "min") == [0, 1, 3]
    # throughput is maximised: (100, 60) is dominated by (200, 75)
    assert pareto_front([(100, 60), (200, 75), (50, 90)], "max") == [1, 2]

    def run(i: int, seed: int, acc: float, lr: str = "0.1") -> dict[str, Any]:
        return {"run_id": f"r{i}", "run_name": "resnet20", "experiment": "e",
                "experiment_id": "1", "status": "FINISHED",
                "tags": {"resbench.status": "completed", "mlflow.parentRunId": "p"},
                "params": {"arch.family": "resnet", "arch.depth": "20", "arch.skip": "identity",
                           "train.seed": str(seed), "train.lr": lr, "train.threads": str(i)},
                "metrics": {"test_acc": acc}, "history": {}}

    trials = [Trial.from_run(r) for r in
              (run(1, 0, 90.0), run(2, 1, 92.0), run(3, 2, 94.0), run(4, 0, 50.0, lr="9"))]
    groups = group_trials(trials)
    assert [len(g.trials) for g in groups] == [3, 1]  # seeds (and threads) merged, lr not
    s = groups[0].stat("test_acc")
    assert (s.mean, s.std, s.n) == (92.0, 2.0, 3)
    report = build_report([run(1, 0, 90.0), run(2, 1, 92.0), run(4, 0, 50.0, lr="9")], ["e"])
    assert "91.00 ± 1.41" in report.html and "91.00 ± 1.41" in report.markdown
    assert "resnet20 (lr=0.1)" in report.html and "resnet20 (lr=9)" in report.html
    assert report.warnings == []


# --- Tracker-logged stores ----------------------------------------------------------------------------


def test_untrusted_strings_are_escaped(hand: str, tmp_path: Path, browser: Any) -> None:
    out = write_report(hand, ["hostile"], tmp_path / "hostile.html")
    text = out.read_text()
    assert HOSTILE not in text and "<img src=x" not in text
    assert text.count("<script") == 1  # only the report's own sorting script
    md = report_paths(out)[1].read_text()
    assert HOSTILE not in md and "&lt;script&gt;" in md
    o = open_report(browser, out)
    check_renders(o)
    page = o.page
    assert page.evaluate("() => document.scripts.length") == 1
    assert page.evaluate("() => document.querySelectorAll('img').length") == 0
    assert page.locator("#trials tbody tr").count() == 3
    assert HOSTILE in page.locator("#trials").inner_text()  # shown as text
    assert HOSTILE in page.locator("#failures").inner_text()
    # legend entries, as SVG text; the two groups told apart by their learning rate
    legend = page.locator("#curves svg").first.text_content()
    assert f"{HOSTILE} (lr={HOSTILE}," in legend and f"{HOSTILE} (lr=2," in legend
    page.close()


def test_zero_finished_trials_and_empty_experiment(hand: str, tmp_path: Path, browser: Any,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "reports" / "z.html"
    rc = report_cli.main(["--experiment", "nothing-done", "--experiment", "empty",
                          "--tracking-uri", hand, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert all(p.is_file() for p in report_paths(out))
    o = open_report(browser, out)
    check_renders(o)
    overview = o.page.locator("#overview").inner_text()
    assert "'nothing-done' has no finished trials" in overview
    assert "'empty' has no trials yet" in overview
    assert "No finished trial" in o.page.locator("#pareto").inner_text()
    assert o.page.locator("#trials tbody tr").count() == 2
    assert o.page.locator("#summary tbody tr").count() == 2  # two architectures, not seeds
    failures = o.page.locator("#failures").inner_text()
    assert "ValueError: bad batch" in failures and "still running" in failures
    o.page.close()


def test_unknown_experiment_lists_existing(hand: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "reports" / "r.html"
    rc = report_cli.main(["--experiment", "nothing-don", "--tracking-uri", hand, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown experiment 'nothing-don'" in err and "did you mean 'nothing-done'" in err
    assert "existing: Default, dense, empty, hostile, nothing-done" in err
    assert not out.parent.exists()  # nothing written
    with pytest.raises(ConfigError, match="no MLflow store"):  # never creates a store
        write_report(f"sqlite:///{tmp_path / 'absent.db'}", ["x"], out)
    assert not (tmp_path / "absent.db").exists()
    with pytest.raises(ConfigError, match="must end in .html"):
        write_report(hand, ["dense"], tmp_path / "r.txt")


def test_writing_is_atomic(hand: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = hand
    folder = tmp_path / "reports"
    out = write_report(uri, ["dense"], folder / "dense.html")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(before) == {"dense.html", "dense.md", "dense.csv"}
    umask = os.umask(0o022)
    os.umask(umask)
    for p in folder.iterdir():  # ordinary files (mode 0666 less the umask), not mkstemp's 0600
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, (p.name, oct(p.stat().st_mode))

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(ResbenchError, match="cannot write the report"):
        write_report(uri, ["dense"], out)
    monkeypatch.undo()
    # the previous report is intact and no temporary file is left behind
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(ConfigError, match="unknown experiment"):
        write_report(uri, ["nope"], out)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # --sweep keeps one sweep's runs
    only = write_report(uri, ["dense", "hostile"], tmp_path / "one.html", sweeps=["dense-sweep"])
    assert len(report_paths(only)[2].read_text().strip().splitlines()) == 1 + 1


def _study_results(form: str, claim: str) -> dict[str, Any]:
    """A study results file as ``launchers.study`` writes it: two trials, three verdict rows."""
    hist = [{"epoch": float(e), "train_loss": 2.0 / e, "train_acc": 40.0 + 10 * e,
             "test_loss": 1.5 / e, "test_acc": 30.0 + 10 * e} for e in (1, 2, 3)]

    def trial(role: str, family: str, depth: int) -> dict[str, Any]:
        return {"role": role, "label": f"{role}-w16", "status": "completed", "message": "",
                "spec": {"arch": {"family": family, "depth": depth, "skip": "none" if family
                                  == "plain" else "projection"}, "train": {"test_every": 1}},
                "metrics": {**hist[-1], "params": 1000.0, "macs": 1e6}, "history": hist,
                "diagnostics": {}, "env": {}, "wall_time_s": 3.0}

    return {"format": 1, "study": "degradation", "title": f"Degradation {HOSTILE}",
            "form": form, "claim": claim, "citation": "He et al. 2016", "device": "NVIDIA H100",
            "command": "python -m launchers.study degradation --tarball cifar10-jpeg.tar.gz",
            "started": "2026-11-26T10:00:00+00:00", "wall_time_s": 312.0,
            "trials": [trial("plain20", "plain", 20), trial("resnet20", "resnet", 20)],
            "verdict": [
                {"claim": f"plain-56 trains worse {HOSTILE}", "paper": "0.75 vs 0.36",
                 "measured": "0.71 vs 0.33", "verdict": "consistent", "note": ""},
                {"claim": "ResNet-56 beats ResNet-20", "paper": "6.97% vs 8.75%",
                 "measured": "12.1% vs 12.0%", "verdict": "not consistent", "note": "one seed"},
                {"claim": "plain-110 fails", "paper": "> 60%", "measured": "n/a",
                 "verdict": "not measured", "note": ""}]}


def test_study_claims_section_in_chromium(tmp_path: Path, browser: Any) -> None:
    from launchers import study as study_cli

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for form in ("gpu", "smoke"):
        path = tmp_path / f"{form}.json"
        results = _study_results(form, f"Deeper plain nets train worse ({form})")
        if form == "smoke":
            results["started"] = "2026-11-26T11:00:00+00:00"
        path.write_text(json.dumps(results))
        assert study_cli.main(["import", str(path), "--tracking-uri", uri]) == 0
    out = write_report(uri, ["study-degradation"], tmp_path / "study.html")
    html_text = out.read_text()
    assert HOSTILE not in html_text
    md = report_paths(out)[1].read_text()
    assert "## Claims: papers vs resbench" in md and "| ResNet-56 beats ResNet-20 |" in md
    o = open_report(browser, out)
    check_renders(o)
    page = o.page
    # the claims come first, one table per imported study (GPU form and smoke form)
    ids = page.evaluate("() => Array.from(document.querySelectorAll('section')).map(s => s.id)")
    assert ids[:2] == ["overview", "claims"]
    claims = page.locator("#claims")
    assert claims.locator("table").count() == 2
    text_ = claims.inner_text()
    assert f"Degradation {HOSTILE}" in text_ and f"plain-56 trains worse {HOSTILE}" in text_
    assert "Deeper plain nets train worse (gpu)" in text_ and "device: NVIDIA H100" in text_
    assert "wall time: 312 s" in text_ and "--tarball cifar10-jpeg.tar.gz" in text_
    assert text_.count("Smoke form") == 1
    first = claims.locator("table").first
    assert first.locator("tbody tr").count() == 3
    assert first.locator(".v-ok").inner_text() == "consistent"
    assert first.locator(".v-bad").inner_text() == "not consistent"
    # per-epoch test accuracy reaches the degradation figure (test, not validation, error)
    assert "test error (bold)" in page.locator("#degradation").inner_text()
    page.close()


def test_published_studies_report_in_chromium(browser: Any) -> None:
    """The committed report of the CPU-form studies (docs/results/studies.html) opens offline
    and shows one claims table per study."""
    path = REPO / "docs" / "results" / "studies.html"
    o = open_report(browser, path)
    check_renders(o)
    claims = o.page.locator("#claims")
    assert claims.locator("table").count() == 8
    assert "form: cpu" in claims.inner_text()
    o.page.close()


def test_verdict_artifact_shape_is_checked() -> None:
    from bench.report.fetch import verdict_of

    assert verdict_of(None) is None and verdict_of({"rows": "x"}) is None
    got = verdict_of({"title": "t", "rows": [{"claim": "c", "paper": "p", "measured": 1,
                                              "verdict": "info"}, {"claim": "no verdict"}, 3]})
    assert got == {"title": "t", "rows": [{"claim": "c", "paper": "p", "measured": "1",
                                           "verdict": "info", "note": ""}]}


# --- readable figures: tooltips, stopped trials, intervals, one series per block -----------------

DATA = {"data.subset": "400", "data.val_fraction": "0.25", "data.test_subset": "200"}
VAL_IMAGES = 100  # 400 x 0.25


def _resnet(depth: int, skip: str, block: str, seed: int, val: float, status: str = "completed",
            epochs: int = 4, throughput: float = 1000.0) -> dict[str, Any]:
    """A ResNet / plain trial; cost grows with depth (x2 for bottleneck blocks)."""
    name = f"resnet{depth}-{skip}-{block}"
    cost = depth * (2 if block == "bottleneck" else 1)
    history = [{"train_loss": 2.0 / e, "train_acc": val - 4 * (epochs - e),
                "val_acc": val - 3 * (epochs - e)} for e in range(1, epochs + 1)]
    final = {"params": 1e3 * cost, "macs": 1e5 * cost, "infer_img_per_s": throughput / cost,
             "latency_ms_p50": 0.1 * cost, "latency_ms_p90": 0.12 * cost, "val_acc": val}
    if status == "completed":
        final["test_acc"] = val - 1
    return {"name": name, "status": status, "history": history, "final": final,
            "params": {"arch.family": "plain" if skip == "none" else "resnet",
                       "arch.depth": str(depth), "arch.skip": skip,
                       "arch.stages.0.block": block, "train.seed": str(seed), **DATA}}


@pytest.fixture(scope="module")
def readable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a Tracker-logged sweep with seeds, stopped trials and two block types."""
    base = tmp_path_factory.mktemp("readable")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    log_sweep(uri, "readable", [
        _resnet(8, "identity", "basic", 0, 80.0, throughput=1000.0),
        _resnet(8, "identity", "basic", 1, 82.0, throughput=1100.0),
        _resnet(14, "identity", "basic", 0, 86.0),
        _resnet(14, "identity", "basic", 1, 88.0),
        _resnet(14, "identity", "bottleneck", 0, 84.0),  # dominated
        _resnet(20, "identity", "bottleneck", 0, 91.0),
        _resnet(8, "none", "basic", 0, 70.0),
        _resnet(20, "none", "basic", 0, 60.0, status="stopped", epochs=2),  # ASHA cut it
    ], params={"objectives": json.dumps({"val_acc": "max"})})
    return write_report(uri, ["readable"], base / "readable.html")


def test_pareto_tooltip_on_hover_in_chromium(readable: Path, browser: Any) -> None:
    o = open_report(browser, readable)
    check_renders(o)
    page = o.page
    assert page.locator("#smoke-banner").count() == 0  # not smoke runs
    tip = page.locator(".tooltip")
    assert not tip.is_visible()
    marker = page.locator('#pareto g.tip[data-tip^="resnet14-identity-basic"]').first
    marker.scroll_into_view_if_needed()
    box = marker.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip.wait_for(state="visible", timeout=5000)
    text_ = tip.inner_text()
    assert text_.startswith("resnet14-identity-basic") and "variant: resnet (identity)" in text_
    assert "val_acc: 87.00 ± 1.41 over 2 seeds" in text_ and "(objective)" in text_
    assert f"{VAL_IMAGES} images" in text_ and "test_acc: 86.00" in text_
    page.mouse.move(1, 1)
    tip.wait_for(state="hidden", timeout=5000)
    # every marker of every figure has a tooltip; the browser's own is not shown twice
    assert page.locator("svg g.tip > title").count() == 0
    # 4 panels x 6 configurations + the front's 3 labels x 4; a marker per completed
    # configuration; a line per trial and curve, and the stopped trial's end points
    counts = {sid: page.locator(f"#{sid} svg g.tip[data-tip]").count()
              for sid in ("pareto", "depth", "curves")}
    assert counts == {"pareto": 4 * 6 + 4 * 3, "depth": 5, "curves": 2 * 8 + 2}, counts
    pareto = page.locator("#pareto svg").text_content()
    # direct labels: the front of completed configurations, the stopped one not on it
    for name in ("resnet8-identity-basic", "resnet14-identity-basic",
                 "resnet20-identity-bottleneck"):
        assert name in pareto
    assert "resnet14-identity-bottleneck" not in pareto  # dominated: no label, tooltip only
    stopped = page.locator('#pareto g.tip[data-tip^="resnet20-none-basic"]')
    assert stopped.count() >= 4  # drawn in each panel, at its last epoch
    assert "stopped early at epoch 2" in stopped.first.get_attribute("data-tip")
    caption = page.locator("#pareto figcaption").inner_text()
    assert "val_acc, the search's objective" in caption and "Hollow markers" in caption
    assert "Wilson" in caption and "std over seeds" in caption and "throughput" in caption
    assert "Star" not in caption and "timm" not in caption  # no reference was drawn
    page.close()


def test_tables_intervals_and_depth_series_in_chromium(readable: Path, browser: Any) -> None:
    from bench.report.model import wilson

    o = open_report(browser, readable)
    page = o.page
    # tables fit the page: nothing to scroll sideways at a laptop's width
    widths = page.evaluate("""() => Array.from(document.querySelectorAll('.scroll'))
        .map(d => [d.querySelector('table').id, d.scrollWidth, d.clientWidth])""")
    assert all(sw <= cw for _, sw, cw in widths), widths
    summary = page.locator("#summary tbody tr")
    first = summary.first.inner_text()  # ranked by the objective, val_acc
    assert first.startswith("resnet20-identity-bottleneck"), first
    lo, hi = wilson(91.0, VAL_IMAGES)
    assert f"91.00\n[{lo:.1f}, {hi:.1f}]" in first
    row = page.locator("#summary tbody tr", has_text="resnet8-identity-basic").inner_text()
    assert "81.00 ± 1.41" in row
    assert "± " in row.split("\t")[5]  # throughput of two trials measured: its spread
    assert "stopped, epoch 2" in page.locator("#summary tbody tr",
                                              has_text="resnet20-none-basic").inner_text()
    # error vs depth: one labelled series per variant and block type, whole-depth ticks
    svg = page.locator("#depth svg")
    legend = svg.text_content()
    for series in ("resnet (identity), basic blocks", "resnet (identity), bottleneck blocks",
                   "plain, basic blocks"):
        assert series in legend
    ticks = page.evaluate("""() => Array.from(document.querySelectorAll(
        '#depth svg g[id*="xtick_"] text')).map(t => t.textContent.trim())""")
    assert ticks == ["8", "14", "20"], ticks
    caption = page.locator("#depth figcaption").inner_text()
    assert "one line per variant, block type" in caption and "Wilson" in caption
    page.close()


def test_one_colour_per_variant_across_figures() -> None:
    from bench.report import plots

    runs = [{"run_id": f"r{i}", "run_name": n, "experiment": "e", "experiment_id": "1",
             "status": "FINISHED", "tags": {"resbench.status": "completed"},
             "params": {"arch.family": f, "arch.skip": k, "arch.depth": "8"},
             "metrics": {"val_acc": 50.0}, "history": {}}
            for i, (n, f, k) in enumerate([("a", "resnet", "identity"), ("b", "plain", "none"),
                                           ("c", "densenet", "concat"), ("d", "vgg", "")])]
    groups = group_trials([Trial.from_run(r) for r in runs])
    colors = plots.palette(groups)
    assert colors == plots.palette(groups[::-1])  # the same whatever the order
    assert len(set(colors.values())) == len(colors) == 4
    assert colors["plain"] == plots.VARIANT_COLORS["plain"]


def test_smoke_runs_carry_a_banner(tmp_path: Path, browser: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_sweep(uri, "quick", [_resnet(8, "identity", "basic", 0, 80.0)],
              tags={"resbench.smoke": "true"})
    log_sweep(uri, "quick-smoke", [_resnet(8, "identity", "basic", 0, 80.0)])
    log_sweep(uri, "real", [_resnet(8, "identity", "basic", 0, 80.0)],
              tags={"resbench.smoke": "false"})
    assert "Smoke runs" not in report_paths(
        write_report(uri, ["real"], tmp_path / "real.html"))[1].read_text()
    out = write_report(uri, ["quick", "quick-smoke"], tmp_path / "smoke.html")
    assert "**Smoke runs.**" in report_paths(out)[1].read_text()
    o = open_report(browser, out)
    check_renders(o)
    banner = o.page.locator("#smoke-banner")
    assert banner.is_visible()
    text_ = banner.inner_text()
    assert "experiment 'quick-smoke'" in text_ and "1 sweep tagged resbench.smoke" in text_
    o.page.close()


# --- the real sweep -----------------------------------------------------------------------------------


def test_sweep_report_in_chromium(sweep: Sweep, sweep_report: Path, browser: Any) -> None:
    out = sweep_report
    o = open_report(browser, out)
    check_renders(o)
    page = o.page
    assert sections(page) == SWEEP_SECTIONS  # no lesion study was recorded: no lesion section
    rows = page.locator("#trials tbody tr")
    assert rows.count() == len(sweep.children)
    table = page.locator("#trials").inner_text()
    assert all(r.info.run_id in table for r in sweep.children)
    # seeds merged: 4 ResNet configurations, 2 DenseNet ones (one diverged), 1 reference
    assert page.locator("#summary tbody tr").count() == 7
    assert "±" in page.locator("#summary").inner_text()
    # sorting by test accuracy (the sorting script runs under the page's CSP)
    col = page.evaluate("""() => Array.from(document.querySelectorAll('#trials thead th'))
        .findIndex(th => th.textContent.startsWith('test acc'))""")
    page.locator("#trials thead th").nth(col).click()
    keys = page.evaluate(f"""() => Array.from(document.querySelectorAll('#trials tbody tr'))
        .map(r => r.cells[{col}].getAttribute('data-v'))""")
    numbers = [float(k) for k in keys if k]
    assert numbers == sorted(numbers) and len(numbers) == SEARCH_TRIALS - 1
    assert keys[len(numbers):] == [""] * (len(keys) - len(numbers))  # no accuracy: last
    failures = page.locator("#failures").inner_text()
    assert "diverged" in failures and "loss became nan" in failures
    runs = page.locator("#runs").inner_text()
    assert sweep.parent_id in runs and "torch" in runs and "git_sha" in runs
    assert "timm-resnet10t" in page.locator("#pareto svg").text_content()
    assert page.locator("#smoke-banner").count() == 0  # resbench.smoke is "false"
    # a real mouse over a Pareto-front point shows its tooltip
    front = page.locator("#pareto svg g.tip[data-tip]").first
    front.scroll_into_view_if_needed()
    box = front.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator(".tooltip").wait_for(state="visible", timeout=5000)
    shown = page.locator(".tooltip").inner_text()  # the hovered point (here the timm reference)
    assert "params:" in shown and shown.splitlines()[0] in page.locator("#pareto").inner_text()
    assert o.errors == []
    page.close()
    md, csv_text = (p.read_text() for p in report_paths(out)[1:])
    assert "## Summary" in md and "## Trials" in md and sweep.parent_id in md
    lines = csv_text.strip().splitlines()
    assert len(lines) == 1 + len(sweep.children)
    assert {ln.split(",")[3] for ln in lines[1:]} == {r.info.run_id for r in sweep.children}


def test_two_experiments_with_lesion(sweep: Sweep, browser: Any, tmp_path: Path) -> None:
    lesion_metrics = {"lesion/baseline": 90.0, "lesion/single/stage1.block1": 70.0,
                      "lesion/single/stage2.block1": 50.0, "lesion/random_k_mean/2": 60.0,
                      "lesion/random_k_std/2": 2.0}
    ids = log_sweep(sweep.uri, "densenet-extra", [
        _dense(0, 80.0, params={"diagnostics.lesion": "True"},
               artifacts={"lesion.json": json.dumps(LESION)}),
        {**_dense(1, 84.0), "final": {"params": 1.0e6, "macs": 2.7e8, "test_acc": 84.0,
                                      **lesion_metrics}},
    ])
    lesions = {r["run_id"]: r["lesion"]
               for r in fetch_experiment_runs(sweep.uri, ["densenet-extra"])}
    assert lesions[ids[0]]["single"] == LESION["single"]  # from the lesion.json artifact
    assert lesions[ids[1]]["random_k_mean"] == {"2": 60.0}  # from lesion/* metrics
    out = write_report(sweep.uri, [SWEEP_EXP, "densenet-extra"], tmp_path / "both.html")
    o = open_report(browser, out)
    check_renders(o)
    page = o.page
    assert "lesion" in sections(page) and "families" in sections(page)
    assert page.locator("#trials tbody tr").count() == len(sweep.children) + len(ids)
    overview = page.locator("#overview").inner_text()
    assert SWEEP_EXP in overview and "densenet-extra" in overview
    assert "densenet40-k12 [densenet-extra]" in page.locator("#summary").inner_text()
    page.close()


def test_mlflow_server_serves_runs_and_report(sweep: Sweep, sweep_report: Path, server: str,
                                              tmp_path: Path) -> None:
    import requests

    local = sweep_report
    assert log_report(server, sweep.parent_id, local) == [
        "report/report-test.html", "report/report-test.md", "report/report-test.csv"]
    exp = requests.get(f"{server}/api/2.0/mlflow/experiments/get-by-name",
                       params={"experiment_name": SWEEP_EXP}, timeout=10).json()["experiment"]
    # runs/search is a POST endpoint in MLflow's REST API
    found = requests.post(f"{server}/api/2.0/mlflow/runs/search", timeout=10, json={
        "experiment_ids": [exp["experiment_id"]], "max_results": 100}).json()["runs"]
    assert {r["info"]["run_id"] for r in found} == \
        {sweep.parent_id} | {r.info.run_id for r in sweep.children}
    listed = requests.get(f"{server}/api/2.0/mlflow/artifacts/list", timeout=10,
                          params={"run_id": sweep.parent_id, "path": "report"}).json()
    assert {f["path"] for f in listed["files"]} == {
        "report/report-test.html", "report/report-test.md", "report/report-test.csv"}
    got = requests.get(f"{server}/get-artifact", timeout=10,
                       params={"run_id": sweep.parent_id, "path": "report/report-test.html"})
    assert got.status_code == 200 and got.content == local.read_bytes()
    # a report read through the server's REST API links each run to the server's UI
    remote = write_report(server, [SWEEP_EXP], tmp_path / "remote.html").read_text()
    child = sweep.children[0].info.run_id
    assert f'href="{server}/#/experiments/{exp["experiment_id"]}/runs/{child}"' in remote
