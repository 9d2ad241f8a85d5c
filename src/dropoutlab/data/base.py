"""The in-memory form every dataset is decoded into."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image dataset, decoded once into tensors.

    Images are kept as ``uint8`` in ``(N, C, H, W)`` order until a study normalises
    them (see :mod:`dropoutlab.data.prepare`); labels are ``int64`` class indices.

    Attributes:
        name: registry name, e.g. ``"fashion-mnist"`` or ``"npz:/path/file.npz"``.
        x_train, y_train: the training split (validation is carved from it later).
        x_test, y_test: the test split, used only for the final evaluation.
        num_classes: number of classes; labels lie in ``[0, num_classes)``.
        pixel_max: the value of a white pixel: 255 for 8-bit images, 16 for digits.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    pixel_max: float = 255.0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (some library messages span several), for a DropoutlabError."""
    return " ".join(str(exc).split())
