"""The participant page under the server's Content-Security-Policy and framing rules, in headless Chromium."""

from __future__ import annotations

from urllib.parse import urlparse

from mug.server.store import Store
from tests.e2e.test_participant import model_loaded
from tests.servers import ServerProcess

WATCH_CSP = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""

CUSTOM_STUDY = """
import mug
from mug.examples.demo import PARTNER_MODEL, DEMO_KEYS
from mug.examples.gridworld import CoinGrid

partner = mug.ModelConfig.from_onnx(PARTNER_MODEL, custom_inference_fn="return 3;")
study = mug.Stager([
    mug.GymScene("coins")
    .environment(CoinGrid, {"max_steps": 10, "coins": 5}, seed=11)
    .policies({"agent_0": mug.Human, "agent_1": partner})
    .gameplay(action_mapping=DEMO_KEYS, num_episodes=1, input_mode="single_keystroke", mode="lockstep")
    .rendering(mode="surface", draw=lambda env, surface: env.draw(surface), width=160, height=160, fps=15),
    mug.EndScene(completion_code="DONE"),
])
"""


def _play(browser, url: str, pid: str, presses: int) -> tuple[list[str], list[str]]:
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(WATCH_CSP)
    page.goto(f"{url}?participant={pid}")
    page.wait_for_selector("button, #mug-canvas")
    start = page.get_by_role("button", name="Start")
    if start.count():
        start.click()
    page.wait_for_selector("#mug-canvas")
    model_loaded(page)  # the model (wasm) is loaded
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(60)
    violations = page.evaluate("window.cspViolations")
    page.context.close()
    return violations, errors


def _play_study(browser, args: list[str], data_dir, participant: str, presses: int) -> list[dict]:
    """Serve ``mug ARGS``, play it in Chromium; assert no CSP violation or page error; the recorded steps."""
    server = ServerProcess(args, data_dir).start()
    try:
        violations, errors = _play(browser, server.url, participant, presses)
    finally:
        server.stop()
    assert violations == [] and errors == []
    store = Store(data_dir)
    steps = store.steps("coins")
    store.close()
    return steps


def test_the_demo_plays_under_the_content_security_policy(browser, tmp_path):
    steps = _play_study(browser, ["demo"], tmp_path / "data", "csp1", 4)
    assert len(steps) >= 4 and {s["sources"]["agent_1"] for s in steps} == {"policy"}  # ORT ran in the browser


def test_a_custom_inference_function_runs_under_the_policy(browser, tmp_path):
    (tmp_path / "custom.py").write_text(CUSTOM_STUDY)
    steps = _play_study(browser, ["deploy", str(tmp_path / "custom.py")], tmp_path / "data", "csp2", 3)
    assert steps and {s["actions"]["agent_1"] for s in steps} == {3}  # what the function returned


def _framed(browser, asset_server, study_url: str) -> bool:
    """Whether ``study_url`` shows inside an iframe of a page on another origin (the asset server's)."""
    site, root = asset_server
    name = f"embed-{urlparse(study_url).port}.html"
    (root / name).write_text(f'<!doctype html><iframe src="{study_url}?participant=framed1"></iframe>')
    page = browser.new_context().new_page()
    page.goto(f"{site}/{name}")
    page.wait_for_timeout(1500)
    frame = next((f for f in page.frames if f.url.startswith(study_url)), None)
    shown = frame is not None and frame.locator("button").count() > 0
    page.context.close()
    return shown


def test_framing_is_refused_unless_the_site_is_named(browser, tmp_path, asset_server):
    origin = asset_server[0]
    refusing = ServerProcess(["demo"], tmp_path / "a").start()
    allowing = ServerProcess(["demo", "--frame-ancestors", origin], tmp_path / "b").start()
    try:
        refused = _framed(browser, asset_server, refusing.url)
        allowed = _framed(browser, asset_server, allowing.url)
    finally:
        refusing.stop()
        allowing.stop()
    assert not refused and allowed
