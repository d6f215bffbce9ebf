"""Browser fixtures: Debian's Chromium through Playwright, and a loopback server for MUG's built assets."""

from __future__ import annotations

import functools
import os
import shutil
import threading
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
