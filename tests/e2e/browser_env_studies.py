"""Studies with a scene whose environment runs in the participant's browser (``mug deploy
tests/e2e/browser_env_studies.py:NAME``), for ``test_browser_env.py``.

Each is a real browser-side scene (``GymScene(...).runtime(environment="browser")``): the pure-Python
:class:`~mug.examples.browser_grid.PyCoinGrid` with the demo's trained coin partner as the AI, which the
page's JS runtime runs on each step's own observation. The server ships mug's engine and the env module
to the browser, where :class:`mug.browser.BrowserGame` runs it in Pyodide, and stores what it records.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import mug
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.examples.demo import PARTNER_MODEL
from tests.e2e.fixtures.failing_grid import FailingGrid

__all__ = ["PARTNER", "POLICY_SEED", "WHEEL", "walk", "walk_lockstep", "walk_short", "walk_raises", "walk_needs_numpy"]

#: The AI partner: the trained coin partner, sampling (temperature 0.3): a stale observation shows.
PARTNER = mug.ModelConfig.from_onnx(PARTNER_MODEL, temperature=0.3)
POLICY_SEED = 5
KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}

#: A pure-Python wheel the scene ships (``runtime(packages=[WHEEL])``): the worker installs it.
WHEEL = Path(tempfile.mkdtemp(prefix="mug-browser-wheel-")) / "walkhelp-1.0-py3-none-any.whl"
with zipfile.ZipFile(WHEEL, "w") as wheel:
    wheel.writestr("walkhelp.py", 'VERSION = "walkhelp 1.0"\n')
    wheel.writestr("walkhelp-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: walkhelp\nVersion: 1.0\n")
    wheel.writestr(
        "walkhelp-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: mug-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    wheel.writestr("walkhelp-1.0.dist-info/RECORD", "")


def grid(
    mode: str = "realtime", creator=PyCoinGrid, episodes: int = 50, scene_id: str = "walk", steps: int = 40, **runtime
) -> mug.GymScene:
    """The browser-side coin grid played with the AI partner."""
    return (
        mug.GymScene(scene_id)
        .environment(creator, {"max_steps": steps, "coins": 4}, seed=11)
        .policies({"agent_0": mug.Human, "agent_1": PARTNER})
        .gameplay(
            action_mapping=KEYS,
            num_episodes=episodes,
            mode=mode,
            input_mode="pressed_keys" if mode == "realtime" else "single_keystroke",
        )
        .rendering(mode="surface", draw=draw, width=150, height=150, fps=15)
        .content(header="Collect the coins together", body="You are blue; your AI partner is red.")
        .data(record_observations=True)
        .runtime(environment="browser", policy_seed=POLICY_SEED, **runtime)
    )


def _study(scene: mug.GymScene, start: bool = False) -> mug.Stager:
    first = [mug.StartScene(body="Python starts loading on this page.")] if start else []
    return mug.Stager([*first, scene, mug.EndScene(completion_code="DONE")])


#: A start page (which preloads Python), then the browser-side scene, played with the AI partner.
walk = _study(grid(packages=[WHEEL]), start=True)
#: Lockstep: a step per key press (the page holds its act until then).
walk_lockstep = _study(grid("lockstep"))
#: One short episode, played to its end: the study goes on from the engine's records (its scene_end).
walk_short = _study(grid(episodes=1, steps=10))
#: The env raises at step 5 of its first episode.
walk_raises = _study(grid(creator=FailingGrid, episodes=2))
#: The env needs NumPy from a package index that does not answer (a closed loopback port).
walk_needs_numpy = _study(grid(packages=["numpy"], package_index_url="http://127.0.0.1:9/pyodide/"))
