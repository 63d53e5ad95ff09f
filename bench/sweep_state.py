"""Sweep state files (``sweep.json``: what ``--resume`` continues) on a local folder or an
``s3://`` / ``gs://`` storage URI (pyarrow): written whole (temp file, then rename), read back,
and the latest or the resumable sweep of a name found."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from bench.errors import ConfigError

STATE_FILE = "sweep.json"


# --- storage (local folders or s3:// via pyarrow) ------------------------------------------------


def filesystem(uri: str) -> tuple[Any, str]:
    import pyarrow.fs

    if "://" in uri:
        return pyarrow.fs.FileSystem.from_uri(uri)
    return pyarrow.fs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def write_state(sweep_dir: str, state: dict[str, Any]) -> None:
    """The sweep's state file, whole or not at all: a local one through a temp file and a
    rename (a kill mid-write leaves the previous one), an object store's put is atomic."""
    from bench.jsonio import write_atomic
    from bench.redaction import redacted

    text = json.dumps(redacted(state), indent=2, default=str)
    fs, path = filesystem(sweep_dir)
    if not is_uri(sweep_dir):
        write_atomic(join_uri(path, STATE_FILE), text)
        return
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(join_uri(path, STATE_FILE)) as f:
        f.write(text.encode())


def read_state(sweep_dir: str) -> dict[str, Any] | None:
    """The state of the sweep in ``sweep_dir``; None when it has none. A file that is not a
    state (empty, cut short, not JSON) raises ConfigError naming it."""
    import pyarrow.fs

    fs, path = filesystem(sweep_dir)
    target = join_uri(path, STATE_FILE)
    if fs.get_file_info(target).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(target) as f:
        raw = f.read()
    try:
        state = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        why = "it is empty" if not raw.strip() else f"not JSON ({exc})"
        raise ConfigError(f"the sweep state {join_uri(sweep_dir, STATE_FILE)} is corrupt: {why}; "
                          "it cannot be resumed (start a new sweep, or restore the file)") from None
    if not isinstance(state, dict) or not {"sweep_id", "name", "space_hash"} <= set(state):
        raise ConfigError(f"the sweep state {join_uri(sweep_dir, STATE_FILE)} is corrupt: not a "
                          "sweep's state (sweep_id, name, space_hash missing)")
    return state


def find_latest(storage: str, name: str) -> str | None:
    """The most recently started sweep of space ``name`` under ``storage``; other sweeps'
    corrupt state files are skipped with a warning (one of them cannot block every space)."""
    import pyarrow.fs

    fs, path = filesystem(storage)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return None
    best: tuple[float, str] | None = None
    for info in fs.get_file_info(pyarrow.fs.FileSelector(path)):
        if info.type != pyarrow.fs.FileType.Directory:
            continue
        sweep_dir = join_uri(storage.rstrip("/"), info.base_name)
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
    jobs = [join_uri(sweep_dir, job) for job in ("search", "references")]
    return sweep_dir if any(can_restore(j) for j in jobs) or state.get("parent_run_id") else None


def is_uri(path: str) -> bool:
    """True for ``scheme://...`` storage (s3, gs, ...), False for a local path."""
    return "://" in path and not path.startswith("file://")
