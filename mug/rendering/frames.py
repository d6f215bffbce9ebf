"""``rgb_array`` frames as bytes for the browser: PNG (default), zlib-deflated raw pixels, or raw pixels."""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["encode_rgb", "ENCODINGS", "png_bytes"]

ENCODINGS = ("png", "zlib", "raw")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(frame: np.ndarray, level: int = 6) -> bytes:
    """An 8-bit RGB or RGBA PNG of ``frame`` (H x W x 3|4, uint8), every row "Up"-filtered."""
    import numpy as np

    height, width, channels = frame.shape
    color_type = {3: 2, 4: 6}[channels]
    rows = frame.reshape(height, width * channels)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as the PNG Up filter wants
    filtered = np.empty((height, width * channels + 1), dtype=np.uint8)
    filtered[:, 0] = 2
    filtered[0, 0] = 0  # the first row has nothing above it: no filter
    filtered[0, 1:] = rows[0]
    filtered[1:, 1:] = up[1:]
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def encode_rgb(frame: Any, encoding: str = "png") -> tuple[dict[str, Any], bytes]:
    """``(metadata, bytes)`` for an ``env.render()`` image; ``ValueError`` if it is not an RGB(A) uint8 image."""
    import numpy as np  # here, not at import: the engine runs without NumPy in Pyodide (surface frames)

    if frame is None:
        raise ValueError(
            "env.render() returned None; for rgb_array rendering the env must be created with render_mode='rgb_array' "
            "(add it to env_config, or accept a render_mode argument in env_creator)"
        )
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise ValueError(
            f"env.render() returned {array.dtype} {list(array.shape)}; rgb_array rendering needs a uint8 H x W x 3 image"
        )
    array = np.ascontiguousarray(array)
    height, width, channels = array.shape
    meta = {"kind": "rgb", "encoding": encoding, "width": width, "height": height, "channels": channels}
    if encoding == "png":
        return meta, png_bytes(array)
    if encoding == "zlib":
        return meta, zlib.compress(array.tobytes(), 6)
    if encoding == "raw":
        return meta, array.tobytes()
    raise ValueError(f"encoding: expected one of {list(ENCODINGS)}, got {encoding!r}")
