"""``mug export DATA_DIR --format csv|parquet``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mug.errors import MugError

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register ``export``."""
    p = sub.add_parser(
        "export",
        help="write a deployment's data as CSV or Parquet",
        description="Write the steps, responses, participants and events tables (streamed: bounded memory, safe while the server runs).",
    )
    p.add_argument("data_dir", help="the deployment's data directory (holds mug.sqlite)")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")
    p.add_argument("--out", default=None, help="output directory (default: DATA_DIR/export)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``mug export``."""
    from mug.server.export import export

    try:
        for path in export(args.data_dir, args.format, args.out):
            print(path)
    except MugError as exc:
        print(f"mug export: {exc}", file=sys.stderr)
        return 2
    return 0
