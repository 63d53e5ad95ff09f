"""Datasets (digits, torchvision-format CIFAR, image folders, synthetic), the split logic, the
decoded-folder cache, error messages, and the on-device augmentation and normalisation."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from bench import data as data_mod
from bench.augment import Normalizer, crop_flip, cutout
from bench.config import parse
from bench.data import DataSpec, load_dataset, resolve_paths
from bench.errors import ConfigError, DataError


def test_digits_default_shapes_and_fixed_test_split() -> None:
    s = load_dataset(DataSpec())
    assert s.dataset == "digits" and s.num_classes == 10 and s.in_chans == 3 and s.image_size == 32
    assert s.train.images.dtype == torch.uint8 and s.train.labels.dtype == torch.int64
    assert s.train.images.shape[1:] == (3, 32, 32)
    n_test = 1797 // 5
    assert len(s.test) == n_test and len(s.train) + len(s.val) == 1797 - n_test
    assert len(s.val) == round(0.1 * (1797 - n_test))
    # grey replicated to 3 channels
    assert torch.equal(s.train.images[:, 0], s.train.images[:, 2])
    # the test split does not depend on the data seed; train/val picks do
    other = load_dataset(DataSpec(seed=1))
    assert torch.equal(s.test.images, other.test.images)
    assert not torch.equal(s.val.labels, other.val.labels)
    again = load_dataset(DataSpec())
    assert torch.equal(s.val.images, again.val.images)
    # statistics of the training split, 0..1 scale
    expected = s.train.images[:, 0].double().mean().item() / 255
    assert s.mean[0] == pytest.approx(expected, rel=1e-9)
    assert s.std[0] == pytest.approx(s.train.images[:, 0].double().std().item() / 255, rel=1e-6)


def test_subset_val_carve_and_resize() -> None:
    s = load_dataset(DataSpec(subset=100, val_fraction=0.25, test_subset=40, image_size=16))
    assert (len(s.train), len(s.val), len(s.test)) == (75, 25, 40)
    assert s.train.images.shape[1:] == (3, 16, 16) and s.image_size == 16
    # validation images are disjoint from training images (carved, not copied)
    flat_t = {bytes(x.numpy()) for x in s.train.images}
    assert not any(bytes(x.numpy()) in flat_t for x in s.val.images)
    with pytest.raises(ConfigError, match="data.subset.*exceeds"):
        load_dataset(DataSpec(subset=100_000))
    none = load_dataset(DataSpec(subset=50, val_fraction=0.0))
    assert len(none.val) == 0 and none.val.images.shape[1:] == (3, 32, 32)


def test_spec_validation_names_key_and_valid_values() -> None:
    with pytest.raises(ConfigError, match=r"data.name: unknown dataset 'cifar' .*valid: cifar10, cifar100, digits"):
        parse(DataSpec, {"name": "cifar"}, "data")
    with pytest.raises(ConfigError, match=r"data.val_fraction: must be in \[0, 1\)"):
        parse(DataSpec, {"val_fraction": 1.0}, "data")


def test_torchvision_format_cifar10_loads_without_checksums(tmp_path, make_cifar) -> None:
    x, y = make_cifar(tmp_path, per_batch=8, n_test=10)
    s = load_dataset(DataSpec(name="cifar10", root=str(tmp_path), val_fraction=0.0))
    assert s.num_classes == 10 and s.classes[0] == "class0"
    assert len(s.train) == 40 and len(s.test) == 10
    # same pixels and labels as written, in the seeded order; NCHW layout preserved
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s.train.images, torch.from_numpy(x)[order])
    assert torch.equal(s.train.labels, torch.from_numpy(y)[order])
    # root may also be the format folder itself
    direct = load_dataset(DataSpec(name="cifar10", root=str(tmp_path / "cifar-10-batches-py"), val_fraction=0.0))
    assert torch.equal(direct.train.images, s.train.images)


def test_torchvision_format_cifar100(tmp_path, make_cifar) -> None:
    make_cifar(tmp_path, per_batch=4, n_test=6, cifar100=True)
    s = load_dataset(DataSpec(name="cifar100", root=str(tmp_path)))
    assert s.num_classes == 100 and len(s.train) + len(s.val) == 20 and len(s.test) == 6
    assert int(s.train.labels.max()) < 100


def test_missing_cifar_names_path_and_fix(tmp_path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(DataSpec(name="cifar10", root=str(tmp_path / "nowhere")))
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "data.download=true" in msg and "RESBENCH_DATA" in msg
    with pytest.raises(DataError, match="data.root is unset"):
        load_dataset(DataSpec(name="cifar100"))


def test_resolve_paths_reads_only_the_given_mapping(tmp_path) -> None:
    spec = resolve_paths(DataSpec(name="cifar10"), {"RESBENCH_DATA": "/data", "XDG_CACHE_HOME": "/xdg"})
    assert spec.root == "/data" and spec.cache_dir == os.path.join("/xdg", "resbench")
    kept = resolve_paths(DataSpec(root="/mine", cache_dir="/c"), {"RESBENCH_DATA": "/data"})
    assert kept.root == "/mine" and kept.cache_dir == "/c"


def test_imagefolder_decodes_caches_and_rereads_on_change(tmp_path, make_imagefolder, monkeypatch) -> None:
    written = make_imagefolder(tmp_path / "tree", per_class=8, test_per_class=3, size=12, ext=".png")
    spec = DataSpec(name="imagefolder", root=str(tmp_path / "tree"), cache_dir=str(tmp_path / "cache"), val_fraction=0.0)
    s = load_dataset(spec)
    assert s.classes == ("cat", "dog", "frog") and s.image_size == 12
    assert len(s.train) == 24 and len(s.test) == 9
    # PNG is lossless: the pixels come back exactly, test split in sorted file order
    want = torch.stack([torch.from_numpy(p).permute(2, 0, 1) for _, _, p in written["test"]])
    assert torch.equal(s.test.images, want)
    assert s.test.labels.tolist() == [label for _, label, _ in written["test"]]
    caches = list((tmp_path / "cache").glob("imagefolder-*.npz"))
    assert len(caches) == 1

    # a second load reads the cache: decoding is not called
    def no_decode(*_a, **_k):
        raise AssertionError("decoded again although the folder did not change")

    monkeypatch.setattr(data_mod, "_decode_all", no_decode)
    again = load_dataset(spec)
    assert torch.equal(again.train.images, s.train.images)
    monkeypatch.undo()

    # a changed folder is re-read (new cache key)
    from PIL import Image

    extra = tmp_path / "tree" / "train" / "dog" / "9999.png"
    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(extra)
    changed = load_dataset(spec)
    assert len(changed.train) == 25
    assert len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 2


def test_imagefolder_jpeg_val_folder_and_resize(tmp_path, make_imagefolder) -> None:
    make_imagefolder(tmp_path, classes=("a", "b"), per_class=5, test_per_class=2, size=20, ext=".jpg", held_out="val")
    s = load_dataset(DataSpec(name="imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.2))
    assert s.train.images.shape[1:] == (3, 8, 8)
    assert (len(s.train), len(s.val), len(s.test)) == (8, 2, 4)


def test_imagefolder_corrupt_image_is_reported_by_path(tmp_path, make_imagefolder) -> None:
    make_imagefolder(tmp_path, per_class=3, test_per_class=1, ext=".jpg")
    bad = tmp_path / "train" / "dog" / "0001.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(DataError, match=rf"cannot decode image {bad}"):
        load_dataset(DataSpec(name="imagefolder", root=str(tmp_path)))


def test_imagefolder_missing_or_malformed_tree(tmp_path, make_imagefolder) -> None:
    with pytest.raises(DataError, match=r"no train/ folder"):
        load_dataset(DataSpec(name="imagefolder", root=str(tmp_path / "absent")))
    with pytest.raises(DataError, match=r"needs data.root"):
        load_dataset(DataSpec(name="imagefolder"))
    make_imagefolder(tmp_path / "mixed", per_class=2, test_per_class=1, size=10)
    from PIL import Image

    Image.fromarray(np.zeros((14, 10, 3), dtype=np.uint8)).save(tmp_path / "mixed" / "train" / "cat" / "odd.png")
    with pytest.raises(DataError, match=r"odd.png is 10x14 .*data.image_size"):
        load_dataset(DataSpec(name="imagefolder", root=str(tmp_path / "mixed")))


def test_synthetic() -> None:
    s = load_dataset(DataSpec(name="synthetic", shape=(1, 8, 8), num_classes=7, synthetic_size=50, val_fraction=0.0))
    assert s.in_chans == 1 and s.image_size == 8 and s.num_classes == 7
    assert len(s.train) == 50 and len(s.test) == 10 and int(s.train.labels.max()) < 7


def test_crop_flip_gives_shifted_windows_of_the_padded_image() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=gen)
    flipped = crop_flip(x, gen, padding=0, flip=True)
    for a, b in zip(x, flipped, strict=True):
        assert torch.equal(b, a) or torch.equal(b, a.flip(-1))
    assert not torch.equal(flipped, x) and not torch.equal(flipped, x.flip(-1))  # a mix
    out = crop_flip(x, gen, padding=2, flip=True)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for a, b in zip(padded, out, strict=True):
        windows = [a[:, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(b, w) or torch.equal(b, w.flip(-1)) for w in windows)
    assert not torch.equal(out, x)


def test_cutout_zeroes_one_square_per_image() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.ones(32, 3, 16, 16)
    y = cutout(x, gen, 6)
    zeros = (y[:, 0] == 0).sum(dim=(1, 2))
    assert bool((zeros <= 36).all()) and bool((zeros > 0).all())
    assert torch.equal(y[:, 0] == 0, y[:, 2] == 0)  # same square in every channel
    assert bool((zeros == 36).any())  # some squares lie fully inside


def test_normalizer_matches_the_formula() -> None:
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    norm = Normalizer.create(mean, std, torch.device("cpu"), channels_last=True)
    y = norm(x)
    ref = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(y, ref, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_real_jpeg_cifar10_one_epoch_over_40_percent(cifar_jpeg_dir, tmp_path) -> None:
    from bench.trainer import parse_trial, train

    start = time.perf_counter()
    # One epoch favours small batches and no augmentation (it slows early learning).
    spec = parse_trial({
        "arch": {"depth": 8, "width": 16},
        "data": {"name": "imagefolder", "root": str(cifar_jpeg_dir), "cache_dir": str(tmp_path),
                 "subset": 11_000, "val_fraction": 1 / 11, "test_subset": 2000, "augment": False},
        "train": {"epochs": 1, "batch_size": 32, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.05,
                  "schedule": "onecycle", "onecycle_peak": 0.3, "label_smoothing": 0.1,
                  "device": "cpu", "threads": 1},
    })
    result = train(spec)
    assert result.history[0]["train_img_per_s"] > 0 and len(result.history) == 1
    assert result.status == "completed", result.message
    assert result.metrics["test_acc"] > 40.0, result.metrics
    assert result.metrics["val_acc"] > 35.0, result.metrics
    assert time.perf_counter() - start < 600
