"""The data made in Python in this process, by name: how a study's ``dataset`` finds a
:class:`~dropoutlab.data.memory.Data` (which adds itself here when made)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

_KNOWN: dict[str, Any] = {}  # name -> Data


def remember(data: Any) -> None:
    """Make ``data`` (a Data) the one its name stands for in this process."""
    before = _KNOWN.get(data.name)
    if before is not None and before is not data and before.identity != data.identity:
        log.info("data %r: replaced by other data of the same name", data.name)
    _KNOWN[data.name] = data


def known(name: str) -> Any | None:
    """The Data made in this process under ``name``, or None."""
    return _KNOWN.get(name)


def known_names() -> list[str]:
    """The names of the Data made in this process, in the order they were first made."""
    return list(_KNOWN)
