"""A scene whose environment runs in the participant's browser (Pyodide in a module Worker), in headless
Chromium under the server's Content-Security-Policy: play with an AI partner, the server killed and
restarted mid-episode, a reload mid-episode, an env that raises, a package index that does not answer.

Everything is real: the scenes are ``runtime(environment="browser")`` scenes (``browser_env_studies.py``),
the worker runs ``mug.browser.BrowserGame`` in Pyodide, the server stores and verifies what it records.
What the page sends is read off its WebSocket (Playwright's ``framesent``), what it keeps off its
``sessionStorage``, what was stored off the data directory.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time

import numpy as np
from playwright.sync_api import expect

import mug
from mug.server.app import STATIC
from mug.server.pyodide_files import pyodide_files
from mug.server.store import Store
from mug.session.messages import decode_envelope
from tests.e2e.browser_env_studies import PARTNER, POLICY_SEED, WHEEL
from tests.servers import ServerProcess

#: The Pyodide the server serves (from its own build).
PYODIDE = pyodide_files(STATIC / "pyodide")
ENV_FAILED = "Sorry, the game stopped because of an error on our side."
LOAD_FAILED = "Sorry, the game could not be loaded in your browser."
STAGES = {"Loading the game", "Downloading the game engine", "Starting the game engine", "Downloading the game"}
STAGES |= {"Preparing the game", "Starting the game"}
#: Collects CSP violations and every text the loading status showed (the page's CSP allows no eval).
WATCH = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
window.loadingTexts = [];
new MutationObserver(() => {
  const status = document.querySelector(".mug-loading[role=status]");
  if (status && window.loadingTexts.at(-1) !== status.textContent) window.loadingTexts.push(status.textContent);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deploy(name: str, data, port: int = 0) -> ServerProcess:
    return ServerProcess(["deploy", f"tests/e2e/browser_env_studies.py:{name}"], data, port=port).start()


class Tab:
    """A participant's page, with what it sent on its WebSocket."""

    def __init__(self, browser, url: str, pid: str) -> None:
        self.page = browser.new_context().new_page()
        self.pid = pid
        self.errors: list[str] = []
        self.sent: list[dict] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("websocket", lambda ws: ws.on("framesent", self._sent))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.add_init_script(WATCH)
        self.page.goto(f"{url}?participant={pid}")

    def _sent(self, payload) -> None:
        message, _ = decode_envelope(payload if isinstance(payload, bytes) else payload.encode())
        self.sent.append(message)

    def of_type(self, kind: str, since: int = 0) -> list[dict]:
        return [m for m in self.sent[since:] if m["type"] == kind]

    def records(self, since: int = 0) -> list[tuple[str, int]]:
        """(session_id, seq) of every step record sent since message ``since``."""
        return [(m["session_id"], r["seq"]) for m in self.of_type("steps", since) for r in m["records"]]

    def kept(self) -> list[dict]:
        """The records the page keeps until the server acknowledges them (its sessionStorage)."""
        text = self.page.evaluate(f"sessionStorage.getItem('mug-steps:{self.pid}')")
        return [{**r, "session_id": s} for s, entry in json.loads(text or "{}").items() for r in entry["records"]]

    def steps(self, session_id: str | None = None) -> list[dict]:
        """The step records the page sent (each once; of one session, if given), in the order it made them."""
        seen: dict[tuple[str, int], dict] = {}
        for m in self.of_type("steps"):
            for r in m["records"]:
                if r["kind"] == "step" and session_id in (None, m["session_id"]):
                    seen.setdefault((m["session_id"], r["seq"]), {**r, "session_id": m["session_id"]})
        return [seen[k] for k in sorted(seen, key=lambda k: (self.sessions().index(k[0]), k[1]))]

    def sessions(self) -> list[str]:
        """The game sessions the page sent records of, in order."""
        return list(dict.fromkeys(m["session_id"] for m in self.of_type("steps")))

    def until(self, check, timeout: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or check}")
            self.page.wait_for_timeout(50)

    def play(self, steps: int, key: str = "ArrowRight", session_id: str | None = None, count=None) -> None:
        """Hold ``key`` until ``count()`` (default: the step records the page sent, of ``session_id``) is ``steps``."""
        count = count or (lambda: len(self.steps(session_id)))
        self.page.keyboard.down(key)
        self.until(lambda: count() >= steps, what=f"{steps} steps")
        self.page.keyboard.up(key)


def stored_steps(data) -> list[dict]:
    """The steps committed to the store (read-only: also while the server runs)."""
    store = Store(data, readonly=True)
    try:
        return store.steps("walk")
    finally:
        store.close()


def contiguous(steps: list[dict]) -> bool:
    """Whether ``steps`` (of one session) number 0, 1, 2, ... in each episode, episodes one after another."""
    keys = [(s["episode"], s["step"]) for s in steps]
    expected, episode, step = [], None, 0
    for e, _ in keys:
        if e != episode:
            episode, step = e, 0
        expected.append((e, step))
        step += 1
    return keys == expected and [e for e, _ in keys] == sorted(e for e, _ in keys)


def test_a_participant_plays_a_browser_side_scene_with_an_ai_partner(browser, tmp_path):
    data = tmp_path / "data"
    server = deploy("walk", data)
    try:
        tab = Tab(browser, server.url, "walker")
        start = tab.page.get_by_role("button", name="Start")
        expect(start).to_be_visible()
        tab.until(lambda: any("/pyodide/" in u for u in tab.requests), what="the preload on the start page")
        start.click()
        expect(tab.page.locator("#mug-canvas")).to_be_visible(timeout=90_000)
        tab.play(40, "ArrowRight")
        tab.play(80, "ArrowLeft")
        page = tab.page
        violations, texts = page.evaluate("window.cspViolations"), page.evaluate("window.loadingTexts")
        tab.until(lambda: len(tab.kept()) < 5, what="the acks")
        kept = tab.kept()
        sent = [r for m in tab.of_type("steps") for r in m["records"]]
        steps = tab.steps()
        ended = {r["record"]["episode"] for r in sent if r["kind"] == "event" and r["name"] == "episode_end"}
        assert len(ended) >= 2, "the partner finishes an episode within 40 steps"

        def all_verified() -> bool:
            table = mug.load(data).steps
            return set(table[table["verified"].notna()]["episode"]) >= ended

        tab.until(all_verified, what="the verification of every finished episode")
        table = mug.load(data).steps
        tab.until(lambda: len(tab.steps()) >= len(table), what="Playwright's report of what the page sent")
        later = tab.steps()  # the game went on meanwhile
    finally:
        server.stop()
    assert tab.errors == [] and violations == []
    # preloaded on the start page: by the time the scene shows, the download may be over; every text names its stage
    assert texts and all(t.split("…")[0] in STAGES for t in texts), texts
    assert any(u.endswith(f"/{WHEEL.name}") and "/pybundle/" in u for u in tab.requests)  # the scene's wheel, installed
    assert [r["seq"] for r in sent] == list(range(len(sent)))  # each sent once, at once, in order
    assert sent[0]["kind"] == "event" and sent[0]["name"] == "session"
    assert sent[0]["record"]["where"] == "browser" and sent[0]["record"]["pyodide_version"] == PYODIDE.version
    assert contiguous(steps) and len(steps) >= 80
    assert {r["record"]["actions"]["agent_0"] for r in steps} >= {3, 4}  # both keys reached the env in the worker
    # the AI acted on each step's own observation: the Python runtime on the recorded ones agrees (reset per episode)
    runtime = mug.PolicyRuntime(PARTNER, seed=POLICY_SEED)
    episode = None
    for r in steps:
        if r["episode"] != episode:
            episode = r["episode"]
            runtime.boundary("episode", "agent_1")
        out = runtime.step(np.asarray(r["record"]["observations"]["agent_1"], np.float32), "agent_1")
        assert out.action == r["record"]["actions"]["agent_1"], (r["episode"], r["step"])
        np.testing.assert_allclose(out.logits, r["record"]["policy_outputs"]["agent_1"]["logits"], rtol=1e-5, atol=1e-5)
    assert len(kept) < 5  # acknowledged records are forgotten
    # every step stored once, and each finished episode equals its CPython re-simulation
    stored = sorted(zip(table["episode"], table["step"]))  # what was committed: what the page sent, up to its last acks
    assert stored == [(r["episode"], r["step"]) for r in later[: len(stored)]] and len(stored) >= len(steps) - 5
    finished = table[table["episode"].isin(ended)]
    assert len(finished) > 0 and finished["verified"].eq(True).all()


def test_lockstep_steps_once_per_key_press(browser, tmp_path):
    server = deploy("walk_lockstep", tmp_path / "data")
    try:
        tab = Tab(browser, server.url, "stepper")
        expect(tab.page.locator("#mug-canvas")).to_be_visible(timeout=90_000)
        tab.page.wait_for_timeout(500)  # several ticks: no step without a key
        assert tab.steps() == []
        for n, key in enumerate(["ArrowRight", "ArrowRight", "ArrowLeft", "ArrowDown"], 1):
            tab.page.keyboard.press(key)
            tab.until(lambda n=n: len(tab.steps()) == n, what=f"step {n}")
        tab.page.wait_for_timeout(300)
        texts = tab.page.evaluate("window.loadingTexts")
    finally:
        server.stop()
    steps = tab.steps()
    assert [r["record"]["actions"]["agent_0"] for r in steps] == [4, 4, 3, 2] and tab.errors == []
    # no preload here: the participant saw the bytes come in, then the stages
    downloads = [t for t in texts if re.fullmatch(r"Downloading the game engine… \d+\.\d of \d+\.\d MB", t)]
    assert downloads and texts.index(downloads[-1]) < texts.index(next(t for t in texts if t.startswith("Starting the game")))


def test_a_scene_played_to_its_end_moves_the_study_on_with_every_step_stored_and_verified(browser, tmp_path):
    data = tmp_path / "data"
    server = deploy("walk_short", data)
    try:
        tab = Tab(browser, server.url, "finisher")
        expect(tab.page.get_by_text("DONE")).to_be_visible(timeout=90_000)  # the end page: no advance from the page
        tab.until(lambda: mug.load(data).steps["verified"].notna().any(), what="the verification")
        table = mug.load(data).steps
    finally:
        server.stop()
    steps = tab.steps()
    last = steps[-1]["record"]
    assert tab.errors == [] and len(steps) == len(table) > 0 and (last["terminated"]["agent_0"] or last["truncated"]["agent_0"])
    assert sorted(zip(table["episode"], table["step"])) == [(r["episode"], r["step"]) for r in steps]
    assert table["verified"].eq(True).all()
    assert tab.of_type("advance") == []


def test_the_server_killed_mid_episode_and_restarted_gets_every_step_again(browser, tmp_path):
    data, port = tmp_path / "data", free_port()
    server = deploy("walk", data, port)
    restarted = None
    try:
        tab = Tab(browser, server.url, "crasher")
        tab.page.get_by_role("button", name="Start").click()
        expect(tab.page.locator("#mug-canvas")).to_be_visible(timeout=90_000)
        tab.play(15)
        server.stop(signal.SIGKILL)
        expect(tab.page.locator(".mug-error")).to_have_text("Connection lost; reconnecting…")
        kept_steps = lambda: sum(r["kind"] == "step" for r in tab.kept())  # noqa: E731
        tab.play(kept_steps() + 20, "ArrowLeft", count=kept_steps)  # the game goes on in the browser while the server is down
        kept_while_down = tab.kept()
        before = len(tab.sent)
        restarted = deploy("walk", data, port)
        tab.until(lambda: tab.of_type("ready", before), what="the reconnect")
        expect(tab.page.locator(".mug-error")).to_have_count(0)  # the notice goes, the game goes on
        tab.play(len(tab.steps()) + 10)
        resent = set(tab.records(before))
        tab.until(lambda: len(tab.kept()) < 5, what="the acks")
        stored = stored_steps(data)  # committed so far (the game goes on)
        tab.until(lambda: len(tab.steps()) >= len(stored), what="Playwright's report of what the page sent")
        steps = tab.steps()
    finally:
        (restarted or server).stop()
    assert tab.errors == []
    seqs = [r["seq"] for r in kept_while_down]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # kept in the page: none lost, none twice
    assert {(r["session_id"], r["seq"]) for r in kept_while_down} <= resent  # all sent again after the reconnect
    assert tab.sent[before]["type"] == "ready"  # first the page's ready (the restarted server resumes it), then them
    assert len(tab.sessions()) == 1 and contiguous(steps)  # the same game went on: one session
    keys = sorted((s["episode"], s["step"]) for s in stored)
    # 0 lost, 0 duplicated: what was committed is what the page made, in order, up to its last acks
    assert keys == [(r["episode"], r["step"]) for r in steps[: len(keys)]] and len(keys) >= len(steps) - 15
    made_while_down = {(r["episode"], r["step"]) for r in kept_while_down if r["kind"] == "step"}
    assert made_while_down and made_while_down <= set(keys)


def test_a_reload_mid_episode_sends_the_kept_records_again_and_restarts_the_episode(browser, tmp_path):
    data = tmp_path / "data"
    server = deploy("walk", data)
    try:
        tab = Tab(browser, server.url, "reloader")
        tab.page.get_by_role("button", name="Start").click()
        expect(tab.page.locator("#mug-canvas")).to_be_visible(timeout=90_000)
        tab.play(45)
        kept_before = tab.kept()
        [old] = tab.sessions()
        interrupted = tab.steps()[-1]["episode"]
        before = len(tab.sent)
        tab.page.reload()
        expect(tab.page.locator("#mug-canvas")).to_be_visible(timeout=90_000)
        tab.until(lambda: len(tab.sessions()) == 2, what="the new session")
        new = tab.sessions()[1]
        tab.play(5, session_id=new)
        after = tab.records(before)
        tab.until(lambda: not [r for r in tab.kept() if r["session_id"] == old], what="the acks of the old session")
    finally:
        server.stop()
    assert tab.errors == []
    assert {(r["session_id"], r["seq"]) for r in kept_before} <= set(after)  # what the server had not acked: again
    # README, "Environments in the browser": a reload restarts the interrupted episode, in a new session
    first = [(s, q) for s, q in after if s == new]
    assert first and first[0][1] == 0
    replay = tab.steps(new)
    assert (replay[0]["episode"], replay[0]["step"]) == (interrupted, 0)
    starts = {  # the same episode, with the same seed
        m["session_id"]: r["record"]["seed"]
        for m in tab.of_type("steps")
        for r in m["records"]
        if r["kind"] == "event" and r["name"] == "episode_start" and r["record"]["episode"] == interrupted
    }
    assert set(starts) == {old, new} and starts[old] == starts[new]
    stored = {(s["session_id"], s["episode"], s["step"]) for s in stored_steps(data)}
    assert {(old, r["episode"], r["step"]) for r in tab.steps(old)} <= stored  # the old session's steps stay in the data


def test_an_env_that_raises_ends_the_episode_tells_the_participant_and_reports_the_traceback(browser, tmp_path):
    data = tmp_path / "data"
    server = deploy("walk_raises", data)
    try:
        tab = Tab(browser, server.url, "unlucky")
        expect(tab.page.locator(".mug-error")).to_contain_text(ENV_FAILED, timeout=90_000)
        tab.until(lambda: tab.of_type("env_error"), what="env_error")
        tab.page.wait_for_timeout(500)
        steps = tab.steps()
    finally:
        log = server.stop()
    [report] = tab.of_type("env_error")
    assert "RuntimeError: the grid fails on purpose" in report["message"]
    assert "Traceback (most recent call last)" in report["traceback"] and "failing_grid.py" in report["traceback"]
    assert (report["episode"], report["step"]) == (0, 5)
    assert report["session_id"] == tab.sessions()[0]
    assert [(r["episode"], r["step"]) for r in steps] == [(0, s) for s in range(5)]  # steps 0-4; then nothing
    assert tab.errors == [] and "the env failed in the browser at episode 0 step 5" in log
    store = Store(data)
    events = store.events("env_error")
    store.close()
    assert [e["data"]["traceback"] for e in events] == [report["traceback"]]


def test_a_package_index_that_does_not_answer_is_a_clear_error_and_a_logged_client_error(browser, tmp_path):
    server = deploy("walk_needs_numpy", tmp_path / "data")
    try:
        tab = Tab(browser, server.url, "offline")
        expect(tab.page.locator(".mug-error")).to_contain_text(LOAD_FAILED, timeout=90_000)
        tab.until(lambda: tab.of_type("client_error"), what="client_error")
        tab.page.wait_for_timeout(300)
    finally:
        log = server.stop()
    [report] = tab.of_type("client_error")
    assert "numpy" in report["message"] and "http://127.0.0.1:9/pyodide/" in report["message"]
    assert "participant offline reports: 'loading Python (env) failed" in log
    store = Store(server.data_dir)
    events = store.events("client_error")
    store.close()
    assert [e["data"]["message"] for e in events] == [report["message"]]
    assert tab.page.locator("#mug-canvas").count() == 0
