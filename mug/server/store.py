"""The deployment's data: SQLite in WAL mode, one file per data directory.

A step or survey response is acknowledged to its participant only after the
transaction holding it has committed (WAL with ``synchronous=NORMAL`` keeps
every committed transaction across a killed server process). The server
commits once per frame tick for all sessions, so the cost of a commit is
shared by everyone stepping in that tick.

Browser-side sessions (:mod:`mug.server.browser_sessions`) keep, in the
``browser_sessions`` table, the highest record ``seq`` committed, updated in the
same transaction as the records: that makes storing idempotent (a resent record
at or below it is skipped) without an index on the steps table.

The steps table has no secondary index: with hundreds of sessions stepping
at once, an index keyed by participant or scene rewrote one B-tree page per
session per commit (about 8 µs a row, and megabytes of WAL a second).
Readers scan it in recording order instead. WAL checkpoints (copying the
log back into the database file, with an fsync) run in a background thread,
never in the commit that acknowledges a frame.

Another program holding the write lock (a ``sqlite3`` shell in a transaction,
a DB browser) never blocks the server: the busy timeout is 0, a commit that
cannot get the lock keeps everything queued and says so (``commit()`` returns
``False``), and the caller retries (see ``ParticipantRegistry.flush``; frames
wait for their steps). Readers (:class:`~mug.server.store_reading.StoreReading`) iterate in batches (bounded memory), each on its
own read-only connection.

Matches (:mod:`mug.server.matches`): the ``matches`` table holds one row per
match (``match_id``, ``scene_id``, ``seats`` JSON ``{agent: participant_id}``,
``formed``, ``started``, ``ended``, ``end_reason``). A match's steps are stored
once, with ``participant_id`` and ``match_id`` both the match id; each agent's
source names the participant of a human seat (``human:<participant_id>``, or
``default:<participant_id>`` when none of their keys gave an action). A data
file from before matches gets the ``match_id`` column when a server opens it.

At start the data directory is checked (:mod:`mug.server.datadir`): a directory
that held a study and now holds nothing refuses to open.
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

try:
    import orjson
except ImportError:  # pragma: no cover - a dependency; the standard encoder does the same, slower
    orjson = None  # type: ignore[assignment]

from mug.server.datadir import check_data_dir, mark_data_dir
from mug.server.store_reading import JSON_STEP_FIELDS, KEY_COLUMNS, STEP_COLUMNS, StoreReading
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
    metadata TEXT NOT NULL DEFAULT '{}',
    completion_code TEXT
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
    match_id TEXT,  -- the match whose step this is (NULL for a one-participant game)
    record TEXT NOT NULL  -- JSON object: actions, sources, rewards, terminated, truncated, infos?, observations?, policy_outputs?
);
DROP INDEX IF EXISTS steps_by_scene;
CREATE TABLE IF NOT EXISTS matches (
    match_id TEXT PRIMARY KEY,
    scene_id TEXT NOT NULL,
    seats TEXT NOT NULL,  -- JSON object: Human agent -> participant id (seats played by fill_with are absent)
    formed REAL NOT NULL,
    started REAL,
    ended REAL,
    end_reason TEXT  -- done, partner_lost, abandoned, error, interrupted
);
CREATE TABLE IF NOT EXISTS browser_sessions (
    session_id TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL,
    scene_id TEXT NOT NULL,
    seq INTEGER NOT NULL,  -- highest contiguous record seq committed; updated in the transaction that stores them
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY,
    participant_id TEXT NOT NULL,
    scene_id TEXT NOT NULL,
    time REAL NOT NULL,
    answers TEXT NOT NULL
);
"""


def _plain(value: Any) -> Any:
    """What the JSON encoder cannot take by itself (NumPy scalars and arrays, odd objects)."""
    return jsonable(value.tolist() if isinstance(value, np.ndarray) else value.item() if isinstance(value, np.generic) else value)


# Python's encoder, not orjson: a NaN or infinite reward must stay NaN/Infinity in the data, not become null.
# Records are fresh trees (see ``jsonable``), so the circular-reference check is skipped.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_plain, allow_nan=True, check_circular=False)
#: Seconds between background WAL checkpoints while commits keep coming.
CHECKPOINT_INTERVAL_S = 1.0
#: Seconds between warnings while commits keep failing (another program holds the write lock).
WARN_EVERY_S = 5.0


def _dump(value: Any) -> str | None:
    return None if value is None else _ENCODER.encode(value)


class Store(StoreReading):
    """The SQLite file ``data_dir/mug.sqlite``."""

    def __init__(self, data_dir: str | Path, *, readonly: bool = False) -> None:
        """Open (creating if needed) ``data_dir/mug.sqlite``. A ``readonly`` store has its own
        connection that never writes: use one per thread to read while a server is writing."""
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "mug.sqlite"
        if readonly:
            self.db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            import mug

            check_data_dir(self.data_dir, self.path)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # timeout=0: a lock held by another program fails the commit at once (kept queued and retried)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_soon
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(participants)")}
            if "completion_code" not in columns:  # a data file from before per-participant completion codes
                self.db.execute("ALTER TABLE participants ADD COLUMN completion_code TEXT")
            if "match_id" not in {row[1] for row in self.db.execute("PRAGMA table_info(steps)")}:  # from before matches
                self.db.execute("ALTER TABLE steps ADD COLUMN match_id TEXT")
            mark_data_dir(self.data_dir, mug.__version__)
        # a read-only store of a data dir from before matches reads NULL match ids and no matches
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        step_columns = {row[1] for row in self.db.execute("PRAGMA table_info(steps)")}
        self._has_matches = "matches" in tables
        self._step_select = ", ".join(c if c in step_columns or c != "match_id" else "NULL" for c in KEY_COLUMNS)
        self._pending_steps: list[tuple] = []
        self._pending_other: list[tuple[str, tuple]] = []
        self._pending_seqs: dict[str, tuple] = {}  # browser session -> its browser_sessions row (the latest seq)
        self._checkpointer: threading.Thread | None = None
        self._last_checkpoint = time.monotonic()
        #: Since when commits fail (``time.monotonic()``), ``None`` while they succeed.
        self.failing_since: float | None = None
        self._last_warning = 0.0

    # -- writing (buffered until commit) -------------------------------------------------

    def add_step(self, participant_id: str, data: dict[str, Any], match_id: str | None = None) -> None:
        """Queue one step event (``GameSession``'s ``step`` data) for the next :meth:`commit`; a match's step
        is stored once, under its ``match_id`` (see :mod:`mug.server.matches.match`)."""
        record = {f: data[f] for f in JSON_STEP_FIELDS if f in data}
        self._pending_steps.append(
            (
                participant_id,
                data["session_id"],
                data["scene_id"],
                data["episode"],
                data["step"],
                data["decision"],
                data["time"],
                match_id,
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

    def add_browser_records(
        self, participant_id: str, session_id: str, scene_id: str, records: list[dict[str, Any]], seq: int
    ) -> list[str | None]:
        """Queue records a browser-side session sent (checked by :mod:`mug.server.browser_sessions`) and the
        session's new highest committed ``seq``: all of them commit together, so after any crash the stored
        ``seq`` says exactly which records are in (:meth:`browser_seq`); a record sent again is not stored again.
        Returns, per record, the JSON text stored for a step (``None`` for an event)."""
        steps = self._pending_steps
        texts: list[str | None] = []
        for r in records:
            record = r["record"]
            if r["kind"] == "step":
                kept = {f: record[f] for f in JSON_STEP_FIELDS if f in record}
                # parsed JSON holds plain values only (no NaN): orjson encodes it the same, faster
                text = orjson.dumps(kept).decode() if orjson is not None else _dump(kept)
                row = (participant_id, session_id, scene_id, r["episode"], r["step"], record["decision"], r["time"], None, text)
                steps.append(row)
                texts.append(text)
            else:
                data = {"session_id": session_id, "scene_id": scene_id, "time": r["time"], **record, "seq": r["seq"]}
                self.add_event(participant_id, r["name"], data)
                texts.append(None)
        self._pending_seqs[session_id] = (session_id, participant_id, scene_id, seq, time.time())
        return texts

    def browser_seq(self, session_id: str) -> int:
        """The highest contiguous record ``seq`` committed for a browser-side session (-1: none)."""
        row = self.db.execute("SELECT seq FROM browser_sessions WHERE session_id = ?", (session_id,)).fetchone()
        return -1 if row is None else int(row[0])

    def browser_progress(self, session_id: str) -> tuple[tuple[int, int] | None, set[int], int]:
        """A stored browser session's last ``(episode, step)``, its finished episodes and its step count
        (read when a server restarted meets the session again: one scan of the steps table)."""
        last = self.db.execute(
            "SELECT episode, step FROM steps WHERE session_id = ? ORDER BY id DESC LIMIT 1", (session_id,)
        ).fetchone()
        count = self.db.execute("SELECT COUNT(*) FROM steps WHERE session_id = ?", (session_id,)).fetchone()[0]
        ended = {
            int(json.loads(d)["episode"])
            for (d,) in self.db.execute("SELECT data FROM events WHERE session_id = ? AND kind = 'episode_end'", (session_id,))
        }
        return (None if last is None else (int(last[0]), int(last[1]))), ended, int(count)

    def browser_sessions(self, participant_id: str, scene_id: str) -> list[str]:
        """Browser-side sessions of a participant in a scene, oldest first."""
        return [
            row[0]
            for row in self.db.execute(
                "SELECT session_id FROM browser_sessions WHERE participant_id = ? AND scene_id = ? ORDER BY rowid",
                (participant_id, scene_id),
            )
        ]

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

    def add_match(self, match_id: str, scene_id: str, seats: dict[str, str], formed: float, started: float) -> None:
        """Queue a new match row."""
        self._pending_other.append(
            (
                "INSERT INTO matches (match_id, scene_id, seats, formed, started) VALUES (?, ?, ?, ?, ?)",
                (match_id, scene_id, json.dumps(seats), formed, started),
            )
        )

    def end_match(self, match_id: str, ended: float, reason: str) -> None:
        """Queue a match's end."""
        self._pending_other.append(
            ("UPDATE matches SET ended = ?, end_reason = ? WHERE match_id = ? AND ended IS NULL", (ended, reason, match_id))
        )

    def interrupt_open_matches(self) -> list[tuple[str, str, dict[str, str]]]:
        """Queue ``interrupted`` as the end of every match left unended (a server was killed); returns
        ``(match_id, scene_id, seats)`` of each, with an ``interrupted`` event per match."""
        rows = self.db.execute("SELECT match_id, scene_id, seats FROM matches WHERE ended IS NULL").fetchall()
        now = time.time()
        out = []
        for match_id, scene_id, seats in rows:
            self.end_match(match_id, now, "interrupted")
            self.add_event(
                match_id,
                "interrupted",
                {"session_id": match_id, "scene_id": scene_id, "reason": "the server stopped during the match", "time": now},
            )
            out.append((match_id, scene_id, json.loads(seats)))
        return out

    def set_ending(self, participant_id: str, ending: dict[str, Any]) -> None:
        """Queue the end page the server made for a participant (kept in their ``metadata`` as ``ending``)."""
        self._pending_other.append(
            (
                "UPDATE participants SET metadata = json_set(metadata, '$.ending', json(?)), completed = 1 "
                "WHERE participant_id = ?",
                (json.dumps(ending), participant_id),
            )
        )

    def set_link(self, participant_id: str, params: dict[str, str], user_agent: str) -> None:
        """Queue the study link's query parameters and the browser's User-Agent of a participant (kept in their
        ``metadata`` as ``params`` and ``user_agent``, so matchmakers and screening see them after a restart)."""
        self._pending_other.append(
            (
                "UPDATE participants SET metadata = json_set(metadata, '$.params', json(?), '$.user_agent', ?) "
                "WHERE participant_id = ?",
                (json.dumps(params), user_agent, participant_id),
            )
        )

    def set_completion_code(self, participant_id: str, code: str) -> None:
        """Queue the participant's own completion code (see ``EndScene(unique_code=True)``)."""
        self._pending_other.append(
            ("UPDATE participants SET completion_code = ? WHERE participant_id = ?", (code, participant_id))
        )

    def completion_code_taken(self, code: str) -> bool:
        """Whether a committed participant already has ``code``."""
        return self.db.execute("SELECT 1 FROM participants WHERE completion_code = ? LIMIT 1", (code,)).fetchone() is not None

    @property
    def dirty(self) -> bool:
        """Whether anything waits for :meth:`commit`."""
        return bool(self._pending_steps or self._pending_other or self._pending_seqs)

    def commit(self) -> bool:
        """Write everything queued in one transaction; ``True`` once it is committed (or nothing was queued).

        If the transaction fails (another program holds the write lock, the disk is full), everything
        stays queued for the next call, a warning is logged (at most every ``WARN_EVERY_S``) and this
        returns ``False`` at once: it never waits for the lock.
        """
        if not self.dirty:
            return True
        steps, other, seqs = self._pending_steps, self._pending_other, self._pending_seqs
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if steps:
                    self.db.executemany(
                        f"INSERT INTO steps ({', '.join(KEY_COLUMNS)}, record) VALUES ({', '.join('?' * (len(KEY_COLUMNS) + 1))})",
                        steps,
                    )
                for sql, params in other:
                    self.db.execute(sql, params)
                if seqs:
                    self.db.executemany(
                        "INSERT INTO browser_sessions (session_id, participant_id, scene_id, seq, updated) VALUES "
                        "(?, ?, ?, ?, ?) ON CONFLICT(session_id) DO UPDATE SET seq=excluded.seq, updated=excluded.updated",
                        list(seqs.values()),
                    )
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._commit_failed(exc, len(steps))
            return False
        self._pending_steps, self._pending_other, self._pending_seqs = [], [], {}
        if self.failing_since is not None:
            log.warning("store: commits succeed again after %.1f s", time.monotonic() - self.failing_since)
            self.failing_since = None
        self._checkpoint_soon()
        return True

    def _commit_failed(self, exc: sqlite3.Error, steps: int) -> None:
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning(
                "store: cannot commit to %s (%s) for %.1f s; %d step(s) and %d other row(s) stay queued and games "
                "wait (is another program holding the database open in a transaction?)",
                self.path,
                exc,
                now - self.failing_since,
                steps,
                len(self._pending_other),
            )

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

    def close(self) -> None:
        """Commit what is queued (waiting up to 10 s for a lock another program holds) and close the file."""
        deadline = time.monotonic() + 10.0
        while not self.commit() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.dirty:
            log.error(
                "store: closing %s with %d uncommitted step(s): the write lock never came free",
                self.path,
                len(self._pending_steps),
            )
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
