"""Exporting a deployment's data: CSV or Parquet, one file per table (``mug export``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mug.errors import MugError
from mug.server.store import STEP_COLUMNS, Store

__all__ = ["TABLES", "tables", "to_csv", "export"]

TABLES = {
    "steps": list(STEP_COLUMNS),
    "responses": ["participant_id", "scene_id", "time", "answers"],
    "participants": ["participant_id", "created", "updated", "scene_id", "completed", "scene_index", "scenes", "steps"],
}


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, (dict, list)) else value


def tables(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every exported table as rows; JSON-valued columns (actions, rewards, answers, ...) as JSON text."""
    raw = {"steps": store.steps(), "responses": store.responses(), "participants": store.participants()}
    return {name: [{c: _cell(row.get(c)) for c in TABLES[name]} for row in rows] for name, rows in raw.items()}


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as CSV text."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def export(data_dir: str | Path, fmt: str = "csv", out_dir: str | Path | None = None) -> list[Path]:
    """Write ``steps``, ``responses`` and ``participants`` of ``data_dir`` as CSV or Parquet files; return their paths."""
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
        for name, rows in tables(store).items():
            path = out / f"{name}.{fmt}"
            if fmt == "csv":
                path.write_text(to_csv(rows, TABLES[name]))
            else:
                try:
                    import pyarrow as pa
                    import pyarrow.parquet as pq
                except ImportError as exc:
                    raise MugError("Parquet export needs pyarrow: pip install pyarrow") from exc
                pq.write_table(pa.Table.from_pylist(rows, schema=None) if rows else pa.table({c: [] for c in TABLES[name]}), path)
            written.append(path)
        return written
    finally:
        store.close()
