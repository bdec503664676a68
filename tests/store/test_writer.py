"""The writing connection never blocks the event loop, and units still follow each other.

Statements of a unit run on the loop; ``BEGIN`` runs there only when nothing is queued on
the database thread and no other process holds the write lock, and ``COMMIT`` goes to the
thread with the store's lock already released (``bot/store/writer.py``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from bot.store.sqlite import SQLiteStore


async def test_another_process_holding_the_write_lock_does_not_block_the_loop(
    tmp_path: Path,
) -> None:
    db = tmp_path / "kepler.db"
    async with SQLiteStore(db) as store:
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
        release.start()
        try:
            async with store.unit():  # waits on the thread for the lock, not on the loop
                await store.set_setting("test", "k", "v")
        finally:
            release.join()
            tick.cancel()
            other.close()
        assert ticks >= 10  # the loop ran all along (a blocked loop would count 0-1)
        assert await store.get_setting("test", "k") == "v"


async def test_units_and_lone_writes_in_a_crowd_each_commit_whole(tmp_path: Path) -> None:
    """Many tasks at once, each a unit of two writes that must stay together, beside lone
    writes and reads: every unit's rows are there, in pairs, and nothing is left open."""
    async with SQLiteStore(tmp_path / "kepler.db") as store:

        async def unit(i: int) -> None:
            async with store.unit():
                await store.set_setting("a", str(i), "1")
                await asyncio.sleep(0)  # others run meanwhile
                await store.set_setting("b", str(i), "1")

        async def lone(i: int) -> None:
            await store.set_setting("c", str(i), "1")

        await asyncio.gather(*(unit(i) for i in range(200)), *(lone(i) for i in range(200)))
        for scope in "abc":
            rows = await store._rows("SELECT COUNT(*) AS n FROM settings WHERE scope = ?",
                                     (scope,))  # fmt: skip
            assert rows[0]["n"] == 200
        async with store.unit():  # a transaction can still begin: none was left open
            await store.set_setting("d", "x", "1")
