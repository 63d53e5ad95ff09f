"""Shared fixtures: tiny trial specs, generated datasets in the formats resbench reads
(torchvision's pickled CIFAR, class-folder image trees), the real JPEG CIFAR-10 (extracted once
per session, skipped when absent), and the rule that ``gpu``-marked tests skip without CUDA."""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR_JPEG_TARBALL = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"

# Small enough for a 2-core CI box: ResNet-8 at width 4 on a few hundred digits.
TINY_ARCH: dict[str, Any] = {"family": "resnet", "depth": 8, "width": 4}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA: skip them (cleanly, with a reason) when there is none."""
    if not any("gpu" in item.keywords for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="session")
def tiny_trial() -> Callable[..., Any]:
    """``tiny_trial(train={...}, data={...}, ...)``: a TrialSpec for a fast CPU run (digits
    subset, ResNet-8 width 4, 2 epochs, 1 thread) with the given sections merged in."""
    from bench.trainer import parse_trial

    base = {
        "arch": dict(TINY_ARCH),
        "data": {"name": "digits", "subset": 400, "test_subset": 200, "val_fraction": 0.2},
        # One intra-op thread: tiny models gain nothing from two, and on a shared CI box a
        # second spinning OpenMP thread made these runs ten times slower.
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.05, "device": "cpu", "eval_batch_size": 256,
                  "threads": 1},
    }

    def make(**sections: Any) -> Any:
        return parse_trial(_deep_merge(base, sections))

    return make


def write_torchvision_cifar(
    root: Path, per_batch: int = 8, n_test: int = 10, cifar100: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A folder in torchvision's CIFAR layout (``cifar-10-batches-py/data_batch_1..5``,
    ``test_batch``, ``batches.meta``; CIFAR-100: ``cifar-100-python/train``, ``test``, ``meta``)
    with random images. Returns the training images (N, 3, 32, 32) and labels, in file order."""
    rng = np.random.default_rng(seed)
    num_classes = 100 if cifar100 else 10
    folder = root / ("cifar-100-python" if cifar100 else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    label_key = "fine_labels" if cifar100 else "labels"
    train_names = ["train"] if cifar100 else [f"data_batch_{i}" for i in range(1, 6)]
    xs, ys = [], []
    for name in train_names:
        n = per_batch * (5 if cifar100 else 1)
        x = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        y = rng.integers(0, num_classes, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x, label_key: y, "batch_label": name}, f)
        xs.append(x)
        ys += y
    x = rng.integers(0, 256, (n_test, 3 * 32 * 32), dtype=np.uint8)
    with open(folder / ("test" if cifar100 else "test_batch"), "wb") as f:
        pickle.dump({"data": x, label_key: rng.integers(0, num_classes, n_test).tolist()}, f)
    meta_name, meta_key = ("meta", "fine_label_names") if cifar100 else ("batches.meta", "label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(num_classes)]}, f)
    return np.concatenate(xs).reshape(-1, 3, 32, 32), np.asarray(ys)


def write_imagefolder(
    root: Path,
    classes: Sequence[str] = ("cat", "dog", "frog"),
    per_class: int = 8,
    test_per_class: int = 3,
    size: int = 12,
    ext: str = ".png",
    held_out: str = "test",
    seed: int = 0,
) -> dict[str, list[tuple[Path, int, np.ndarray]]]:
    """``root/train/<class>/*`` and ``root/<held_out>/<class>/*`` of random RGB images.
    Returns, per split, (path, label, HWC pixels as written) in sorted order."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[Path, int, np.ndarray]]] = {"train": [], held_out: []}
    for split, count in (("train", per_class), (held_out, test_per_class)):
        for label, cls in enumerate(sorted(classes)):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                path = d / f"{i:04d}{ext}"
                Image.fromarray(pixels).save(path)
                out[split].append((path, label, pixels))
    return out


@pytest.fixture(scope="session")
def cifar_jpeg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real JPEG CIFAR-10 tree (``train/``, ``test/``), extracted once per session."""
    if not CIFAR_JPEG_TARBALL.is_file():
        pytest.skip(f"{CIFAR_JPEG_TARBALL} is absent")
    dest = tmp_path_factory.mktemp("cifar10-jpeg")
    with tarfile.open(CIFAR_JPEG_TARBALL) as tar:
        tar.extractall(dest, filter="data")
    return dest / "cifar10-jpeg"


@pytest.fixture
def make_cifar() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``make_cifar(root, per_batch=8, n_test=10, cifar100=False)``: see write_torchvision_cifar."""
    return write_torchvision_cifar


@pytest.fixture
def make_imagefolder() -> Callable[..., dict[str, list[tuple[Path, int, np.ndarray]]]]:
    """``make_imagefolder(root, classes, per_class, ...)``: see write_imagefolder."""
    return write_imagefolder
