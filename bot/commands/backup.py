"""``kepler backup [--to PATH]``: an online, consistent copy of the database (the bot may run).

Without ``--to`` the copy goes to the backup folder (``KEPLER_BACKUP_DIR``, else ``backups/``
next to ``KEPLER_DB``) under a timestamped name; ``--to`` a folder does the same there.
Manual backups are not pruned. Exit codes: 0 written, 1 failed (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bot.config import Settings
from bot.ops.backup import BackupError, backup, backup_name, default_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="copy the database consistently, even while the bot runs",
                       description=__doc__.splitlines()[0] if __doc__ else None)  # fmt: skip
    p.add_argument("--to", default=None, metavar="PATH",
                   help="file, or folder (an existing one, or any PATH ending in /)")  # fmt: skip
    p.add_argument("--db", default=None, help="database (default: KEPLER_DB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    db = Path(args.db or settings.db)
    # The raw string: Path("newdir/") drops the slash that says "a folder".
    to: str | None = args.to
    dest = Path(to) if to else default_dir(db, settings.backup_dir)
    if to is None or dest.is_dir() or to.endswith(("/", "\\", os.sep)):
        dest = dest / backup_name(tag="manual")
    try:
        result = backup(db, dest)
    except (BackupError, OSError) as exc:
        print(f"kepler backup: {exc}", file=sys.stderr)
        return 1
    print(f"{result.path}  {result.size} bytes  schema v{result.schema_version}  "
          f"{result.seconds:.3f} s")  # fmt: skip
    return 0
