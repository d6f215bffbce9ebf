"""Pyodide's core files (``mug/static/pyodide/``, copied there by the JS build) under a content-hashed URL.

``/pyodide/<sha16>/<file>``: ``<sha16>`` is the first 16 hex digits of a SHA-256 over every
file's name and bytes, computed once when the server starts, so each URL names exactly one
content and is cached for good (``Cache-Control: public, max-age=31536000, immutable``); a
page from before an upgrade of Pyodide asks for a digest that no longer exists and gets a 404
(it reloads rather than mix versions). ``/pyodide/<sha16>/files.json`` lists the files and
their sizes: the page's loader counts the bytes it has fetched against it (a gzipped response's
``Content-Length`` is not the size the page reads).

Content types: ``.mjs`` ``text/javascript``, ``.wasm`` ``application/wasm`` (so Chromium
compiles it while it streams), ``.zip`` ``application/zip``, ``.json`` ``application/json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tornado.ioloop
import tornado.web

from mug.scenes.browser_env import DEFAULT_PACKAGE_INDEX

__all__ = ["PyodideFiles", "pyodide_files", "package_origins", "CONTENT_TYPES"]

#: The files a page may fetch, and the type each is served as.
CONTENT_TYPES = {
    "pyodide.mjs": "text/javascript",
    "pyodide.asm.mjs": "text/javascript",
    "pyodide.asm.wasm": "application/wasm",
    "python_stdlib.zip": "application/zip",
    "pyodide-lock.json": "application/json",
    "VERSION": "text/plain; charset=utf-8",
}


class PyodideFiles:
    """The Pyodide build in one folder: its digest, its files' sizes and the URL path it is served under."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.present = (folder / "pyodide.mjs").is_file()
        digest = hashlib.sha256()
        self.sizes: dict[str, int] = {}
        for name in sorted(CONTENT_TYPES):
            path = folder / name
            if not path.is_file():
                continue
            data = path.read_bytes()
            digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
            self.sizes[name] = len(data)
        #: First 16 hex digits of the SHA-256 over the files' names and bytes.
        self.digest = digest.hexdigest()[:16]
        #: The URL path (relative to the server's root, ending in ``/``) that ``loadPyodide({indexURL})`` takes.
        self.url = f"pyodide/{self.digest}/"
        self.version = (folder / "VERSION").read_text().strip() if (folder / "VERSION").is_file() else ""

    def manifest(self) -> bytes:
        """``files.json``: the Pyodide version and each file's size in bytes."""
        return json.dumps({"version": self.version, "files": self.sizes}, sort_keys=True).encode()

    def default_package_index(self) -> str:
        """Pyodide's official package index for this release."""
        return DEFAULT_PACKAGE_INDEX.format(version=self.version)


@functools.cache
def pyodide_files(folder: Path) -> PyodideFiles:
    """The :class:`PyodideFiles` of ``folder``, hashed once per process."""
    return PyodideFiles(folder)


def package_origins(environments: list[dict[str, Any]], default_index: str) -> tuple[str, ...]:
    """The origins browser-side scenes fetch compiled packages from (for the CSP's ``connect-src``).

    ``environments``: the client metadata's ``environment`` of each scene that runs in the browser;
    only those that ask for ``packages`` need their ``package_index_url`` (default ``default_index``).
    """
    origins = set()
    for env in environments:
        if env.get("packages"):
            parts = urlsplit(env.get("package_index_url") or default_index)
            if parts.scheme in ("http", "https") and parts.netloc:
                origins.add(f"{parts.scheme}://{parts.netloc}")
    return tuple(sorted(origins))


class PyodideHandler(tornado.web.RequestHandler):
    """``/pyodide/<sha16>/<file>``: one of :data:`CONTENT_TYPES` (or ``files.json``) of the served build.

    Mixed into the server's guarded handler (security headers, plain-text errors) in :mod:`mug.server.app`.
    """

    def initialize(self, files: PyodideFiles) -> None:
        self.files = files

    def compute_etag(self) -> None:
        """No ETag: a URL's content never changes (and hashing 10 MB per request would stall the games)."""
        return None

    async def get(self, digest: str, name: str) -> None:
        if digest != self.files.digest:
            raise tornado.web.HTTPError(404, reason="this Pyodide build is no longer served; reload the page")
        if name == "files.json":
            self.set_header("Content-Type", "application/json")
            body = self.files.manifest()
        elif name in self.files.sizes:
            self.set_header("Content-Type", CONTENT_TYPES[name])
            body = await tornado.ioloop.IOLoop.current().run_in_executor(None, (self.files.folder / name).read_bytes)
        else:
            raise tornado.web.HTTPError(404, reason="no such Pyodide file")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.finish(body)
