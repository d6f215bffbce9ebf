"""The SQLite store on its own: what a commit makes durable, read-only readers, background checkpoints."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

import mug.server.store as store_module
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
