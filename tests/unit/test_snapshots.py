"""Observation hashes: equal values hash alike whatever container holds them; different values do not."""

from __future__ import annotations

import math

import numpy as np

from mug.session.snapshots import observation_hash


def test_number_lists_tuples_and_arrays_of_equal_values_hash_alike():
    values = [0.0, 0.25, 1.0, 3.0]
    same = [
        {"a": values, "b": [1, 2]},
        {"b": (1.0, 2.0), "a": tuple(values)},  # the order of agents does not matter
        {"a": np.array(values), "b": np.array([1, 2], dtype=np.int64)},
    ]
    assert len({observation_hash(o) for o in same}) == 1


def test_any_change_of_a_value_shape_or_agent_changes_the_hash():
    base = {"a": [0.0, 0.25, 1.0]}
    others = [
        {"a": [0.0, 0.25, 1.0000001]},
        {"a": [0.0, 0.25]},
        {"b": [0.0, 0.25, 1.0]},
        {"a": np.array([[0.0, 0.25, 1.0]])},  # another shape
        {"a": [0.0, 0.25, 1.0], "b": []},
        {"a": [0.0, 0.25, math.nan]},
    ]
    hashes = {observation_hash(o) for o in others}
    assert observation_hash(base) not in hashes and len(hashes) == len(others)


def test_nested_and_non_numeric_observations_hash_by_their_canonical_json():
    nested = {"a": {"grid": [[0, 1], [1, 0]], "name": "x", "pos": np.array([1.0, 2.0])}}
    assert observation_hash(nested) == observation_hash({"a": {"pos": [1.0, 2.0], "name": "x", "grid": [[0, 1], [1, 0]]}})
    assert observation_hash(nested) != observation_hash({"a": {"grid": [[0, 1], [1, 1]], "name": "x", "pos": [1.0, 2.0]}})
    assert observation_hash({"a": ["1", 2]}) != observation_hash({"a": [1, 2]})
