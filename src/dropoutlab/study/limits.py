"""The bounds a study file is checked against before anything is allocated, and how to raise them.

A study file is small text that can declare huge things (a billion seeds, a grid of 10^10
points, a layer of 2^62 units). Each such size is computed from the file alone and compared
with a bound here, so ``load_study`` and ``--dry-run`` stay fast and small whatever the file
says. The bounds that a real study may want to exceed are read from environment variables
(the person running dropoutlab sets them, not the file's author); the others are fixed.
The bounds on dataset files, and the ``Limit`` type, live in :mod:`dropoutlab.data.limits`
(the readers below this room need them) and are listed in ``LIMITS`` with the rest.
docs/security.md lists them all.
"""

from __future__ import annotations

from dropoutlab.data.limits import MAX_CLASSES, MAX_DATASET_BYTES, Limit

# The largest whole number SQLite's INTEGER (and torch's int64) holds: seeds, split_seed,
# epochs and every other whole-number setting must fit, or a run trains and then cannot be stored.
MAX_WHOLE = 2**63 - 1

# Fixed bounds on the text of a study file, checked before the TOML parser sees it: the
# parser's memory grows with the square of a dotted key's parts, and its recursion with nesting.
MAX_STUDY_BYTES = 1 << 20
MAX_KEY_PARTS = 64
MAX_NESTING = 32


MAX_RUNS = Limit("DROPOUTLAB_MAX_RUNS", 100_000, "runs")
MAX_PARAMS = Limit("DROPOUTLAB_MAX_PARAMS", 100_000_000, "parameters")
MAX_ACTIVATIONS = Limit("DROPOUTLAB_MAX_ACTIVATIONS", 1_000_000_000, "activation values per batch")
# Names are stored with every run (id, study column, definition) and printed on every line
# that names a study: a 1 MB name cost about 3 MB of store per run and 1 MB of terminal.
MAX_NAME_CHARS = Limit("DROPOUTLAB_MAX_NAME_CHARS", 200, "characters")
MAX_DESCRIPTION_CHARS = Limit("DROPOUTLAB_MAX_DESCRIPTION_CHARS", 10_000, "characters")

LIMITS = (
    MAX_RUNS, MAX_PARAMS, MAX_ACTIVATIONS, MAX_NAME_CHARS, MAX_DESCRIPTION_CHARS, MAX_DATASET_BYTES, MAX_CLASSES,
)  # fmt: skip
