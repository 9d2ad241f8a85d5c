"""Studies: their names, the definition kept beside their runs, the looks of a sequential
study, and the archive that ``--replace`` makes of a study's runs and looks."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import StudySpec, spec_run_id
from dropoutlab.store.records import Damaged, Records, now_text, number, parse_json, shown_id, whole

RUN_TABLES = ("epochs", "mc", "learned_rates", "weights")  # keyed by run id, renamed with their run


class Studies(Records):
    """Study-wide rows (part of :class:`~dropoutlab.store.Store`)."""

    def write_study(self, study: StudySpec) -> None:
        """Keep the study's definition (grid, seeds, report settings) beside its runs."""
        with self._write(f"the definition of study {study.name!r}") as conn:
            conn.execute(
                *self._replace(
                    "studies", [{"name": study.name, "definition": json.dumps(study.definition())}]
                )
            )

    def study_definition(self, study: str) -> dict[str, Any] | None:
        """The definition :meth:`write_study` kept for ``study``, or None (stores made before it)."""
        studies = self.tables["studies"]
        with self._read() as conn:
            text = conn.execute(sa.select(studies.c.definition).where(studies.c.name == study)).scalar()
        if text is None:
            return None
        try:
            definition = check_definition(parse_json(text, dict))
        except Damaged as exc:
            raise DropoutlabError(
                f"{self.name}: study {shown_id(study)}: the column definition {exc}; it was changed outside "
                "dropoutlab: restore the store, or run the study with --replace to keep its runs archived"
            ) from None
        return definition

    def studies(self) -> list[str]:
        """Names of the studies in the store, in the order they were first written."""
        runs = self.tables["runs"]
        query = sa.select(runs.c.study).group_by(runs.c.study).order_by(sa.func.min(self._order))
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def resolve_study(self, study: str | None) -> str:
        """``study`` if stored, or the only study; otherwise a DropoutlabError listing them."""
        names = self.studies()
        if not names:
            raise DropoutlabError(f"{self.name}: the store has no runs yet")
        if study is None:
            if len(names) > 1:
                raise DropoutlabError(
                    f"{self.name} holds several studies; choose one with --study: {', '.join(names)}"
                )
            return names[0]
        if study not in names:
            raise DropoutlabError(f"study {study!r} is not in {self.name}; it holds: {', '.join(names)}")
        return study

    def write_look(self, study: str, look: int, record: dict[str, Any]) -> None:
        """Store look number ``look`` (1, 2, ...) of the sequential study ``study``: ``record``
        (a dict that JSON can hold: what was decided and on which numbers), in one transaction.

        A look is never taken twice: writing a look that the store holds already is a
        DropoutlabError and leaves the stored one as it was. Looks move with their study when
        ``--replace`` archives it (:meth:`archive_study`).
        """
        if isinstance(look, bool) or not isinstance(look, int) or look < 1:
            raise DropoutlabError(f"study {study!r}: look {look!r} is not a look number (1, 2, ...)")
        row = {"study": study, "look": look, "record": json.dumps(record), "written_at": now_text()}
        try:
            with self._write(f"look {look} of study {study!r}") as conn:
                conn.execute(sa.insert(self.tables["looks"]), [row])
        except sa.exc.IntegrityError:
            raise DropoutlabError(
                f"{self.name}: look {look} of study {study!r} is stored already and a look is never taken "
                f"twice; the next look is {self._next_look(study)}"
            ) from None

    def looks(self, study: str) -> list[dict[str, Any]]:
        """The looks :meth:`write_look` stored for ``study``, in order: each its record with
        ``look`` (its number) added; [] when the study took none."""
        looks = self.tables["looks"]
        query = sa.select(looks.c.look, looks.c.record).where(looks.c.study == study).order_by(looks.c.look)
        with self._read() as conn:
            rows = conn.execute(query).all()
        looks = []
        for look, record in rows:
            try:
                looks.append({**parse_json(record, dict), "look": whole(look, False)})
            except Damaged as exc:
                raise DropoutlabError(
                    f"{self.name}: look {look!r} of study {shown_id(study)}: the column record {exc}; it was "
                    "changed outside dropoutlab: restore the store"
                ) from None
        return looks

    def _next_look(self, study: str) -> int:
        looks = self.tables["looks"]
        with self._read() as conn:
            last = conn.execute(sa.select(sa.func.max(looks.c.look)).where(looks.c.study == study)).scalar()
        return (last or 0) + 1

    def archive_study(self, study: str) -> str | None:
        """Rename the runs, definition and looks of ``study`` to ``STUDY@archived-N`` (the first
        free N), in one transaction; returns that name, or None when the store holds nothing
        of ``study``.

        Nothing is deleted: the archived runs keep their history and can be reported with
        ``--study``. Their ids become those of the archived name, so the study can run again.
        """
        runs, studies, looks = self.tables["runs"], self.tables["studies"], self.tables["looks"]
        with self._read() as conn:  # rows counted, not decoded: a damaged definition is archived too
            held = sum(
                conn.execute(sa.select(sa.func.count()).where(column == study)).scalar()
                for column in (studies.c.name, looks.c.study)
            )
        if not self.count_runs(study) and not held:
            return None
        taken = set(self.studies())
        with self._read() as conn:  # one connection at a time: an SQLite store has only one
            taken |= set(conn.execute(sa.select(studies.c.name)).scalars())
            taken |= set(conn.execute(sa.select(looks.c.study)).scalars())
            rows = conn.execute(
                sa.select(runs.c.id, runs.c.spec, runs.c.seed).where(runs.c.study == study)
            ).all()
        n = 1
        while f"{study}@archived-{n}" in taken:
            n += 1
        archived = f"{study}@archived-{n}"
        with self._write(f"the archive of study {study!r}") as conn:
            # ids change in every table keyed by run: check the references at commit
            conn.exec_driver_sql(
                "SET CONSTRAINTS ALL DEFERRED" if self.postgres else "PRAGMA defer_foreign_keys = ON"
            )
            for old_id, spec, seed in rows:
                try:
                    settings = {k: v for k, v in parse_json(spec, dict).items() if k != "seed"}
                except Damaged as exc:
                    raise DropoutlabError(
                        f"{self.name}: run {shown_id(old_id)}: the column spec {exc}; it was changed outside "
                        "dropoutlab, so the study cannot be archived: restore the store"
                    ) from None
                new_id = spec_run_id(archived, settings, seed)
                for table in RUN_TABLES:
                    t = self.tables[table]
                    conn.execute(sa.update(t).where(t.c.run_id == old_id).values(run_id=new_id))
                conn.execute(sa.update(runs).where(runs.c.id == old_id).values(id=new_id, study=archived))
            conn.execute(sa.update(studies).where(studies.c.name == study).values(name=archived))
            conn.execute(sa.update(looks).where(looks.c.study == study).values(study=archived))
        return archived


def check_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition whose entries have the types its readers index into (the report,
    the changed-study check): ``settings`` a table, ``grid`` a table or a list of tables of
    lists, ``seeds`` a list of whole numbers, ``min_effect`` a number, ``description`` text;
    each may be absent. :class:`Damaged` names the first that is not."""

    def wrong(key: str) -> Damaged:
        return Damaged(f"holds a {key} entry of the wrong type ({shown_id(definition[key])[:60]})")

    if not isinstance(definition.get("settings", {}), dict):
        raise wrong("settings")
    grid = definition.get("grid", [])
    subs = grid if isinstance(grid, list) else [grid]
    if not all(isinstance(sub, dict) and all(isinstance(v, list) for v in sub.values()) for sub in subs):
        raise wrong("grid")
    seeds = definition.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise wrong("seeds")
    if definition.get("min_effect") is not None:
        number(definition["min_effect"])
    if not isinstance(definition.get("description", ""), str | None):
        raise wrong("description")
    return definition
