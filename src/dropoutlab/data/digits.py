"""scikit-learn's bundled 8x8 handwritten digits: needs no download, good for quick tests."""

from __future__ import annotations

import numpy as np
import torch

from dropoutlab.data.base import ImageDataset

TEST_SIZE = 360  # of 1797 images; train keeps 1437
SPLIT_SEED = 0  # fixed forever, so every study sees the same test images


def read_digits() -> ImageDataset:
    """The 1797 digits as ``uint8 (N, 1, 8, 8)`` images with values 0..16 (``pixel_max=16``).

    The train/test split is stratified by class and fixed (``random_state=0``), so it is
    the same on every machine and in every release: 1437 training and 360 test images.
    """
    # scikit-learn takes a second to import and only this dataset needs it
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.images.astype(np.uint8)[:, None]  # values are whole numbers 0..16
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SPLIT_SEED
    )
    return ImageDataset(
        "digits",
        torch.from_numpy(np.ascontiguousarray(x_train)),
        torch.from_numpy(y_train),
        torch.from_numpy(np.ascontiguousarray(x_test)),
        torch.from_numpy(y_test),
        num_classes=10,
        pixel_max=16.0,
    )
