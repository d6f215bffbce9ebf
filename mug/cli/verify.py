"""``mug verify DATA_DIR``: re-simulate every browser-recorded episode in CPython and flag steps that differ."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mug.errors import MugError

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register ``verify``."""
    p = sub.add_parser(
        "verify",
        help="re-simulate browser-recorded episodes in CPython and flag steps that differ",
        description="For every episode a browser-side scene recorded, reset the env with the episode's seed, step it "
        "with the recorded actions and compare observation hashes, rewards and terminations with the record. Results "
        "are stored (the data's 'verified' column) unless --dry-run. The study's env modules must be importable: run "
        "it in the study's directory, or pass --path.",
    )
    p.add_argument("data_dir", help="the deployment's data directory (holds mug.sqlite)")
    p.add_argument("--path", action="append", default=[], help="a directory to import env modules from (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="report only; store nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object per episode")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``mug verify``: exit code 0 if every episode verified, 1 if some step differs, 2 on errors
    (among them an env that could not start here: its episodes are reported, not stored as verified or not)."""
    from mug.server.verify import verify_data_dir

    sys.path[:0] = [str(Path(p).resolve()) for p in [*args.path, "."]]
    try:
        results = verify_data_dir(args.data_dir, record=not args.dry_run)
    except MugError as exc:
        print(f"mug verify: {exc}", file=sys.stderr)
        return 2
    failed = [r for r in results if r["error"]]
    for r in results:
        if args.json:
            print(json.dumps(r, sort_keys=True))
            continue
        if r["error"]:
            print(f"{r['participant_id']} {r['session_id']} episode {r['episode']}: NOT VERIFIED, {r['error']}")
            continue
        status = "verified" if r["verified"] else f"{r['mismatched']} step(s) DIFFER"
        first = f"; first at step {r['mismatches'][0]['step']}: {r['mismatches'][0]['what']}" if r["mismatches"] else ""
        print(f"{r['participant_id']} {r['session_id']} episode {r['episode']}: {r['checked']} steps, {status}{first}")
    if not args.json:
        print(f"{sum(r['verified'] for r in results)} of {len(results)} episode(s) verified")
    if failed:
        print(
            f"mug verify: {len(failed)} episode(s) could not be verified here ({failed[0]['error']}); nothing was "
            "stored for them. Run it in the study's directory, or pass --path DIR for the env's modules",
            file=sys.stderr,
        )
        return 2
    return 0 if all(r["verified"] for r in results) else 1
