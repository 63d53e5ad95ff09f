"""The sweep's preflight: the checks that run before anything is written (storage scheme and
folder, a multi-node cluster's shared storage, per-trial resources against the largest node, a
``--address`` answering in time, the dataset); each failure is one ConfigError."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.sweep_state import filesystem, is_uri


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
            filesystem(sweep_dir)
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
