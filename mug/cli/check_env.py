"""``mug check-env FILE.py[:NAME]``: a scene's env in Pyodide (under Node) and in CPython, side by side."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mug.errors import ConfigError, MugError

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register ``check-env``."""
    p = sub.add_parser(
        "check-env",
        help="run a scene's env in Pyodide and in CPython side by side",
        description="For each environment scene of FILE.py (NAME: a mug.Stager or GymScene in it; default: the "
        "file's Stager), run N seeded steps in CPython and in Pyodide under Node, report the first step where they "
        "differ, the time per step in both, and whether env snapshots round-trip. Needs Node.js.",
    )
    p.add_argument("target", metavar="FILE.py[:NAME]")
    p.add_argument("--steps", type=int, default=200, help="steps to run in each (default: 200)")
    p.add_argument("--seed", type=int, default=None, help="action seed (default: the scene's seed)")
    p.add_argument("--json", action="store_true", help="print one JSON object per scene")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Entry point: 0 if every scene's env runs the same in both with working snapshots, 1 if not (a scene that
    cannot run in the browser as it is, e.g. one built on a Gymnasium id, is reported and counts as not), 2 on
    errors."""
    from mug.browser.check import check_env
    from mug.cli.serve import load_study
    from mug.scenes.gym_scene import GymScene
    from mug.scenes.stager import Stager

    try:
        study = load_study(args.target)
        scenes = list(study.scenes.values()) if isinstance(study, Stager) else [study]
        games = [s for s in scenes if isinstance(s, GymScene)]
        if not games:
            raise MugError(f"{args.target} holds no environment scene")
        ok = True
        for scene in games:
            try:
                report = check_env(scene, steps=args.steps, seed=args.seed)
            except ConfigError as exc:  # this scene cannot go to the browser as it is; the others are still checked
                ok = False
                if args.json:
                    print(json.dumps({"scene_id": scene.scene_id, "ok": False, "error": str(exc)}))
                else:
                    print(f"scene {scene.scene_id!r}:\n  cannot run in the browser: {exc}")
                continue
            ok = ok and report.ok
            if args.json:
                print(json.dumps({"scene_id": scene.scene_id, "ok": report.ok, **report.__dict__}, default=str))
            else:
                print(f"scene {scene.scene_id!r}:")
                print("\n".join(f"  {line}" for line in report.lines()))
    except (MugError, ConfigError) as exc:
        print(f"mug check-env: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1
