"""Reads outside a unit: a second connection that sees the last commit and never waits for
the unit in progress; the bulk query the change watchers use."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from bot.engine.ports import Address
from bot.store.sqlite import SQLiteStore


async def test_reads_do_not_wait_for_a_unit_and_see_only_commits(tmp_path: Path) -> None:
    store = await SQLiteStore(tmp_path / "k.db").open()
    try:
        await store.ensure_learner("a", "Ada")
        m = await store.create_mission(Address("discord", "solo", "1"))
        in_unit, release = asyncio.Event(), asyncio.Event()

        async def slow_unit() -> None:
            async with store.unit():
                await store.save_mission(replace(m, chapter=3))
                assert (await store.get_mission(m.id)).chapter == 3  # the unit sees its own
                in_unit.set()
                await release.wait()

        unit = asyncio.create_task(slow_unit())
        await in_unit.wait()
        # while the unit holds the writing connection, a read answers at once, from the
        # last commit (the unit's change is not visible yet)
        seen = await asyncio.wait_for(store.get_mission(m.id), 1.0)
        assert seen is not None and seen.chapter == 0
        release.set()
        await unit
        assert (await store.get_mission(m.id)).chapter == 3  # committed: visible
    finally:
        await store.close()


async def test_running_members_in_one_query(tmp_path: Path) -> None:
    store = await SQLiteStore(tmp_path / "k.db").open()
    try:
        for lid, name in (("a", "Ada"), ("b", "Bo"), ("c", "Cy")):
            await store.ensure_learner(lid, name)
        m1 = await store.create_mission(Address("discord", "channel", "10"))
        m2 = await store.create_mission(Address("discord", "solo", "20"))
        m3 = await store.create_mission(Address("discord", "solo", "30"))
        await store.add_member(m1.id, "a")
        await store.add_member(m1.id, "b")
        await store.add_member(m2.id, "c")
        await store.add_member(m3.id, "a")
        await store.leave(m1.id, "b")
        await store.save_mission(replace(m3, state="done"))
        got = await store.running_members()
        assert set(got) == {m1.id, m2.id}  # m3 is not running
        assert [(x.learner_id, x.name, x.left) for x in got[m1.id]] == [
            ("a", "Ada", False), ("b", "Bo", True)]
        assert got[m2.id] == await store.members(m2.id)
    finally:
        await store.close()
