"""Studies with a scene whose environment runs in the participant's browser (``mug deploy
tests/e2e/browser_env_studies.py:NAME``), for ``test_browser_env*.py``.

Until the Python side of issue 12 (``.runtime(environment="browser")``, ``mug.browser``, ``/pybundle/``
and the ``steps`` ingestion) is merged, the browser-side scene is built here by hand, exactly as the
contract describes its client metadata (``environment`` {where, pyodide, bundles, wheels, packages,
package_index_url, spec}), and its Python is the test double ``fixtures/browser_double/mug/browser.py``,
zipped as the one bundle and served as a declared file of a carrier scene (``assets/carrier/double.zip``),
which also serves the AI partner's model. The real worker, Pyodide, page and renderer run it.
At the merge these studies become one ``GymScene(...).runtime(environment="browser")``.
"""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import mug
from mug.server.app import STATIC
from mug.server.pyodide_files import pyodide_files

__all__ = ["PARTNER", "POLICY_SEED", "walk", "walk_lockstep", "walk_raises", "walk_needs_numpy", "BUNDLE"]

DOUBLE = Path(__file__).with_name("fixtures") / "browser_double"
#: The AI partner: the trained CartPole LSTM (4 observations, 2 actions), sampling: a stale observation shows.
PARTNER = mug.ModelConfig.from_onnx(Path(mug.__file__).parent / "examples" / "cartpole_lstm.onnx")
POLICY_SEED = 5
_ASSETS = Path(tempfile.mkdtemp(prefix="mug-browser-double-"))
BUNDLE = _ASSETS / "double.zip"
with zipfile.ZipFile(BUNDLE, "w") as archive:
    for path in sorted(DOUBLE.rglob("*.py")):
        archive.write(path, path.relative_to(DOUBLE).as_posix())

#: A pure-Python wheel the walk's env uses (``helper``): shipped as one of the scene's ``wheels``.
WHEEL = _ASSETS / "walkhelp-1.0-py3-none-any.whl"
with zipfile.ZipFile(WHEEL, "w") as wheel:
    wheel.writestr("walkhelp.py", 'VERSION = "walkhelp 1.0"\n\n\ndef reward(a, b):\n    return 1.0 if a == b else 0.0\n')
    wheel.writestr("walkhelp-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: walkhelp\nVersion: 1.0\n")
    wheel.writestr(
        "walkhelp-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: mug-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    wheel.writestr("walkhelp-1.0.dist-info/RECORD", "")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a browser-side realtime policy warns; never played here
    CARRIER = (
        mug.GymScene("carrier")
        .environment("CartPole-v1", seed=1)
        .policies({"agent_0": PARTNER}, inference="browser")
        .gameplay(num_episodes=1, max_steps=5)
        .rendering(mode="surface", draw=lambda env, surface: None, fps=10)
        .assets(directory=_ASSETS, images={"double.zip": "double.zip", WHEEL.name: WHEEL.name})
    )


class BrowserSideScene(mug.TextScene):
    """A scene whose environment runs in the browser, as the server announces it (see the module docstring)."""

    def __init__(self, scene_id: str, fps: int = 15, mode: str = "realtime", **spec: Any) -> None:
        super().__init__(scene_id, header="Walk with your partner", body="Meet the red square.")
        self.fps = fps
        width = 300
        meta = {
            "scene_id": scene_id,
            "kind": "gym",
            "header": self.header,
            "body": self.body,
            "controls": "← → to move",
            "agents": ["human", "ai"],
            "policies": {"human": {"kind": "human"}, "ai": CARRIER.client_metadata()["policies"]["agent_0"]},
            "policy_seed": POLICY_SEED,
            "input_mode": "pressed_keys" if mode == "realtime" else "single_keystroke",
            "keys": ["ArrowLeft", "ArrowRight"],
            "mode": mode,
            "fps": fps,
            "width": width,
            "height": 90,
            "background": "#ffffff",
            "render_mode": "surface",
            "images": [],
            "you": {"client_id": "page", "humans": ["human"], "runs_policies": ["ai"], "policy_states": {}},
        }
        self.environment = {
            "where": "browser",
            "pyodide": pyodide_files(STATIC / "pyodide").url,
            "bundles": ["assets/carrier/double.zip"],
            "wheels": [f"assets/carrier/{WHEEL.name}"] if spec.get("helper") else [],
            "packages": spec.pop("packages", []),
            "package_index_url": spec.pop("package_index_url", None),
            "spec": {"scene_id": scene_id, "seed": 11, "max_steps": 400, "num_episodes": 2, "cells": 10, "meta": meta, **spec},
        }

    def client_metadata(self) -> dict[str, Any]:
        return {**super().client_metadata(), "kind": "gym", "fps": self.fps, "environment": self.environment}


class PreloadingStart(mug.StartScene):
    """The start page, announcing what a later scene loads (``preload``)."""

    def client_metadata(self) -> dict[str, Any]:
        env = WALK.environment
        return {**super().client_metadata(), "preload": {"pyodide": env["pyodide"], "bundles": env["bundles"]}}


WALK = BrowserSideScene("walk", helper="walkhelp")


def _study(scene: BrowserSideScene, start: mug.StartScene | None = None) -> mug.Stager:
    return mug.Stager([*([start] if start else []), scene, CARRIER, mug.EndScene(completion_code="DONE")])


#: A start page (which preloads Python), then the browser-side scene, played with the AI partner.
walk = _study(WALK, PreloadingStart(body="Python starts loading on this page."))
#: Lockstep: a step per key press (the page holds its act until then).
walk_lockstep = _study(BrowserSideScene("walk", mode="lockstep"))
#: The env raises at step 5.
walk_raises = _study(BrowserSideScene("walk", raise_at=5))
#: The env needs NumPy from a package index that does not answer (a closed loopback port).
walk_needs_numpy = _study(BrowserSideScene("walk", packages=["numpy"], package_index_url="http://127.0.0.1:9/pyodide/"))
