"""The SQLite store on its own: what a commit makes durable, read-only readers, background checkpoints,
a write lock held by another program, and data directories that were damaged."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

import mug.server.store as store_module
from mug.errors import MugError
from mug.server.store import Store


def _step(session: str, step: int) -> dict:
    return {
        "session_id": session,
        "scene_id": "game",
        "episode": 0,
        "step": step,
        "decision": step,
        "time": time.time(),
        "actions": {"agent_0": np.int64(1)},
        "sources": {"agent_0": "human"},
        "rewards": {"agent_0": float("nan") if step == 2 else 1.0},
        "terminated": {"agent_0": False},
        "truncated": {"agent_0": False},
    }


def test_only_committed_steps_are_visible_to_a_reader_and_values_survive(tmp_path):
    store = Store(tmp_path)
    store.save_participant("p1", {"index": 0, "order": ["game"]}, "game", False)
    for i in range(3):
        store.add_step("p1", _step("s1", i))
    reader = Store(tmp_path, readonly=True)
    assert reader.steps() == []  # queued, not committed
    store.commit()
    steps = reader.steps("game")
    assert [s["step"] for s in steps] == [0, 1, 2]
    assert steps[0]["actions"] == {"agent_0": 1}
    assert np.isnan(steps[2]["rewards"]["agent_0"])  # a NaN reward stays NaN, not null
    assert reader.participants()[0]["steps"] == 3
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM steps")
    reader.close()
    store.close()


def test_step_counts_per_participant(tmp_path):
    store = Store(tmp_path)
    for pid, n in (("a", 2), ("b", 0), ("c", 5)):
        store.save_participant(pid, {"index": 0, "order": ["game"]}, "game", False)
        for i in range(n):
            store.add_step(pid, _step(f"{pid}-s", i))
    store.commit()
    assert {p["participant_id"]: p["steps"] for p in store.participants()} == {"a": 2, "b": 0, "c": 5}
    store.close()


def test_checkpoints_run_in_the_background_and_copy_the_log_back(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 0.0)
    store = Store(tmp_path)
    store.save_participant("p1", {"index": 0, "order": ["game"]}, "game", False)
    for i in range(200):
        store.add_step("p1", _step("s1", i))
    store.commit()
    assert store._checkpointer is not None
    store._checkpointer.join(10)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "mug.sqlite").write_bytes((tmp_path / "mug.sqlite").read_bytes())  # the database file alone, no WAL
    assert len(Store(copy, readonly=True).steps()) == 200  # the checkpoint put every committed row there
    store.close()


def test_a_commit_that_cannot_get_the_lock_keeps_its_rows_and_succeeds_later(tmp_path):
    store = Store(tmp_path)
    store.save_participant("p1", {"index": 0, "order": ["game"]}, "game", False)
    store.add_step("p1", _step("s1", 0))
    other = sqlite3.connect(tmp_path / "mug.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    assert store.commit() is False
    assert store.dirty and store.failing_since is not None
    store.add_step("p1", _step("s1", 1))
    assert store.commit() is False
    other.execute("COMMIT")
    other.close()
    assert store.commit() is True and not store.dirty and store.failing_since is None
    assert [s["step"] for s in store.steps()] == [0, 1]
    assert store.participant("p1") is not None
    store.close()


def _used_study(path):
    store = Store(path)
    store.save_participant("p1", {"index": 0, "order": ["game"]}, "game", False)
    store.add_step("p1", _step("s1", 0))
    store.commit()
    return store


def test_a_used_data_dir_reopens_after_a_clean_stop(tmp_path):
    _used_study(tmp_path).close()
    assert not (tmp_path / "mug.sqlite-wal").exists()  # a clean stop folds the log back in
    reader = Store(tmp_path, readonly=True)
    reader.steps()
    reader.close()  # a reader leaves an empty log and index behind: still fine
    store = Store(tmp_path)
    assert len(store.steps()) == 1
    store.close()


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: (d / "mug.sqlite").write_bytes(b""), "mug.sqlite is empty (0 bytes)"),
        (lambda d: (d / "mug.sqlite").unlink(), "mug.sqlite is missing"),
        (lambda d: (d / "mug.sqlite").write_bytes((d / "blank.sqlite").read_bytes()), "holds no MUG tables"),
    ],
)
def test_a_data_dir_that_held_a_study_and_now_holds_nothing_refuses_to_open(tmp_path, damage, needle):
    _used_study(tmp_path).close()
    sqlite3.connect(tmp_path / "blank.sqlite").execute("CREATE TABLE other (x)").connection.close()
    damage(tmp_path)
    with pytest.raises(MugError, match="held a MUG study") as info:
        Store(tmp_path)
    assert needle in str(info.value) and "backup" in str(info.value)


def test_a_data_dir_whose_log_was_removed_after_a_crash_refuses_to_open(tmp_path):
    store = _used_study(tmp_path)  # committed, not yet checkpointed: the rows are only in the log
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("mug.sqlite", "mug.sqlite-shm", "mug-data.json"):  # a crash, then the log deleted
        (copy / name).write_bytes((tmp_path / name).read_bytes())
    store.close()
    with pytest.raises(MugError) as info:
        Store(copy)
    assert "mug.sqlite-wal is missing" in str(info.value) and "Put mug.sqlite-wal back" in str(info.value)
    (copy / "mug.sqlite-wal").write_bytes(b"")  # an empty log in its place does not hide the loss
    with pytest.raises(MugError) as info:
        Store(copy)
    assert "mug.sqlite-wal is cut short" in str(info.value)


def test_a_reader_bounded_by_the_last_step_id_skips_rows_recorded_after_it(tmp_path):
    store = Store(tmp_path)
    for i in range(3):
        store.add_step("p1", _step("s1", i))
    store.commit()
    last = store.last_step_id()
    store.add_step("p1", _step("s1", 3))  # the server goes on recording between an export's two passes
    store.commit()
    assert [s["step"] for s in store.iter_steps(up_to=last)] == [0, 1, 2]
    assert [s["step"] for s in store.iter_steps("game", up_to=last)] == [0, 1, 2]
    assert len(store.steps()) == 4
    store.close()


def test_a_data_file_from_before_matches_is_read_and_migrated(tmp_path):
    store = Store(tmp_path)
    store.add_step("p1", _step("s1", 0))
    store.commit()
    store.close()
    db = sqlite3.connect(tmp_path / "mug.sqlite")  # the shape of a data file made before matches existed
    db.execute("ALTER TABLE steps DROP COLUMN match_id")
    db.execute("DROP TABLE matches")
    db.commit()
    db.close()
    old = Store(tmp_path, readonly=True)
    assert [s["match_id"] for s in old.steps()] == [None] and old.matches() == []
    old.close()
    store = Store(tmp_path)  # a server opening it adds what is missing
    store.add_step("m1", _step("m1", 0), match_id="m1")
    store.add_match("m1", "game", {"agent_0": "p1"}, 1.0, 2.0)
    store.commit()
    assert [s["match_id"] for s in store.steps()] == [None, "m1"]
    assert store.matches() == [
        {
            "match_id": "m1",
            "scene_id": "game",
            "seats": {"agent_0": "p1"},
            "formed": 1.0,
            "started": 2.0,
            "ended": None,
            "end_reason": None,
        }
    ]
    store.close()


def test_matches_left_open_are_ended_as_interrupted(tmp_path):
    store = Store(tmp_path)
    store.add_match("m1", "game", {"a": "p1", "b": "p2"}, 1.0, 1.0)
    store.add_match("m2", "game", {"a": "p3"}, 1.0, 1.0)
    store.end_match("m2", 5.0, "done")
    store.commit()
    assert store.interrupt_open_matches() == [("m1", "game", {"a": "p1", "b": "p2"})]
    store.commit()
    assert {m["match_id"]: m["end_reason"] for m in store.matches()} == {"m1": "interrupted", "m2": "done"}
    assert [e["participant_id"] for e in store.events("interrupted")] == ["m1"]
    store.close()
