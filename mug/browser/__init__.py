"""mug's engine in the participant's browser: the worker entry :class:`BrowserGame` (runs in Pyodide)."""

from mug.browser.game import BrowserGame, spec_sha256
from mug.browser.scene import BrowserScene, PortableSpace

__all__ = ["BrowserGame", "BrowserScene", "PortableSpace", "spec_sha256"]
