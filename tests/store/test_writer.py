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


async def test_lone_writes_at_the_same_moment_share_one_commit(tmp_path: Path) -> None:
    """Group commit: a crowd of lone writes costs a few disk syncs, not one each, and every
    caller goes on only once its own write is committed (another connection sees it)."""
    db = tmp_path / "kepler.db"
    async with SQLiteStore(db) as store:
        statements: list[str] = []
        store.conn.db.set_trace_callback(statements.append)

        async def lone(i: int) -> None:
            await store.set_setting("crowd", str(i), "1")
            other = sqlite3.connect(db)  # durable before the caller goes on
            try:
                row = other.execute("SELECT value FROM settings WHERE scope = 'crowd' "
                                    "AND key = ?", (str(i),)).fetchone()
            finally:
                other.close()
            assert row == ("1",)

        await asyncio.gather(*(lone(i) for i in range(300)))
        commits = sum(1 for s in statements if s.strip().upper() == "COMMIT")
        writes = sum(1 for s in statements if s.startswith("INSERT INTO settings"))
        assert writes == 300
        assert 1 <= commits <= 30, commits  # one each would be 300
        assert not store.conn.db.in_transaction


async def test_a_failing_write_in_a_group_fails_alone(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "kepler.db") as store:
        bad = store._write("INSERT INTO settings VALUES (NULL, NULL, NULL)")  # NOT NULL
        results = await asyncio.gather(
            store.set_setting("g", "before", "1"), bad, store.set_setting("g", "after", "1"),
            return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert await store.get_setting("g", "before") == "1"
        assert await store.get_setting("g", "after") == "1"
        assert not store.conn.db.in_transaction


async def test_writes_queued_when_the_store_closes_are_committed(tmp_path: Path) -> None:
    db = tmp_path / "kepler.db"
    store = await SQLiteStore(db).open()
    pending = [asyncio.create_task(store.set_setting("late", str(i), "1")) for i in range(20)]
    await asyncio.sleep(0)  # queued, not yet committed
    await store.close()
    await asyncio.gather(*pending)
    async with SQLiteStore(db) as again:
        assert all([await again.get_setting("late", str(i)) == "1" for i in range(20)])
