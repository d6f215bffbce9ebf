"""Browser fixtures: Debian's Chromium through Playwright, and a loopback server for MUG's built assets."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "mug" / "static"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """Debian's chromium (``apt-get install -y chromium``); ``MUG_CHROMIUM`` overrides."""
    path = os.environ.get("MUG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Chromium is not installed: `make setup` installs Debian's chromium (apt-get install -y chromium)")
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(scope="session")
def asset_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a folder that holds MUG's built assets; yields (base URL, folder)."""
    root = tmp_path_factory.mktemp("site")
    for item in STATIC.iterdir():
        (root / item.name).symlink_to(item)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


@pytest.fixture(scope="module")
def webrtc_browser(browser) -> Iterator:
    """Chromium with WebRTC allowed on loopback (its own process, from the session's Playwright)."""
    launched = browser.browser_type.launch(
        executable_path=chromium_path(), args=[*CHROMIUM_FLAGS, "--allow-loopback-in-peer-connection"]
    )
    yield launched
    launched.close()


@pytest.fixture()
def netns_browsers(browser, tmp_path) -> Iterator:
    """``start(link, links=None, count=2, seed=1) -> (Namespaces, browsers)``: ``count`` network namespaces linked
    through the delay line of ``tests/e2e/netns.py`` (``Link`` settings per direction) and one Chromium inside
    each, from the session's Playwright; all of it closed and deleted after the test. Skipped, naming what is
    missing, where namespaces with TUN devices cannot be made (not root, no ``ip``, no ``/dev/net/tun``)."""
    from tests.e2e.netns import Link, Namespaces, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no network namespaces for the delay line: {reason}")
    nets: list[Namespaces] = []
    browsers: list = []

    def start(link: Link, links: dict | None = None, count: int = 2, seed: int = 1) -> tuple[Namespaces, list]:
        net = Namespaces(tmp_path / f"netns-{len(nets)}", count, link, links, seed)
        nets.append(net)
        for i in range(count):
            wrapper = net.wrapper(i, chromium_path())
            browsers.append(browser.browser_type.launch(executable_path=str(wrapper), args=CHROMIUM_FLAGS))
        return net, browsers[-count:]

    try:
        yield start
    finally:
        try:
            for launched in browsers:
                launched.close()
        finally:
            for net in nets:
                net.close()


class HideableBrowser:
    """A headless Chromium (WebRTC allowed on loopback) whose one window can be really minimised, hiding its page as
    a participant's tab is hidden: ``document.visibilityState`` turns ``"hidden"``, requestAnimationFrame stops and
    the page's main-thread timers run at most once a second (Chromium's own background throttling).

    A Chromium that Playwright launches keeps every page visible and unthrottled: Playwright turns on focus emulation
    for each page it opens, which holds the page as if captured (so always visible), and passes switches that turn
    background throttling off. This one is started as a plain process and Playwright attaches to it over CDP with
    ``no_defaults``, which leaves the browser's default context (its first window) without those overrides.

    It plays one participant: :meth:`new_context` hands out that default context (what ``Member`` asks of a browser),
    and :meth:`set_hidden` minimises its window or restores it."""

    def __init__(self, browser) -> None:
        self.browser = browser
        self._handed_out = False

    def new_context(self, permissions: list[str] | None = None):
        """The browser's default context with ``permissions`` granted; asked once (it is the one window whose page
        can be hidden: a second participant needs a browser of their own)."""
        if self._handed_out:
            raise RuntimeError("HideableBrowser plays one participant: its default context is already in use")
        self._handed_out = True
        (context,) = self.browser.contexts
        if permissions:
            context.grant_permissions(permissions)
        return context

    def set_hidden(self, page, hidden: bool) -> None:
        """Minimise ``page``'s window (the page is hidden) or restore it (visible again); waits until the page sees it."""
        session = page.context.new_cdp_session(page)
        try:
            window = session.send("Browser.getWindowForTarget")["windowId"]
            state = "minimized" if hidden else "normal"
            session.send("Browser.setWindowBounds", {"windowId": window, "bounds": {"windowState": state}})
        finally:
            session.detach()
        page.wait_for_function("hidden => document.hidden === hidden", arg=hidden, timeout=10_000)


@pytest.fixture()
def hideable_browser(browser, tmp_path) -> Iterator[HideableBrowser]:
    """A :class:`HideableBrowser` for one participant (its own Chromium process, closed after the test), attached
    through the session's Playwright."""
    profile = tmp_path / "hideable-profile"
    args = [*CHROMIUM_FLAGS, "--allow-loopback-in-peer-connection", "--headless", "--remote-debugging-port=0"]
    log = open(tmp_path / "hideable-chromium.log", "wb")  # noqa: SIM115 (closed below, after the process)
    process = subprocess.Popen(
        [chromium_path(), *args, f"--user-data-dir={profile}", "about:blank"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not open its DevTools port (see {log.name}): exit code {process.poll()}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        attached = browser.browser_type.connect_over_cdp(f"http://127.0.0.1:{port}", no_defaults=True)
        try:
            yield HideableBrowser(attached)
        finally:
            attached.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
