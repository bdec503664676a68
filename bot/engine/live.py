"""The live loop: a learner's cluster changes → the engine re-checks → the story unlocks.

One loop for every transport (terminal, Discord, a web page): the transport only delivers
what the engine queues. :meth:`LiveLoop.refresh` decides which learners need a watcher (on a
running mission whose open beat is a task, active, and with a cluster that can answer) and
starts or stops one watcher task per learner; each watcher waits on the cluster's change
notice and calls :meth:`Engine.cluster_changed`. An idle learner costs the watch alone: no
re-reads until something changes.

The refresh runs every 30 s or so; a learner whose task opens cannot wait that long. The
engine says when a mission stops at a task (:attr:`Engine.on_task_open`): the learner's
watcher starts (or wakes) then, for that task's kinds. Between tasks a watcher watches
nothing and waits for that word.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.content.schema import TaskBeat
from bot.engine.engine import Engine
from sandbox.objectives import kinds_for

log = logging.getLogger(__name__)

WATCH_WINDOW = 55.0  # longest wait for a change notice before the watcher looks again
REFRESH = 30.0  # how often the set of watched learners is recomputed (``run``)
CLOSE_GRACE = 10.0  # how long ``close`` lets checks in flight finish before cancelling them


class Changes(Protocol):
    """Change notices from learners' clusters (``sandbox.service.ClusterService``)."""

    async def wait_for_change(
        self, learner_id: str, timeout: float, kinds: set[str] | None = None
    ) -> bool:
        """True when something the learner's open task reads may have changed."""
        ...


class LiveLoop:
    def __init__(
        self,
        engine: Engine,
        changes: Changes,
        *,
        window: float = WATCH_WINDOW,
        idle_after: float | None = None,
        include: Callable[[str], bool] | None = None,
        ready: Callable[[], Awaitable[set[str] | None]] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        """``include(learner_id)`` keeps learners this transport serves; ``ready()`` returns
        the learners whose cluster is ready (None: all); ``idle_after`` (seconds, default the
        engine's) stops watching a learner who did nothing for that long (``math.inf``:
        never, for a terminal where the learner works in another window)."""
        self.engine = engine
        self.changes = changes
        self.window = window
        self.idle_after = engine.idle_after if idle_after is None else idle_after
        self.include = include or (lambda learner_id: True)
        self.ready = ready
        self.sleep = sleep
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self._checks: set[asyncio.Future[Any]] = set()  # checks in flight (they outlive a stop)
        self._closing = False
        # a task that just opened, per learner, and the wake-up of a watcher waiting for one
        # (the store may not have committed the learner's new place when it is told)
        self._opened: dict[str, TaskBeat] = {}
        self._woken: dict[str, asyncio.Event] = {}
        self._opens = 0  # tasks opened so far: a refresh's view is older than later ones
        self._opened_at: dict[str, int] = {}  # learner -> ``_opens`` when theirs last opened
        engine.on_task_open.append(self._task_opened)

    def _task_opened(self, learner: str, task: TaskBeat) -> None:
        """A learner's mission stopped at ``task``: wake their watcher, or start one."""
        if self._closing or not self.include(learner):
            return
        self._opened[learner] = task
        self._opens += 1
        self._opened_at[learner] = self._opens
        if learner in self._woken:
            self._woken[learner].set()
        watcher = self.watchers.get(learner)
        if watcher is None or watcher.done():
            self.watchers[learner] = asyncio.get_running_loop().create_task(
                self._watch(learner), name=f"live-{learner}")

    async def wanted(self) -> set[str]:
        """Learners on an open task, active, with a ready cluster."""
        store, course = self.engine.store, self.engine.course
        ready = await self.ready() if self.ready is not None else None
        now = self.engine.clock()
        members = await store.running_members()  # one query, not one per mission
        wanted: set[str] = set()
        for mission in await store.all_missions():
            if mission.state != "running":
                continue
            if not isinstance(course.beat_at(mission.chapter, mission.beat), TaskBeat):
                continue
            for member in members.get(mission.id, []):
                if member.left or not self.include(member.learner_id):
                    continue
                if not math.isinf(self.idle_after) and now - member.last_active > self.idle_after:
                    continue
                if ready is None or member.learner_id in ready:
                    wanted.add(member.learner_id)
        return wanted

    async def refresh(self) -> None:
        """Start a watcher for each wanted learner; stop the others'."""
        if self._closing:
            return
        mark = self._opens
        wanted = await self.wanted()
        for learner, task in list(self.watchers.items()):
            if self._opened_at.get(learner, 0) > mark:
                continue  # their task opened while ``wanted`` was read: newer than it
            if learner not in wanted or task.done():
                task.cancel()
                del self.watchers[learner]
                self._opened.pop(learner, None)
                self._opened_at.pop(learner, None)
        for learner in wanted - set(self.watchers):
            self.watchers[learner] = asyncio.create_task(
                self._watch(learner), name=f"live-{learner}"
            )

    async def run(self, every: float = REFRESH) -> None:
        """Refresh now and every ``every`` seconds until cancelled."""
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live loop refresh failed")
            await self.sleep(every)

    async def close(self) -> None:
        """Stop every watcher (their cancellation stops the cluster watches too), and let the
        checks they had under way finish (up to :data:`CLOSE_GRACE`): the store closes next."""
        self._closing = True
        tasks = list(self.watchers.values())
        self.watchers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._checks:
            _done, late = await asyncio.wait(set(self._checks), timeout=CLOSE_GRACE)
            for check in late:
                check.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _watch(self, learner: str) -> None:
        woken = self._woken.setdefault(learner, asyncio.Event())
        try:
            while True:
                try:
                    woken.clear()
                    kinds = await self._task_kinds(learner)
                    opened = self._opened.pop(learner, None)
                    if opened is not None:  # newer than what the store said
                        kinds = kinds_for(opened.objectives)
                    if not kinds:  # between tasks: nothing to watch until the next opens
                        if learner not in self._opened:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(woken.wait(), self.window)
                        continue
                    # Re-check only on a change (or when the task needs a kind never read).
                    if await self.changes.wait_for_change(learner, self.window, kinds):
                        # Shielded: a refresh that stops this watcher (the check it runs may
                        # be the one that moves the story on) must not cut off the check's
                        # delivery halfway; the messages would wait for the outbox's flush.
                        check = asyncio.ensure_future(self.engine.cluster_changed(learner))
                        self._checks.add(check)
                        check.add_done_callback(self._checks.discard)
                        await asyncio.shield(check)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.debug("watcher failed", exc_info=True)
                    await self.sleep(self.window)
        finally:
            if self._woken.get(learner) is woken:
                del self._woken[learner]

    async def _task_kinds(self, learner: str) -> set[str]:
        course = self.engine.course
        kinds: set[str] = set()
        for mission in await self.engine.store.missions_of(learner):
            beat = course.beat_at(mission.chapter, mission.beat)
            if mission.state == "running" and isinstance(beat, TaskBeat):
                kinds |= kinds_for(beat.objectives)
        return kinds
