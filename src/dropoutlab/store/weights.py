"""Weights and checkpoints: the weights ``dropoutlab run --keep-weights`` stored with each run,
and the folder beside the store where ``--checkpoint-every`` saves stacks."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from dropoutlab.store.base import StoreBase


class Weights(StoreBase):
    """Kept weights and the checkpoint folder (part of :class:`~dropoutlab.store.Store`)."""

    def weights(self, run_id: str) -> bytes | None:
        """The weights ``dropoutlab run --keep-weights`` stored for a run (``torch.save`` bytes), or None."""
        weights = self.tables["weights"]
        with self._read() as conn:
            return conn.execute(sa.select(weights.c.state).where(weights.c.run_id == run_id)).scalar()

    def runs_with_weights(self) -> set[str]:
        """Ids of the runs whose weights the store holds (``dropoutlab run --keep-weights``)."""
        with self._read() as conn:
            return set(conn.execute(sa.select(self.tables["weights"].c.run_id)).scalars())

    def checkpoint_folder(self) -> Path:
        """Where ``--checkpoint-every`` saves stacks: ``STORE.checkpoints`` beside an SQLite file;
        for a PostgreSQL store, ``HOST-PORT-DB.checkpoints`` in the current folder."""
        if self.path is not None:
            return self.path.with_name(self.path.name + ".checkpoints").resolve()
        url = self.engine.url
        database = url.database or url.username  # PostgreSQL's default database is the user's
        return Path(f"{url.host or 'local'}-{url.port or 5432}-{database}.checkpoints").resolve()
