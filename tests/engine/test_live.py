"""The shared live loop: who gets a watcher, and a change notice unlocks the task.

Change notices come from a fake source the test feeds by hand; the engine runs over the
fixture course and a real SQLite store. Waits are on conditions, never on a clock.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict

from bot.engine.engine import Engine
from bot.engine.live import LiveLoop
from bot.engine.ports import Address
from tests.fakes import RecordingTransport, ScriptedCluster

DM = Address("terminal", "solo", "alex")


class FedChanges:
    """``wait_for_change`` returns when the test calls :meth:`change` for that learner."""

    def __init__(self) -> None:
        self.queues: defaultdict[str, asyncio.Queue[None]] = defaultdict(asyncio.Queue)
        self.waiting: defaultdict[str, int] = defaultdict(int)
        self.kinds: list[set[str] | None] = []

    def change(self, learner_id: str) -> None:
        self.queues[learner_id].put_nowait(None)

    async def wait_for_change(
        self, learner_id: str, timeout: float, kinds: set[str] | None = None
    ) -> bool:
        self.kinds.append(kinds)
        self.waiting[learner_id] += 1
        try:
            await self.queues[learner_id].get()
        finally:
            self.waiting[learner_id] -= 1
        return True


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    while not condition():
        await asyncio.sleep(0.001)


async def _at_task(engine: Engine) -> int:
    mission = await engine.start(DM, "alex", "Alex Chen")
    await engine.say(mission.id, "alex", "1")
    await engine.say(mission.id, "alex", "1")
    await engine.continue_(mission.id, "alex")
    await engine.say(mission.id, "alex", "Three, I think")
    return mission.id


async def _in_a_check(engine: Engine, cluster: ScriptedCluster) -> tuple[LiveLoop, asyncio.Event]:
    """A live loop whose watcher for alex is reading the cluster in a check that will pass;
    the read goes on when the returned event is set."""
    gate = asyncio.Event()
    reading = asyncio.Event()
    evaluate = cluster.evaluate

    async def slow_evaluate(*args, **kwargs):  # type: ignore[no-untyped-def]
        reading.set()
        await gate.wait()
        return await evaluate(*args, **kwargs)

    cluster.evaluate = slow_evaluate  # type: ignore[method-assign]
    changes = FedChanges()
    live = LiveLoop(engine, changes)
    await _at_task(engine)
    await _until(lambda: changes.waiting["alex"] == 1)
    cluster.passing["alex"] = {"pod-running", "no-failures"}
    changes.change("alex")
    await reading.wait()
    return live, gate


async def test_a_change_notice_rechecks_and_unlocks(
    engine: Engine, cluster: ScriptedCluster, transport: RecordingTransport
):
    await _at_task(engine)
    changes = FedChanges()
    live = LiveLoop(engine, changes)
    await live.refresh()
    assert set(live.watchers) == {"alex"}
    await _until(lambda: changes.waiting["alex"] == 1)
    assert changes.kinds[-1] == {"Pod"}  # the open task's kinds: the watch knows what to read

    cluster.passing["alex"] = {"pod-running", "no-failures"}
    changes.change("alex")
    await _until(lambda: '"Good work."' in transport.texts())
    await live.close()
    assert live.watchers == {}


async def test_no_watcher_off_task_idle_or_excluded(
    engine: Engine, cluster: ScriptedCluster
):
    mission = await engine.start(DM, "alex", "Alex Chen")  # at a question, not a task
    changes = FedChanges()
    assert await LiveLoop(engine, changes).wanted() == set()

    await engine.say(mission.id, "alex", "1")
    await engine.say(mission.id, "alex", "1")
    await engine.continue_(mission.id, "alex")
    await engine.say(mission.id, "alex", "Three, I think")
    assert await LiveLoop(engine, changes).wanted() == {"alex"}
    assert await LiveLoop(engine, changes, include=lambda who: who != "alex").wanted() == set()

    async def nobody_ready() -> set[str]:
        return set()

    assert await LiveLoop(engine, changes, ready=nobody_ready).wanted() == set()

    later = engine.clock() + engine.idle_after + 1
    engine.clock = lambda: later  # an hour and a second without a word
    assert await LiveLoop(engine, changes).wanted() == set()
    assert await LiveLoop(engine, changes, idle_after=math.inf).wanted() == {"alex"}


async def test_refresh_stops_the_watcher_when_the_task_is_done(
    engine: Engine, cluster: ScriptedCluster, transport: RecordingTransport
):
    mission_id = await _at_task(engine)
    changes = FedChanges()
    live = LiveLoop(engine, changes)
    await live.refresh()
    watcher = live.watchers["alex"]
    cluster.passing["alex"] = {"pod-running", "no-failures"}
    await engine.check(mission_id, "alex")  # the learner checked by hand: the story moved on
    await live.refresh()
    assert live.watchers == {}
    await _until(watcher.done)
    assert watcher.cancelled()


async def test_a_task_that_opens_is_watched_at_once_and_nothing_between_tasks(
    engine: Engine, cluster: ScriptedCluster, transport: RecordingTransport
):
    """The periodic refresh (every 30 s on Discord) is not what starts a learner's watcher
    when their task opens: the engine says so and the watcher starts with the task's kinds.
    Between tasks it waits for the next one without watching the cluster (a watch on no
    kinds would hear nothing and sleep through the next task's first minute)."""
    changes = FedChanges()
    live = LiveLoop(engine, changes)  # never refreshed in this test
    await _at_task(engine)
    assert set(live.watchers) == {"alex"}
    await _until(lambda: changes.waiting["alex"] == 1)
    assert changes.kinds == [{"Pod"}]

    cluster.passing["alex"] = {"pod-running", "no-failures"}
    changes.change("alex")
    await _until(lambda: '"Good work."' in transport.texts())
    for _ in range(20):
        await asyncio.sleep(0)
    assert changes.kinds == [{"Pod"}]  # the story moved past the task: no watch since
    assert changes.waiting["alex"] == 0
    assert not live.watchers["alex"].done()  # waiting for the next task to open
    await live.close()
    assert live.watchers == {}


async def test_a_refresh_under_way_keeps_a_watcher_started_meanwhile(
    engine: Engine, cluster: ScriptedCluster
):
    """A refresh decides from what it read before; a task that opened while it read started
    its watcher since, which the refresh leaves to the next one (it cancelled such watchers,
    and the learner's change went unheard until then)."""
    gate = asyncio.Event()
    ready: set[str] = set()

    async def slow_ready() -> set[str]:
        await gate.wait()
        return ready

    changes = FedChanges()
    live = LiveLoop(engine, changes, ready=slow_ready)
    refreshing = asyncio.create_task(live.refresh())
    await asyncio.sleep(0)
    await _at_task(engine)  # the task opens while the refresh waits
    watcher = live.watchers["alex"]
    gate.set()
    await refreshing
    assert live.watchers.get("alex") is watcher and not watcher.done()
    await live.refresh()  # the next refresh judges it: the cluster is not ready
    assert live.watchers == {}
    await live.close()


async def test_stopping_a_watcher_does_not_cut_off_the_check_it_runs(
    engine: Engine, cluster: ScriptedCluster, transport: RecordingTransport
):
    """The check a watcher runs may be the one that unlocks the task, and the refresh that
    then stops the watcher (the learner is off the task) comes while it delivers: the
    story's messages still go out at once, not at the outbox's next flush."""
    live, gate = await _in_a_check(engine, cluster)  # its watcher is in the middle of its check
    closing = asyncio.create_task(live.close())
    await asyncio.sleep(0)
    gate.set()
    await closing
    # (bounded: without the shield the messages wait for a flush that never comes here)
    await asyncio.wait_for(_until(lambda: '"Good work."' in transport.texts()), 30)


async def test_closing_waits_for_the_check_in_flight(
    engine: Engine, cluster: ScriptedCluster, transport: RecordingTransport
):
    """The store closes right after the live loop: a check still running then would fail
    halfway ("store is not open", seen at the end of a 4,000-learner load run). ``close``
    returns once it has finished."""
    live, gate = await _in_a_check(engine, cluster)
    closing = asyncio.create_task(live.close())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not closing.done()  # the check is still reading
    gate.set()
    await closing
    assert '"Good work."' in transport.texts()  # delivered before close returned
