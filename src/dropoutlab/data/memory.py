"""Your data from Python: NumPy arrays, torch tensors, a pandas DataFrame or a torch ``Dataset``.

:class:`Data` reads them once into tensors, with the checks every dataset gets (shapes,
lengths, finite values, label range, at least two classes; one line each), and makes them
known to studies by name: a study whose ``dataset`` is that name trains on them, and
``run_study(study, store, data=...)`` says so explicitly::

    import dropoutlab as dl

    data = dl.Data.from_arrays(x_train, y_train, x_test, y_test, name="my-data")
    study = dl.load_study("study.toml")  # dataset = "my-data"
    dl.run_study(study, store, data=data)

Samples are feature vectors ``(N, F)``, one-channel images ``(N, H, W)`` or images
``(N, C, H, W)`` (channels first, as PyTorch has them; transpose Keras' channels-last arrays).
``uint8`` images are 8-bit pixels (white = 255), as the registered datasets; every other array
is kept as ``float32`` values, which a study scales by the training split's range
(``normalize = "unit"`` or ``"symmetric"``) or standardises (``"standard"``), never checking
them against [0, 1]. Labels are class indices 0, 1, 2, ... (integers, or whole numbers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dropoutlab.data.base import ImageDataset
from dropoutlab.data.checks import build_dataset, read_items, tensor_identity
from dropoutlab.data.known import remember
from dropoutlab.data.registry import DATASETS
from dropoutlab.data.tabular import hold_out
from dropoutlab.errors import DropoutlabError

#: Prefixes of the dataset names that name files; a name given to data from Python cannot start so.
FILE_PREFIXES = ("npz:", "csv:")
MAX_NAME_CHARS = 200


@dataclass(frozen=True, eq=False)
class Data:
    """A dataset of your own, read once into tensors, that studies name by :attr:`name`.

    Make one with :meth:`from_arrays`, :meth:`from_frame` or :meth:`from_dataset`. From then
    on a study of this process whose ``dataset`` is ``name`` trains on it (a later ``Data`` of
    the same name replaces it), and :func:`~dropoutlab.study.run_study` accepts it as ``data=``.
    ``identity`` is the SHA-256 of its tensors' bytes: a study stored with other data under
    the same name is refused as a changed design (:mod:`dropoutlab.study.design`).

    Attributes:
        dataset: the tensors (``x_*`` ``uint8`` pixels or ``float32`` values, ``y_*`` ``int64``).
        identity: ``"sha256:<hex>"`` of the splits' dtypes, shapes and bytes.
        classes: the label of each class index when the labels were not numbers (a DataFrame's
            strings, sorted); None otherwise.
    """

    dataset: ImageDataset
    identity: str = ""
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.identity:
            object.__setattr__(self, "identity", tensor_identity(self.dataset))
        remember(self)

    @property
    def name(self) -> str:
        """The name a study gives as its ``dataset`` (and the report shows)."""
        return self.dataset.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(features,)`` or ``(channels, height, width)`` of one sample."""
        return self.dataset.input_shape

    @property
    def num_classes(self) -> int:
        """The number of classes: the largest label plus one."""
        return self.dataset.num_classes

    def __repr__(self) -> str:
        d = self.dataset
        val = "" if d.y_val is None else f", val={len(d.y_val)}"
        return (
            f"Data(name={self.name!r}, train={len(d.y_train)}{val}, test={len(d.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )

    @classmethod
    def from_arrays(
        cls,
        x_train: Any,
        y_train: Any,
        x_test: Any,
        y_test: Any,
        x_val: Any = None,
        y_val: Any = None,
        *,
        name: str = "arrays",
    ) -> Data:
        """Data from NumPy arrays or torch tensors (or anything ``numpy.asarray`` reads).

        ``x_*`` are feature vectors ``(N, F)``, images ``(N, H, W)`` or ``(N, C, H, W)``;
        ``y_*`` their labels ``(N,)`` (or ``(N, 1)``), class indices 0, 1, 2, ... A validation
        split ``x_val, y_val`` is optional: given, it is the study's validation set (its
        ``validation`` fraction is then not carved from the training split); else the study
        carves one as for any dataset. Raises :class:`DropoutlabError` in one line for
        mismatched lengths or shapes, non-finite values, labels that are not class indices,
        fewer than two classes or an empty split.
        """
        name = check_name(name)
        if (x_val is None) != (y_val is None):
            raise DropoutlabError(f"data {name!r}: give both x_val and y_val, or neither")
        splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
        if x_val is not None:
            splits["val"] = (x_val, y_val)
        return cls(build_dataset(name, splits))

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        label: str,
        *,
        test: Any = 0.2,
        validation: Any = None,
        name: str = "frame",
    ) -> Data:
        """Data from a pandas DataFrame: ``label`` names the label column, every other column
        is a feature (numbers or booleans; encode text first, e.g. ``pandas.get_dummies``).

        ``test`` is a DataFrame of the same columns, or the fraction of ``frame`` held out for
        testing (default 0.2: stratified by label, fixed by ``random_state=0``, so every study
        tests on the same rows). ``validation`` is an optional DataFrame; without one a study
        carves its ``validation`` fraction from the training rows. Labels that are not numbers
        (text, categories) become class indices in sorted order (:attr:`classes`).
        """
        from dropoutlab.data.tabular import frame_splits

        name = check_name(name)
        splits, classes = frame_splits(frame, label, test, validation, name)
        return cls(build_dataset(name, splits), classes=classes)

    @classmethod
    def from_dataset(
        cls, train: Any, test: Any = 0.2, validation: Any = None, *, name: str = "dataset"
    ) -> Data:
        """Data from map-style torch ``Dataset`` objects (``len`` and ``ds[i]``), whose items are
        ``(input, label)``: an input tensor (or array) of the same shape for every item, and an
        integer label. Each is read once, item by item, into one tensor; transforms run then,
        once, not per epoch. ``test`` is a second Dataset, or the fraction of ``train``'s items
        held out for testing (default 0.2, stratified by label, ``random_state=0``, as
        :meth:`from_frame`). ``validation`` is optional, as for :meth:`from_arrays`.
        """
        name = check_name(name)
        splits = {"train": read_items(train, "train", name)}
        if isinstance(test, int | float) and not isinstance(test, bool):
            if not 0 < test < 1:
                raise DropoutlabError(
                    f"data {name!r}: test={test!r} is not allowed; allowed: a Dataset of test items, or the "
                    "fraction of the items held out for testing, in (0, 1)"
                )
            splits["train"], splits["test"] = hold_out(*splits["train"], float(test), f"data {name!r}")
        else:
            splits["test"] = read_items(test, "test", name)
        if validation is not None:
            splits["val"] = read_items(validation, "validation", name)
        return cls(build_dataset(name, splits))


def use(data: Any, datasets: Iterable[str]) -> None:
    """Make ``data`` (a :class:`Data`) the data of its name again (another may have replaced it
    since), and refuse it when no run of ``datasets`` (their dataset names) trains on it."""
    if not isinstance(data, Data):
        raise DropoutlabError(
            f"data=: {type(data).__name__} is not allowed; allowed: a dropoutlab.Data "
            "(Data.from_arrays, Data.from_frame, Data.from_dataset)"
        )
    remember(data)
    names = sorted(set(datasets))
    if data.name not in names:
        raise DropoutlabError(
            f"data=: the data is named {data.name!r} but the study trains on {', '.join(map(repr, names))}; "
            f"set dataset = {data.name!r} in the study"
        )


def check_name(name: Any) -> str:
    """``name`` if it can name data from Python: text of 1 to 200 printable characters, neither
    a registered dataset's name nor a file form (``npz:``, ``csv:``)."""
    if not isinstance(name, str) or not name.strip():
        raise DropoutlabError(f"data name: {name!r} is not allowed; allowed: a short text, e.g. 'my-data'")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise DropoutlabError(
            f"data name: {name[:40]!r}... is not allowed; allowed: at most {MAX_NAME_CHARS} printable characters"
        )
    if name.lower().replace("_", "-") in DATASETS or name.lower().startswith(FILE_PREFIXES):
        raise DropoutlabError(
            f"data name: {name!r} names a registered dataset or a file form; give your data another name"
        )
    return name
