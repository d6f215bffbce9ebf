"""The Python files a browser-side scene ships to the participant's browser, as content-hashed zips.

Per study: one zip of mug's engine modules (``mug.session``, ``mug.rendering``,
``mug.browser``, ``mug.netcode``, ``mug.errors``; the package ``__init__`` files of ``mug`` and
``mug.examples`` are replaced by one line each, so that importing the engine
pulls in neither the server nor ONNX), and per browser-side scene a zip of its
env: the top-level package directory of the env creator's module (or that
module file alone; for a module inside ``mug`` the file alone). Each is served
at ``/pybundle/<first 16 hex of its SHA-256>.zip`` with an immutable cache
header; only bundles the study declares are served. Zips are built with fixed
timestamps, so the same files give the same URL. Pure-Python wheels of
``runtime(packages=[...])`` are served the same way, as they are.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mug.scenes.gym_scene import GymScene

__all__ = ["BUNDLE_ROUTE", "Bundle", "env_bundle", "mug_bundle"]

#: URL pattern of a bundle or wheel (relative to the server root); group 1 is the bundle's ``sha16``.
BUNDLE_ROUTE = r"/pybundle/([0-9a-f]{16})(?:\.zip|/[A-Za-z0-9_.+-]+\.whl)"
_ENGINE_PACKAGES = ("session", "rendering", "browser", "netcode")
_STAMP = (1980, 1, 1, 0, 0, 0)
_SKIP = ("__pycache__", ".ipynb_checkpoints", ".git")


class Bundle:
    """One zip: its bytes, ``sha16`` and ``url`` (``pybundle/<sha16>.zip``)."""

    def __init__(self, files: dict[str, bytes] | None = None, *, data: bytes | None = None, name: str = "") -> None:
        if data is None:
            data = _zip(files or {})
        self.data = data
        self.sha16 = hashlib.sha256(self.data).hexdigest()[:16]
        #: A wheel's file name, else ``""``.
        self.name = name
        #: Relative URL: ``pybundle/<sha16>.zip``, or ``pybundle/<sha16>/<name>.whl`` for a wheel (Pyodide's
        #: ``loadPackage`` reads the wheel's name from its URL).
        self.url = f"pybundle/{self.sha16}/{name}" if name else f"pybundle/{self.sha16}.zip"

    @classmethod
    def wheel(cls, path: Path) -> Bundle:
        """A pure-Python wheel, served as it is."""
        return cls(data=Path(path).read_bytes(), name=Path(path).name)


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, _STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    return out.getvalue()


def _tree(root: Path, prefix: str) -> dict[str, bytes]:
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(part in _SKIP for part in rel.parts) and path.suffix != ".pyc":
            files[f"{prefix}/{rel.as_posix()}"] = path.read_bytes()
    return files


def mug_bundle() -> Bundle:
    """The engine's modules (see module docstring)."""
    import mug

    root = Path(mug.__file__).parent
    files = {
        "mug/__init__.py": f'"""MUG in the browser: the engine only."""\n\n__version__ = {mug.__version__!r}\n'.encode(),
        "mug/errors.py": (root / "errors.py").read_bytes(),
        "mug/examples/__init__.py": b'"""Example environments (import each module directly)."""\n',
    }
    for package in _ENGINE_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            files[f"mug/{package}/{path.name}"] = path.read_bytes()
    return Bundle(files)


def env_bundle(scene: GymScene) -> Bundle:
    """The env creator's module (or its top-level package) and the modules of ``draw``/``hud``."""
    files: dict[str, bytes] = {}
    for obj in (scene.env_creator, scene.draw, scene.hud):
        if obj is None or isinstance(obj, str):
            continue
        module = importlib.import_module(obj.__module__)
        path = Path(module.__file__).resolve()  # type: ignore[arg-type]
        parts = obj.__module__.split(".")
        if parts[0] == "mug" or (len(parts) == 1 and path.name != "__init__.py"):
            files["/".join(parts) + ("/__init__.py" if path.name == "__init__.py" else ".py")] = path.read_bytes()
        else:  # the whole top-level package: its other modules and data files may be needed
            files.update(_tree(path.parents[len(parts) - (1 if path.name == "__init__.py" else 2)], parts[0]))
    return Bundle(files)
