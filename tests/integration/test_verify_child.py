"""The verifying child process of a server that is killed (SIGKILL: no shutdown runs) ends by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

#: A parent that starts a pool with the verifier's child initialiser, prints the child's pid and waits.
PARENT = """
import concurrent.futures, multiprocessing, os, sys, time
from mug.server.verify import _child_init
pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_child_init, initargs=([], []))
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for init to reap it has ended too
        return stat.read().split(") ")[1][0] != "Z"


def test_a_verifying_child_ends_when_its_server_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the verifying child outlived its killed server"
    finally:
        parent.kill()
