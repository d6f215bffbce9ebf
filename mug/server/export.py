"""Exporting a deployment's data: CSV or Parquet, one file per table (``mug export``, the admin downloads).

Everything streams: rows are read from SQLite in batches and written out in
chunks, so memory stays bounded whatever the size of the steps table.

CSV keeps the stored shape (JSON text for actions, rewards, answers, event
data, ...) and stays safe in a spreadsheet: a text cell starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a leading apostrophe, so it
is shown as text, never run as a formula (``mug.load`` and Parquet give the
exact values). Parquet has the typed columns of :mod:`mug.data`.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mug.data import StepSchema, events_frame, json_text, matches_frame, participants_frame, responses_frame, steps_frame
from mug.errors import MugError
from mug.server.store import Store
from mug.server.store_reading import STEP_COLUMNS

__all__ = ["TABLES", "iter_rows", "csv_chunks", "gzip_chunks", "export", "stream_command", "stream_main"]

TABLES = {
    "steps": list(STEP_COLUMNS),
    "responses": ["participant_id", "scene_id", "time", "answers"],
    "participants": [
        "participant_id", "created", "updated", "scene_id", "completed", "scene_index", "scenes", "steps", "completion_code",
    ],
    "events": ["participant_id", "session_id", "scene_id", "kind", "time", "data"],
    "matches": ["match_id", "scene_id", "seats", "formed", "started", "ended", "end_reason"],
}  # fmt: skip
#: Characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Size of the text chunks ``csv_chunks`` yields.
CHUNK_CHARS = 1 << 16
#: Rows per Parquet row group.
PARQUET_ROWS = 10_000


def iter_rows(store: Store, table: str) -> Iterator[dict[str, Any]]:
    """The rows of one exported table, read in batches."""
    if table == "steps":
        return store.iter_steps()
    if table == "responses":
        return store.iter_responses()
    if table == "events":
        return store.iter_events()
    if table == "participants":
        return iter(store.participants())
    if table == "matches":
        return iter(store.matches())
    raise MugError(f"export: no table {table!r}; tables: {sorted(TABLES)}")


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json_text(value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_chunks(store: Store, table: str) -> Iterator[str]:
    """One table as CSV text, in chunks of about ``CHUNK_CHARS`` characters (header first)."""
    columns = TABLES[table]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in iter_rows(store, table):
        writer.writerow([_cell(row.get(c)) for c in columns])
        if out.tell() >= CHUNK_CHARS:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def gzip_chunks(chunks: Iterator[str]) -> Iterator[bytes]:
    """``chunks`` as UTF-8, gzip-compressed (a ``Content-Encoding: gzip`` body)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        if data := packer.compress(chunk.encode()):
            yield data
    yield packer.flush()


def stream_command(data_dir: str | Path, table: str, gzip: bool) -> list[str]:
    """The command that writes one table as CSV (gzipped if ``gzip``) to its standard output.

    The admin downloads run it as a child process at lower priority: reading, encoding and
    compressing a big table then never competes with the games for the server's interpreter lock.
    """
    root = str(Path(__file__).resolve().parent.parent.parent)  # this mug, however the server imported it
    code = f"import sys; sys.path.insert(0, {root!r}); from mug.server.export import stream_main; sys.exit(stream_main(sys.argv[1:]))"
    return [sys.executable, "-c", code, str(data_dir), table, *(["--gzip"] if gzip else [])]


def stream_main(argv: list[str]) -> int:
    """Entry point of :func:`stream_command`'s child: ``DATA_DIR TABLE [--gzip]``."""
    parser = argparse.ArgumentParser(prog="mug-export-stream")
    parser.add_argument("data_dir")
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args(argv)
    os.nice(10)  # the server's games come first
    store = Store(args.data_dir, readonly=True)
    try:
        text = csv_chunks(store, args.table)
        out = sys.stdout.buffer
        for chunk in gzip_chunks(text) if args.gzip else (c.encode() for c in text):
            out.write(chunk)
            out.flush()
    except BrokenPipeError:  # the download was cancelled
        return 1
    finally:
        store.close()
    return 0


def _write_parquet(store: Store, table: str, path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MugError("Parquet export needs pyarrow and pandas: pip install 'mug[data]'") from exc
    if table != "steps":  # small tables: one frame
        frame = {
            "responses": responses_frame,
            "participants": participants_frame,
            "events": events_frame,
            "matches": matches_frame,
        }[table](list(iter_rows(store, table)))
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        return
    last = store.last_step_id()  # both passes read the same rows, though the server goes on recording
    schema = StepSchema.of(store.iter_steps(up_to=last))  # a first pass: agents and action kinds give the typed columns
    arrow = schema.arrow()
    with pq.ParquetWriter(path, arrow) as writer:
        batch: list[dict[str, Any]] = []
        for step in store.iter_steps(up_to=last):
            batch.append(step)
            if len(batch) >= PARQUET_ROWS:
                writer.write_table(pa.Table.from_pandas(steps_frame(batch, schema), schema=arrow, preserve_index=False))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pandas(steps_frame(batch, schema), schema=arrow, preserve_index=False))


def export(data_dir: str | Path, fmt: str = "csv", out_dir: str | Path | None = None) -> list[Path]:
    """Write ``steps``, ``responses``, ``participants``, ``events`` and ``matches`` of ``data_dir`` as CSV or Parquet files
    (streamed: bounded memory; safe while the server runs); return their paths."""
    data_dir = Path(data_dir)
    if not (data_dir / "mug.sqlite").is_file():
        raise MugError(f"{str(data_dir)!r} holds no MUG data (no mug.sqlite)")
    if fmt not in ("csv", "parquet"):
        raise MugError(f"format: expected 'csv' or 'parquet', got {fmt!r}")
    out = Path(out_dir) if out_dir is not None else data_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir, readonly=True)
    try:
        written = []
        for table in TABLES:
            path = out / f"{table}.{fmt}"
            if fmt == "csv":
                with path.open("w", encoding="utf-8", newline="") as f:
                    for chunk in csv_chunks(store, table):
                        f.write(chunk)
            else:
                _write_parquet(store, table, path)
            written.append(path)
        return written
    finally:
        store.close()
