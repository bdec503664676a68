"""Concurrent mission changes, interleaved deterministically: nothing is rolled back.

A store that stops inside a chosen write (an event the test opens) lets one change sit half
done while another runs as far as it can; the test then lets both finish and reads the row.
No timing is involved: the test waits on conditions (a task blocked on the mission's lock, or
done), never on a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.content.course import BeatRef
from bot.engine.beats import task_key
from bot.engine.engine import Engine
from bot.store.sqlite import SQLiteStore
from tests.engine.test_crews import DONE, _crew_at_task


class PausingStore(SQLiteStore):
    """Stops in ``update_mission`` (when ``when(changes)``) or ``pass_task`` until released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pause_update: Callable[[dict[str, Any]], bool] | None = None
        self.pause_pass = False
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def _hold(self) -> None:
        self.reached.set()
        await self.release.wait()

    async def update_mission(self, mission_id: int, **changes: Any) -> None:
        if self.pause_update is not None and self.pause_update(changes):
            self.pause_update = None
            await self._hold()
        await super().update_mission(mission_id, **changes)

    async def save_mission(self, mission: Any) -> None:  # the old whole-row write, if used
        if self.pause_update is not None and self.pause_update({"pacing": mission.pacing}):
            self.pause_update = None
            await self._hold()
        await super().save_mission(mission)

    async def pass_task(self, learner_id: str, task_key: str) -> None:
        if self.pause_pass:
            self.pause_pass = False
            await self._hold()
        await super().pass_task(learner_id, task_key)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[PausingStore]:
    async with PausingStore(tmp_path / "kepler.db") as s:
        yield s


async def _until_blocked(engine: Engine, mission_id: int, task: asyncio.Task[Any]) -> None:
    """Run the loop until ``task`` waits on the mission's lock or the store's write lock (the
    paused change holds both), or has finished."""
    store = engine.store
    assert isinstance(store, SQLiteStore)
    while True:
        locks = [engine._locks.get(mission_id), store._lock]
        if task.done() or any(lock is not None and lock._waiters for lock in locks):
            return
        await asyncio.sleep(0.001)


def _key(engine: Engine, mission: Any) -> str:
    return task_key(engine.course, BeatRef(mission.chapter, mission.beat))


async def _at_last_check(store: PausingStore) -> tuple[Engine, Any, Any, Any]:
    """A crew where two have passed: the third member's check opens the gate."""
    engine, transport, cluster, mission = await _crew_at_task(store)
    for who in ("ana", "ben"):
        cluster.passing[who] = DONE
        await engine.check(mission.id, who)
    cluster.passing["cai"] = DONE
    return engine, transport, cluster, mission


async def test_pacing_change_during_a_check_keeps_the_progress(store: PausingStore):
    engine, transport, _cluster, mission = await _at_last_check(store)
    before = await store.get_mission(mission.id)
    store.pause_update = lambda changes: "pacing" in changes
    pacing = asyncio.create_task(engine.set_pacing(mission.id, "quorum", 0.5))
    await store.reached.wait()  # the pacing change read the row and is about to write
    check = asyncio.create_task(engine.check(mission.id, "cai"))
    await _until_blocked(engine, mission.id, check)
    store.release.set()
    await asyncio.gather(pacing, check)

    after = await store.get_mission(mission.id)
    assert after is not None and before is not None
    assert (after.pacing, after.quorum) == ("quorum", 0.5)
    assert (after.chapter, after.beat) > (before.chapter, before.beat)  # the story moved on
    assert transport.texts().count('"Good work."') == 1  # no beat rolled back and replayed  # the quorum of two opened the gate first
    assert await store.passed(["ana", "ben"], _key(engine, before)) == {"ana", "ben"}


async def test_check_committing_during_a_pacing_change_keeps_both(store: PausingStore):
    engine, transport, _cluster, mission = await _at_last_check(store)
    before = await store.get_mission(mission.id)
    store.pause_pass = True
    check = asyncio.create_task(engine.check(mission.id, "cai"))
    await store.reached.wait()  # the check is inside its unit, about to latch the task
    pacing = asyncio.create_task(engine.set_pacing(mission.id, "quorum", 0.75))
    await _until_blocked(engine, mission.id, pacing)
    store.release.set()
    await asyncio.gather(check, pacing)

    after = await store.get_mission(mission.id)
    assert after is not None and before is not None
    assert (after.pacing, after.quorum) == ("quorum", 0.75)
    assert (after.chapter, after.beat) > (before.chapter, before.beat)
    assert transport.texts().count('"Good work."') == 1  # no beat rolled back and replayed


async def test_teardown_during_a_check_stays_closed_and_keeps_the_latch(store: PausingStore):
    engine, _transport, _cluster, mission = await _at_last_check(store)
    before = await store.get_mission(mission.id)
    assert before is not None
    store.pause_pass = True
    check = asyncio.create_task(engine.check(mission.id, "cai"))
    await store.reached.wait()
    teardown = asyncio.create_task(engine.close_guild("g1"))
    await _until_blocked(engine, mission.id, teardown)
    store.release.set()
    await check
    assert await teardown == 1

    after = await store.get_mission(mission.id)
    assert after is not None and after.state == "closed"
    assert (after.chapter, after.beat) > (before.chapter, before.beat)  # the check's progress
    assert await store.passed(["cai"], _key(engine, before)) == {"cai"}


async def test_check_after_teardown_does_not_reopen_the_mission(store: PausingStore):
    engine, transport, _cluster, mission = await _at_last_check(store)
    store.pause_update = lambda changes: changes.get("state") == "closed"
    teardown = asyncio.create_task(engine.close(mission.id))
    await store.reached.wait()
    shown = len(transport.delivered)
    check = asyncio.create_task(engine.check(mission.id, "cai"))
    await _until_blocked(engine, mission.id, check)
    store.release.set()
    assert await teardown is True
    assert await check == []

    after = await store.get_mission(mission.id)
    assert after is not None and after.state == "closed"
    assert len(transport.delivered) == shown  # a closed mission says nothing more
