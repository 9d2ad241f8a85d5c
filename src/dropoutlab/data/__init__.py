"""Datasets: decoded once into tensors (uint8 ``(N, C, H, W)`` images, or ``float32 (N, F)``
feature vectors), found locally or downloaded, or given from Python.

``load_dataset(name)`` for ``digits``, ``mnist``, ``fashion-mnist``, ``kmnist``,
``cifar10``, ``cifar100``, ``npz:PATH``, ``csv:PATH?label=COLUMN`` or the name of a
:class:`Data` (your arrays, DataFrame or torch Dataset); ``dataset_info(name)`` for shape
and class count without decoding; ``DATASETS`` / ``list_datasets()`` for listing;
``data_identity(name)`` for what the design records of the data.
"""

from dropoutlab.data.base import ImageDataset
from dropoutlab.data.memory import Data
from dropoutlab.data.registry import (
    DATASETS,
    DatasetInfo,
    dataset_info,
    list_datasets,
    load_dataset,
)

__all__ = [
    "DATASETS",
    "Data",
    "DatasetInfo",
    "ImageDataset",
    "dataset_info",
    "list_datasets",
    "load_dataset",
]
