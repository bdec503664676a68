"""A task cancelled while its unit is starting leaves no transaction open behind it.

The live loop cancels a learner's watcher when their task is done, possibly while that watcher
is opening a unit (its ``BEGIN`` already queued on the database thread). Found by the browser
play-through: the next write anywhere failed with "cannot start a transaction within a
transaction"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.store.sqlite import SQLiteStore


@pytest.mark.parametrize("when", ["beginning", "inside"])
async def test_a_cancelled_unit_leaves_nothing_open(tmp_path: Path, when: str) -> None:
    async with SQLiteStore(tmp_path / "kepler.db") as store:
        wrote = asyncio.Event()

        async def work() -> None:
            async with store.unit():
                await store.set_setting("test", "inside", "1")
                wrote.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(work())
        if when == "beginning":
            await asyncio.sleep(0)  # the task has queued BEGIN and waits for it
        else:
            await wrote.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.set_setting("test", "after", "2")  # a write works: nothing left open
        assert await store.get_setting("test", "after") == "2"
        assert await store.get_setting("test", "inside") is None  # the cancelled unit rolled back
