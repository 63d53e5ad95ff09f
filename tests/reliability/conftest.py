"""Shared helpers of the reliability suite: a tiny space, an in-process launcher runner that
checks nothing was written, a subprocess runner, one Ray session per module whose workers can
import the fault-injection plugin (``resbench_faults``, in this folder), and a check at the end
of the suite that no MLflow store it wrote holds a parent run left RUNNING."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PLUGIN = "resbench_faults"

# ResNet-8 at width 4 on 200 8x8 digits: 160 training images = 2 steps of 64 per epoch (the
# fault plugin strikes at the third step, in epoch 2), one intra-op thread.
TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "digits", "subset": 200, "test_subset": 100, "val_fraction": 0.2,
                "image_size": 8, "augment": False},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.05, "device": "cpu",
              "eval_batch_size": 256, "threads": 1},
    "arch": {"depth": 8, "width": 4},
    "search": {"algorithm": "grid"},
}


def plugin_env(fault_dir: str | None = None) -> dict[str, str]:
    """Environment that lets the driver and Ray workers import the plugin."""
    env = {"PYTHONPATH": os.pathsep.join(
        p for p in (str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    if fault_dir:
        env["RESBENCH_FAULT_DIR"] = fault_dir
    return env


def write_space(path: Path, data: dict[str, Any] | str) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def space_of(name: str, **sections: Any) -> dict[str, Any]:
    data = {**TINY, "name": name}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def launcher_cmd(space: Path, uri: str, storage: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "launchers.sweep", "--space", str(space), "--tracking-uri",
            uri, "--storage", str(storage), "--progress-interval", "3600", *extra]


def run_subprocess(cmd: list[str], timeout: float, env: dict[str, str] | None = None
                   ) -> tuple[int | str, str, str]:
    """(exit code or 'timeout', stdout, stderr) of the launcher as its own process."""
    full_env = {**os.environ, **plugin_env(), **(env or {})}
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        def text(b: Any) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
        return "timeout", text(exc.stdout), text(exc.stderr)
    return proc.returncode, proc.stdout, proc.stderr


def mount_read_only(folder: Path) -> Callable[[], None]:
    """``folder`` (made if missing) turned into a read-only bind mount of itself, the way a
    volume goes read-only (as root, chmod stops no write; a read-only file system does); returns
    the function that unmounts it again. Skips the test, saying why, where mounting is not
    permitted (not root, no mount(8), a container without CAP_SYS_ADMIN)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only bind mount needs root and mount(8)")

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)

    bound = call("--bind", str(folder), str(folder))
    if bound.returncode:
        pytest.skip(f"mounting is not permitted here: {bound.stderr.strip() or bound.returncode}")

    def unmount() -> None:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)

    made_ro = call("-o", "remount,ro,bind", str(folder))
    if made_ro.returncode:
        unmount()
        pytest.skip(f"remounting read-only is not permitted here: {made_ro.stderr.strip()}")
    return unmount


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory: pytest.TempPathFactory):
    """One local Ray for the module (2 CPUs, one logical GPU so that GPU requests can be
    checked against it); its workers see the plugin folder and a fault-marker folder."""
    from launchers.sweep import configure_environment

    configure_environment(local=True)
    fault_dir = str(tmp_path_factory.mktemp("faults"))
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RESBENCH_FAULT_DIR")}
    os.environ.update(plugin_env(fault_dir))
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import ray

    temp = tempfile.mkdtemp(prefix="rbr-")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             _temp_dir=temp, logging_level="WARNING")
    yield {"fault_dir": fault_dir, "address": ray.get_runtime_context().gcs_address,
           "temp": temp}
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def running_parents(root: Path) -> list[str]:
    """``<store>: <run name>`` of every sweep parent run still RUNNING in the SQLite MLflow
    stores (``*.db``) under ``root``."""
    import sqlite3

    found = []
    for db in sorted(root.rglob("*.db")):
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                rows = con.execute(
                    "select r.name from runs r join tags t on t.run_uuid = r.run_uuid "
                    "where t.key = 'resbench.role' and t.value = 'sweep' and r.status = 'RUNNING'"
                ).fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            continue  # not an MLflow store (a corrupt-store case, a half-made one)
        found += [f"{db}: {name}" for (name,) in rows]
    return found


@pytest.fixture(scope="package", autouse=True)
def no_parent_left_running(tmp_path_factory: pytest.TempPathFactory):
    """After the whole reliability suite: no error exit left a sweep's parent run RUNNING in
    any store the suite wrote (all of them live under pytest's base temp folder)."""
    yield
    base = tmp_path_factory.getbasetemp()
    left = running_parents(base)
    assert not left, f"parent runs left RUNNING: {left}"
