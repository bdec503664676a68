"""``kepler restore PATH [--force]``: put a backup back in place of the database.

Checks the backup (``PRAGMA integrity_check``, a Kepler schema this release knows), keeps the
current database aside as ``<db>.before-restore-<time>``, then copies the backup in. A
database the running bot has open is refused unless ``--force`` (then restart the bot at
once). Exit codes: 0 restored, 1 failed, 2 refused (nothing changed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.config import Settings
from bot.ops.backup import BackupError, RestoreRefused, restore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help="replace the database by a backup",
                       description=__doc__.splitlines()[0] if __doc__ else None)  # fmt: skip
    p.add_argument("path", type=Path, help="backup file (from `kepler backup`)")
    p.add_argument("--force", action="store_true",
                   help="restore even though the bot has the database open")  # fmt: skip
    p.add_argument("--db", default=None, help="database (default: KEPLER_DB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db = Path(args.db or Settings.from_env().db)
    try:
        result = restore(args.path, db, force=args.force)
    except RestoreRefused as exc:
        print(f"kepler restore: refused: {exc}", file=sys.stderr)
        return 2
    except (BackupError, OSError) as exc:
        print(f"kepler restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {args.path} into {result.db} (schema v{result.schema_version}, "
          f"{result.seconds:.3f} s)")  # fmt: skip
    if result.aside:
        print(f"previous database kept at {result.aside}")
    if result.was_live:
        print("the bot had it open: restart it now (fly machine restart)")
    return 0
