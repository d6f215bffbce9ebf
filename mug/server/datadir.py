"""Checks that a deployment's data directory still holds what it held: refuse to start on a damaged one.

A data directory is marked at its first start with ``mug-data.json``. Later starts
refuse (:class:`~mug.errors.MugError` with what is wrong and what to do) when

* the directory is marked but ``mug.sqlite`` is missing, empty (0 bytes) or has no
  MUG tables: the data file was deleted, truncated or replaced;
* the write-ahead log ``mug.sqlite-wal`` is gone (or shorter than it was) while the
  shared-memory index ``mug.sqlite-shm`` says it held committed transactions not yet
  copied into ``mug.sqlite`` (the server stopped without closing the file, then the
  log was removed): starting would silently drop those participants and steps.

A clean stop copies the log back and removes both files, so their absence alone is normal.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import sys
import time
from pathlib import Path

from mug.errors import MugError

__all__ = ["MARKER", "check_data_dir", "mark_data_dir"]

#: The marker file a data directory gets at its first start.
MARKER = "mug-data.json"
_FIX = "restore it from a backup, or give the server a new data directory to start a new study"


def _frames_lost(shm: Path, wal: Path) -> int:
    """Committed WAL frames the wal-index in ``shm`` records but ``wal`` no longer holds (0 if none or unknown).

    The index starts with two copies of a 48-byte header (page size at byte 14, ``mxFrame``, the last
    committed frame, at byte 16), then the checkpoint info (``nBackfill``, frames already copied into
    the database, at byte 96), in the machine's byte order. A WAL file holds a 32-byte header and
    then frames of a 24-byte header plus one page.
    """
    try:
        head = shm.read_bytes()[:100]
    except OSError:
        return 0
    if len(head) < 100:
        return 0
    order = "<" if sys.byteorder == "little" else ">"
    (page,) = struct.unpack_from(order + "H", head, 14)
    (mx_frame,) = struct.unpack_from(order + "I", head, 16)
    (backfilled,) = struct.unpack_from(order + "I", head, 96)
    page = 65536 if page == 1 else page
    held = max(0, (wal.stat().st_size - 32) // (page + 24)) if wal.exists() and page else 0
    return max(0, mx_frame - backfilled) if held < mx_frame else 0


def check_data_dir(data_dir: Path, database: Path) -> None:
    """Raise ``MugError`` if ``data_dir`` held a study whose data is now missing (see module docstring)."""
    wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
    if shm.exists() and (lost := _frames_lost(shm, wal)):
        state = "is missing" if not wal.exists() else "is cut short"
        raise MugError(
            f"data directory {str(data_dir)!r}: {wal.name} {state}, but {shm.name} records {lost} committed "
            f"page(s) that were only in it (the server stopped without closing the data file and the log was "
            f"removed afterwards); starting would lose those steps and participants. Put {wal.name} back, or {_FIX}"
        )
    marker = data_dir / MARKER
    if not marker.exists():
        return
    if not database.exists():
        problem = f"{database.name} is missing"
    elif database.stat().st_size == 0:
        problem = f"{database.name} is empty (0 bytes)"
    else:
        try:
            db = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                db.close()
        except sqlite3.Error as exc:
            problem = f"{database.name} cannot be read ({exc})"
        else:
            if "participants" in tables:
                return
            problem = f"{database.name} holds no MUG tables"
    raise MugError(f"data directory {str(data_dir)!r} held a MUG study (see {MARKER}), but {problem}; {_FIX}")


def mark_data_dir(data_dir: Path, version: str) -> None:
    """Write the marker file if it is not there yet."""
    marker = data_dir / MARKER
    if not marker.exists():
        marker.write_text(
            json.dumps(
                {
                    "what": "data directory of a MUG study: mug.sqlite holds its data",
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "mug_version": version,
                },
                indent=1,
            )
            + "\n"
        )
