"""Pyodide served by a deployment: content-hashed URLs, long cache, the right types, and a CSP that lets the
worker run it (``'wasm-unsafe-eval'``, workers from the server only, no ``'unsafe-eval'``) and reach the
package index only where a browser-side scene needs packages."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import AsyncHTTPClient

from mug.errors import ConfigError
from mug.server.app import STATIC
from mug.server.headers import security_headers
from mug.server.pyodide_files import PyodideFiles, package_origins, pyodide_files
from tests.bots import run_async
from tests.servers import ServerProcess

FILES = pyodide_files(STATIC / "pyodide")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    plain = ServerProcess(["demo"], tmp_path_factory.mktemp("demo")).start()
    numpy = ServerProcess(["deploy", "tests/e2e/browser_env_studies.py:walk_needs_numpy"], tmp_path_factory.mktemp("np"))
    numpy.start()
    yield plain, numpy
    plain.stop()
    numpy.stop()


def _fetch(base: str, paths: list[str]) -> dict:
    async def main():
        client = AsyncHTTPClient()
        return {p: await client.fetch(base + p, raise_error=False, decompress_response=True) for p in paths}

    return run_async(main())


def test_pyodide_files_are_served_content_hashed_with_their_types_and_long_cache(servers):
    plain, _ = servers
    paths = [f"{FILES.url}{name}" for name in ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip")]
    got = _fetch(plain.url, [*paths, f"{FILES.url}pyodide-lock.json", f"{FILES.url}files.json"])
    types = {p.rsplit("/", 1)[1]: r.headers["Content-Type"] for p, r in got.items()}
    assert types == {
        "pyodide.mjs": "text/javascript",
        "pyodide.asm.mjs": "text/javascript",
        "pyodide.asm.wasm": "application/wasm",
        "python_stdlib.zip": "application/zip",
        "pyodide-lock.json": "application/json",
        "files.json": "application/json",
    }
    for path, response in got.items():
        assert response.code == 200, path
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    for path in paths:
        assert got[path].body == (STATIC / "pyodide" / path.rsplit("/", 1)[1]).read_bytes()
    manifest = json.loads(got[f"{FILES.url}files.json"].body)
    assert manifest["version"] == (STATIC / "pyodide" / "VERSION").read_text().strip()
    assert manifest["files"]["pyodide.asm.wasm"] == len(got[paths[2]].body)


def test_an_old_digest_or_an_unlisted_file_is_a_404(servers):
    plain, _ = servers
    other = "0123456789abcdef" if FILES.digest != "0123456789abcdef" else "fedcba9876543210"
    got = _fetch(plain.url, [f"pyodide/{other}/pyodide.mjs", f"{FILES.url}package.json", f"{FILES.url}..%2Fclient.js"])
    assert [r.code for r in got.values()] == [404, 404, 404]
    assert b"no longer served; reload the page" in got[f"pyodide/{other}/pyodide.mjs"].body


def test_the_digest_names_the_content(tmp_path):
    for name in ("pyodide.mjs", "pyodide.asm.wasm", "VERSION"):
        (tmp_path / name).write_bytes(b"one " + name.encode())
    first = PyodideFiles(tmp_path)
    (tmp_path / "pyodide.asm.wasm").write_bytes(b"two")
    second = PyodideFiles(tmp_path)
    assert first.digest != second.digest and len(first.digest) == 16
    assert second.url == f"pyodide/{second.digest}/" and second.sizes["pyodide.asm.wasm"] == 3


def test_the_csp_lets_the_worker_run_pyodide_and_reach_only_the_package_index_a_scene_needs(servers):
    plain, numpy = servers
    [page, worker] = _fetch(plain.url, ["?participant=csp1", "static/pyworker.js"]).values()
    [numpy_page] = _fetch(numpy.url, ["?participant=csp2"]).values()
    for response in (page, worker):  # the worker runs under its own script's policy
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'wasm-unsafe-eval'" in csp and "'unsafe-eval'" not in csp
        assert "worker-src 'self';" in csp and "connect-src 'self';" in csp
    assert worker.headers["Content-Type"].startswith("text/javascript")
    assert "connect-src 'self' http://127.0.0.1:9;" in numpy_page.headers["Content-Security-Policy"]


def test_package_origins_default_to_pyodides_index_and_only_for_scenes_with_packages():
    index = FILES.default_package_index()
    assert index == f"https://cdn.jsdelivr.net/pyodide/v{FILES.version}/full/"
    envs = [
        {"where": "browser", "packages": ["numpy"]},
        {"where": "browser", "packages": ["scipy"], "package_index_url": "https://mirror.example.org:8443/py/"},
        {"where": "browser", "packages": [], "package_index_url": "https://unused.example.org/"},
    ]
    assert package_origins(envs, index) == ("https://cdn.jsdelivr.net", "https://mirror.example.org:8443")
    csp = security_headers((), False, package_origins(envs, index))["Content-Security-Policy"]
    assert "connect-src 'self' https://cdn.jsdelivr.net https://mirror.example.org:8443;" in csp


def test_a_browser_side_scene_without_a_pyodide_build_is_a_config_error(tmp_path, monkeypatch):
    import mug.server.app as app
    from tests.e2e.browser_env_studies import walk

    monkeypatch.setattr(app, "pyodide_files", lambda folder: PyodideFiles(tmp_path))
    with pytest.raises(ConfigError, match="Pyodide is not built"):
        app.MugServer(walk, tmp_path / "data", "token")


def test_browser_side_scenes_naming_different_package_indexes_are_a_config_error(tmp_path):
    import mug
    import mug.server.app as app
    from tests.e2e.browser_env_studies import grid

    first = grid(packages=["numpy"], package_index_url="https://a.example.org/py/")
    second = grid(scene_id="walk2", packages=["numpy"], package_index_url="https://b.example.org/py/")
    with pytest.raises(ConfigError, match="different package indexes"):
        app.MugServer(mug.Stager([first, second, mug.EndScene()]), tmp_path / "data", "token")
