"""Running real MUG servers for tests: ``mug deploy``/``mug demo`` in a subprocess on a loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """A ``python -m mug ...`` server; ``url`` and ``admin_token`` are read from what it prints."""

    def __init__(self, args: list[str], data_dir: Path, port: int = 0) -> None:
        """``port``: 0 for any free one; a fixed port lets a restarted server take the place of a killed one."""
        self.args, self.data_dir, self.port = args, data_dir, port
        self.proc: subprocess.Popen | None = None
        self.url = self.admin_token = ""

    def start(self, timeout: float = 30) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mug", *self.args, "--port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.match(r"MUG study: (\S+)", line):
                self.url = m.group(1)
            if m := re.match(r"admin: \S+\?token=(\S+)", line):
                self.admin_token = m.group(1)
                self.output, self._after_start = lines, len(lines)
                threading.Thread(target=self._drain, daemon=True).start()  # a full pipe would block the server
                return self
        raise RuntimeError("server did not start:\n" + "".join(lines))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Stop with ``sig`` (SIGKILL for a crash); returns everything it printed after the admin line."""
        if self.proc is None:
            return ""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.1)
        self.proc = None
        return "".join(self.output[self._after_start :])
