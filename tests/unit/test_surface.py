"""Surface: what travels to the browser each frame, and what a drawing function may pass."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mug.rendering.surface import Surface


def test_only_changes_travel_after_the_first_frame():
    s = Surface(100, 100)
    s.rect(1, 2, 3, 4, color="#ff0000", id="box")
    s.circle(5, 5, 2, color="blue", id="ball")
    s.text(0, 10, "hi")  # no id: drawn for this frame only
    first = s.commit()
    assert first["full"] and [o["id"] for o in first["set"]] == ["box", "ball"] and len(first["ephemeral"]) == 1
    s.rect(1, 2, 3, 4, color="#ff0000", id="box")  # unchanged
    s.circle(6, 5, 2, color="blue", id="ball")  # moved
    second = s.commit()
    assert not second["full"] and [o["id"] for o in second["set"]] == ["ball"] and second["ephemeral"] == []
    s.remove("box")
    assert s.commit()["remove"] == ["box"]
    s.resend()
    assert s.commit()["full"]


def test_numpy_numbers_are_sent_as_plain_floats():
    s = Surface(100, 100)
    s.rect(np.float64(1.5), np.float32(2.5), np.int64(3), 4, id="box")
    obj = s.commit()["set"][0]
    assert (obj["x"], obj["y"], obj["w"]) == (1.5, 2.5, 3.0)
    assert type(obj["x"]) is float and type(obj["y"]) is float


@pytest.mark.parametrize(
    ("draw", "message"),
    [
        (lambda s: s.rect(np.float64("nan"), 0, 1, 1), "x: expected a finite number, got np.float64(nan)"),
        (lambda s: s.rect(0, float("inf"), 1, 1), "y: expected a finite number, got inf"),
        (lambda s: s.rect(0, 0, True, 1), "w: expected a finite number, got True"),
        (lambda s: s.circle(0, 0, "2"), "radius: expected a finite number, got '2'"),
        (lambda s: s.rect(0, 0, 1, 1, color="#00ff00;x"), "color: expected a CSS color"),
        (lambda s: s.rect(0, 0, 1, 1, color=["red"]), "color: expected a CSS color such as '#ff0000'"),
        (lambda s: s.line([(0, 0)]), "points: expected at least two"),
        (lambda s: s.rect(0, 0, 1, 1, id=""), "id: expected a non-empty string"),
        (lambda s: s.image(0, 0, 1, 1, "cat"), "image: 'cat' is not a registered asset"),
    ],
)
def test_bad_drawing_arguments_name_what_was_wrong(draw, message):
    s = Surface(100, 100)
    s.rect(0, 0, 1, 1, color="#00ff00")  # a colour that passed once does not let a different one through later
    with pytest.raises(ValueError, match=re.escape(message)):
        draw(s)
