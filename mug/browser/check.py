"""CPython vs Pyodide (under Node) for a browser-side scene: ``mug check-env`` and ``GymScene.check_browser_env``.

:func:`run_in_pyodide` runs one function of :mod:`mug.browser.run` inside
Pyodide with the scene's bundles (``mug/static/pyodide-run.mjs``, built by
``npm run build``); :func:`check_env` runs :func:`mug.browser.run.env_trace`
in both interpreters and reports the first step where they differ.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mug.errors import MugError

if TYPE_CHECKING:
    from mug.scenes.gym_scene import GymScene

__all__ = ["EnvCheck", "check_env", "run_in_pyodide"]

STATIC = Path(__file__).resolve().parent.parent / "static"


def run_in_pyodide(scene: GymScene, call: str, args: dict[str, Any], timeout_s: float = 300.0) -> dict[str, Any]:
    """``call`` (``"module:function"``) with ``args`` in Pyodide under Node; ``{"result", "load_s", "call_s"}``.

    ``MugError`` when Node or the built driver is missing, or the call raised (with the Python traceback)."""
    from mug.server.pybundle import env_bundle, mug_bundle

    node, script = shutil.which("node"), STATIC / "pyodide-run.mjs"
    if node is None or not script.is_file() or not (STATIC / "pyodide" / "pyodide.mjs").is_file():
        raise MugError("running Pyodide needs Node.js and the built JS (cd js && npm run build): mug/static/pyodide-run.mjs")
    with tempfile.TemporaryDirectory(prefix="mug-pyodide-") as tmp:
        paths = []
        for name, bundle in (("mug.zip", mug_bundle()), ("env.zip", env_bundle(scene))):
            (Path(tmp) / name).write_bytes(bundle.data)
            paths.append(str(Path(tmp) / name))
        job = json.dumps({"bundles": paths, "call": call, "args": args})
        done = subprocess.run([node, str(script)], input=job, capture_output=True, text=True, timeout=timeout_s, check=False)
    lines = done.stdout.strip().splitlines()
    out = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-2000:] or f"exit status {done.returncode}"}
    if "error" in out:
        raise MugError(f"{call} failed in Pyodide: {out['error']}\n{out.get('traceback', '')}")
    return out


@dataclass
class EnvCheck:
    """What :func:`check_env` found."""

    steps: int
    first_divergence: int | None
    """Index of the first step whose observation hash, rewards, terminations or state hash differ (``None``: none)."""
    difference: str
    cpython_us_per_step: float
    pyodide_us_per_step: float
    snapshots_ok: bool
    pyodide_load_s: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Same steps in both interpreters and snapshots that round-trip."""
        return self.first_divergence is None and self.snapshots_ok

    def lines(self) -> list[str]:
        """A report for people."""
        verdict = (
            "same in CPython and Pyodide"
            if self.first_divergence is None
            else (f"DIVERGES at step {self.first_divergence}: {self.difference}")
        )
        return [
            f"{self.steps} seeded steps: {verdict}",
            f"time per step: CPython {self.cpython_us_per_step:.1f} us, Pyodide {self.pyodide_us_per_step:.1f} us "
            f"(x{self.pyodide_us_per_step / max(self.cpython_us_per_step, 1e-9):.2f}); Pyodide loaded in {self.pyodide_load_s:.1f} s",
            "snapshots round-trip (snapshot -> step -> restore -> step)"
            if self.snapshots_ok
            else f"snapshots do NOT round-trip (steps {self.details.get('snapshot_failures')})",
        ]

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("\n".join(self.lines()))


def first_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> tuple[int | None, str]:
    """The first index where two traces differ, and what differs there."""
    for index, (x, y) in enumerate(zip(a, b)):
        for key in x:
            if x[key] != y.get(key):
                return index, f"{key}: {x[key]!r} in CPython, {y.get(key)!r} in Pyodide"
    if len(a) != len(b):
        return min(len(a), len(b)), f"{len(a)} steps in CPython, {len(b)} in Pyodide"
    return None, ""


def check_env(scene: GymScene, steps: int = 200, seed: int | None = None) -> EnvCheck:
    """Run the scene's env ``steps`` seeded steps in CPython and in Pyodide and compare (module docstring)."""
    from mug.browser.run import env_trace

    args = {"spec": scene.browser_spec(), "steps": steps, "seed": scene.seed if seed is None else seed}
    here = env_trace(args)
    there = run_in_pyodide(scene, "mug.browser.run:env_trace", args)
    remote = there["result"]
    index, why = first_difference(here["trace"], env_trace(args)["trace"])  # a non-deterministic env differs from itself
    if index is not None:
        why = f"two CPython runs differ ({why.replace(' in Pyodide', ' the second time')}): the env is not deterministic"
    else:
        index, why = first_difference(here["trace"], remote["trace"])
    count = max(here["steps"], 1)
    return EnvCheck(
        steps=here["steps"],
        first_divergence=index,
        difference=why,
        cpython_us_per_step=here["bare_seconds"] / count * 1e6,
        pyodide_us_per_step=remote["bare_seconds"] / max(remote["steps"], 1) * 1e6,
        snapshots_ok=here["snapshot_ok"] and remote["snapshot_ok"],
        pyodide_load_s=there["load_s"],
        details={"snapshot_failures": here["snapshot_failures"] or remote["snapshot_failures"]},
    )
