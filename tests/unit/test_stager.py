"""The study sequence: order, per-participant randomisation, repeats, resumable progress; survey answers."""

from __future__ import annotations

import json
import re

import pytest

import mug


def study(seed=0):
    start = mug.StartScene()
    a, b, c = (mug.TextScene(x, body=x) for x in "abc")
    survey = mug.SurveyScene(
        "survey", [mug.Likert("fun", "How fun was it?", points=5), mug.FreeText("notes", "Anything else?", required=False)]
    )
    return mug.Stager(
        [start, mug.RandomizeOrder([a, b, c]), mug.RepeatScene(survey, 2), mug.EndScene(completion_code="XYZ")], seed=seed
    )


def ids(run):
    out = []
    while not run.done:
        out.append((run.current.scene_id, run.repeat))
        run.advance()
    return out


def test_order_with_repeats():
    order = ids(study().start("p1"))
    assert order[0] == ("start", 0) and order[-1] == ("end", 0)
    assert sorted(order[1:4]) == [("a", 0), ("b", 0), ("c", 0)]
    assert order[4:6] == [("survey", 0), ("survey", 1)]


def test_randomize_order_is_seeded_per_participant():
    orders = {tuple(ids(study(seed=1).start(f"p{i}"))[1:4]) for i in range(30)}
    assert len(orders) > 1  # participants get different orders
    assert ids(study(seed=1).start("p7")) == ids(study(seed=1).start("p7"))  # the same participant always gets the same


def test_progress_round_trips_through_json_and_resumes():
    stager = study()
    run = stager.start("p3")
    full = ids(stager.start("p3"))
    run.advance()
    run.advance()
    saved = json.loads(json.dumps(run.progress()))
    resumed = stager.resume(saved)
    assert resumed.current.scene_id == full[2][0]
    assert ids(resumed) == full[2:]


def test_resume_rejects_foreign_progress():
    with pytest.raises(ValueError, match="scene 'zzz' is not in this study"):
        study().resume({"participant_id": "p", "order": [["zzz", 0]], "index": 0})
    with pytest.raises(ValueError, match="not a progress record"):
        study().resume({"order": "x"})


def test_duplicate_scene_ids_are_refused():
    with pytest.raises(mug.ConfigError, match="two different scenes use the id 'a'"):
        mug.Stager([mug.TextScene("a"), mug.TextScene("a")])


def test_survey_checks_answers():
    survey = study().scenes["survey"]
    assert survey.clean_response({"fun": 4}) == {"fun": 4, "notes": None}
    with pytest.raises(ValueError) as info:
        survey.clean_response({"fun": 9, "extra": 1})
    assert "'extra': not a question of this survey" in str(info.value)
    assert "'fun': expected an integer from 1 to 5, got 9" in str(info.value)
    with pytest.raises(ValueError, match="'fun': an answer is required"):
        survey.clean_response({})


def test_multiple_choice_and_free_text_limits():
    survey = mug.SurveyScene(
        "s", [mug.MultipleChoice("pick", "Pick", ["x", "y"], multiple=True), mug.FreeText("t", "T", max_length=3)]
    )
    assert survey.clean_response({"pick": ["y"], "t": "abc"}) == {"pick": ["y"], "t": "abc"}
    with pytest.raises(ValueError, match="'z' is not one of the options"):
        survey.clean_response({"pick": ["z"], "t": "a"})
    with pytest.raises(ValueError, match="at most 3 are allowed"):
        survey.clean_response({"pick": ["x"], "t": "abcd"})


def test_end_scene_redirect_quotes_the_participant_id():
    end = mug.EndScene(
        completion_code="C 1",
        redirect_url="https://app.prolific.com/submissions/complete?cc={completion_code}&p={participant_id}",
    )
    assert end.redirect_for("a&b") == "https://app.prolific.com/submissions/complete?cc=C%201&p=a%26b"
    with pytest.raises(mug.ConfigError, match=re.escape("only {participant_id} and {completion_code}")):
        mug.EndScene(redirect_url="https://x.org/?{pid}")
    with pytest.raises(mug.ConfigError, match="expected an http"):
        mug.EndScene(redirect_url="javascript:alert(1)")
