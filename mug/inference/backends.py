"""Executors for ONNX graphs in Python: ONNX Runtime when installed, else ``onnx.reference``."""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Protocol

import numpy as np
import onnx

__all__ = ["Backend", "open_backend", "BACKENDS"]

BACKENDS = ("auto", "onnxruntime", "reference")


class Backend(Protocol):
    """Runs one loaded graph."""

    name: str

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray], options: object = None, /) -> list[np.ndarray]:
        """Evaluate the graph; return the named outputs in order (``options``: ORT ``RunOptions`` or ``None``)."""
        ...


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU with one thread (as in the browser, and cheap per session)."""

    name = "onnxruntime"

    def __init__(self, path: str) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # errors reach the caller as PolicyError, not stderr
        self._session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        # The public ``InferenceSession.run`` re-checks the feed names in Python on every call
        # (about 1.5 us, 5% of a small LSTM step). PolicyRuntime validated them once against the
        # graph, so ``run`` is the compiled session's own method where this ORT version has one.
        compiled = getattr(self._session, "_sess", None)
        if compiled is not None and callable(getattr(compiled, "run", None)):
            self.run = compiled.run  # type: ignore[method-assign]

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray], options: object = None, /) -> list[np.ndarray]:
        return self._session.run(output_names, feeds, options)


class ReferenceBackend:
    """``onnx.reference.ReferenceEvaluator``: pure Python, slower, always available."""

    name = "reference"

    def __init__(self, path: str) -> None:
        from onnx.reference import ReferenceEvaluator

        self._evaluator = ReferenceEvaluator(onnx.load(path))

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray], options: object = None, /) -> list[np.ndarray]:
        return [np.asarray(v) for v in self._evaluator.run(output_names, feeds)]


def open_backend(path: str, backend: str = "auto") -> Backend:
    """Load ``path`` with ``backend`` (``"auto"`` picks ONNX Runtime when it is installed).

    Runtimes of the same unchanged file share one loaded graph: a backend holds no per-agent
    state (``PolicyRuntime`` keeps that), so a server with hundreds of sessions running one
    model loads it once (memory, and a cache that holds it). A changed file is loaded anew.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "reference"
    info = os.stat(path)
    return _loaded(os.path.abspath(path), info.st_size, info.st_mtime_ns, backend)


@functools.lru_cache(maxsize=32)
def _loaded(path: str, size: int, mtime_ns: int, backend: str) -> Backend:
    return OnnxRuntimeBackend(path) if backend == "onnxruntime" else ReferenceBackend(path)
