"""The store's writing connection: statements on the event loop, commits on a thread.

A unit of work (``SQLiteStore.unit``) is ``BEGIN IMMEDIATE``, a handful of statements, and
``COMMIT``. Only the ends can wait on anything: ``BEGIN IMMEDIATE`` on another process's write
lock, ``COMMIT`` on the disk (``synchronous=FULL`` syncs the WAL). The statements between them
touch pages already in memory and take microseconds, where a hand-off to a database thread
and the loop's wake-up after it cost far more (at a thousand learners, aiosqlite's
per-statement hand-offs were a quarter of the bot's CPU). So:

* statements inside a transaction run on the event loop;
* ``BEGIN IMMEDIATE`` runs on the loop too, with no busy wait, when nothing is queued on the
  thread; if another process holds the write lock, or a commit is still on its way to the
  disk, it goes to the thread (first in, first out: after that commit) and may wait there;
* ``COMMIT``, ``ROLLBACK`` and a write on its own go to the thread, which may wait up to
  :data:`BUSY_TIMEOUT_MS` for the lock.

The caller guarantees that one task at a time uses the connection (the store's lock), and the
loop touches the connection only when the thread has nothing queued (:meth:`Writer.begin`),
so the two never use it at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000  # how long the thread waits for another process's write lock


class Writer:
    """One ``sqlite3`` connection in autocommit mode (``isolation_level=None``) with a thread
    of its own for the statements that may wait."""

    def __init__(self, path: str):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="kepler-store")
        self._queued = 0  # jobs handed to the thread and not yet seen finished by the loop

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            # no busy wait by default: a statement on the loop must never block it
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 timeout=0)  # fmt: skip
            db.row_factory = sqlite3.Row
            return db

        self._db = await self.call(connect)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @property
    def total_changes(self) -> int:
        """Rows changed since the connection opened (the load bench's write rate)."""
        return self.db.total_changes

    # -- the thread --

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` on the connection's thread; its future (not awaited here)."""
        fut = asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        self._queued += 1
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _fut: asyncio.Future[Any]) -> None:
        self._queued -= 1

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the connection's thread."""
        return await self.submit(fn, *args)

    def _waiting(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        """On the thread: a statement allowed to wait for another process's write lock."""
        db = self.db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            return db.execute(sql, params)
        finally:
            db.execute("PRAGMA busy_timeout = 0")

    def submit_waiting(self, sql: str, params: Iterable[Any] = ()) -> asyncio.Future[Any]:
        """Queue a statement that may wait (``COMMIT``, ``ROLLBACK``, a write on its own);
        its cursor comes with the future."""
        return self.submit(self._waiting, sql, tuple(params))

    async def execute_waiting(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return await self.submit_waiting(sql, params)

    async def script(self, sql: str) -> None:
        def run() -> None:
            db = self.db
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                db.executescript(sql)
            finally:
                db.execute("PRAGMA busy_timeout = 0")

        await self.call(run)

    # -- the event loop --

    async def begin(self) -> None:
        """``BEGIN IMMEDIATE``: on the loop when the thread is idle and the write lock free,
        else on the thread (after whatever is queued there, waiting for the lock)."""
        if self._queued == 0:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
        await self.execute_waiting("BEGIN IMMEDIATE")

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """A statement inside the open transaction (only between :meth:`begin` and commit)."""
        return self.db.execute(sql, tuple(params))

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, tuple(params)).fetchall()

    async def close(self) -> None:
        if self._db is not None:
            db = self._db
            await self.call(db.close)
            self._db = None
        self._thread.shutdown(wait=False)
