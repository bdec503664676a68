"""One ``kepler play`` per database: a second one on the same file refuses, with a reason.

Two terminals on one state file would split the story between them (each prints what the
other queued, each answers the commander). An advisory ``flock`` on ``<db>.lock`` is held for
the whole session; the kernel drops it when the process ends, even on a crash or ``kill -9``,
so a stale lock never blocks the next run. The file keeps the holder's pid for the message.
(No ``fcntl`` on Windows: there the check is skipped.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.store.errors import StoreBusy

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextmanager
def exclusive(db: str | Path) -> Iterator[None]:
    """Hold ``<db>.lock`` for the block; :class:`StoreBusy` if another process holds it."""
    if str(db) == ":memory:" or fcntl is None:
        yield
        return
    path = Path(f"{db}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StoreBusy(
                f"{db} is already in use by another `kepler play` (pid {holder}). Finish that "
                "session (type quit there), or use another file with --db PATH."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
