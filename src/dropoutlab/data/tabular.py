"""Tables: a pandas DataFrame with a label column, or a CSV file named ``csv:PATH?label=COLUMN``.

Every column but the label is a feature (numbers or booleans); each row is one sample, a
feature vector ``(F,)``. Labels that are numbers must be class indices 0, 1, 2, ...; labels
that are not (text, categories) become class indices in sorted order. The test split is a
second table (``test=PATH`` for a CSV file), or a fraction of the rows held out (default
0.2), stratified by label and fixed by ``random_state=0``, as scikit-learn's digits are.

A CSV file's size is checked against ``DROPOUTLAB_MAX_DATASET_BYTES`` before pandas reads it:
each value takes at least two bytes of text (a digit and a separator), so a file of S bytes
holds at most S/2 values, 2*S bytes as float32.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import torch

from dropoutlab.data.base import ImageDataset, one_line
from dropoutlab.data.checks import build_dataset
from dropoutlab.data.limits import MAX_DATASET_BYTES
from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

CSV_PREFIX = "csv:"
CSV_KEYS = ("label", "test")
DEFAULT_TEST = 0.2
SPLIT_SEED = 0  # fixed forever, so every study of a file tests on the same rows
_SHOWN = 10  # columns named in a message


def parse_csv_name(text: str) -> tuple[Path, str, float | Path]:
    """``(path, label, test)`` of a dataset name ``csv:PATH?label=COLUMN[&test=FRACTION|PATH]``."""
    rest = text[len(CSV_PREFIX) :].strip()
    path, _, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
    if not path.strip():
        raise DropoutlabError("'csv:' needs a file path after it, e.g. csv:data/table.csv?label=target")
    try:
        options = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        options = {"": [query]}
    for key, values in options.items():
        if key not in CSV_KEYS or len(values) != 1:
            raise DropoutlabError(
                f"dataset {text!r}: {key!r} is not an option of csv: (or is given twice); allowed: "
                "csv:PATH?label=COLUMN&test=FRACTION or csv:PATH?label=COLUMN&test=PATH"
            )
    label = options.get("label", [""])[0]
    if not label:
        raise DropoutlabError(
            f"dataset {text!r}: name the label column, e.g. csv:{path.strip()}?label=target"
        )
    test_text = options.get("test", [str(DEFAULT_TEST)])[0]
    try:
        test: float | Path = float(test_text)
    except ValueError:
        test = Path(test_text).expanduser()
    else:
        if not 0 < test < 1:
            raise DropoutlabError(
                f"dataset {text!r}: test={test_text} is not allowed; allowed: a fraction in (0, 1) "
                "of the rows held out for testing, or the path of a CSV file of test rows"
            )
    return Path(path.strip()).expanduser(), label, test


def read_csv(path: Path) -> Any:
    """The CSV file at ``path`` as a DataFrame, its size checked before pandas reads it."""
    import pandas as pd

    if not path.is_file():
        raise DropoutlabError(f"CSV file {path} does not exist")
    size = path.stat().st_size
    MAX_DATASET_BYTES.check(
        f"{path}: {size:,} bytes of CSV text hold up to {size // 2:,} values, as float32", 2 * size
    )
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DropoutlabError(f"cannot read CSV file {path}: {one_line(exc)}") from None


def read_csv_dataset(name: str, path: Path, label: str, test: float | Path) -> ImageDataset:
    """The dataset ``name`` (``csv:...``) from its file(s), checked as any table is."""
    frame = read_csv(path)
    test_frame = read_csv(test) if isinstance(test, Path) else test
    splits, _ = frame_splits(frame, label, test_frame, None, name, where=str(path))
    return build_dataset(name, splits)


def frame_splits(
    frame: Any, label: str, test: Any, validation: Any, name: str, where: str | None = None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...] | None]:
    """``({"train": (x, y), "test": (x, y)[, "val": (x, y)]}, classes)`` from DataFrames.

    ``x`` is ``float32 (N, F)`` (every column but ``label``, in ``frame``'s order), ``y`` the
    class indices; ``classes`` the sorted labels when they were not numbers, else None.
    """
    import pandas as pd

    where = where or f"data {name!r}"
    frames = {"train": frame}
    if isinstance(test, pd.DataFrame):
        frames["test"] = test
    elif isinstance(test, bool) or not isinstance(test, int | float) or not 0 < test < 1:
        raise DropoutlabError(
            f"{where}: test={test!r} is not allowed; allowed: a DataFrame of test rows, or the fraction "
            "of the rows held out for testing, in (0, 1)"
        )
    if validation is not None:
        frames["val"] = validation
    for split, table in frames.items():
        if not isinstance(table, pd.DataFrame):
            raise DropoutlabError(
                f"{where}: the {split} table is {type(table).__name__}, not a pandas DataFrame"
            )
    columns = [str(c) for c in frame.columns]
    if label not in columns:
        close = difflib.get_close_matches(label, columns, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DropoutlabError(f"{where}: no label column {label!r}{hint}; the columns are {_names(columns)}")
    features = [c for c in frame.columns if str(c) != label]
    if not features:
        raise DropoutlabError(f"{where}: the table has no column besides the label {label!r}; no features")
    for split, table in frames.items():
        missing = [
            str(c) for c in [*features, label] if c not in table.columns and str(c) not in table.columns
        ]
        if missing:
            raise DropoutlabError(f"{where}: the {split} table lacks the columns {_names(missing)}")
    y, classes = _encode_labels({split: table[label] for split, table in frames.items()}, where, label)
    xs = {split: _features(table, features, where, split) for split, table in frames.items()}
    splits = {split: (xs[split], y[split]) for split in frames}
    if "test" not in frames:
        splits["train"], splits["test"] = hold_out(*splits["train"], float(test), where)
    return splits, classes


def _names(columns: list[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:_SHOWN])
    return shown + (f" and {len(columns) - _SHOWN} more" if len(columns) > _SHOWN else "")


def _features(table: Any, features: list[Any], where: str, split: str) -> np.ndarray:
    """``float32 (N, F)`` of ``table``'s feature columns: numbers or booleans, all finite."""
    import pandas as pd

    part = table[features]
    text = [
        str(c)
        for c in features
        if not (pd.api.types.is_numeric_dtype(part[c]) or pd.api.types.is_bool_dtype(part[c]))
    ]
    if text:
        raise DropoutlabError(
            f"{where}: the columns {_names(text)} are not numbers; features are numbers or booleans: "
            "encode the others first (e.g. pandas.get_dummies)"
        )
    if len(part) == 0:
        raise DropoutlabError(f"{where}: the {split} table has no rows")
    x = part.to_numpy(dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=0)
    if bad.any():
        names = [str(c) for c, b in zip(features, bad, strict=True) if b]
        raise DropoutlabError(
            f"{where}: the {split} rows have missing or infinite values in the columns {_names(names)}; "
            "fill or drop them"
        )
    return x


def _encode_labels(
    series: dict[str, Any], where: str, label: str
) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    """Each split's labels as class indices, and the classes' names when they were not numbers."""
    import pandas as pd

    joined = pd.concat(list(series.values()), ignore_index=True)
    if joined.isna().any():
        raise DropoutlabError(
            f"{where}: the label column {label!r} has {int(joined.isna().sum()):,} missing values; "
            "drop those rows"
        )
    if pd.api.types.is_bool_dtype(joined) or pd.api.types.is_integer_dtype(joined):
        return {split: s.to_numpy() for split, s in series.items()}, None
    if pd.api.types.is_float_dtype(joined):
        values = joined.to_numpy()
        if not (np.isfinite(values).all() and (values == np.round(values)).all()):
            raise DropoutlabError(
                f"{where}: the label column {label!r} holds numbers that are not whole; labels are classes "
                "(dropoutlab studies classifiers)"
            )
        return {split: s.to_numpy() for split, s in series.items()}, None
    classes = sorted({str(v) for v in joined})
    index = {c: i for i, c in enumerate(classes)}
    log.info(
        "%s: the labels %s are classes %s",
        where,
        label,
        ", ".join(f"{i}={c}" for c, i in list(index.items())[:_SHOWN]),
    )
    return {
        split: np.array([index[str(v)] for v in s], dtype=np.int64) for split, s in series.items()
    }, tuple(classes)


def hold_out(x: Any, y: Any, fraction: float, where: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """``((x_train, y_train), (x_test, y_test))``: ``fraction`` of the samples held out for
    testing, stratified by label where every class has at least two samples on each side,
    always with ``random_state=0``. ``x`` and ``y`` are NumPy arrays or torch tensors."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(y)
    n_test = round(len(labels) * fraction)
    if n_test < 1 or len(labels) - n_test < 2:
        raise DropoutlabError(
            f"{where}: holding out {fraction:g} of {len(labels):,} samples for testing leaves "
            f"{len(labels) - n_test:,} to train on and {n_test:,} to test on; give more samples, or a test split"
        )
    _, counts = np.unique(labels, return_counts=True)
    fits = counts.min() >= 2 and min(n_test, len(labels) - n_test) >= len(counts)
    train, test = train_test_split(
        np.arange(len(labels)), test_size=n_test, stratify=labels if fits else None, random_state=SPLIT_SEED
    )

    def take(a: Any, idx: np.ndarray) -> Any:
        return a[torch.from_numpy(idx)] if isinstance(a, torch.Tensor) else a[idx]

    return (take(x, train), take(y, train)), (take(x, test), take(y, test))
