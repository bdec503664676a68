"""Online backups of the SQLite store, and restoring one.

A backup is SQLite's backup API (``sqlite3.Connection.backup``) in one step: a single read
transaction copies every page, so the copy is one consistent snapshot, and in WAL mode the
bot's writers go on meanwhile. The copy is switched to ``journal_mode=DELETE`` (one
self-contained file), checked with ``PRAGMA integrity_check``, fsynced, then renamed into
place — a half-written backup never carries the final name.

Restore checks the file (integrity, a Kepler schema not newer than this code), keeps the
current database aside (itself a backup-API copy), then copies the file *into* the database
through the backup API, so even a database that is open elsewhere changes in one transaction
and its WAL stays consistent. A database the bot has open is refused unless ``force``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.store.migrations import MIGRATIONS

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.ops.metrics import Metrics

log = logging.getLogger(__name__)

NAME = re.compile(r"^kepler-\d{8}T\d{6}(?:\d{3})?Z(?:-[a-z]+)?\.db$")


class BackupError(RuntimeError):
    pass


class RestoreRefused(BackupError):
    """The target is live (or the file is not a backup we can use); nothing was changed."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    seconds: float
    schema_version: int


@dataclass(frozen=True)
class RestoreResult:
    db: Path
    aside: Path | None
    was_live: bool
    schema_version: int
    seconds: float


def stamp(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z"


def backup_name(at: float | None = None, tag: str = "") -> str:
    return f"kepler-{stamp(at)}{'-' + tag if tag else ''}.db"


def integrity(path: str | Path) -> list[str]:
    """``PRAGMA integrity_check`` of a file, opened read-only: ``["ok"]`` when sound."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=30)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_live(db: str | Path) -> bool:
    """Does another connection (the running bot) have ``db`` open?

    In WAL mode every open connection holds a shared lock on the file; an exclusive-mode
    ``BEGIN EXCLUSIVE`` with no wait fails while any does.
    """
    if not Path(db).exists():
        return False
    conn = sqlite3.connect(str(db), timeout=0, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    finally:
        conn.close()


def backup(db: str | Path, dest: str | Path) -> BackupResult:
    """Copy the live database ``db`` to ``dest`` (a file path) consistently."""
    db, dest = Path(db), Path(dest)
    if not db.exists():
        raise BackupError(f"no database at {db}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    began = time.perf_counter()
    src = sqlite3.connect(str(db), timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        out = sqlite3.connect(str(partial))
        try:
            src.backup(out)  # pages=-1: all pages in one read transaction → one snapshot
            out.execute("PRAGMA journal_mode=DELETE")
            version = _user_version(out)
        finally:
            out.close()
    finally:
        src.close()
    problems = integrity(partial)
    if problems != ["ok"]:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup failed its integrity check: {'; '.join(problems[:3])}")
    _fsync(partial)
    os.replace(partial, dest)
    with contextlib.suppress(OSError):
        _fsync(dest.parent)
    return BackupResult(dest, dest.stat().st_size, time.perf_counter() - began, version)


def check_restorable(path: str | Path) -> int:
    """The file's schema version, or :class:`RestoreRefused` saying why it can't be used."""
    path = Path(path)
    if not path.is_file():
        raise RestoreRefused(f"no backup file at {path}")
    problems = integrity(path)
    if problems != ["ok"]:
        raise RestoreRefused(f"{path} fails its integrity check: {'; '.join(problems[:3])}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = _user_version(conn)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    if version < 1 or not {"learners", "missions", "outbox"} <= tables:
        raise RestoreRefused(f"{path} is not a Kepler Station database")
    if version > len(MIGRATIONS):
        raise RestoreRefused(
            f"{path} has schema version {version}; this version of the bot knows "
            f"{len(MIGRATIONS)}. Restore it with the release that wrote it."
        )
    return version


def restore(src: str | Path, db: str | Path, *, force: bool = False) -> RestoreResult:
    """Replace the contents of ``db`` with the backup ``src``; the old file is kept aside as
    ``<db>.before-restore-<stamp>``. Refuses a live database unless ``force``."""
    src, db = Path(src), Path(db)
    began = time.perf_counter()
    version = check_restorable(src)
    if src.resolve() == db.resolve():
        raise RestoreRefused("the backup and the database are the same file")
    live = is_live(db)
    if live and not force:
        raise RestoreRefused(
            f"{db} is open by a running bot. Stop it first, or pass --force to restore into "
            "the live database (then restart the bot at once)."
        )
    aside = None
    if db.exists():
        aside = db.with_name(f"{db.name}.before-restore-{stamp()}")
        backup(db, aside)
    db.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(str(db), timeout=60)
    try:
        target.execute("PRAGMA busy_timeout=60000")
        source.backup(target)
        target.execute("PRAGMA journal_mode=WAL")
        problems = [row[0] for row in target.execute("PRAGMA integrity_check")]
    finally:
        target.close()
        source.close()
    if problems != ["ok"]:
        raise BackupError(f"restored database fails its integrity check: {problems[:3]}")
    return RestoreResult(db, aside, live, version, time.perf_counter() - began)


def prune(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups (by name, which sorts by time)."""
    files = sorted(p for p in Path(directory).iterdir() if NAME.match(p.name))
    doomed = files[: max(0, len(files) - keep)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def default_dir(db: str | Path, configured: str = "") -> Path:
    """``KEPLER_BACKUP_DIR``, else ``backups/`` next to the database."""
    return Path(configured) if configured else Path(db).resolve().parent / "backups"


class BackupScheduler:
    """Every ``every`` seconds: a backup into ``directory``, then prune to ``keep`` files.

    ``start()`` returns the asyncio task; cancel it (or ``stop()``) at shutdown. The copy runs
    in a thread, so the event loop (and Discord's heartbeat) never waits on it. ``sleep`` and
    ``clock`` (the wait between backups, the time a file is named after) are injectable so a
    test drives the schedule tick by tick instead of waiting on the wall clock.
    """

    def __init__(
        self,
        db: str | Path,
        directory: str | Path,
        *,
        every: float = 3600.0,
        keep: int = 48,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = Path(db)
        self.directory = Path(directory)
        self.every = every
        self.keep = keep
        self.metrics = metrics
        self._sleep = sleep
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def backup_now(self, tag: str = "") -> BackupResult:
        result = backup(self.db, self.directory / backup_name(self._clock(), tag=tag))
        prune(self.directory, self.keep)
        return result

    async def run_once(self, tag: str = "") -> BackupResult | None:
        try:
            result = await asyncio.to_thread(self.backup_now, tag)
        except Exception as exc:
            log.error("backup failed: %s", exc)
            if self.metrics is not None:
                self.metrics.backup_failed()
            return None
        log.info(
            "backup written",
            extra={"path": str(result.path), "bytes": result.size,
                   "seconds": round(result.seconds, 3)},
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.backup_done(result.seconds, result.size)
        return result

    async def run(self) -> None:
        while True:
            await self._sleep(self.every)
            await self.run_once()

    def start(self) -> asyncio.Task[None]:
        if self.every <= 0:
            raise ValueError("backups are off (every <= 0)")
        self._task = asyncio.get_running_loop().create_task(self.run(), name="kepler-backups")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def from_settings(settings: Settings, metrics: Metrics | None = None) -> BackupScheduler | None:
    """The scheduler the backup settings ask for; None when backups are off (every = 0)."""
    every = settings.backup_every
    if every <= 0:
        return None
    return BackupScheduler(
        settings.db,
        default_dir(settings.db, settings.backup_dir),
        every=every * 60,
        keep=settings.backup_keep,
        metrics=metrics,
    )
