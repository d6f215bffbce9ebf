"""The ``mug`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from mug.cli import check_env, check_policy, export, serve, verify

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line (what is wrong, where the help is), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mug`` and its sub-commands."""
    parser = _Parser(prog="mug", description="Multi-User Gymnasium: browser experiments with AI agents.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check_policy.add_parser(sub)
    check_env.add_parser(sub)
    serve.add_parsers(sub)
    export.add_parser(sub)
    verify.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``mug`` with ``argv`` (default: the process arguments); return the exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
