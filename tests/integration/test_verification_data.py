"""What the data says about verification: what waits for the verifying child is bounded (past
``verify_backlog_steps`` episodes are stored unverified, each with a ``verification_skipped`` event, and
``mug verify`` verifies them afterwards), and the ``verified`` column never reads true for a step that was not
shown equal (a verification lists at most ``MAX_LISTED`` differing steps)."""

from __future__ import annotations

import asyncio

import pytest

import mug
from mug.errors import ConfigError
from mug.server.store import Store
from tests.bots import run_async
from tests.integration.test_browser_server import Page, stored, study, wait_for_verifications


def _play(data, episodes: int, tamper=None, creator=None, **options) -> Page:
    async def main():
        scenes = study(episodes=episodes) if creator is None else study(creator, episodes=episodes)
        deployment = mug.deploy(scenes, port=0, data_dir=data, **options)
        page = Page(deployment.url, "p1")
        page.tamper = tamper
        await page.connect()
        await page.start_game(await page.read("scene"))
        await page.play(100)
        await page.read("scene")  # the end scene: every episode's records are committed and acknowledged
        await asyncio.sleep(0.2)
        deployment.stop()
        return page

    return run_async(main())


def test_episodes_past_the_backlog_are_stored_unverified_with_an_event_and_mug_verify_verifies_them(tmp_path, capsys):
    from mug.cli import main

    data = tmp_path / "data"
    page = _play(data, 2, verify_backlog_steps=0)  # nothing may wait: no episode is verified while serving
    assert not page.unacked and not page.errors
    steps, events = stored(data)
    assert len(steps) == 24  # every step is stored all the same (2 episodes of 12)
    skipped = [e["data"] for e in events if e["kind"] == "verification_skipped"]
    assert [(s["episode"], s["steps"], s["max_backlog_steps"]) for s in skipped] == [(0, 12, 0), (1, 12, 0)]
    assert not [e for e in events if e["kind"] == "verification"]
    assert {s["verified"] for s in steps} == {None}  # the column says "not verified", not "verified" or "differs"

    assert main(["verify", str(data)]) == 0
    assert "2 of 2 episode(s) verified" in capsys.readouterr().out
    store = Store(data, readonly=True)
    try:
        assert {s["verified"] for s in store.steps("grid")} == {True}
    finally:
        store.close()


def test_episodes_longer_than_the_backlog_are_verified_one_after_the_other_when_nothing_else_waits(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(study(episodes=3), port=0, data_dir=data, verify_backlog_steps=5)  # each episode has 12 steps
        page = Page(deployment.url, "p2")
        await page.connect()
        await page.start_game(await page.read("scene"))
        for episode in range(3):  # each episode verified before the next ends: the backlog empties each time
            await page.play(12)
            await wait_for_verifications(data, episode + 1)
        await page.play(5)
        await page.read("scene")
        deployment.stop()

    run_async(main())
    steps, events = stored(data)
    assert len(steps) == 36
    assert [e["data"]["episode"] for e in events if e["kind"] == "verification"] == [0, 1, 2]
    assert not [e for e in events if e["kind"] == "verification_skipped"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "many"])
def test_a_bad_verify_backlog_is_refused_with_what_is_expected(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"verify_backlog_steps must be an integer from 0 \(no verification"):
        mug.deploy(study(), port=0, data_dir=tmp_path / "data", verify_backlog_steps=bad)


def test_past_the_listed_differing_steps_no_step_reads_verified(tmp_path, monkeypatch):
    import mug.server.verify as verify

    def lie(record):  # every reward from step 2 on is not what the env gave
        if record["kind"] == "step" and record["step"] >= 2:
            record["record"]["rewards"] = {a: r + 1.0 for a, r in record["record"]["rewards"].items()}

    data = tmp_path / "data"
    _play(data, 1, lie, verify_backlog_steps=0)
    monkeypatch.setattr(verify, "MAX_LISTED", 3)  # 10 steps differ, 3 are listed
    (result,) = verify.verify_data_dir(data)
    assert result["mismatched"] == 10 and [m["step"] for m in result["mismatches"]] == [2, 3, 4]
    steps, _ = stored(data)
    # steps 0 and 1 were shown equal; 2-4 differ; 5-11 differ too, unlisted: none of them may read true
    assert [s["verified"] for s in steps] == [True, True] + [False] * 10


def test_mug_verify_where_the_env_does_not_import_stores_nothing_and_says_to_pass_path(tmp_path, monkeypatch, capsys):
    import importlib
    import sys

    from mug.cli import main

    study_dir = tmp_path / "study"
    study_dir.mkdir()
    (study_dir / "study_env.py").write_text(
        "from mug.examples.browser_grid import PyCoinGrid\n\n\nclass StudyGrid(PyCoinGrid):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(study_dir))
    data = tmp_path / "data"
    _play(data, 1, creator=importlib.import_module("study_env").StudyGrid, verify_backlog_steps=0)
    assert main(["verify", str(data), "--path", str(study_dir)]) == 0  # where the study's files are
    capsys.readouterr()
    sys.path[:] = [p for p in sys.path if p != str(study_dir)]  # (--path put it there once more)
    monkeypatch.delitem(sys.modules, "study_env")
    assert main(["verify", str(data)]) == 2  # from elsewhere: the env's module is not there
    out, err = capsys.readouterr()
    assert "NOT VERIFIED, the env could not start: ConfigError: cannot import 'study_env:StudyGrid'" in out
    assert "could not be verified here" in err and "--path DIR" in err
    steps, events = stored(data)
    assert len([e for e in events if e["kind"] == "verification"]) == 1  # nothing stored for the failed run
    assert {s["verified"] for s in steps} == {True}  # the earlier verdict stands
