"""A dataset in one file (a test plugin): "bars", 16x16 grey images of one horizontal or one
vertical bar (2 classes), generated from a fixed seed.

The loader returns the official splits as uint8 NCHW tensors (``bench.data.RawData``); the
registration carries the facts a sweep needs before loading anything: the class count, the
(C, H, W) shape and the (train, test) split sizes. With ``--plugin bars`` (or ``plugins:
[bars]`` in a space file) ``data.name=bars`` trains, and budgets are priced at 1x16x16.
"""

from __future__ import annotations

from bench.spec.parts import register_dataset

SIDE = 16
SPLITS = (512, 128)


def load_bars(spec):  # noqa: ANN001, ANN201 - a DataSpec in, a RawData out
    import torch

    from bench.data import RawData

    gen = torch.Generator().manual_seed(1234)  # the same images every time: a fixed dataset

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 2, (n,), generator=gen)
        where = torch.randint(2, SIDE - 2, (n,), generator=gen)
        images = torch.randint(0, 60, (n, 1, SIDE, SIDE), generator=gen, dtype=torch.uint8)
        for i in range(n):
            if labels[i]:
                images[i, 0, :, where[i]] = 255  # a vertical bar
            else:
                images[i, 0, where[i], :] = 255  # a horizontal bar
        return images, labels

    train_x, train_y = draw(SPLITS[0])
    test_x, test_y = draw(SPLITS[1])
    return RawData(train_x, train_y, test_x, test_y, ("horizontal", "vertical"))


register_dataset("bars", load_bars, num_classes=2, shape=(1, SIDE, SIDE), splits=SPLITS)
