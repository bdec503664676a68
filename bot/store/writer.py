"""The store's writing connection: statements on the event loop, commits on a thread.

A unit of work (``SQLiteStore.unit``) is ``BEGIN IMMEDIATE``, a handful of statements, and
``COMMIT``. Only the ends can wait on anything: ``BEGIN IMMEDIATE`` on another process's write
lock (up to the busy timeout) and ``COMMIT`` on the disk (``synchronous=FULL`` syncs the WAL).
So those two run on the connection's own thread, and the statements between them run on the
event loop directly: they touch pages already in memory and take microseconds, where a
hand-off to a database thread and the loop's wake-up after it cost far more (at a thousand
learners, aiosqlite's per-statement hand-offs were a quarter of the bot's CPU).

The caller guarantees that one task at a time uses the connection (the store's lock), so the
loop and the thread never use it at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Writer:
    """One ``sqlite3`` connection in autocommit mode (``isolation_level=None``) with a thread
    of its own for the statements that may wait."""

    def __init__(self, path: str):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="kepler-store")

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
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

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the connection's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- on the event loop: statements inside a transaction (no disk sync, no lock wait) --

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, tuple(params))

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, tuple(params)).fetchall()

    # -- on the thread: what may wait on another process or on the disk --

    async def execute_waiting(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """A statement that may wait: ``BEGIN IMMEDIATE``, ``COMMIT``, a write on its own."""
        return await self.call(self.db.execute, sql, tuple(params))

    async def script(self, sql: str) -> None:
        await self.call(self.db.executescript, sql)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await self.call(db.close)
        self._thread.shutdown(wait=False)
