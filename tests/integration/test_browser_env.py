"""Browser-side environments: the engine in Pyodide (under Node) against CPython, and the build-time checks."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

import mug
import mug.examples
from mug.browser.check import run_in_pyodide
from mug.browser.run import game_trace
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.inference.parity import node_available
from mug.session.seeds import seed_word
from tests.browser_envs import LeakyGrid, NoisyGrid

needs_node = pytest.mark.skipif(not node_available(), reason="needs Node.js and the built JS (npm run build)")


def grid_scene(creator=PyCoinGrid, **config) -> mug.GymScene:
    return (
        mug.GymScene("grid")
        .environment(creator, {"max_steps": 25, **config}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": mug.Random})
        .gameplay(action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}, num_episodes=3)
        .rendering(mode="surface", draw=draw, width=200, height=200)
        .runtime(environment="browser")
    )


def test_seed_word_is_numpy_seed_sequence():
    rng = random.Random(3)
    for _ in range(500):
        entropy = [rng.choice([0, 1, rng.getrandbits(32), rng.getrandbits(80)]) for _ in range(rng.randint(1, 6))]
        assert seed_word(entropy) == int(np.random.SeedSequence(entropy).generate_state(1)[0])


@needs_node
def test_engine_in_pyodide_records_what_cpython_records():
    scene = grid_scene()
    args = {"spec": {**scene.browser_spec(), "session_id": "s"}, "ticks": 90, "seed": 2}
    here = game_trace(args)
    there = run_in_pyodide(scene, "mug.browser.run:game_trace", args)["result"]
    assert here["steps"] >= 60  # three episodes of up to 25 steps, keys pressed
    assert there["records"] == here["records"]
    assert there["types"] == here["types"]
    assert [r["seq"] for r in there["records"]] == list(range(len(there["records"])))
    steps = [r for r in there["records"] if r["kind"] == "step"]
    assert all(len(r["record"]["obs_hash"]) == 16 for r in steps)
    assert {r["record"]["sources"]["agent_1"] for r in steps} == {"random"}


@needs_node
@needs_node
def test_a_browser_side_model_policy_acts_and_its_logits_are_recorded_the_same_in_pyodide():
    partner = mug.ModelConfig.from_onnx(Path(mug.examples.__file__).parent / "coin_partner.onnx")
    scene = grid_scene()
    scene.policies({"agent_0": mug.Human, "agent_1": partner})
    spec = {**scene.browser_spec(), "session_id": "s"}
    assert spec["browser_policies"] == ["agent_1"]
    args = {"spec": spec, "ticks": 30, "seed": 4}
    here = game_trace(args)
    there = run_in_pyodide(scene, "mug.browser.run:game_trace", args)["result"]
    assert there["records"] == here["records"]
    steps = [r["record"] for r in there["records"] if r["kind"] == "step"]
    assert steps and {s["sources"]["agent_1"] for s in steps} == {"policy"}
    assert all(len(s["policy_outputs"]["agent_1"]["logits"]) == 5 for s in steps)
    assert "bad_tensor" not in {r.get("name") for r in here["records"]}  # the logits fit the model (CPython checks)


def test_check_env_passes_a_deterministic_env_and_flags_a_noisy_one():
    report = grid_scene().check_browser_env(steps=120)
    assert report.ok, report.lines()
    assert report.pyodide_us_per_step > 0 and report.cpython_us_per_step > 0
    noisy = grid_scene(NoisyGrid).check_browser_env(steps=40)
    assert not noisy.ok
    assert noisy.first_divergence == 0 and "rewards" in noisy.difference and "not deterministic" in noisy.difference


def test_an_env_that_cannot_be_snapshotted_gets_the_build_time_message():
    scene = grid_scene(LeakyGrid)
    with pytest.raises(mug.ConfigError, match=r"cannot be snapshotted.*rewards.*get_state"):
        scene.browser_spec()


def test_a_creator_defined_in_a_function_is_refused():
    class Local(PyCoinGrid):
        pass

    with pytest.raises(mug.ConfigError, match="top level of a Python module file"):
        grid_scene(Local).browser_spec()


def test_a_callable_policy_bad_environment_or_compiled_wheel_is_refused(tmp_path):
    scene = grid_scene()
    scene.policies({"agent_0": mug.Human, "agent_1": lambda obs, agent: 0})
    with pytest.raises(mug.ConfigError, match="Python callable"):
        scene.browser_spec()
    with pytest.raises(mug.ConfigError, match="environment"):
        mug.GymScene("x").runtime(environment="phone")
    wheel = tmp_path / "fast-1.0-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"")
    with pytest.raises(mug.ConfigError, match="none-any"):
        mug.GymScene("x").runtime(packages=[wheel])
    with pytest.raises(mug.ConfigError, match="is not a file"):
        mug.GymScene("x").runtime(packages=[tmp_path / "missing-1.0-py3-none-any.whl"])


@needs_node
def test_mug_check_env_reports_a_divergence_with_exit_code_1(tmp_path, capsys):
    from mug.cli import main

    study = tmp_path / "study.py"
    study.write_text(
        "import mug\n"
        "from mug.examples.browser_grid import draw\n"
        "from tests.browser_envs import NoisyGrid\n"
        "game = (mug.GymScene('noisy').environment(NoisyGrid, {'max_steps': 10}).policies({'agent_0': mug.Human, "
        "'agent_1': mug.Random}).rendering(mode='surface', draw=draw).runtime(environment='browser'))\n"
        "server = mug.GymScene('cp').environment('CartPole-v1').policies({'agent_0': mug.Human})\n"
        "study = mug.Stager([server, game])\n"
    )
    assert main(["check-env", f"{study}:study", "--steps", "30"]) == 1
    out = capsys.readouterr().out
    assert "scene 'noisy':" in out and "DIVERGES at step 0" in out and "not deterministic" in out
    assert "snapshots round-trip" in out
    # a scene that cannot go to the browser as it is (a Gymnasium id) is reported, and the others still checked
    assert "scene 'cp':\n  cannot run in the browser: " in out and "names the Gymnasium id" in out
