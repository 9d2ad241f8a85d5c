"""Bounds on what a dataset file can declare, and the ``Limit`` type every raisable bound uses.

A dataset file's header declares how many values follow; a sparse file of 20 KB can declare
3.6 GB, and a few MB of deflate can declare gigabytes. Each reader compares what a header
declares with the bytes actually present and with the bounds here before it allocates
anything. ``Limit`` lives here, in the lowest room that needs one, so that the readers can use
it; ``dropoutlab.study.limits`` collects every bound (docs/security.md lists them all).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dropoutlab.errors import DropoutlabError


@dataclass(frozen=True)
class Limit:
    """A bound that an environment variable can raise: ``env`` names it, ``default`` applies otherwise."""

    env: str
    default: int
    what: str

    def value(self) -> int:
        """The bound in force: ``$env`` when set (a whole number >= 1), else ``default``."""
        text = os.environ.get(self.env)
        if text is None or not text.strip():
            return self.default
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise DropoutlabError(f"{self.env}: {text!r} is not allowed; allowed: a whole number >= 1")
        return value

    def refuse(self, found: str, count: int) -> DropoutlabError:
        """The one-line error for ``count`` (described by ``found``) above the bound."""
        return DropoutlabError(
            f"{found} {count:,} {self.what}, more than the limit of {self.value():,}; "
            f"to allow it, set the environment variable {self.env} (e.g. {self.env}={max(count, 1)})"
        )

    def check(self, found: str, count: int) -> None:
        """Raise :meth:`refuse` when ``count`` is above the bound."""
        if count > self.value():
            raise self.refuse(found, count)


# The bytes one dataset may declare: its images as uint8 (each IDX file and all four together,
# an npz's x_train and x_test) or the CIFAR batch files that hold them. 2 GiB: CIFAR-10 holds
# 184 MB, so real datasets pass ten times over, while a study's prepared float32 copy of the
# largest allowed dataset (8 GiB) still fits a workstation.
MAX_DATASET_BYTES = Limit("DROPOUTLAB_MAX_DATASET_BYTES", 2 << 30, "bytes")
# A classifier's last layer has one output per class; ImageNet-21k has 21,841 classes.
MAX_CLASSES = Limit("DROPOUTLAB_MAX_CLASSES", 100_000, "classes")
