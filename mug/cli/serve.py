"""``mug deploy FILE.py[:NAME]`` and ``mug demo``: serve a study from the command line."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from mug.errors import MugError
from mug.scenes.base import Scene
from mug.scenes.stager import Stager
from mug.server.verify import MAX_BACKLOG_STEPS

__all__ = ["add_parsers", "load_study"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--data-dir", default="mug-data", help="where the data file goes (default: ./mug-data)")
    p.add_argument("--admin-token", default=None, help="admin token (default: random, printed at start)")
    p.add_argument("--max-message-bytes", type=int, default=256 * 1024, help="largest message a page may send (default: 262144)")
    p.add_argument("--messages-per-second", type=float, default=120.0, help="each tab's sustained message rate (default: 120)")
    p.add_argument(
        "--max-new-participants",
        type=int,
        default=10_000,
        help="new participants this server starts (default: 10000; 0: no limit)",
    )
    p.add_argument(
        "--participants-per-address",
        type=int,
        default=100,
        help="new participants one network address may start an hour (default: 100; 0: no limit)",
    )
    p.add_argument(
        "--trust-proxy",
        action="store_true",
        help="behind a reverse proxy: take the client's address and scheme from X-Forwarded-For / X-Forwarded-Proto",
    )
    p.add_argument(
        "--frame-ancestors",
        action="append",
        metavar="ORIGIN",
        help="an origin (https://host) that may show the study in an iframe; repeat for more (default: none may)",
    )
    p.add_argument(
        "--verify-backlog-steps",
        type=int,
        default=MAX_BACKLOG_STEPS,
        help=f"recorded browser-side steps that may wait for verification before episodes are stored unverified "
        f"(default: {MAX_BACKLOG_STEPS}; 0: none verified while serving; `mug verify` verifies them later)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="server log on stderr, with timestamps (default: info: requests without query strings, warnings, errors)",
    )


def add_parsers(sub: Any) -> None:
    """Register ``deploy`` and ``demo``."""
    p = sub.add_parser(
        "deploy",
        help="serve a study defined in a Python file",
        description="Serve the Stager (or scene) NAME defined in FILE.py.",
    )
    p.add_argument(
        "target", metavar="FILE.py[:NAME]", help="the file, and the variable holding the study (default: the only Stager in it)"
    )
    _common(p)
    p.set_defaults(run=run_deploy)
    d = sub.add_parser(
        "demo",
        help="serve the built-in demo study",
        description="Start page, a gridworld with a trained AI partner, a survey, an end page.",
    )
    _common(d)
    d.set_defaults(run=run_demo)


def _run_study_file(path: Path, module: Any) -> None:
    """Execute the study file; ``MugError`` in one line for anything it raises (where in the file, and what)."""
    sys.path.insert(0, str(path.resolve().parent))
    try:
        module.__spec__.loader.exec_module(module)
    except SyntaxError as exc:
        raise MugError(f"{path} line {exc.lineno}: {exc.msg}; fix the file and run again") from None
    except Exception as exc:
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
        where = f"{path} line {lines[-1]}" if lines else str(path)
        what = str(exc) if isinstance(exc, MugError) else f"{type(exc).__name__}: {exc}"
        raise MugError(f"{where}: {what}; fix the file and run again") from None
    finally:
        sys.path.pop(0)


def load_study(target: str) -> Stager | Scene:
    """The study named by ``FILE.py[:NAME]``; ``MugError`` says what is wrong and what to do."""
    file, _, name = target.partition(":")
    path = Path(file)
    if not path.is_file():
        raise MugError(f"no file {file!r}; give the Python file that defines the study, as FILE.py or FILE.py:NAME")
    spec = importlib.util.spec_from_file_location(f"mug_study_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    _run_study_file(path, module)
    if name:
        if not hasattr(module, name):
            raise MugError(f"{file} defines no {name!r}; name the variable that holds the study, as {file}:NAME")
        study = getattr(module, name)
    else:
        found = [v for v in vars(module).values() if isinstance(v, Stager)]
        if len(found) != 1:
            raise MugError(f"{file} defines {len(found)} Stager objects; name the one to serve as {file}:NAME")
        study = found[0]
    if not isinstance(study, (Stager, Scene)):
        raise MugError(f"{target} is a {type(study).__name__}; name a mug.Stager or scene, as {file}:NAME")
    return study


def _serve(study: Stager | Scene, args: argparse.Namespace) -> int:
    from mug.server.deploy import deploy

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))  # per-connection chatter
    try:
        deploy(
            study,
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            admin_token=args.admin_token,
            max_message_bytes=args.max_message_bytes,
            messages_per_second=args.messages_per_second,
            max_new_participants=args.max_new_participants,
            participants_per_address=args.participants_per_address,
            trust_proxy=args.trust_proxy,
            frame_ancestors=args.frame_ancestors,
            verify_backlog_steps=args.verify_backlog_steps,
        )
    except MugError as exc:
        message = str(exc).removeprefix("deploy: ")
        print(f"mug {args.command}: {message}", file=sys.stderr)
        return 2
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    """Entry point of ``mug deploy``."""
    try:
        study = load_study(args.target)
    except MugError as exc:
        print(f"mug deploy: {exc}", file=sys.stderr)
        return 2
    return _serve(study, args)


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``mug demo``."""
    from mug.examples.demo import demo_study

    return _serve(demo_study(), args)
