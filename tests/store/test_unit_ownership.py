"""A unit of work belongs to the task that opened it, not to tasks it starts.

A task created inside a unit copies the context it was created in. The live loop starts a
learner's watcher from inside the engine's unit (the task just opened); that watcher lives
on, and its writes must take the lock and a transaction of their own. When they counted as
"inside the unit" they went without either: into another task's transaction when one was
open (rolled back with it), and beside it on the same connection (a lone insert's row id read
back as someone else's). Found by the load bench at 400 learners."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.store.sqlite import SQLiteStore


async def test_a_task_started_inside_a_unit_writes_in_its_own(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "kepler.db") as store:
        child: asyncio.Task[None] | None = None

        async def later() -> None:
            await store.set_setting("test", "child", "1")

        class Undo(Exception):
            pass

        try:
            async with store.unit():
                await store.set_setting("test", "parent", "1")
                child = asyncio.create_task(later())
                await asyncio.sleep(0.05)  # the child runs meanwhile: it must wait for the lock
                assert not child.done()
                raise Undo
        except Undo:
            pass
        assert child is not None
        await child
        assert await store.get_setting("test", "parent") is None  # rolled back
        assert await store.get_setting("test", "child") == "1"  # its own, committed

