"""A real JupyterLab (or Notebook 7) for widget tests: isolated config, fixed token, loopback only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "mug-test-token"


class JupyterServer:
    """``jupyter lab`` (or ``notebook``) in a subprocess; ``mug_extension`` toggles mug's server extension."""

    def __init__(self, workdir: Path, *, app: str = "lab", mug_extension: bool = True) -> None:
        self.workdir, self.app, self.mug_extension = workdir, app, mug_extension
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.output: list[str] = []

    def start(self, timeout: float = 60) -> JupyterServer:
        home = self.workdir / ".jupyter-home"
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "IPYTHONDIR": str(home / "ipython"),
            "PYTHONPATH": str(ROOT),
            # `jupyter lab` runs `jupyter-lab` found on PATH: this environment's, not another Python's
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {"mug": self.mug_extension}}})
        )
        settings = home / "settings" / "@jupyterlab" / "docmanager-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
        args = [
            sys.executable, "-m", "jupyter", self.app,
            "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.open_browser=False", "--ServerApp.allow_root=True", f"--ServerApp.root_dir={self.workdir}",
        ]  # fmt: skip
        if self.app == "lab":
            args += [
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
                "--LabApp.expose_app_in_browser=True",
            ]
        else:
            args += ["--JupyterNotebookApp.expose_app_in_browser=True"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if m := re.search(r"(http://127\.0\.0\.1:\d+/)\S*\?token=", line):
                self.url = m.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise RuntimeError("Jupyter did not start:\n" + "".join(self.output[-40:]))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def write_notebook(path: Path, cells: list[str]) -> None:
    """A notebook of code cells."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)


def open_notebook(page, server: JupyterServer, name: str) -> None:
    """Open ``name`` and wait for an idle kernel."""
    path = "lab/tree" if server.app == "lab" else "notebooks"
    page.goto(f"{server.url}{path}/{name}?token={TOKEN}&reset")  # reset: no tabs restored from earlier tests
    page.wait_for_function(
        """() => {
            const app = window.jupyterapp;
            const w = app && app.shell.currentWidget;
            const ctx = w && w.sessionContext;
            return ctx && ctx.session && ctx.session.kernel && ctx.session.kernel.status === 'idle';
        }""",
        timeout=90_000,
    )


def run_cells(page, indices: list[int]) -> None:
    """Run the given cells in order (without awaiting the command: output is waited for instead)."""
    for i in indices:
        page.evaluate(
            """(i) => {
                const app = window.jupyterapp;
                const panel = app.shell.currentWidget;
                panel.content.activeCellIndex = i;
                app.commands.execute('notebook:run-cell');
            }""",
            i,
        )


def run_all(page) -> None:
    """Clear every output and run all cells (JupyterLab's Run All), without awaiting the command."""
    page.evaluate(
        "() => { const app = window.jupyterapp; app.commands.execute('editmenu:clear-all');"
        " app.commands.execute('notebook:run-all-cells'); }"
    )


def cell_output(page, index: int) -> str:
    """The text of a cell's output area."""
    return page.evaluate(
        """(i) => {
            const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
            const area = cell.node.querySelector('.jp-OutputArea');
            return area ? area.innerText : '';
        }""",
        index,
    )
