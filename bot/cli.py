"""``kepler``: one console script; each subcommand lives in ``bot/commands/<name>.py``.

A command module exposes ``register(subparsers)``, which adds its parser and sets ``func``
(returning the exit code). Only modules that exist are offered, so a command appears only
once it works.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("play", "lint", "verify", "serve", "sandbox", "backup", "restore")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kepler", description="Kepler Station: learn Kubernetes aboard a station in crisis."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    registered: set[str] = set()
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"bot.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bot.commands.{name}":
                continue
            raise
        if id(module) in registered:
            continue
        registered.add(id(module))
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
