"""scene.preview() in a real JupyterLab (and once in Notebook 7), driven like a researcher would.

One JupyterLab per delivery of ORT's wasm (mug's server extension, or the comm
without it) serves every notebook of this module.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.e2e.jupyter import ROOT, JupyterServer, cell_output, open_notebook, run_all, run_cells, write_notebook

SETUP = """
import json, numpy as np, mug
from pathlib import Path
from mug.examples import CoinGrid
from mug.scenes.policies import PolicySpec
from tests.synthetic import lstm_model
partner = mug.ModelConfig.from_onnx(lstm_model(Path("partner_lstm.onnx"), obs=29, hidden=16, actions=5))
def grid(scene_id, policies, **gameplay):
    return (mug.GymScene(scene_id).environment(CoinGrid, {"max_steps": 30}, seed=5).policies(policies)
            .gameplay(**gameplay).rendering(mode="surface", draw=lambda env, s: env.draw(s), width=160, height=160))
"""

PLAY = """
scene = grid("coins", {"agent_0": mug.Human, "agent_1": partner},
             action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4},
             input_mode="single_keystroke", mode="lockstep")
preview = scene.preview()
preview
"""

CHECK = """
t = preview.trace
rt = mug.PolicyRuntime(partner, seed=scene.policy_seed)
obs, acts, states = t.observations["agent_1"], t.actions["agent_1"], t.states["agent_1"]
starts = {i for kind, i in t.boundaries if kind == "episode_start"}
same, worst = True, 0.0
for i in range(len(t)):
    if i in starts:
        rt.reset()
    out = rt.step(obs[i], "agent_1")
    same = same and out.action == acts[i]
    worst = max(worst, *(float(np.abs(out.states[n] - states[n][i]).max()) for n in out.states))
print("CHECK" + json.dumps({"steps": len(t), "human": t.actions["agent_0"].tolist(), "same_actions": bool(same),
      "max_state_delta": worst, "sources": sorted(set(t.sources["agent_1"])), "states": sorted(states)}))
"""

RANDOM = """
auto = grid("auto", {"agent_0": mug.Random, "agent_1": mug.Random}).preview()
auto
"""

COUNT = 'print("COUNT", len(auto.trace), auto.session.episode, auto.session.decision, id(auto.session))'

MISTAKES = """
bad = mug.ModelConfig.from_dict({**partner.to_dict(), "state_inputs": ["state_in_O", "state_in_1"]})
try:
    bad.validate()
except mug.ConfigError as error:
    print("PYTHON:", error)
wrong = grid("wrong", {"agent_0": mug.Human, "agent_1": partner}, action_mapping={"ArrowUp": 1})
wrong.policy_specs = {**wrong.policy_specs, "agent_1": PolicySpec("model", "browser", bad)}
throws = grid("throws", {"agent_0": mug.Human, "agent_1": mug.ModelConfig.from_onnx(
    partner.onnx_path, custom_inference_fn="throw new Error('custom boom');")}, action_mapping={"ArrowUp": 1})
w1, w2 = wrong.preview(), throws.preview()
import ipywidgets
ipywidgets.VBox([w1, w2])
"""

ERRORS = 'print("ERRORS" + json.dumps([w1.errors, w2.errors]))'

ROLLOUT = """
rolled = preview.rollout(300, seed=3)
print("ROLL", len(rolled), preview.parity["reason"])
"""

PARITY = """
p = preview.parity
print("PARITY" + json.dumps({"ran": p["ran"], "max_delta": p.get("max_delta"), "differing": p.get("differing_actions"),
      "diverged": p.get("diverged"), "steps": len(p.get("max_delta_per_step", []))}))
"""


TWO_PREVIEWS = """
left = grid("left", {"agent_0": mug.Random, "agent_1": partner}).preview()
right = grid("right", {"agent_0": partner, "agent_1": mug.Random}).preview(action_names=["stay", "up", "down", "left", "right"])
display(left, right)
"""
ROLL_BOTH = "rolled = [left.rollout(40, seed=1), right.rollout(60, seed=2)]"
AWAIT_PARITY = """
results = [await p.parity_ready(timeout=120) for p in (left, right)]
print("PARITY" + json.dumps([{"ran": r["ran"], "agent": r.get("agent"), "max_delta": r.get("max_delta"),
      "differing": r.get("differing_actions"), "steps": len(r.get("max_delta_per_step", []))} for r in results]))
"""

CARTPOLE = """
import json, numpy as np, mug
from mug.examples.train_cartpole_lstm import DEFAULT_OUT
policy = mug.ModelConfig.from_onnx(DEFAULT_OUT, action="argmax")
scene = (mug.GymScene("cartpole").environment("CartPole-v1", seed=0).policies({"agent_0": policy})
         .gameplay(num_episodes=1000, max_steps=500).rendering(fps=30))
live = scene.preview()
live
"""
LIVE_CHECK = """
live.pause()
t = live.trace
rt = mug.PolicyRuntime(policy, seed=scene.policy_seed)
starts = {i for kind, i in t.boundaries if kind == "episode_start"}
obs, acts, logits, states = t.observations["agent_0"], t.actions["agent_0"], t.logits["agent_0"], t.states["agent_0"]
same, worst = True, 0.0
for i in range(len(t)):
    if i in starts:
        rt.reset()
    out = rt.step(obs[i], "agent_0")
    same = same and out.action == acts[i]
    worst = max(worst, float(np.abs(out.logits - logits[i]).max()), *(float(np.abs(out.states[n] - states[n][i]).max()) for n in out.states))
sources = t.sources["agent_0"].tolist()
print("LIVE" + json.dumps({"steps": len(t), "own": sources.count("policy"), "episodes": len(starts), "same_actions": bool(same),
      "max_delta": worst, "errors": live.errors, "status": live.status}))
"""

TWIN = """
twin = grid("twin", {"agent_0": mug.Human, "agent_1": partner},
            action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4},
            input_mode="single_keystroke", mode="lockstep").preview()
display(twin, twin)
"""
TWIN_CHECK = """
print("TWIN" + json.dumps({"steps": len(twin.trace), "human": twin.trace.actions["agent_0"].tolist(),
      "sources": sorted(set(twin.trace.sources["agent_1"])), "errors": twin.errors}))
"""

SHORT = """
short = grid("short", {"agent_0": mug.Random, "agent_1": mug.Random}, num_episodes=1, max_steps=6).preview()
short
"""
SHORT_CHECK = 'print("SHORT" + json.dumps({"steps": len(short.trace), "status": short.status, "errors": short.errors}))'


@pytest.fixture(params=[True, False], ids=["server-extension", "comm"], scope="module")
def lab(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lab")
    write_notebook(workdir / "preview.ipynb", [SETUP, PLAY, CHECK, RANDOM, COUNT, MISTAKES, ERRORS, ROLLOUT, PARITY])
    write_notebook(workdir / "runall.ipynb", [SETUP, TWO_PREVIEWS, ROLL_BOTH, AWAIT_PARITY])
    write_notebook(workdir / "live.ipynb", [CARTPOLE, "live.play()", LIVE_CHECK])
    write_notebook(workdir / "twin.ipynb", [SETUP, TWIN, TWIN_CHECK])
    write_notebook(workdir / "short.ipynb", [SETUP, SHORT, SHORT_CHECK])
    shutil.copytree(ROOT / "notebooks", workdir / "notebooks")
    (workdir / "tests").symlink_to(ROOT / "tests")  # notebook 02 reads ../tests/fixtures
    server = JupyterServer(workdir, mug_extension=request.param).start()
    yield server, ("server-extension" if request.param else "comm")
    server.stop()


def wait_output(page, index: int, marker: str, timeout: float = 30_000) -> str:
    page.wait_for_function(
        "([i, m]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];"
        " const a = c.node.querySelector('.jp-OutputArea'); return a && a.innerText.includes(m); }",
        arg=[index, marker],
        timeout=timeout,
    )
    text = cell_output(page, index)
    return text[text.index(marker) + len(marker) :].strip()


def test_preview_plays_inspects_and_traces(browser, lab):
    server, delivery = lab
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_notebook(page, server, "preview.ipynb")
    run_cells(page, [0, 1])
    widget = page.locator(".mug-preview").first
    widget.locator("#mug-canvas").wait_for(timeout=60_000)
    assert widget.get_attribute("data-ort") == delivery  # how ORT's wasm reached the page
    widget.locator(".mug-prob").first.wait_for(timeout=30_000)  # the browser ran the partner's first step
    assert widget.locator(".mug-prob").count() == 5
    labels = [widget.locator(".mug-action").nth(i).inner_text() for i in range(5)]
    assert labels == ["0", "1 ArrowUp", "2 ArrowDown", "3 ArrowLeft", "4 ArrowRight"]  # named by action_mapping
    assert widget.locator(".mug-state").count() == 2  # a heatmap per hidden-state tensor
    state = widget.locator(".mug-state").first
    assert state.locator(".mug-scale").inner_text().replace("\n", " ").startswith("-")  # its colour scale
    assert "step 0" in state.locator(".mug-axis").inner_text() and "norm (L2)" in state.locator(".mug-norm-label").inner_text()
    state.locator(".mug-heatmap").hover()
    assert state.locator(".mug-hover").inner_text().startswith("step 0, unit ")  # the value under the pointer
    assert widget.locator(".mug-load").inner_text() == ""  # loaded
    assert widget.locator(".mug-hud").inner_text() == "Episode 1 of 1 · step 0 · return agent_0 0, agent_1 0"
    title = widget.locator(".mug-state").first.inner_text()
    widget.click()
    for key in ["ArrowRight", "ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"]:
        page.keyboard.press(key)
        page.wait_for_timeout(250)
    assert widget.locator(".mug-state").first.inner_text() != title  # the heatmap moved with the steps
    run_cells(page, [2])
    result = json.loads(wait_output(page, 2, "CHECK"))
    assert result["steps"] == 5
    assert result["human"] == [4, 4, 2, 3, 1]  # keys pressed in the widget moved the human agent
    assert (
        result["sources"] == ["policy"] and result["same_actions"]
    )  # the JS runtime's actions = Python's on the same observations
    assert result["max_state_delta"] <= 1e-4 and result["states"] == ["state_out_0", "state_out_1"]

    run_cells(page, [7])
    assert wait_output(page, 7, "ROLL") == "300 JS comparison pending"
    widget.locator(".mug-parity").filter(has_text="JS vs Python").wait_for(timeout=60_000)
    run_cells(page, [8])
    parity = json.loads(wait_output(page, 8, "PARITY"))
    assert parity == {"ran": True, "max_delta": parity["max_delta"], "differing": 0, "diverged": False, "steps": 300}
    assert parity["max_delta"] <= 1e-4
    assert "DIVERGED" not in widget.locator(".mug-parity").inner_text()

    run_cells(page, [3])
    auto = page.locator(".mug-preview").nth(1)
    auto.locator("#mug-canvas").wait_for(timeout=30_000)
    auto.get_by_role("button", name="Step").click()
    page.wait_for_timeout(300)
    run_cells(page, [4])
    assert wait_output(page, 4, "COUNT").startswith("1 ")
    auto.get_by_role("button", name="Play").click()
    page.wait_for_timeout(1500)
    auto.get_by_role("button", name="Pause").click()
    page.wait_for_timeout(300)
    run_cells(page, [4])
    count = int(wait_output(page, 4, "COUNT").split()[0])
    assert count > 10
    page.wait_for_timeout(500)
    run_cells(page, [4])
    paused = wait_output(page, 4, "COUNT").split()
    assert int(paused[0]) == count  # paused means paused
    auto.get_by_role("button", name="Reset").click()
    page.wait_for_timeout(500)
    run_cells(page, [4])
    after = wait_output(page, 4, "COUNT").split()
    assert (
        after[0] == paused[0] and after[1:3] == ["0", "0"] and after[3] != paused[3]
    )  # a fresh session; the trace keeps its rows
    assert errors == []


def test_mistakes_show_in_the_widget_and_in_python(browser, lab):
    server, _ = lab
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_notebook(page, server, "preview.ipynb")
    run_cells(page, [0, 5])
    assert wait_output(page, 5, "PYTHON:", 60_000).startswith("state_inputs[0]: the model has no input 'state_in_O'")
    panels = page.locator(".mug-errors")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.mug-errors')].filter(e => e.textContent.length > 0).length >= 2", timeout=60_000
    )
    texts = [panels.nth(i).inner_text() for i in range(panels.count())]
    assert any("state_inputs[0]: the model has no input 'state_in_O'" in t for t in texts)
    assert any("custom_inference_fn threw Error: custom boom" in t for t in texts), texts
    failed = page.locator(".mug-load.mug-failed")  # the load that failed says so where loading was shown
    failed.first.wait_for(timeout=30_000)
    assert "Loading failed: the policy of agent_1 did not load" in failed.first.inner_text()
    run_cells(page, [6])
    wrong, throws = json.loads(wait_output(page, 6, "ERRORS"))
    assert any("state_in_O" in e for e in wrong) and any("custom boom" in e for e in throws)


def test_preview_renders_in_notebook_7(browser, tmp_path):
    write_notebook(tmp_path / "nb7.ipynb", [SETUP, RANDOM])
    server = JupyterServer(tmp_path, app="notebook").start()
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        open_notebook(page, server, "nb7.ipynb")
        run_cells(page, [0, 1])
        widget = page.locator(".mug-preview").first
        widget.locator("#mug-canvas").wait_for(timeout=60_000)
        widget.get_by_role("button", name="Step").click()
        widget.get_by_role("button", name="Step").click()
        page.wait_for_timeout(500)
        shot = widget.locator("#mug-canvas").screenshot()
        assert len(shot) > 500
    finally:
        server.stop()


def run_all_and_wait(page) -> None:
    """Run All, then wait until the last cell ran and the kernel is idle."""
    run_all(page)
    last = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length - 1")
    page.wait_for_function(
        "(i) => { const w = window.jupyterapp.shell.currentWidget; const c = w.content.widgets[i];"
        " return c.model.executionCount !== null && w.sessionContext.session.kernel.status === 'idle'; }",
        arg=last,
        timeout=180_000,
    )
    assert (
        page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        .filter(has_text="Traceback")
        .count()
        == 0
    )
    assert page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count() == 0


def assert_started(widget) -> None:
    """Model loaded and first frame drawn: the HUD is set after the frame is drawn, the load line is empty."""
    widget.locator(".mug-hud").filter(has_text="Episode 1").wait_for(timeout=60_000)
    widget.locator(".mug-prob").first.wait_for(timeout=60_000)
    assert widget.locator(".mug-load").inner_text() == "" and widget.locator(".mug-errors").inner_text() == ""


@pytest.mark.parametrize("name", ["01_quickstart", "02_debug_tensor_config", "03_deploy_study"])
def test_repository_notebooks_run_all_in_jupyterlab(browser, lab, name):
    server, _ = lab
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_notebook(page, server, f"notebooks/{name}.ipynb")
    run_all_and_wait(page)
    previews = page.locator(".mug-preview")
    for i in range(previews.count()):
        assert_started(previews.nth(i))
    if name == "01_quickstart":
        assert previews.count() == 1
        parity = next(cell_output(page, i) for i in range(12) if "JS vs Python over 500 steps" in cell_output(page, i))
        assert "differing actions 0" in parity  # read by a later cell under Run All
        assert "DIVERGED" not in previews.first.locator(".mug-parity").inner_text()


def test_run_all_starts_two_previews_and_a_later_cell_reads_parity(browser, lab):
    server, _ = lab
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_notebook(page, server, "runall.ipynb")
    run_all_and_wait(page)
    parity = json.loads(wait_output(page, 3, "PARITY"))
    assert [(p["ran"], p["agent"], p["differing"], p["steps"]) for p in parity] == [
        (True, "agent_1", 0, 40),
        (True, "agent_0", 0, 60),
    ]
    assert all(p["max_delta"] <= 1e-4 for p in parity)
    previews = page.locator(".mug-preview")
    assert previews.count() == 2
    for i in range(2):
        assert_started(previews.nth(i))
    assert previews.nth(1).locator(".mug-action").nth(1).inner_text() == "1 up"  # action_names=


def test_live_play_acts_on_every_step_with_that_steps_own_result(browser, lab):
    server, _ = lab
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_notebook(page, server, "live.ipynb")
    run_cells(page, [0])
    widget = page.locator(".mug-preview").first
    widget.locator(".mug-prob").first.wait_for(timeout=60_000)
    run_cells(page, [1])
    widget.locator(".mug-fps").filter(has_text="fps (scene 30)").wait_for(timeout=10_000)  # the achieved rate is shown
    time.sleep(30)
    run_cells(page, [2])
    live = json.loads(wait_output(page, 2, "LIVE", 60_000))
    assert live["steps"] > 30 and live["own"] == live["steps"]  # no late, previous or default step
    assert live["same_actions"] and live["max_delta"] <= 1e-4  # = the Python runtime on the recorded observations
    assert live["errors"] == [] and live["status"] == "paused"


def test_two_views_of_one_preview_one_drives(browser, lab):
    server, _ = lab
    page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
    open_notebook(page, server, "twin.ipynb")
    run_cells(page, [0, 1])
    views = page.locator(".mug-preview")
    page.wait_for_function("() => document.querySelectorAll('.mug-preview .mug-prob').length >= 10", timeout=60_000)
    assert views.count() == 2
    page.wait_for_function("() => document.querySelectorAll('.mug-preview.mug-passive').length === 1", timeout=10_000)
    assert "mug-passive" in views.nth(0).get_attribute("class")  # the view created last drives
    views.nth(1).click()
    for key in ["ArrowRight", "ArrowDown"]:
        page.keyboard.press(key)
        page.wait_for_timeout(300)
    views.nth(0).click()  # focusing the other view hands it the session
    page.wait_for_function(
        "() => !document.querySelectorAll('.mug-preview')[0].classList.contains('mug-passive')", timeout=10_000
    )
    for key in ["ArrowLeft", "ArrowUp"]:
        page.keyboard.press(key)
        page.wait_for_timeout(300)
    run_cells(page, [2])
    twin = json.loads(wait_output(page, 2, "TWIN"))
    assert twin == {"steps": 4, "human": [4, 2, 3, 1], "sources": ["policy"], "errors": []}
    assert [views.nth(i).locator(".mug-errors").inner_text() for i in range(2)] == ["", ""]


def test_the_end_of_a_scene_is_a_state(browser, lab):
    server, _ = lab
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_notebook(page, server, "short.ipynb")
    run_cells(page, [0, 1])
    widget = page.locator(".mug-preview").first
    widget.locator(".mug-hud").filter(has_text="Episode 1 of 1 · step 0").wait_for(timeout=60_000)
    widget.get_by_role("button", name="Play").click()
    widget.locator(".mug-status").filter(has_text="The scene is over").wait_for(timeout=30_000)
    assert widget.locator(".mug-hud").inner_text().startswith("Episode 1 of 1 · step 5 · return")
    assert widget.locator(".mug-episode").inner_text().startswith("Episode 1 ended (truncated) after 6 steps: return agent_0 ")
    for _ in range(3):
        widget.get_by_role("button", name="Step").click()
        page.wait_for_timeout(200)
    assert "The scene is over" in widget.locator(".mug-status").inner_text()
    run_cells(page, [2])
    assert json.loads(wait_output(page, 2, "SHORT")) == {"steps": 6, "status": "scene over", "errors": []}
    assert widget.locator(".mug-errors").inner_text() == ""
