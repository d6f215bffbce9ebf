"""The deployment's data: SQLite in WAL mode, one file per data directory.

A step or survey response is acknowledged to its participant only after the
transaction holding it has committed (WAL with ``synchronous=NORMAL`` keeps
every committed transaction across a killed server process). The server
commits once per frame tick for all sessions, so the cost of a commit is
shared by everyone stepping in that tick.

The steps table has no secondary index: with hundreds of sessions stepping
at once, an index keyed by participant or scene rewrote one B-tree page per
session per commit (about 8 µs a row, and megabytes of WAL a second).
Readers scan it in recording order instead. WAL checkpoints (copying the
log back into the database file, with an fsync) run in a background thread,
never in the commit that acknowledges a frame.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mug.session.messages import jsonable

__all__ = ["Store", "SessionRecorder", "STEP_COLUMNS"]

log = logging.getLogger("mug.server")

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    progress TEXT NOT NULL,
    scene_id TEXT,
    completed INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    participant_id TEXT NOT NULL,
    session_id TEXT,
    scene_id TEXT,
    kind TEXT NOT NULL,
    time REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY,
    participant_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    scene_id TEXT NOT NULL,
    episode INTEGER NOT NULL,
    step INTEGER NOT NULL,
    decision INTEGER NOT NULL,
    time REAL NOT NULL,
    record TEXT NOT NULL  -- JSON object: actions, sources, rewards, terminated, truncated, infos?, observations?, policy_outputs?
);
DROP INDEX IF EXISTS steps_by_scene;
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY,
    participant_id TEXT NOT NULL,
    scene_id TEXT NOT NULL,
    time REAL NOT NULL,
    answers TEXT NOT NULL
);
"""

STEP_COLUMNS = (
    "participant_id", "session_id", "scene_id", "episode", "step", "decision", "time",
    "actions", "sources", "rewards", "terminated", "truncated", "infos", "observations", "policy_outputs",
)  # fmt: skip
_JSON_STEP_FIELDS = ("actions", "sources", "rewards", "terminated", "truncated", "infos", "observations", "policy_outputs")
_KEY_COLUMNS = STEP_COLUMNS[:7]


def _plain(value: Any) -> Any:
    """What the JSON encoder cannot take by itself (NumPy scalars and arrays, odd objects)."""
    return jsonable(value.tolist() if isinstance(value, np.ndarray) else value.item() if isinstance(value, np.generic) else value)


# Python's encoder, not orjson: a NaN or infinite reward must stay NaN/Infinity in the data, not become null.
# Records are fresh trees (see ``jsonable``), so the circular-reference check is skipped.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_plain, allow_nan=True, check_circular=False)
#: Seconds between background WAL checkpoints while commits keep coming.
CHECKPOINT_INTERVAL_S = 1.0


def _dump(value: Any) -> str | None:
    return None if value is None else _ENCODER.encode(value)


class Store:
    """The SQLite file ``data_dir/mug.sqlite``."""

    def __init__(self, data_dir: str | Path, *, readonly: bool = False) -> None:
        """Open (creating if needed) ``data_dir/mug.sqlite``. A ``readonly`` store has its own
        connection that never writes: use one per thread to read while a server is writing."""
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "mug.sqlite"
        if readonly:
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_soon
            self.db.executescript(SCHEMA)
        self._pending_steps: list[tuple] = []
        self._pending_other: list[tuple[str, tuple]] = []
        self._checkpointer: threading.Thread | None = None
        self._last_checkpoint = time.monotonic()

    # -- writing (buffered until commit) -------------------------------------------------

    def add_step(self, participant_id: str, data: dict[str, Any]) -> None:
        """Queue one step event (``GameSession``'s ``step`` data) for the next :meth:`commit`."""
        record = {f: data[f] for f in _JSON_STEP_FIELDS if f in data}
        self._pending_steps.append(
            (
                participant_id,
                data["session_id"],
                data["scene_id"],
                data["episode"],
                data["step"],
                data["decision"],
                data["time"],
                _dump(record),
            )
        )

    def add_event(self, participant_id: str, kind: str, data: dict[str, Any]) -> None:
        """Queue a non-step event (scene or episode boundaries, errors, advances)."""
        self._pending_other.append(
            (
                "INSERT INTO events (participant_id, session_id, scene_id, kind, time, data) VALUES (?, ?, ?, ?, ?, ?)",
                (participant_id, data.get("session_id"), data.get("scene_id"), kind, data.get("time", time.time()), _dump(data)),
            )
        )

    def add_response(self, participant_id: str, scene_id: str, answers: dict[str, Any]) -> None:
        """Queue a survey response."""
        self._pending_other.append(
            (
                "INSERT INTO responses (participant_id, scene_id, time, answers) VALUES (?, ?, ?, ?)",
                (participant_id, scene_id, time.time(), _dump(answers)),
            )
        )

    def save_participant(
        self, participant_id: str, progress: dict[str, Any], scene_id: str | None, completed: bool, metadata: dict | None = None
    ) -> None:
        """Queue the participant's progress (inserted on first save)."""
        now = time.time()
        self._pending_other.append(
            (
                "INSERT INTO participants (participant_id, created, updated, progress, scene_id, completed, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(participant_id) DO UPDATE SET "
                "updated=excluded.updated, progress=excluded.progress, scene_id=excluded.scene_id, completed=excluded.completed",
                (participant_id, now, now, json.dumps(progress), scene_id, int(completed), json.dumps(metadata or {})),
            )
        )

    @property
    def dirty(self) -> bool:
        """Whether anything waits for :meth:`commit`."""
        return bool(self._pending_steps or self._pending_other)

    def commit(self) -> None:
        """Write everything queued in one transaction."""
        if not self.dirty:
            return
        steps, other = self._pending_steps, self._pending_other
        self._pending_steps, self._pending_other = [], []
        with self.db:
            self.db.execute("BEGIN")
            if steps:
                self.db.executemany(
                    f"INSERT INTO steps ({', '.join(_KEY_COLUMNS)}, record) VALUES ({', '.join('?' * (len(_KEY_COLUMNS) + 1))})",
                    steps,
                )
            for sql, params in other:
                self.db.execute(sql, params)
        self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Start a background WAL checkpoint if the last one is done and old enough."""
        now = time.monotonic()
        if now - self._last_checkpoint < CHECKPOINT_INTERVAL_S or (self._checkpointer and self._checkpointer.is_alive()):
            return
        self._last_checkpoint = now
        self._checkpointer = threading.Thread(target=self._checkpoint, name="mug-wal-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint(self) -> None:
        """Copy committed WAL pages into the database file (its own connection; writers are not blocked)."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # retried at the next interval; the data is safe in the WAL meanwhile
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            db.close()

    # -- reading ------------------------------------------------------------------------

    def participant(self, participant_id: str) -> dict[str, Any] | None:
        """The stored participant row (progress decoded), or ``None``."""
        row = self.db.execute(
            "SELECT participant_id, created, updated, progress, scene_id, completed, metadata FROM participants WHERE participant_id = ?",
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
        }

    def participants(self) -> list[dict[str, Any]]:
        """Every participant with progress and step count."""
        rows = self.db.execute(
            "SELECT p.participant_id, p.created, p.updated, p.scene_id, p.completed, p.progress, COALESCE(c.n, 0) "
            "FROM participants p LEFT JOIN (SELECT participant_id, COUNT(*) AS n FROM steps GROUP BY participant_id) c "
            "USING (participant_id) ORDER BY p.created"
        ).fetchall()
        out = []
        for pid, created, updated, scene, completed, progress, steps in rows:
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
                }
            )
        return out

    def steps(self, scene_id: str | None = None) -> list[dict[str, Any]]:
        """Recorded steps, optionally of one scene, in recording order: the key columns plus
        ``actions``, ``sources``, ``rewards``, ``terminated``, ``truncated``, ``infos``,
        ``observations`` and ``policy_outputs`` (``None`` where not recorded)."""
        sql = f"SELECT {', '.join(_KEY_COLUMNS)}, record FROM steps"
        rows = self.db.execute(
            sql + (" WHERE scene_id = ? ORDER BY id" if scene_id else " ORDER BY id"), (scene_id,) if scene_id else ()
        ).fetchall()
        out = []
        for row in rows:
            step = dict(zip(_KEY_COLUMNS, row[:-1]))
            record = json.loads(row[-1])
            step.update({f: record.get(f) for f in _JSON_STEP_FIELDS})
            out.append(step)
        return out

    def responses(self, scene_id: str | None = None) -> list[dict[str, Any]]:
        """Survey responses, optionally of one scene."""
        sql = "SELECT participant_id, scene_id, time, answers FROM responses"
        rows = self.db.execute(
            sql + (" WHERE scene_id = ? ORDER BY id" if scene_id else " ORDER BY id"), (scene_id,) if scene_id else ()
        ).fetchall()
        return [{"participant_id": p, "scene_id": s, "time": t, "answers": json.loads(a)} for p, s, t, a in rows]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Non-step events, optionally of one kind."""
        sql = "SELECT participant_id, session_id, scene_id, kind, time, data FROM events"
        rows = self.db.execute(
            sql + (" WHERE kind = ? ORDER BY id" if kind else " ORDER BY id"), (kind,) if kind else ()
        ).fetchall()
        return [
            {"participant_id": p, "session_id": se, "scene_id": sc, "kind": k, "time": t, "data": json.loads(d)}
            for p, se, sc, k, t, d in rows
        ]

    def close(self) -> None:
        """Commit what is queued and close the file."""
        self.commit()
        if self._checkpointer is not None:
            self._checkpointer.join()
        self.db.close()


class SessionRecorder:
    """A :class:`~mug.session.recording.Recorder` writing one participant's session to the store."""

    def __init__(self, store: Store, participant_id: str) -> None:
        self.store, self.participant_id = store, participant_id

    def record(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "step":
            self.store.add_step(self.participant_id, data)
        else:
            self.store.add_event(self.participant_id, kind, data)
