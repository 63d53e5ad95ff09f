"""Hostile input, round two: valid YAML with hostile content (alias expansions, duplicate keys,
deep nesting, huge files, bytes that are not UTF-8 text), values that pass the type rules but
could never run (giant depths and widths, trial and epoch counts, names, seeds, infinite
bounds, more CPUs than any node), endpoints and stores that cannot be used (every tracking URI
scheme, storage schemes, artifact folders, cluster addresses) and plugins that raise or exit.

Each class is a generator of cases (``HOSTILE``), not one example: every case must exit 2 with
one ``error:`` line that names the file or option, the key path and the limit or the valid
values, within its time bound, with nothing written (the checks of ``test_bad_input``).
"""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.config import YAML_MAX_BYTES, YAML_MAX_DEPTH, YAML_MAX_VALUES
from bench.models.spec import MAX_STAGES
from launchers.sweep import main

from .conftest import launcher_cmd, run_subprocess
from .test_bad_input import QUICKSTART, Case, _closed_port, check_rejected, prepare


@dataclass
class Hostile(Case):
    """A bad-input case whose space file may be raw bytes (``raw`` replaces the text)."""

    raw: bytes | None = None


def _quickstart_text(**changes: Any) -> str:
    data = copy.deepcopy(QUICKSTART)
    for path, value in changes.items():
        node = data
        parts = path.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return yaml.safe_dump(data, sort_keys=False)


# --- valid YAML, hostile content ------------------------------------------------------------


def laughs(fanout: int, levels: int, field: str) -> str:
    """A "billion laughs": ``levels`` anchors each referencing the previous ``fanout`` times
    (fanout**levels values once expanded), the last one referenced from ``field``."""
    lines = ["name: laughs", "arch: {depth: 8}", "l0: &l0 [" + ", ".join(["lol"] * fanout) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fanout) + "]")
    section, _, key = field.partition(".")
    lines.append(f"{section}:\n  {key}: *l{levels}" if key else f"{section}: *l{levels}")
    return "\n".join(lines) + "\n"


def duplicate(path: str) -> tuple[str, int, int]:
    """Quickstart with the key at ``path`` (dotted) given twice; (text, first line, second)."""
    lines = yaml.safe_dump(QUICKSTART, sort_keys=False).splitlines()
    parts = path.split(".")
    line, indent = -1, 0
    for depth, part in enumerate(parts):
        prefix = " " * (2 * depth) + f"{part}:"
        line = next(i for i in range(line + 1, len(lines)) if lines[i].startswith(prefix))
        indent = 2 * depth
    end = line + 1
    while end < len(lines) and (lines[end].startswith(" " * (indent + 1)) or
                                lines[end].startswith(" " * indent + "- ")):
        end += 1
    block = lines[line:end]
    out = lines[:end] + block + lines[end:]
    return "\n".join(out) + "\n", line + 1, end + 1


def nested(depth: int, style: str) -> str:
    if style == "flow-list":
        value = "[" * depth + "]" * depth
    elif style == "flow-map":
        value = "{a: " * depth + "1" + "}" * depth
    else:  # block mappings, two spaces a level
        return "name: deep\nx:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(depth)) \
            + "  " * (depth + 1) + "1\n"
    return f"name: deep\nx: {value}\n"


HOSTILE: dict[str, Hostile] = {}

for fanout, levels in ((10, 9), (100, 4), (2, 30), (1000, 2)):
    for fld in ("train.epochs", "name", "search.seed"):
        HOSTILE[f"laughs-{fanout}^{levels}-in-{fld}"] = Hostile(
            laughs(fanout, levels, fld),
            ["space.yaml", f"more than {YAML_MAX_VALUES:,} values", "aliases"])

for key in ("name", "train", "train.epochs", "search.algorithm", "space.depth",
            "space.depth.choice", "resources"):
    try:
        text, first, second = duplicate(key)
    except StopIteration:
        continue
    HOSTILE[f"duplicate-{key}"] = Hostile(
        text, ["space.yaml", f"{key}: duplicate key '{key.split('.')[-1]}'", f"line {second}",
               f"first at line {first}"])

for depth in (YAML_MAX_DEPTH + 1, 200, 1000, 30_000, 100_000):
    for style in ("flow-list", "flow-map", "block"):
        if style == "block" and depth * depth > YAML_MAX_BYTES:
            continue  # block nesting grows as depth**2 (10 GB at 100,000): over the size limit
        text = nested(depth, style)
        if len(text) > YAML_MAX_BYTES:
            continue  # over the size limit: that class has its own cases
        HOSTILE[f"nested-{style}-{depth}"] = Hostile(
            text, ["space.yaml", f"nested deeper than {YAML_MAX_DEPTH} levels",
                   f"the limit is {YAML_MAX_DEPTH}"])

HOSTILE["size-comments"] = Hostile("name: big\n" + "#" * (YAML_MAX_BYTES + 1) + "\n",
                                ["space.yaml", f"larger than {YAML_MAX_BYTES // 1024} KiB"])
HOSTILE["size-million-references"] = Hostile(
    "name: big\na: &a 1\nb: [" + ", ".join(["*a"] * 1_000_000) + "]\n",
    ["space.yaml", f"larger than {YAML_MAX_BYTES // 1024} KiB"])

ENCODINGS: dict[str, tuple[bytes, list[str]]] = {
    "latin1": ("name: caf\xe9\n".encode("latin1"), ["not UTF-8 text", "0xe9", "line 1"]),
    "cut-utf8": (b"name: t\ndescription: " + "é".encode()[:1] + b"\n",
                 ["not UTF-8 text", "line 2"]),
    "utf16": ("name: t\n".encode("utf-16"), ["binary file"]),
    "nul-inside": (b"name: t\n\x00\n", ["binary file", "offset 8"]),
    "gzip": (b"\x1f\x8b\x08\x00" + bytes(range(256)), ["binary file"]),
    "high-bytes": (bytes(range(128, 256)), ["not UTF-8 text", "0x80"]),
}
for name, (raw, frags) in ENCODINGS.items():
    HOSTILE[f"bytes-{name}"] = Hostile("name: placeholder\n", ["space.yaml", *frags], raw=raw)

# --- values that pass the rules but cannot run ------------------------------------------------

GIANT = 6 * 10**8 + 2
for arch, frags in {
    "resnet-basic": ({"depth": {"choice": [GIANT]}}, ["space.depth", "limit is 2,000 blocks"]),
    "resnet-bottleneck": ({"depth": {"choice": [9 * 10**8 + 2]}, "block": {"choice": ["bottleneck"]}},
                          ["space.depth", "limit is 2,000 blocks"]),
    "densenet": ({"family": {"choice": ["densenet"]}, "depth": {"choice": [3 * 10**6 + 4]}},
                 ["space.depth", "limit is 2,000 blocks"]),
    "wrn": ({"family": {"choice": ["wrn"]}, "depth": {"choice": [6 * 10**5 + 4]}},
            ["space.depth", "limit is 2,000 blocks"]),
    "width": ({"width": {"choice": [10**6]}}, ["space.width", "limit is 8,192"]),
    "widen": ({"family": {"choice": ["wrn"]}, "depth": {"choice": [16]},
               "widen": {"choice": [10**4]}}, ["width of 320000 channels", "limit is 8,192"]),
    "input": ({"input_size": {"choice": [10**6]}}, ["space.input_size", "at most 2048"]),
}.items():
    axes, fr = frags
    HOSTILE[f"giant-{arch}"] = Hostile(_quickstart_text(space=axes, scheduler={"type": "none"},
                                                     search={"algorithm": "grid"}),
                                    ["space.yaml", *fr])
for n in (10_001, 10**9, 10**18):
    HOSTILE[f"num-samples-{n}"] = Hostile(_quickstart_text(search__num_samples=n),
                                       ["search.num_samples", "1..10,000", str(n)])
for n in (100_001, 10**9):
    HOSTILE[f"epochs-{n}"] = Hostile(_quickstart_text(train__epochs=n),
                                  ["train.epochs", "1..100,000", str(n)])
for epochs, subset, name in ((60_000, 20_000, "cifar100"), (30_000, None, "cifar10"),
                             (20_000, None, "synthetic")):
    data = {"name": name, "subset": subset}
    if name == "synthetic":
        data = {"name": name, "synthetic_size": 60_000, "shape": [3, 8, 8]}
    HOSTILE[f"image-passes-{name}"] = Hostile(
        _quickstart_text(train__epochs=epochs, dataset=data, scheduler={"type": "none"}),
        ["train.epochs", "image passes", "the limit is 1,000,000,000"])
HOSTILE["synthetic-too-big"] = Hostile(
    _quickstart_text(dataset={"name": "synthetic", "synthetic_size": 10**9, "shape": [3, 32, 32]}),
    ["dataset.synthetic_size", "GiB"])
for key, length in (("name", 5000), ("name", 101), ("tracking__experiment", 300)):
    HOSTILE[f"long-{key}-{length}"] = Hostile(
        _quickstart_text(**{key: "n" * length}),
        [key.replace("__", "."), f"{length} characters", "the limit is 100", "..."])
for seed in (-1, 2**32, 2**64, -(2**63)):
    for algorithm in ("optuna_tpe", "random"):
        HOSTILE[f"seed-{algorithm}-{seed}"] = Hostile(
            _quickstart_text(search__seed=seed, search__algorithm=algorithm),
            ["search.seed", "0..4294967295", str(seed)])
YAML_FLOATS = {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}
for bounds in (["0.001", "inf"], ["-inf", "0.1"], ["-inf", "inf"], ["nan", "0.1"]):
    for kind in ("uniform", "loguniform"):
        text = _quickstart_text(space={"depth": {"choice": [8]},
                                       "train.lr": {kind: ["LOW_BOUND", "HIGH_BOUND"]}})
        for placeholder, bound in zip(("LOW_BOUND", "HIGH_BOUND"), bounds, strict=True):
            text = text.replace(placeholder, YAML_FLOATS.get(bound, bound))
        HOSTILE[f"bounds-{kind}-{'-'.join(map(str, bounds))}"] = Hostile(
            text, [f"space.train.lr.{kind}", "finite numbers"])
for cpu in (3, 1000, 10**9):
    HOSTILE[f"cpus-{cpu}"] = Hostile(_quickstart_text(resources={"cpu": cpu}),
                                  ["resources.cpu", f"{cpu:g}", "largest node", "up to 2"],
                                  needs_ray=True)

# --- endpoints and stores ----------------------------------------------------------------------


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _not_sqlite(tmp: Path) -> None:
    (tmp / "db").mkdir()
    (tmp / "db" / "mlflow.db").write_text("this is a text file, not a database\n" * 10)


def _corrupt_sqlite(tmp: Path) -> None:
    (tmp / "db").mkdir()
    (tmp / "db" / "mlflow.db").write_bytes(b"SQLite format 3\0" + b"\xff" * 4000)


def _artifacts_is_a_file(tmp: Path) -> None:
    (tmp / "db").mkdir()
    (tmp / "db" / "artifacts").write_text("a file where the artifact folder goes\n")


# Dialects and the module each needs (SQLAlchemy 2.1's plain postgresql:// takes psycopg 3).
DRIVERS = {"postgresql": "psycopg", "postgresql+psycopg2": "psycopg2",
           "postgresql+pg8000": "pg8000", "mysql": "MySQLdb", "mysql+pymysql": "pymysql",
           "mssql+pyodbc": "pyodbc"}
for dialect, module in DRIVERS.items():
    if _installed(module):
        continue  # this machine has the driver: the unreachable-server cases use it
    HOSTILE[f"tracking-no-driver-{dialect}"] = Hostile(
        None, [f"{dialect}://***@127.0.0.1:1/db", f"driver '{module}'", "not installed"],
        uri=f"{dialect}://user:pw@127.0.0.1:1/db")
for dialect, module in DRIVERS.items():
    if not _installed(module):
        continue
    HOSTILE[f"tracking-unreachable-{dialect}"] = Hostile(
        None, ["cannot reach the database server 127.0.0.1:{port}", f"{dialect}://***@"],
        uri=f"{dialect}://user:pw@127.0.0.1:{{port}}/db")
for scheme in ("foo", "s3", "ftp", "sqlite3", "postgres"):
    HOSTILE[f"tracking-scheme-{scheme}"] = Hostile(
        None, [f"unknown tracking URI scheme '{scheme}'", "valid:", "sqlite", "http"],
        uri=f"{scheme}://host/path")
HOSTILE["tracking-not-sqlite"] = Hostile(None, ["{tmp}/db/mlflow.db", "not an SQLite database"],
                                      uri="sqlite:///{tmp}/db/mlflow.db", setup=_not_sqlite)
HOSTILE["tracking-corrupt-sqlite"] = Hostile(None, ["{tmp}/db/mlflow.db", "corrupt SQLite"],
                                          uri="sqlite:///{tmp}/db/mlflow.db",
                                          setup=_corrupt_sqlite)
HOSTILE["tracking-artifacts-unwritable"] = Hostile(
    None, ["artifact folder", "{tmp}/db/artifacts", "not a directory"],
    uri="sqlite:///{tmp}/db/mlflow.db", setup=_artifacts_is_a_file)
for scheme in ("foo", "http", "sqlite", "ray"):
    HOSTILE[f"storage-scheme-{scheme}"] = Hostile(
        None, ["--storage", f"unknown storage scheme '{scheme}'", "s3://"],
        storage=f"{scheme}://bucket/prefix")



# The artifact location actually used: an experiment that exists already keeps its own (set by
# `mlflow experiments create --artifact-location`, an older store layout, another tool), so
# that one is probed, not the default next to the database.
UNMOUNT: list[Callable[[], None]] = []


def _template_store(tmp: Path) -> Path:
    """A SQLite MLflow store holding the quickstart experiment, made once per session."""
    import mlflow

    db = tmp.parent / "artifact-location-template" / "mlflow.db"
    if not db.exists():
        db.parent.mkdir(exist_ok=True)
        client = mlflow.MlflowClient(f"sqlite:///{db}")
        client.create_experiment(QUICKSTART["tracking"]["experiment"],
                                 artifact_location=(db.parent / "artifacts").as_uri())
    return db


def _experiment_at(location: str, read_only: bool = False) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        import shutil
        import sqlite3

        from .conftest import mount_read_only

        (tmp / "db").mkdir()
        db = tmp / "db" / "mlflow.db"
        shutil.copyfile(_template_store(tmp), db)
        con = sqlite3.connect(db)
        with con:
            con.execute("update experiments set artifact_location = ?",
                        (location.replace("{tmp}", str(tmp)),))
        con.close()
        (tmp / "afile").write_text("not a folder\n")
        if read_only:
            UNMOUNT.append(mount_read_only(tmp / "ro"))
    return setup


EXPERIMENT_ARTIFACTS: dict[str, tuple[str, list[str], bool]] = {
    "under-a-file-uri": ("file://{tmp}/afile/artifacts", ["{tmp}/afile", "not a directory"],
                         False),
    "under-a-file-path": ("{tmp}/afile/artifacts", ["{tmp}/afile", "not a directory"], False),
    "read-only-filesystem": ("file://{tmp}/ro/artifacts", ["{tmp}/ro", "not writable"], True),
    "read-only-filesystem-path": ("{tmp}/ro", ["{tmp}/ro", "not writable"], True),
}
for name, (location, frags, ro) in EXPERIMENT_ARTIFACTS.items():
    HOSTILE[f"experiment-artifacts-{name}"] = Hostile(
        None, ["experiment 'quickstart'", "artifact folder", *frags],
        uri="sqlite:///{tmp}/db/mlflow.db", setup=_experiment_at(location, ro))
for scheme in ("foo", "s4", "mlflow-artifact", "ray"):
    HOSTILE[f"experiment-artifacts-scheme-{scheme}"] = Hostile(
        None, [f"unknown artifact location scheme '{scheme}'", "experiment 'quickstart'",
               "valid:", "s3", "mlflow-artifacts"],
        uri="sqlite:///{tmp}/db/mlflow.db", setup=_experiment_at(f"{scheme}://bucket/artifacts"))


@pytest.fixture(autouse=True)
def _unmount_after():
    yield
    while UNMOUNT:
        UNMOUNT.pop()()


# --- plugins ----------------------------------------------------------------------------------

PLUGIN_BODIES = {
    "raises-runtime": ("raise RuntimeError('boom at import')", ["raised RuntimeError", "boom"]),
    "raises-zero-division": ("1 / 0", ["raised ZeroDivisionError"]),
    "raises-key": ("{}['missing']", ["raised KeyError"]),
    "raises-os": ("open('/nonexistent/file')", ["raised FileNotFoundError"]),
    "exit-0": ("import sys; sys.exit(0)", ["called sys.exit(0)"]),
    "exit-3": ("import sys; sys.exit(3)", ["called sys.exit(3)"]),
    "exit-text": ("import sys; sys.exit('bye')", ["called sys.exit('bye')"]),
    "raises-base": ("raise SystemExit(2)", ["called sys.exit(2)"]),
}


def _plugin_setup(module: str, body: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        import sys

        (tmp / "plugins").mkdir()
        (tmp / "plugins" / f"{module}.py").write_text(body + "\n")
        sys.path.insert(0, str(tmp / "plugins"))
    return setup


for name, (body, frags) in PLUGIN_BODIES.items():
    module = "hostile_plugin_" + name.replace("-", "_")
    HOSTILE[f"plugin-{name}"] = Hostile(_quickstart_text(plugins=[module]),
                                     ["plugins[0]", module, *frags],
                                     setup=_plugin_setup(module, body))

SET_UP = frozenset({"db", "plugins", "ro"})  # folders the setups make; their content is checked
TIMED = ("tracking-", "storage-", "cpus-", "experiment-artifacts-")  # the preflight's classes: within 15 s each


def _files(tmp: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(tmp.rglob("*"))
            if p.is_file() and p.name != "space.yaml" and "__pycache__" not in p.parts}


def _prepared(case: Hostile, tmp: Path) -> tuple[list[str], dict[str, Any]]:
    argv, ctx = prepare(case, tmp)
    if case.raw is not None:
        Path(argv[1]).write_bytes(case.raw)
    return argv, ctx


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_is_rejected(name: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                   request) -> None:
    import sys

    case = HOSTILE[name]
    if case.needs_ray:
        request.getfixturevalue("ray_session")
    saved = list(sys.path)
    try:
        argv, ctx = _prepared(case, tmp_path)
        before = _files(tmp_path)
        capsys.readouterr()
        start = time.monotonic()
        try:
            rc: Any = main(argv)
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is the failure shown
            rc = f"raised {type(exc).__name__}: {str(exc)[:500]}"
        took = time.monotonic() - start
    finally:
        sys.path[:] = saved
    out = capsys.readouterr()
    assert len(out.err) < 3000, f"a message of {len(out.err)} characters"
    check_rejected(rc, out.out, out.err, case, tmp_path, ctx, allowed=SET_UP)
    assert _files(tmp_path) == before, "a file was written or changed"
    if name.startswith(TIMED):
        assert took < 15, f"took {took:.1f} s"


def test_case_counts() -> None:
    """The README quotes the total of this table and test_bad_input's."""
    assert len(HOSTILE) >= 100


# --- end to end: the process, not only main() --------------------------------------------------


@pytest.mark.parametrize("name", ["laughs-10^9-in-train.epochs", "nested-flow-list-100000",
                                  "plugin-exit-3"])
def test_hostile_input_end_to_end(name: str, tmp_path: Path) -> None:
    """As its own process: a plugin's sys.exit(3) or a RecursionError would end it with
    another code than 2; the message is still one line."""
    import os
    import sys

    from .conftest import plugin_env

    case = HOSTILE[name]
    saved = list(sys.path)
    try:
        argv, ctx = _prepared(case, tmp_path)
    finally:
        sys.path[:] = saved
    path = os.pathsep.join([str(tmp_path / "plugins"), plugin_env()["PYTHONPATH"]])
    rc, out, err = run_subprocess([*launcher_cmd(Path(argv[1]), argv[3], Path(argv[5])),
                                   "--no-report"], timeout=90, env={"PYTHONPATH": path})
    check_rejected(rc, out, err, case, tmp_path, ctx, allowed=SET_UP)


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}",
                                     "127.0.0.1:{silent}"])
def test_unreachable_cluster_address_is_bounded(address: str, tmp_path: Path) -> None:
    """Ray's own reconnect loop runs for minutes; the launcher gives up within its 15 s bound
    and names the address (a closed port is refused at once; a loopback port that accepts
    connections and never answers stands for a black-holed host)."""
    import socket

    from launchers.sweep import ADDRESS_TIMEOUT_S

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # never accepted: the handshake completes, no byte ever comes back
    address = address.replace("{port}", str(_closed_port())).replace(
        "{silent}", str(silent.getsockname()[1]))
    try:
        _bounded(address, tmp_path, ADDRESS_TIMEOUT_S)
    finally:
        silent.close()


def _bounded(address: str, tmp_path: Path, bound: float) -> None:
    case = Hostile(None, ["--address", address, "cannot reach the Ray cluster"])
    argv, ctx = prepare(case, tmp_path)
    start = time.monotonic()
    rc, out, err = run_subprocess([*launcher_cmd(Path(argv[1]), argv[3], Path(argv[5])),
                                   "--address", address, "--no-report"], timeout=90)
    took = time.monotonic() - start
    check_rejected(rc, out, err, case, tmp_path, ctx)
    assert took < bound + 30, f"took {took:.0f} s"  # + start-up on 2 shared cores


# --- the stages bound (a structured arch: launchers.train --config / --set arch.stages) --------


def _stage_list(count: int, family: str) -> list[dict[str, Any]]:
    """``count`` one-block stages that pass every other rule (the first has stride 1)."""
    block = "dense" if family == "densenet" else "basic"
    return [{"depth": 1, "width": 12 if family == "densenet" else 16,
             "stride": 1 if i == 0 else 2, "block": block} for i in range(count)]


def _stage_arch(count: int, family: str) -> dict[str, Any]:
    arch: dict[str, Any] = {"family": family, "stages": _stage_list(count, family)}
    if family == "densenet":
        arch["skip"] = "concat"
    return arch


STAGES: dict[str, tuple[str, int, str]] = {
    f"stages-{family}-{count}-{form}": (family, count, form)
    for family in ("resnet", "densenet")
    for count in (MAX_STAGES + 1, 100, 1000)
    for form in ("config", "set")
}


@pytest.mark.parametrize("name", list(STAGES))
def test_too_many_stages_are_rejected(name: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    """More stages than ``MAX_STAGES``, in a config file or a ``--set``: exit 2 at once, one
    message naming the key, the count and the limit; nothing written (no ``--json``)."""
    from launchers.train import main as train_main

    family, count, form = STAGES[name]
    base = {"train": {"epochs": 1, "device": "cpu", "threads": 1},
            "data": {"name": "digits", "subset": 100, "image_size": 8}}
    if form == "config":
        config = tmp_path / "trial.yaml"
        config.write_text(yaml.safe_dump({**base, "arch": _stage_arch(count, family)}))
        argv = ["--config", str(config)]
    else:
        argv = [*[f"--set={k}.{f}={v}" for k, d in base.items() for f, v in d.items()],
                "--set", "arch=" + yaml.safe_dump(_stage_arch(count, family),
                                                  default_flow_style=True, width=10**9).strip()]
    out_json = tmp_path / "out.json"
    capsys.readouterr()
    start = time.monotonic()
    try:
        rc: Any = train_main([*argv, "--quiet", "--json", str(out_json)])
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is the failure shown
        rc = f"raised {type(exc).__name__}: {str(exc)[:500]}"
    took = time.monotonic() - start
    out = capsys.readouterr()
    assert rc == 2, f"exit {rc!r}\n{out.err[-2000:]}"
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err[:3000]
    for fragment in ("arch.stages", f"{count} stages", f"the limit is {MAX_STAGES}"):
        assert fragment in out.err, (fragment, out.err)
    assert not out_json.exists() and not out.out
    assert took < 10, f"took {took:.1f} s"


def test_the_stages_bound_is_what_a_model_can_have() -> None:
    """The limit itself: ``MAX_STAGES`` stages are accepted, one more is not."""
    from bench.errors import ConfigError
    from bench.models.spec import ArchSpec

    for family in ("resnet", "densenet"):
        arch = _stage_arch(MAX_STAGES, family)
        assert len(ArchSpec(**arch).stages) == MAX_STAGES
        with pytest.raises(ConfigError, match=f"the limit is {MAX_STAGES}"):
            ArchSpec(**_stage_arch(MAX_STAGES + 1, family))


YAML_CLASSES = ("laughs-", "duplicate-", "nested-", "size-", "bytes-")
TRAIN_YAML = [n for n in HOSTILE if n.startswith(YAML_CLASSES)]


@pytest.mark.parametrize("name", TRAIN_YAML)
def test_hostile_yaml_in_a_trial_config_is_rejected(name: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """The YAML classes again as ``launchers.train --config``: the same limits hold for every
    YAML file resbench reads (one message naming the file, exit 2, nothing run)."""
    from launchers.train import main as train_main

    case = HOSTILE[name]
    config = tmp_path / "space.yaml"
    if case.raw is not None:
        config.write_bytes(case.raw)
    else:
        config.write_text(str(case.space))
    capsys.readouterr()
    start = time.monotonic()
    try:
        rc: Any = train_main(["--config", str(config), "--quiet"])
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is the failure shown
        rc = f"raised {type(exc).__name__}: {str(exc)[:500]}"
    took = time.monotonic() - start
    out = capsys.readouterr()
    assert rc == 2, f"exit {rc!r}\n{out.err[-2000:]}"
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err[:3000]
    assert len(out.err) < 3000
    for fragment in case.fragments:
        assert fragment in out.err, (fragment, out.err)
    assert not out.out and took < 15, f"took {took:.1f} s"


def test_the_experiments_own_artifact_location_is_the_one_probed(tmp_path: Path) -> None:
    """An existing experiment with a writable artifact location of its own passes even where
    the default folder next to the database could not be made (the sweep never uses it), and
    a new experiment still gets the default probed; the store is only read."""
    from bench.errors import ResbenchError
    from bench.tracking import check_store, default_artifact_location, stored_artifact_location

    _experiment_at("file://{tmp}/elsewhere/artifacts")(tmp_path)
    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    (tmp_path / "db" / "artifacts").write_text("a file where the default folder would go\n")
    before = (tmp_path / "db" / "mlflow.db").read_bytes()
    assert stored_artifact_location(uri, "quickstart") == \
        f"file://{tmp_path}/elsewhere/artifacts"
    assert stored_artifact_location(uri, "another") is None
    assert stored_artifact_location(f"sqlite:///{tmp_path / 'none.db'}", "quickstart") is None
    check_store(uri, artifact_location=default_artifact_location(uri), experiment="quickstart")
    with pytest.raises(ResbenchError, match="artifact folder.*not a directory"):
        check_store(uri, artifact_location=default_artifact_location(uri), experiment="another")
    assert (tmp_path / "db" / "mlflow.db").read_bytes() == before
    assert not (tmp_path / "none.db").exists()
