"""Leases: which driver trains which run, so that two drivers on one store never train a run twice.

Two ``dropoutlab run`` commands may share a store: two terminals, or a laptop and a cluster
head writing the same SQLite file. Before training, a driver claims the runs it is about to
train (:meth:`~dropoutlab.store.Store.claim`, one transaction) and renews its claims from a
background thread while it trains; a run another live driver holds is left to it. When a
driver stops, it releases its claims; when it is killed, its claims lapse: after
:data:`LEASE_S` seconds without a heartbeat, or at once when its process is gone from this
machine, the next driver takes its runs over (as Optuna's RDB storage fails stale trials).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from pathlib import Path

import sqlalchemy

from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store

log = logging.getLogger(__name__)

#: Seconds without a heartbeat after which a claim lapses; drivers renew every quarter of it.
LEASE_S = 120.0


def process_space() -> str:
    """What makes a pid mean one process: the boot and the pid namespace. Containers sharing a
    host name (host networking) but not their pids differ here."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: no fast path
        return "unknown"
    return f"{boot[:8]}-{namespace}"


def driver_id() -> str:
    """A new driver's owner name: ``host:pid:process-space:random``, unique across machines,
    containers and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_space()}:{uuid.uuid4().hex[:8]}"


def driver_gone(owner: str) -> bool:
    """Whether ``owner``'s process is known to be gone: it ran on this machine, in this pid
    space (:func:`process_space`), and its pid is no longer alive. A driver elsewhere is never
    known gone: its claims lapse with its lease."""
    host, pid, space, *_ = [*owner.split(":"), "", "", ""]
    here = process_space()
    if host != socket.gethostname() or not pid.isdigit() or here == "unknown" or space != here:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Lease:
    """Claims held by one driver while it trains (a context manager).

    On entry nothing is claimed yet; :meth:`claim` claims runs. While inside, a thread renews
    the claims every ``LEASE_S / 4`` seconds through its own connection to the store; on exit
    the claims are released, whether training ended or raised.
    """

    def __init__(self, store: Store, lease_s: float = LEASE_S, study: str | None = None) -> None:
        self.store = store
        self.lease_s = lease_s
        self.study = study  # recorded with each claim: --replace and checkpoints ask by study
        self.owner = driver_id()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True)

    def claim(self, run_ids: list[str]) -> list[str]:
        """Claim what of ``run_ids`` no other live driver holds; returns the ids now ours."""
        return self.store.claim(run_ids, self.owner, self.lease_s, driver_gone, self.study)

    def _renew(self) -> None:
        with self.store.new_connection() as store:  # a connection of its own, for its own thread
            while not self._stop.wait(self.lease_s / 4):
                try:
                    store.renew(self.owner)
                except (DropoutlabError, sqlalchemy.exc.SQLAlchemyError) as exc:  # busy: again next beat
                    log.warning("could not renew this driver's claims (trying again): %s", exc)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def holds(self, run_id: str) -> bool:
        """Whether this driver still holds ``run_id`` (no other driver took it over)."""
        return self.store.holder(run_id) == self.owner

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.store.release(self.owner)
        except DropoutlabError as error:  # must not hide the error that ended the training, if any
            log.warning("%s; the claims lapse within %.0f s", error, self.lease_s)
