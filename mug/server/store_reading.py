"""Reading the deployment's data back: the query side of :class:`mug.server.store.Store`.

Every reader returns plain dicts (JSON columns decoded) and iterates in
batches of ``BATCH_ROWS`` rows, so that a large data file is read in bounded
memory. A ``Store(readonly=True)`` has its own connection: use one per thread
to read while a server is writing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = ["BATCH_ROWS", "JSON_STEP_FIELDS", "KEY_COLUMNS", "STEP_COLUMNS", "StoreReading"]

#: Rows fetched from SQLite at a time by the readers.
BATCH_ROWS = 1000
STEP_COLUMNS = (
    "participant_id", "session_id", "scene_id", "episode", "step", "decision", "time", "match_id",
    "actions", "sources", "rewards", "terminated", "truncated", "infos", "observations", "policy_outputs",
    "obs_hash", "verified",
)  # fmt: skip
JSON_STEP_FIELDS = (
    "actions", "sources", "rewards", "terminated", "truncated", "infos", "observations", "policy_outputs", "obs_hash",
    "frame", "chain", "ai_digests",  # a peer-to-peer match's steps: the confirmed frame and its hash chain
)  # fmt: skip
KEY_COLUMNS = STEP_COLUMNS[:8]


class StoreReading:
    """The readers of a :class:`~mug.server.store.Store` (its ``db`` connection, ``_has_matches`` and
    ``_step_select``: the key columns this data file has)."""

    db: sqlite3.Connection
    _has_matches: bool
    _step_select: str

    def participant(self, participant_id: str) -> dict[str, Any] | None:
        """The stored participant row (progress decoded), or ``None``."""
        row = self.db.execute(
            "SELECT participant_id, created, updated, progress, scene_id, completed, metadata, completion_code "
            "FROM participants WHERE participant_id = ?",
            (participant_id,),
        ).fetchone()
        if row is None:
            return None
        return {
            "participant_id": row[0],
            "created": row[1],
            "updated": row[2],
            "progress": json.loads(row[3]),
            "scene_id": row[4],
            "completed": bool(row[5]),
            "metadata": json.loads(row[6]),
            "completion_code": row[7],
        }

    def _rows(self, sql: str, params: tuple = ()) -> Iterator[tuple]:
        """The rows of ``sql``, fetched ``BATCH_ROWS`` at a time."""
        cursor = self.db.execute(sql, params)
        try:
            while batch := cursor.fetchmany(BATCH_ROWS):
                yield from batch
        finally:
            cursor.close()

    def participants(self) -> list[dict[str, Any]]:
        """Every participant with progress, step count (the steps of their own games and of the matches they
        held a seat in) and completion code (``None`` unless the study gives each participant their own)."""
        counts = dict(self.db.execute("SELECT participant_id, COUNT(*) FROM steps GROUP BY participant_id").fetchall())
        for match in self.matches():  # a match's steps are stored once, under its id
            for pid in match["seats"].values():
                counts[pid] = counts.get(pid, 0) + counts.get(match["match_id"], 0)
        rows = self.db.execute(
            "SELECT participant_id, created, updated, scene_id, completed, progress, completion_code "
            "FROM participants ORDER BY created"
        ).fetchall()
        rows = [(*row[:6], counts.get(row[0], 0), row[6]) for row in rows]
        out = []
        for pid, created, updated, scene, completed, progress, steps, code in rows:
            prog = json.loads(progress)
            out.append(
                {
                    "participant_id": pid,
                    "created": created,
                    "updated": updated,
                    "scene_id": scene,
                    "completed": bool(completed),
                    "scene_index": prog.get("index", 0),
                    "scenes": len(prog.get("order", [])),
                    "steps": steps,
                    "completion_code": code,
                }
            )
        return out

    def matches(self) -> list[dict[str, Any]]:
        """Every match: ``match_id``, ``scene_id``, ``seats`` ({agent: participant id}), ``formed``, ``started``,
        ``ended`` (seconds since the epoch; ``None`` while running) and ``end_reason``."""
        if not self._has_matches:
            return []
        rows = self.db.execute(
            "SELECT match_id, scene_id, seats, formed, started, ended, end_reason FROM matches ORDER BY formed, match_id"
        ).fetchall()
        keys = ("match_id", "scene_id", "seats", "formed", "started", "ended", "end_reason")
        return [{**dict(zip(keys, row)), "seats": json.loads(row[2])} for row in rows]

    def responses_of(self, participant_id: str) -> dict[str, dict[str, Any]]:
        """One participant's survey answers, ``{scene_id: answers}`` (the latest per scene)."""
        rows = self.db.execute(
            "SELECT scene_id, answers FROM responses WHERE participant_id = ? ORDER BY id", (participant_id,)
        ).fetchall()
        return {scene: json.loads(answers) for scene, answers in rows}

    def iter_steps(self, scene_id: str | None = None, *, up_to: int | None = None) -> Iterator[dict[str, Any]]:
        """Recorded steps, optionally of one scene, in recording order (read in batches): the key columns
        plus ``actions``, ``sources``, ``rewards``, ``terminated``, ``truncated``, ``infos``,
        ``observations`` and ``policy_outputs`` (``None`` where not recorded). ``up_to``: only rows up to
        that row id (:meth:`last_step_id`), so that two passes over a live store read the same rows."""
        where, params = [], []
        if scene_id:
            where.append("scene_id = ?")
            params.append(scene_id)
        if up_to is not None:
            where.append("id <= ?")
            params.append(up_to)
        verdicts = self.verifications()
        sql = f"SELECT {self._step_select}, record FROM steps"
        for row in self._rows(sql + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id", tuple(params)):
            step = dict(zip(KEY_COLUMNS, row[:-1]))
            record = json.loads(row[-1])
            step.update({f: record.get(f) for f in JSON_STEP_FIELDS})
            verdict = verdicts.get((step["session_id"], step["episode"]))
            step["verified"] = None if verdict is None else step["step"] < verdict[0] and step["step"] not in verdict[1]
            yield step

    def verifications(self) -> dict[tuple[str, int], tuple[int, set[int]]]:
        """``(session_id, episode) -> (steps checked, steps that differed)`` from the ``verification`` events
        (the latest per episode): a step is verified when it was checked and did not differ. A verification lists
        at most :data:`mug.server.verify.MAX_LISTED` differing steps: past the last one listed, when more differed, no step counts as
        checked (they read ``False``, never a ``True`` that was not established). A verification with an ``error`` (the
        env could not start) is no verdict and is skipped."""
        out = {}
        for (data,) in self.db.execute("SELECT data FROM events WHERE kind = 'verification' ORDER BY id"):
            v = json.loads(data)
            if v.get("error"):  # no verdict: the env could not start where it was verified
                continue
            listed = {int(m["step"]) for m in v["mismatches"]}
            checked = int(v["checked"])
            if int(v.get("mismatched", len(listed))) > len(listed):
                checked = min(checked, max(listed, default=-1) + 1)
            out[(v["session_id"], v["episode"])] = (checked, listed)
        return out

    def last_step_id(self) -> int:
        """The row id of the latest recorded step (0 when there is none)."""
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM steps").fetchone()[0])

    def steps(self, scene_id: str | None = None) -> list[dict[str, Any]]:
        """:meth:`iter_steps` as a list."""
        return list(self.iter_steps(scene_id))

    def iter_responses(self, scene_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Survey responses, optionally of one scene, in order (read in batches)."""
        sql = "SELECT participant_id, scene_id, time, answers FROM responses"
        for p, s, t, a in self._rows(
            sql + (" WHERE scene_id = ? ORDER BY id" if scene_id else " ORDER BY id"), (scene_id,) if scene_id else ()
        ):
            yield {"participant_id": p, "scene_id": s, "time": t, "answers": json.loads(a)}

    def responses(self, scene_id: str | None = None) -> list[dict[str, Any]]:
        """:meth:`iter_responses` as a list."""
        return list(self.iter_responses(scene_id))

    def iter_events(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Non-step events, optionally of one kind, in order (read in batches)."""
        sql = "SELECT participant_id, session_id, scene_id, kind, time, data FROM events"
        for p, se, sc, k, t, d in self._rows(
            sql + (" WHERE kind = ? ORDER BY id" if kind else " ORDER BY id"), (kind,) if kind else ()
        ):
            yield {"participant_id": p, "session_id": se, "scene_id": sc, "kind": k, "time": t, "data": json.loads(d)}

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """:meth:`iter_events` as a list."""
        return list(self.iter_events(kind))
