"""The in-memory form every dataset is decoded into."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageDataset:
    """A labelled dataset, decoded once into tensors: images, or feature vectors.

    Images are kept as ``uint8`` in ``(N, C, H, W)`` order until a study normalises
    them (see :mod:`dropoutlab.data.prepare`); labels are ``int64`` class indices. Data that
    are not 8-bit pixels (feature vectors ``(N, F)``, or images of other numbers given from
    Python) are kept as ``float32`` values with ``pixel_max = None``: a study scales them by
    their training split's range or standardises them (``normalize``), never by a white value.

    Attributes:
        name: registry name, e.g. ``"fashion-mnist"`` or ``"npz:/path/file.npz"``.
        x_train, y_train: the training split (validation is carved from it later, unless
            ``x_val``/``y_val`` give one).
        x_test, y_test: the test split, used only for the final evaluation.
        num_classes: number of classes; labels lie in ``[0, num_classes)``.
        pixel_max: the value of a white pixel: 255 for 8-bit images, 16 for digits; None for
            values that are not pixels.
        x_val, y_val: a validation split given with the data (arrays from Python), used instead
            of carving one from the training split; None otherwise.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    pixel_max: float | None = 255.0
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(channels, height, width)`` of one image, or ``(features,)`` of one feature vector."""
        return tuple(self.x_train.shape[1:])

    @property
    def features(self) -> bool:
        """Whether each sample is a feature vector ``(F,)`` rather than an image."""
        return self.x_train.dim() == 2

    def __repr__(self) -> str:
        val = "" if self.y_val is None else f", val={len(self.y_val)}"
        return (
            f"ImageDataset(name={self.name!r}, train={len(self.y_train)}{val}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (some library messages span several), for a DropoutlabError."""
    return " ".join(str(exc).split())
