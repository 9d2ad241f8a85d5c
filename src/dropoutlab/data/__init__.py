"""Datasets: decoded once into uint8 ``(N, C, H, W)`` tensors, found locally or downloaded.

``load_dataset(name)`` for ``digits``, ``mnist``, ``fashion-mnist``, ``kmnist``,
``cifar10``, ``cifar100`` or ``npz:PATH``; ``dataset_info(name)`` for shape and class
count without decoding; ``DATASETS`` / ``list_datasets()`` for listing.
"""

from dropoutlab.data.base import ImageDataset
from dropoutlab.data.registry import (
    DATASETS,
    DatasetInfo,
    dataset_info,
    list_datasets,
    load_dataset,
)

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "dataset_info",
    "list_datasets",
    "load_dataset",
]
