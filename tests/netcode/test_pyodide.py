"""The netcode core runs in Pyodide with the engine bundle (no NumPy, ONNX or Tornado) and confirms the same
frames, hash for hash, as CPython."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

from mug.browser.check import STATIC
from mug.server.pybundle import mug_bundle
from tests.conftest import node_path, requires_node
from tests.netcode.pyodide_match import play

ROOT = Path(__file__).resolve().parents[2]


def _netcode_bundle(path: Path) -> None:
    """The study's engine bundle (which ships ``mug/netcode``) plus ``PyCoinGrid`` and the match module, as one zip."""
    with zipfile.ZipFile(io.BytesIO(mug_bundle().data)) as engine:
        files = {name: engine.read(name) for name in engine.namelist()}
    assert "mug/netcode/peer.py" in files
    files["mug/examples/browser_grid.py"] = (ROOT / "mug" / "examples" / "browser_grid.py").read_bytes()
    files["pyodide_match.py"] = (ROOT / "tests" / "netcode" / "pyodide_match.py").read_bytes()
    with zipfile.ZipFile(path, "w") as out:
        for name, data in files.items():
            out.writestr(name, data)


@requires_node
def test_a_match_confirms_the_same_frames_in_pyodide_as_in_cpython(tmp_path):
    args = {"seed": 8, "seconds": 4.0}
    bundle = tmp_path / "netcode.zip"
    _netcode_bundle(bundle)
    job = json.dumps({"bundles": [str(bundle)], "call": "pyodide_match:play", "args": args})
    done = subprocess.run(
        [node_path(), str(STATIC / "pyodide-run.mjs")], input=job, capture_output=True, text=True, timeout=300, check=False
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in out, out.get("traceback", out)
    there, here = out["result"], play(args)
    assert there["heavy_modules"] == []
    assert there["chains"] == here["chains"] and there["rollbacks"] == here["rollbacks"]
    assert there["chains"]["p0"][:100] == there["chains"]["p1"][:100]
