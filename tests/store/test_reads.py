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


async def test_under_a_storm_of_reads_every_write_is_seen_by_the_next_read(
        tmp_path: Path) -> None:
    """Reads interleaved on the reading connection must not share one stale snapshot: a
    learner's mission made a moment ago has to be found (this failed under the load bench
    with 1,000 learners enrolling while the watchers read)."""
    store = await SQLiteStore(tmp_path / "k.db").open()
    stop = asyncio.Event()
    storms: list[asyncio.Task[None]] = []
    try:
        first = await store.create_mission(Address("discord", "solo", "0"))

        async def storm() -> None:
            while not stop.is_set():
                await store.get_mission(first.id)
                await store.all_missions()

        storms += [asyncio.create_task(storm()) for _ in range(20)]
        made = await asyncio.gather(*(
            store.create_mission(Address("discord", "solo", str(i))) for i in range(1, 101)))
        for m in made:  # create_mission reads its row back: none came back missing
            assert (await store.get_mission(m.id)) == m
    finally:
        stop.set()
        await asyncio.gather(*storms, return_exceptions=True)
        await store.close()


async def test_a_read_by_key_answers_without_leaving_the_loop(tmp_path: Path) -> None:
    """A check's reads (its mission, its members, its outbox) run on the loop's reading
    connection: the coroutine finishes on its first step, with no thread to wait for."""
    store = await SQLiteStore(tmp_path / "k.db").open()
    try:
        await store.ensure_learner("a", "Ada")
        m = await store.create_mission(Address("discord", "solo", "1"))
        await store.add_member(m.id, "a")
        await store.save_mission(replace(m, chapter=2))  # a lone write, group-committed
        for read, want in ((store.get_mission(m.id), 2), (store.members(m.id), ["a"])):
            try:
                read.send(None)
            except StopIteration as done:
                got = done.value
            else:
                read.close()
                raise AssertionError("the read suspended")
            assert (got.chapter if want == 2 else [x.learner_id for x in got]) == want
    finally:
        await store.close()

