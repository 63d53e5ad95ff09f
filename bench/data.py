"""Datasets as device-resident uint8 tensors: the data spec, a registry of loaders and the
split logic they share.

Every loader returns the official train and test splits as uint8 NCHW CPU tensors; ``load_dataset``
then takes the seeded subset, carves the validation split out of train (the search optimises
validation accuracy; the test split is kept for final numbers), resizes, computes the per-channel
mean/std of the training split and moves everything to the device once. Batches are then cut and
augmented on the device (``bench.augment``): no DataLoader, no worker processes.

Built in: ``digits`` (scikit-learn's bundled 8x8 digits, the no-download default), ``cifar10`` /
``cifar100`` (torchvision's pickled format), ``imagefolder`` (``train/`` + ``test/`` or ``val/``
class folders, decoded once and cached) and ``synthetic`` (random tensors, for throughput runs).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import ConfigError, DataError
from bench.locations import CACHE_ENV, DATA_ENV, resolve_paths  # noqa: F401 - re-exported

# The data spec and the dataset registry (with each dataset's classes, shape and split sizes)
# are torch-free, in the spec layer; the built-in entries there name the loaders below lazily.
from bench.spec.parts import DATASETS, DIGITS_SPLITS, DatasetDef, register_dataset  # noqa: F401
from bench.spec.trial import MAX_IMAGE_SIZE, MAX_SYNTHETIC_BYTES, DataSpec  # noqa: F401

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif", ".tiff")
_CACHE_VERSION = 1
# Decoding progress goes to this logger (launchers show it on stderr), every few seconds.
log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0




@dataclass
class Split:
    """One split, resident on a device: uint8 images [N, C, H, W] and int64 labels [N]."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Splits:
    """train / val / test of one dataset plus what a model and the normaliser need to know."""

    dataset: str
    train: Split
    val: Split  # may be empty (val_fraction 0)
    test: Split
    num_classes: int
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, on the 0..1 scale, of the training split
    std: tuple[float, ...]
    image_size: int
    in_chans: int

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ConfigError(f"unknown split {name!r}; valid: train, val, test")
        return getattr(self, name)


@dataclass
class RawData:
    """What a loader returns: the official splits as uint8 NCHW CPU tensors."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]


Loader = Callable[[DataSpec], RawData]


def load_dataset(spec: DataSpec, device: torch.device | str = "cpu") -> Splits:
    """Load, subset, split, resize and normalise-statistics a dataset; tensors end on ``device``."""
    raw = DATASETS.get(spec.name)(spec)
    train_x, train_y, test_x, test_y = _check_raw(spec.name, raw)
    gen = torch.Generator().manual_seed(spec.seed)

    n = len(train_y)
    used = n if spec.subset is None else spec.subset
    if used > n:
        raise ConfigError(f"{spec.subset} exceeds the {n} training images of {spec.name}", "data.subset")
    order = torch.randperm(n, generator=gen)[:used]
    n_val = int(round(spec.val_fraction * used))
    if used - n_val < 1:
        raise ConfigError(f"leaves no training images ({used} used, {n_val} for validation)", "data.val_fraction")
    val_idx, train_idx = order[:n_val], order[n_val:]
    if spec.test_subset is not None:
        if spec.test_subset > len(test_y):
            raise ConfigError(
                f"{spec.test_subset} exceeds the {len(test_y)} test images of {spec.name}", "data.test_subset"
            )
        test_idx = torch.randperm(len(test_y), generator=gen)[: spec.test_subset]
        test_x, test_y = test_x[test_idx], test_y[test_idx]

    parts = {
        "train": (train_x[train_idx], train_y[train_idx]),
        "val": (train_x[val_idx], train_y[val_idx]),
        "test": (test_x, test_y),
    }
    if spec.image_size is not None:
        parts = {k: (resize(x, spec.image_size), y) for k, (x, y) in parts.items()}
    dev = torch.device(device)
    splits = {k: Split(k, x.contiguous().to(dev), y.to(dev)) for k, (x, y) in parts.items()}
    mean, std = channel_stats(splits["train"].images)
    c, h, _ = splits["train"].images.shape[1:]
    return Splits(
        dataset=spec.name,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        num_classes=len(raw.classes),
        classes=tuple(raw.classes),
        mean=mean,
        std=std,
        image_size=int(h),
        in_chans=int(c),
    )


SOURCES = {"digits": "sklearn.datasets.load_digits", "synthetic": "random tensors (seeded)"}
_DIGEST_IMAGES = 1024  # images hashed per split (evenly spaced): the digest stays cheap on CIFAR


def identity(spec: DataSpec, splits: Splits) -> dict[str, str]:
    """What a trial trained on, as strings: ``name`` (with the subset), ``digest`` (sha256 of
    every label and up to ``_DIGEST_IMAGES`` evenly spaced images per split, plus shapes: two
    trials share it exactly when they saw the same data), ``source`` (a folder or the loader),
    ``sizes`` (images per split), ``mean`` / ``std`` (the normalisation, comma-separated)."""
    h = hashlib.sha256(f"v1 {spec.name}\n".encode())
    sizes = []
    for name in ("train", "val", "test"):
        split = splits.split(name)
        sizes.append(f"{name}={len(split)}")
        h.update(f"{name} {tuple(split.images.shape)}\n".encode())
        h.update(split.labels.cpu().numpy().tobytes())
        if len(split):
            step = max(1, len(split) // _DIGEST_IMAGES)
            h.update(split.images[::step].cpu().contiguous().numpy().tobytes())
    shown = spec.name if spec.subset is None else f"{spec.name}[{spec.subset}]"
    source = spec.root or SOURCES.get(spec.name) or f"torchvision {spec.name} (downloaded)"
    return {"name": shown, "digest": h.hexdigest()[:16], "source": str(source),
            "sizes": ",".join(sizes),
            "mean": ",".join(f"{m:.6g}" for m in splits.mean),
            "std": ",".join(f"{s:.6g}" for s in splits.std)}


def _check_raw(name: str, raw: RawData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    out = []
    for x, y in ((raw.train_images, raw.train_labels), (raw.test_images, raw.test_labels)):
        x, y = torch.as_tensor(x), torch.as_tensor(y).long()
        if x.dtype != torch.uint8 or x.ndim != 4 or len(x) != len(y):
            raise DataError(
                f"dataset {name!r}: loader must return uint8 [N, C, H, W] images with one label "
                f"each; got {x.dtype} {tuple(x.shape)} and {len(y)} labels"
            )
        out += [x, y]
    if len(out[1]) == 0:
        raise DataError(f"dataset {name!r} has no training images")
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DataError(f"dataset {name!r}: train and test image shapes differ")
    return out[0], out[1], out[2], out[3]


def resize(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 NCHW -> uint8 NCHW of side ``size`` (bilinear, antialiased when shrinking)."""
    if images.shape[-2:] == (size, size) or len(images) == 0:
        return images
    out = []
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0..1 scale) of uint8 NCHW images: exact, from 256-bin histograms
    (cheaper than float passes over the whole split)."""
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1).to(torch.int32), minlength=256).cpu().double()
        n = float(hist.sum())
        mean = float((hist * values).sum()) / max(n, 1.0)
        var = float((hist * (values - mean) ** 2).sum()) / max(n - 1.0, 1.0)
        means.append(mean / 255)
        stds.append(max(var**0.5, 1e-3) / 255)
    return tuple(means), tuple(stds)


# --- digits ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits as uint8 (0..255) and int64 labels; parsed once per process."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits  # lazy: not on GPU hosts
    except ImportError as exc:
        raise DataError(
            "the digits dataset needs scikit-learn (pip install scikit-learn); "
            "or pick another dataset: data.name=cifar10|imagefolder|synthetic"
        ) from exc
    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images.flags.writeable = False
    return images, bunch.target.astype(np.int64)


def load_digits(spec: DataSpec) -> RawData:
    """scikit-learn's 1797 8x8 digits, upsampled (default 32x32), grey replicated to 3 channels,
    with a fixed 80/20 train/test split (seed-independent, so test numbers stay comparable)."""
    images_np, labels_np = _sklearn_digits()
    images = torch.tensor(images_np)
    labels = torch.tensor(labels_np)
    images = resize(images[:, None], spec.image_size or 32).expand(-1, 3, -1, -1).contiguous()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(20160310))
    n_test = len(labels) // 5  # DIGITS_SPLITS, the registered split sizes
    test, train = order[:n_test], order[n_test:]
    return RawData(images[train], labels[train], images[test], labels[test], tuple(str(i) for i in range(10)))


# --- CIFAR (torchvision's pickled format) -----------------------------------------------------


def _cifar_loader(name: str) -> Loader:
    def load(spec: DataSpec) -> RawData:
        from torchvision import datasets  # the format's definition: folder and file names, keys

        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        folder = _find_cifar(cls.base_folder, cls.train_list[0][0], spec)
        if folder is None:
            base = spec.root or spec.cache_dir
            if not spec.download or base is None:
                if spec.root and _is_class_tree(Path(spec.root).expanduser()):
                    raise DataError(
                        f"{name}: {spec.root} is a class-folder tree (train/<class>/ images), not "
                        f"torchvision's {cls.base_folder}/ format; load it with data.name="
                        "imagefolder (same data.root)")
                tried = f"{Path(spec.root) / cls.base_folder}" if spec.root else "nothing (data.root is unset)"
                raise DataError(
                    f"{name}: no local copy found; looked for {tried}. Fix: point data.root (or the "
                    f"{DATA_ENV} environment variable, read by the launchers) at the folder that "
                    f"holds {cls.base_folder}/ in torchvision's format, or set data.download=true "
                    f"(with network access; it downloads into data.root or data.cache_dir)"
                )
            try:
                cls(root=base, train=True, download=True)
            except Exception as exc:  # network or disk failures: say where and how to fix
                raise DataError(
                    f"{name}: download into {base} failed ({exc}). Fix: check the network, or copy "
                    f"{cls.base_folder}/ there yourself and set data.download=false"
                ) from exc
            folder = Path(base) / cls.base_folder
        train_x, train_y = _read_cifar_batches(folder, [f for f, _ in cls.train_list])
        test_x, test_y = _read_cifar_batches(folder, [f for f, _ in cls.test_list])
        meta = _read_pickle(folder / cls.meta["filename"])
        classes = tuple(meta[cls.meta["key"]])
        return RawData(train_x, train_y, test_x, test_y, classes)

    return load


def _is_class_tree(root: Path) -> bool:
    """Whether ``root`` looks like what ``imagefolder`` reads: ``train/`` with class folders."""
    train = root / "train"
    try:
        return train.is_dir() and any(e.is_dir() for e in os.scandir(train))
    except OSError:
        return False


def _find_cifar(base_folder: str, probe: str, spec: DataSpec) -> Path | None:
    """The format folder under root or cache_dir (or root itself), without checksum checks so
    that any copy in torchvision's layout loads."""
    for base in (spec.root, spec.cache_dir):
        if not base:
            continue
        for cand in (Path(base) / base_folder, Path(base)):
            if (cand / probe).is_file():
                return cand
    return None


# What torchvision's CIFAR batch files hold: dicts of lists, bytes and strings, and NumPy
# arrays (pickled by numpy's reconstruct helpers). Nothing else may be loaded from them.
_CIFAR_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that admits only ``_CIFAR_GLOBALS``: a crafted file under dataset.root can
    make it fail, never run code (``pickle.load`` would call any function the file names)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _CIFAR_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"it names {module}.{name}, which a CIFAR batch file never holds (refused: loading "
            "it could run code)")


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = _DataUnpickler(f, encoding="latin1").load()
        if not isinstance(data, dict):
            raise DataError(f"cannot read {path}: expected a dict, got {type(data).__name__}")
        return data
    except FileNotFoundError:
        raise DataError(f"missing file {path} (an incomplete copy? re-copy or re-download it)") from None
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _read_cifar_batches(folder: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in files:
        entry = _read_pickle(folder / name)
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = entry["labels"] if "labels" in entry else entry["fine_labels"]
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise DataError(f"{folder / name}: expected N x 3072 uint8 'data' and N labels")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(labels, dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


# --- image folders --------------------------------------------------------------------------


def load_imagefolder(spec: DataSpec) -> RawData:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (or ``val/``), decoded once with
    threads and cached in ``cache_dir`` as an .npz keyed by the files' paths, sizes and mtimes."""
    if not spec.root:
        raise DataError(
            f"imagefolder needs data.root (or the {DATA_ENV} environment variable, read by the "
            "launchers): a folder holding train/<class>/ and test/<class>/ (or val/)"
        )
    root = Path(spec.root).expanduser()
    if not (root / "train").is_dir():
        raise DataError(
            f"image folder {root}: no train/ folder there (expected {root}/train/<class>/*.jpg "
            f"and {root}/test/<class>/ or {root}/val/<class>/)"
        )
    held_out = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if held_out is None:
        raise DataError(f"image folder {root}: no test/ or val/ folder next to train/")
    classes = sorted(e.name for e in os.scandir(root / "train") if e.is_dir())
    if not classes:
        raise DataError(f"image folder {root / 'train'}: no class folders in it")
    stray = sorted(e.name for e in os.scandir(held_out) if e.is_dir() and e.name not in classes)
    if stray:
        raise DataError(f"image folder {held_out}: classes {stray} are not in {root / 'train'}")
    files = {"train": _list_images(root / "train", classes), "test": _list_images(held_out, classes)}
    if not files["train"]:
        raise DataError(f"image folder {root / 'train'}: no images (extensions: {', '.join(IMAGE_EXTENSIONS)})")

    key = _folder_key(root, files, spec.image_size)
    cache = Path(spec.cache_dir).expanduser() / f"imagefolder-{key}.npz" if spec.cache_dir else None
    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as z:
                return RawData(
                    torch.from_numpy(z["train_x"]), torch.from_numpy(z["train_y"]),
                    torch.from_numpy(z["test_x"]), torch.from_numpy(z["test_y"]),
                    tuple(str(c) for c in z["classes"]),
                )
        except Exception:  # a broken cache file is rebuilt, not fatal
            pass
    train_x = _decode_all([f[0] for f in files["train"]], spec.image_size)
    test_x = _decode_all([f[0] for f in files["test"]], spec.image_size, like=train_x)
    raw = RawData(
        torch.from_numpy(train_x),
        torch.tensor([f[1] for f in files["train"]], dtype=torch.int64),
        torch.from_numpy(test_x),
        torch.tensor([f[1] for f in files["test"]], dtype=torch.int64),
        tuple(classes),
    )
    if cache is not None:
        _save_npz(cache, raw)
    return raw


def _list_images(folder: Path, classes: list[str]) -> list[tuple[str, int, int, int]]:
    """(path, label, size, mtime_ns) of every image, sorted per class; plain strings because
    this runs over every file on every load (the cache key)."""
    out = []
    for idx, cls in enumerate(classes):
        d = os.path.join(folder, cls)
        if not os.path.isdir(d):
            continue
        entries = sorted(
            (e for e in os.scandir(d) if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file()),
            key=lambda e: e.name,
        )
        for e in entries:
            st = e.stat()
            out.append((e.path, idx, st.st_size, st.st_mtime_ns))
    return out


def _folder_key(root: Path, files: dict[str, list[tuple[str, int, int, int]]], size: int | None) -> str:
    h = hashlib.sha256(f"v{_CACHE_VERSION} size={size}\n".encode())
    skip = len(str(root)) + 1
    for split, items in files.items():
        h.update("".join(f"{split}\t{p[skip:]}\t{c}\t{n}\t{t}\n" for p, c, n, t in items).encode())
    return h.hexdigest()[:20]


def _decode_one(path: str, size: int | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except Exception as exc:
        raise DataError(
            f"cannot decode image {path}: {exc}. Fix: replace or delete the file "
            "(the decoded cache is rebuilt whenever the folder changes)"
        ) from None


def _decode_all(paths: list[str], size: int | None, like: np.ndarray | None = None) -> np.ndarray:
    """Decode with a thread pool (PIL releases the GIL while decoding) into uint8 N x 3 x H x W."""
    if not paths:
        shape = like.shape[1:] if like is not None else (3, size or 1, size or 1)
        return np.zeros((0, *shape), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=min(32, os.cpu_count() or 1)) as pool:
        arrays = []
        start = last = time.monotonic()
        folder = Path(paths[0]).parent.parent
        for arr in pool.map(lambda p: _decode_one(p, size), paths, chunksize=256):
            arrays.append(arr)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:  # a first decode can take a minute: say so
                last = now
                n = len(arrays)
                log.info("decoding %s: %d/%d images (%d%%), %.0f s, about %.0f s left", folder,
                         n, len(paths), 100 * n // len(paths), now - start,
                         (now - start) * (len(paths) - n) / n)
        if last > start:
            log.info("decoded %s: %d images in %.0f s (cached for the next runs)", folder,
                     len(paths), time.monotonic() - start)
    first = arrays[0].shape
    for path, arr in zip(paths, arrays, strict=True):
        if arr.shape != first:
            raise DataError(
                f"image {path} is {arr.shape[1]}x{arr.shape[0]} but {paths[0]} is {first[1]}x{first[0]}; "
                "set data.image_size to resize them all to one size"
            )
    if like is not None and first != (like.shape[2], like.shape[3], like.shape[1]):
        raise DataError(f"images in {Path(paths[0]).parent.parent} differ in size from the train/ images; set data.image_size")
    out = np.stack(arrays)  # N, H, W, C
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _save_npz(path: Path, raw: RawData) -> None:
    """Write atomically (temp file + rename) so concurrent trials never read half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                train_x=raw.train_images.numpy(), train_y=raw.train_labels.numpy(),
                test_x=raw.test_images.numpy(), test_y=raw.test_labels.numpy(),
                classes=np.array(raw.classes),
            )
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # an unwritable cache only costs a re-decode next time


# --- synthetic ------------------------------------------------------------------------------


def load_synthetic(spec: DataSpec) -> RawData:
    """Random uint8 images and labels (seeded): for throughput-only runs, not for accuracy."""
    gen = torch.Generator().manual_seed(spec.seed)
    c, h, w = spec.shape
    n_test = max(1, spec.synthetic_size // 5)
    images = torch.randint(0, 256, (spec.synthetic_size + n_test, c, h, w), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, spec.num_classes, (spec.synthetic_size + n_test,), generator=gen)
    n = spec.synthetic_size
    classes = tuple(str(i) for i in range(spec.num_classes))
    return RawData(images[:n], labels[:n], images[n:], labels[n:], classes)


load_cifar10 = _cifar_loader("cifar10")
load_cifar100 = _cifar_loader("cifar100")
