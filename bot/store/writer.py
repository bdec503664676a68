"""The store's writing connection: on the event loop, with a thread for what must wait.

A unit of work (``SQLiteStore.unit``) is ``BEGIN IMMEDIATE``, a handful of statements, and
``COMMIT``. The statements touch pages already in memory and take microseconds; ``COMMIT``
syncs the WAL to disk (``synchronous=FULL``: a fraction of a millisecond on local SSD, 0.25
ms measured here). A hand-off to a database thread and the loop's wake-up after it cost far
more than either (at a thousand learners, aiosqlite's per-statement hand-offs were a quarter
of the bot's CPU), and, worse, a unit that waits for its thread holds the store's one lock
through a whole turn of a busy loop: at 2,000 learners units queued behind each other
(unlock p95 4.8 s). So the whole unit runs on the loop, and never suspends while it holds the
lock, unless it has to wait:

* if another process holds the database's write lock (``BEGIN IMMEDIATE`` or a lone write
  answers "database is locked" at once: the loop never busy-waits), the statement goes to
  the connection's thread, which waits up to :data:`BUSY_TIMEOUT_MS` for it;
* while anything is queued on that thread, later statements queue behind it there (first in,
  first out), so the loop and the thread never use the connection at once.

The caller guarantees that one task at a time uses the connection (the store's lock).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000  # how long the thread waits for another process's write lock


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Another connection holds a lock this statement needs (it may go through later)."""
    return "locked" in str(exc) or "busy" in str(exc)


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

    @property
    def in_transaction(self) -> bool:
        """A transaction is open (False once closed)."""
        return self._db is not None and self._db.in_transaction

    @property
    def idle(self) -> bool:
        """Nothing queued on the thread: the loop may use the connection."""
        return self._queued == 0

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

    def _patiently(self, fn: Callable[[], T]) -> T:
        """On the thread: ``fn()`` allowed to wait for another process's write lock."""
        db = self.db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            return fn()
        finally:
            db.execute("PRAGMA busy_timeout = 0")

    def _waiting(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        return self._patiently(lambda: self.db.execute(sql, params))

    def submit_waiting(self, sql: str, params: Iterable[Any] = ()) -> asyncio.Future[Any]:
        """Queue a statement that may wait (``COMMIT``, ``ROLLBACK``, a write on its own);
        its cursor comes with the future."""
        return self.submit(self._waiting, sql, tuple(params))

    async def execute_waiting(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return await self.submit_waiting(sql, params)

    async def script(self, sql: str) -> None:
        await self.call(self._patiently, lambda: self.db.executescript(sql))

    # -- the event loop --

    async def begin(self) -> None:
        await self.now_or_waiting("BEGIN IMMEDIATE")

    async def now_or_waiting(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """A statement that takes the write lock (``BEGIN IMMEDIATE``, ``COMMIT``, a write on
        its own): on the loop when the thread is idle and the lock free, else on the thread
        (after whatever is queued there, waiting for the lock)."""
        if self.idle:
            try:
                return self.db.execute(sql, tuple(params))
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise  # not a lock another connection holds: a real error
        return await self.execute_waiting(sql, params)

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
