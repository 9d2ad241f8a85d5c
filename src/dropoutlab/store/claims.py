"""Claims, leases and heartbeats: which driver trains which run, so that two drivers on one
store never train a run twice (:mod:`dropoutlab.study.leases` renews them from a thread)."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from dropoutlab.runs import FINISHED
from dropoutlab.store.base import StoreBase


class Claims(StoreBase):
    """The ``claims`` table (part of :class:`~dropoutlab.store.Store`)."""

    def claim(
        self,
        run_ids: list[str],
        owner: str,
        lease_s: float,
        gone: Callable[[str], bool] = lambda owner: False,
        study: str | None = None,
    ) -> list[str]:
        """Claim the runs of ``run_ids`` (of ``study``) that no other driver holds and that are not
        finished, for ``owner``, in one transaction; returns them in order (with those ``owner``
        held already).

        A claim is another driver's while its heartbeat (:meth:`renew`) is younger than
        ``lease_s`` seconds and ``gone(its owner)`` is false; an older one, or one whose
        driver is gone (killed), is taken over.
        """
        runs = self.tables["runs"]
        with self._write("the claims of this driver's runs") as conn:
            if self.postgres:  # SQLite's BEGIN IMMEDIATE already locked the whole file
                conn.execute(sa.text("LOCK TABLE claims IN EXCLUSIVE MODE"))
            held = self._live_claims(conn, lease_s, gone)  # read under the lock: no heartbeat ages meanwhile
            finished = set(conn.execute(sa.select(runs.c.id).where(runs.c.status.in_(FINISHED))).scalars())
            mine = [rid for rid in run_ids if rid not in finished and held.get(rid, owner) == owner]
            if mine:
                now = self._now(conn)
                conn.execute(
                    *self._replace(
                        "claims",
                        [{"run_id": r, "owner": owner, "heartbeat": now, "study": study} for r in mine],
                    )
                )
        return mine

    def renew(self, owner: str) -> int:
        """Renew the heartbeat of ``owner``'s claims (it is still training them); returns how
        many it still holds (fewer than it claimed when another driver took some over)."""
        claims = self.tables["claims"]
        with self._write("the heartbeat of this driver's claims") as conn:
            result = conn.execute(
                sa.update(claims).where(claims.c.owner == owner).values(heartbeat=self._now(conn))
            )
        return result.rowcount

    def live_claims(
        self, lease_s: float, gone: Callable[[str], bool] = lambda owner: False, study: str | None = None
    ) -> dict[str, str]:
        """``{run_id: owner}`` of the claims whose driver is alive (heartbeat younger than
        ``lease_s``, not ``gone``); only those on runs of ``study`` when given (whatever their
        design: an extension or an older one), with those whose study is unknown."""
        with self._read() as conn:
            return self._live_claims(conn, lease_s, gone, study)

    def _now(self, conn: sa.Connection) -> float:
        """The time heartbeats are measured in: the server's clock for PostgreSQL, whose drivers
        may run on machines whose clocks differ; this machine's for an SQLite file."""
        if self.postgres:
            return float(
                conn.execute(sa.select(sa.func.extract("epoch", sa.func.clock_timestamp()))).scalar()
            )
        return time.time()

    def _live_claims(
        self, conn: sa.Connection, lease_s: float, gone: Callable[[str], bool], study: str | None = None
    ) -> dict[str, str]:
        now = self._now(conn)
        claims = self.tables["claims"]
        query = sa.select(claims.c.run_id, claims.c.owner, claims.c.heartbeat)
        if study is not None:
            query = query.where(sa.or_(claims.c.study == study, claims.c.study.is_(None)))
        rows = conn.execute(query).all()
        return {rid: who for rid, who, beat in rows if now - beat < lease_s and not gone(who)}

    def release(self, owner: str) -> None:
        """Drop ``owner``'s claims (it stopped: its unfinished runs are free for the next driver)."""
        claims = self.tables["claims"]
        with self._write("the release of this driver's claims") as conn:
            conn.execute(sa.delete(claims).where(claims.c.owner == owner))

    def forget_stale_claims(
        self, lease_s: float, gone: Callable[[str], bool] = lambda owner: False, study: str | None = None
    ) -> int:
        """Delete the claims whose driver is not alive (its heartbeat ``lease_s`` old or older, or
        ``gone``): what a killed driver left behind, of runs of ``study`` when given; returns how
        many. Checked and deleted in one transaction, so a claim renewed meanwhile is kept."""
        claims = self.tables["claims"]
        with self._write("the deletion of stale claims") as conn:
            if self.postgres:
                conn.execute(sa.text("LOCK TABLE claims IN EXCLUSIVE MODE"))
            live = self._live_claims(conn, lease_s, gone, study)
            query = sa.select(claims.c.run_id)
            if study is not None:
                query = query.where(claims.c.study == study)
            stale = [rid for rid in conn.execute(query).scalars() if rid not in live]
            for start in range(0, len(stale), 500):  # SQLite's bound on a statement's parameters
                conn.execute(sa.delete(claims).where(claims.c.run_id.in_(stale[start : start + 500])))
        return len(stale)

    def holder(self, run_id: str) -> str | None:
        """The owner of the claim on ``run_id``, or None when no driver claims it."""
        claims = self.tables["claims"]
        with self._read() as conn:
            return conn.execute(sa.select(claims.c.owner).where(claims.c.run_id == run_id)).scalar()

    def claimed(self, owner: str | None = None) -> dict[str, str]:
        """``{run_id: owner}`` of the claims held now (``owner``'s only, when given)."""
        claims = self.tables["claims"]
        with self._read() as conn:
            rows = conn.execute(sa.select(claims.c.run_id, claims.c.owner)).all()
        return {rid: who for rid, who in rows if owner is None or who == owner}
