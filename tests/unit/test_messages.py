"""Envelopes and tensor references round-trip; the vocabulary rejects what it does not know."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mug.session.messages import (
    MAX_DEPTH,
    MessageError,
    decode_envelope,
    decode_inbound,
    encode_envelope,
    jsonable,
    tensor_from_ref,
    tensor_ref,
)


def test_envelope_round_trip_with_tensors():
    buffers: list[bytes] = []
    logits = np.arange(5, dtype=np.float32)
    state = np.ones((1, 3), dtype=np.float64)
    msg = {
        "type": "act",
        "step": 4,
        "keys": ["a"],
        "policies": {"x": {"action": 1, "logits": tensor_ref(logits, buffers), "states": {"h": tensor_ref(state, buffers)}}},
    }
    message, parts = decode_envelope(encode_envelope(msg, buffers))
    assert message == msg and parts == buffers
    decoded = decode_inbound(encode_envelope(msg, buffers))
    np.testing.assert_array_equal(decoded["policies"]["x"]["logits"], logits)
    assert decoded["policies"]["x"]["states"]["h"].shape == (1, 3)


def test_anywidget_style_dict_with_buffers():
    buffers: list[bytes] = []
    ref = tensor_ref(np.zeros(2, np.int64), buffers)
    decoded = decode_inbound({"type": "act", "step": 0, "policies": {"x": {"action": 0, "logits": ref}}}, buffers)
    assert decoded["policies"]["x"]["logits"].dtype == np.int64


@pytest.mark.parametrize(
    "ref",
    [{"buffer": 0, "dtype": "complex64", "shape": [1]}, {"buffer": 0, "dtype": "float32", "shape": "x"}, {"buffer": 0}, [0]],
)
def test_bad_tensor_refs(ref):
    with pytest.raises(MessageError) as info:
        tensor_from_ref(ref, [b"\x00" * 4], "here")
    assert info.value.code == "bad_tensor" and str(info.value).startswith("here:")


def test_jsonable_handles_numpy_and_odd_values():
    assert jsonable({"a": np.float32(1.5), "b": np.arange(2), 3: float("nan"), "o": object}) == {
        "a": 1.5,
        "b": [0, 1],
        "3": "nan",
        "o": "<class 'object'>",
    }


def test_visibility_messages_are_checked():
    from mug.session.messages import MessageError, decode_inbound

    assert decode_inbound('{"type": "visibility", "hidden": true}') == {"type": "visibility", "hidden": True}
    for bad in ('{"type": "visibility"}', '{"type": "visibility", "hidden": "yes"}', '{"type": "visibility", "hidden": 1}'):
        with pytest.raises(MessageError) as info:
            decode_inbound(bad)
        assert info.value.code == "bad_field" and "visibility.hidden" in str(info.value)


@pytest.mark.parametrize("as_envelope", [False, True])
def test_nesting_is_limited_however_the_brackets_are_written(as_envelope):
    """A message nesting deeper than MAX_DEPTH is refused; brackets inside strings do not count."""

    def decode(message):
        text = json.dumps(message)
        return decode_inbound(encode_envelope(message) if as_envelope else text)

    nested: object = 0
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    with pytest.raises(MessageError, match="deeper than"):
        decode({"type": "client_error", "message": "x", "extra": nested})
    shallow: object = 0
    for _ in range(MAX_DEPTH - 2):
        shallow = {"k": shallow}
    text_with_brackets = "[{" * 100
    assert decode({"type": "client_error", "message": text_with_brackets, "extra": shallow})["message"] == text_with_brackets


def test_a_parsed_act_is_rebuilt_from_its_flat_fields_however_deep_the_rest_nests():
    """A parsed act (every step's message in the worker) is not walked for depth: what is kept of it cannot nest, a
    deep value in an unknown field is dropped, and a deep value where a flat one belongs is refused by name (no deep
    repr). As text it is refused as too deep (test_nesting_is_limited_however_the_brackets_are_written)."""
    nested: object = 0
    for _ in range(5000):
        nested = [nested]
    act = {"type": "act", "step": 3, "episode": 0, "keys": ["ArrowUp"], "policies": {}, "extra": nested}
    assert decode_inbound(act) == {"type": "act", "step": 3, "episode": 0, "keys": ["ArrowUp"], "policies": {}, "dropped": 0}
    for bad, field in (({"keys": nested}, "act.keys"), ({"policies": {"a": {"action": nested}}}, "act.policies['a'].action")):
        with pytest.raises(MessageError) as info:
            decode_inbound({**act, **bad})
        assert info.value.code == "bad_field" and field in str(info.value) and "nested deeper than 8 levels" in str(info.value)
