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

COMMANDS = ("play", "lint", "verify", "serve", "sandbox", "backup", "restore", "settings")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """All commands for ``--help``; just ``only`` when one was named (imports are slow)."""
    parser = argparse.ArgumentParser(
        prog="kepler", description="Kepler Station: learn Kubernetes aboard a station in crisis."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(f"bot.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bot.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(named if named in COMMANDS else None).parse_args(argv)
    from bot.config import SettingsError
    from bot.store.errors import StoreError

    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:  # a bad variable: one line naming it, no traceback
        print(f"kepler: bad setting: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # corrupt or busy database: which file, and what to do
        print(f"kepler: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
