"""The bounds a study file is checked against before anything is allocated, and how to raise them.

A study file is small text that can declare huge things (a billion seeds, a grid of 10^10
points, a layer of 2^62 units). Each such size is computed from the file alone and compared
with a bound here, so ``load_study`` and ``--dry-run`` stay fast and small whatever the file
says. The bounds that a real study may want to exceed are read from environment variables
(the person running dropoutlab sets them, not the file's author); the others are fixed.
docs/security.md lists them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dropoutlab.errors import DropoutlabError

# The largest whole number SQLite's INTEGER (and torch's int64) holds: seeds, split_seed,
# epochs and every other whole-number setting must fit, or a run trains and then cannot be stored.
MAX_WHOLE = 2**63 - 1

# Fixed bounds on the text of a study file, checked before the TOML parser sees it: the
# parser's memory grows with the square of a dotted key's parts, and its recursion with nesting.
MAX_STUDY_BYTES = 1 << 20
MAX_KEY_PARTS = 64
MAX_NESTING = 32


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


MAX_RUNS = Limit("DROPOUTLAB_MAX_RUNS", 100_000, "runs")
MAX_PARAMS = Limit("DROPOUTLAB_MAX_PARAMS", 100_000_000, "parameters")
MAX_ACTIVATIONS = Limit("DROPOUTLAB_MAX_ACTIVATIONS", 1_000_000_000, "activation values per batch")

LIMITS = (MAX_RUNS, MAX_PARAMS, MAX_ACTIVATIONS)
