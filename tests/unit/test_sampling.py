"""The seeded sampling algorithm: pinned values shared with js/test/sampling.test.js."""

from __future__ import annotations

import numpy as np
import pytest

from mug.inference.sampling import Mulberry32, agent_seed, argmax_action, fnv1a32, sample_action, softmax

# The same numbers are pinned in js/test/sampling.test.js: both languages must produce them.
MULBERRY_SEED_0 = [1144304738, 1416247, 958946056, 627933444, 2007157716]
FNV = {"": 0x811C9DC5, "a": 0xE40C292C, "agent_0": 0xF9649D91, "ü": 0x119DD44A}


def test_mulberry32_first_outputs_are_pinned():
    rng = Mulberry32(0)
    assert [rng.next_uint32() for _ in range(5)] == MULBERRY_SEED_0


def test_random_is_in_unit_interval_and_uniform():
    rng = Mulberry32(123)
    draws = np.array([rng.random() for _ in range(20000)])
    assert draws.min() >= 0 and draws.max() < 1
    assert abs(draws.mean() - 0.5) < 0.01


@pytest.mark.parametrize(("text", "expected"), list(FNV.items()))
def test_fnv1a32(text, expected):
    assert fnv1a32(text) == expected


def test_agents_get_distinct_streams_and_ids_hash_as_strings():
    assert agent_seed(7, "agent_0") != agent_seed(7, "agent_1")
    assert agent_seed(7, 0) == agent_seed(7, "0")


def test_softmax_matches_numpy_and_honours_temperature():
    logits = np.array([1.0, 2.0, -3.0, 0.5], dtype=np.float32)
    z = logits.astype(np.float64) / 2
    expected = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(softmax(logits, 2.0), expected, rtol=1e-12)


def test_sampling_follows_the_probabilities():
    rng = Mulberry32(5)
    logits = [0.0, 1.0, 2.0]
    counts = np.bincount([sample_action(logits, 1.0, rng)[0] for _ in range(30000)], minlength=3) / 30000
    np.testing.assert_allclose(counts, softmax(logits), atol=0.01)


def test_argmax_takes_the_first_of_equal_maxima():
    assert argmax_action([0.1, 3.0, 3.0])[0] == 1


def test_non_finite_logits_are_an_error():
    with pytest.raises(ValueError, match="not all finite"):
        sample_action([0.0, float("nan")], 1.0, Mulberry32(0))
