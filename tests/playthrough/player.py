"""A learner at the keyboard: the mission engine, the sandbox service and the shared live loop
wired as ``kepler play`` wires them, against a simulated cluster, with the clock readings a
test needs (when each check started and ended, when the task unlocked)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.content.course import BeatRef, Course
from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.beats import task_key
from bot.engine.engine import Engine
from bot.engine.live import LiveLoop
from bot.engine.ports import Address
from bot.store.sqlite import SQLiteStore
from sandbox.backends.kubeconfig import KubeconfigBackend
from sandbox.service import ClusterService
from tests.fakes import CannedVoice, RecordingTransport
from tests.playthrough.script import LearnerPath, Step
from tests.simcluster import SimCluster

LEARNER = "terminal:chen"


@dataclass
class Check:
    started: float
    ended: float
    passed: bool
    error: bool = False


@dataclass
class Player:
    course: Course
    sim: SimCluster
    folder: Path
    checks: list[Check] = field(default_factory=list)
    unlocked_at: float | None = None
    mission_id: int = 0
    key: str = ""
    typed_at: float = 0.0  # when the last command returned
    task: TaskBeat | None = None
    drilled: bool = False

    def _observe(self, event: str, **fields: Any) -> None:
        now = time.monotonic()
        if event == "check":
            self.checks.append(Check(now - float(fields["seconds"]), now, bool(fields["passed"]),
                                     bool(fields.get("error"))))
        elif event == "unlock" and self.unlocked_at is None:
            self.unlocked_at = now

    async def __aenter__(self) -> Player:
        self.store = await SQLiteStore(self.folder / "kepler.db").open()
        self.service = ClusterService(KubeconfigBackend(self.sim.kubeconfig), timeout=5.0)
        self.transport = RecordingTransport()
        self.engine = Engine(self.course, self.store, self.service, CannedVoice(),
                             self.transport, observe=self._observe)
        # as `kepler play`: the shared live loop, refreshed every second, never idle
        self.live = LiveLoop(self.engine, self.service, idle_after=math.inf,
                             include=lambda learner: learner == LEARNER)
        self._running = asyncio.create_task(self.live.run(every=1.0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._running.cancel()
        await self.live.close()
        await self.service.aclose()
        await self.store.close()

    async def open_task(self, chapter: int) -> TaskBeat:
        """Start the mission at ``chapter`` and read on to its task, answering what is asked."""
        address = Address("terminal", "solo", "chen")
        mission = await self.engine.start(address, LEARNER, "Chen", chapter=chapter)
        self.mission_id = mission.id
        for _ in range(100):
            mission = await self.engine.store.get_mission(self.mission_id)
            assert mission is not None
            beat = self.course.beat_at(mission.chapter, mission.beat)
            if isinstance(beat, TaskBeat) and mission.state == "running":
                self.key = task_key(self.course, BeatRef(mission.chapter, mission.beat))
                self.task = beat
                return beat
            if isinstance(beat, QuestionBeat):
                answer = "1" if beat.choices else (
                    "A cluster is many nodes run as one system, so one failure does not stop "
                    "everything; controllers recreate lost pods on healthy nodes.")
                await self.engine.say(self.mission_id, LEARNER, answer)
            else:
                await self.engine.continue_(self.mission_id, LEARNER)
        raise AssertionError(f"chapter {chapter}: never reached its task")

    async def read_the_task(self, patience: float = 10.0) -> None:
        """Read the instructions before typing, as a learner does: until the live loop has
        looked at the cluster once (a few seconds after the task opens), or ``patience``
        seconds. A test typing at machine speed would otherwise measure the loop's start-up,
        not its reaction to the learner's work."""
        deadline = time.monotonic() + patience
        while not self.checks and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def check(self) -> list[str]:
        """The learner types ``check``; returns what the story answers."""
        await asyncio.to_thread(self.sim.settle)
        said = await self.engine.check(self.mission_id, LEARNER, explicit=True)
        return [o.text for o in said]

    async def type(self, path: LearnerPath, *, reads: bool = True) -> None:
        """Run the path's kubectl lines, in order, in the folder holding its files (``reads``:
        also the read-only ones). Each must succeed, as it does for a learner."""
        folder = path.write(self.folder / f"chapter-{path.chapter}")
        for step in path.steps:
            if reads or step.mutating:
                if step.settle_first:
                    await asyncio.to_thread(self.sim.settle)
                await self.kubectl(step, folder)
        self.typed_at = time.monotonic()

    async def kubectl(self, step: Step, folder: Path) -> None:
        proc = await asyncio.to_thread(self.sim.kubectl, *step.argv, cwd=folder, check=False)
        assert proc.returncode == 0, (f"`{step.line}` failed ({proc.returncode}):\n"
                                      f"{proc.stdout}{proc.stderr}")

    async def unlock_delay(self, bound: float = 2.0, patience: float = 60.0) -> float:
        """Seconds from the cluster settling to the story unlocking by itself (negative: it
        unlocked before the last change settled). Changes the story itself makes (a drill)
        move the settle point; fails once ``bound`` seconds pass after a settle point with no
        unlock."""
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            # the state settles when the controllers are done, and not before the learner is
            settled = max(await asyncio.to_thread(self.sim.settle), self.typed_at)
            while time.monotonic() < settled + bound:
                if self.unlocked_at is not None:
                    return self.unlocked_at - settled
                if self.sim.last_write > settled:
                    break  # the cluster moved again (the story's own drill): settle again
                await asyncio.sleep(0.01)
            else:
                if self.unlocked_at is not None:
                    return self.unlocked_at - settled
                failing = await self.failing()
                if failing and set(failing) <= self._drill_objectives() and not self.drilled:
                    # "When you ask for a check with the rest of the board green, Commander
                    # Torres simulates a node failure": the learner asks, the story acts.
                    self.drilled = True
                    await self.check()
                    continue
                raise AssertionError(
                    f"chapter did not unlock within {bound} s of the cluster settling; "
                    f"open objectives: {failing or '(none judged yet)'}; "
                    f"checks since settle: {[c for c in self.checks if c.ended > settled]}")
        raise AssertionError(f"the cluster kept changing for {patience} s")

    async def judged_after_settle(self, patience: float = 3.0) -> None:
        """Wait for the cluster to settle and for the live loop to look at it (at most
        ``patience`` seconds: it looks only when something it watches changed), then type
        ``check``, whose answer the learner reads (and :meth:`failing` returns)."""
        settled = await asyncio.to_thread(self.sim.settle)
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            if self.sim.last_write > settled:
                settled = await asyncio.to_thread(self.sim.settle)
            if any(c.started >= settled for c in self.checks):
                break
            await asyncio.sleep(0.02)
        await self.check()

    async def verify(self) -> int:
        """``kepler verify --chapter N`` on the same cluster (with the drill's start, if the
        story ran one): its exit code, 0 when every objective holds."""
        from bot.commands import verify

        mission = await self.store.get_mission(self.mission_id)
        assert mission is not None
        argv = ["--chapter", str(self.course.chapters[mission.chapter].number),
                "--kubeconfig", str(self.sim.kubeconfig), "--json"]
        drilled = mission.data.get("drills", {}).get(self.key, {}).get(LEARNER)
        if drilled:
            argv += ["--drill-started-at",
                     datetime.fromtimestamp(drilled, UTC).isoformat()]
        return await asyncio.to_thread(verify.main, argv)

    def _drill_objectives(self) -> set[str]:
        """Objectives only the story's drill can satisfy (it breaks something first)."""
        if self.task is None or self.task.drill is None:
            return set()
        return {o.id for o in self.task.objectives if o.kind == "recovered"}

    async def failing(self) -> dict[str, str]:
        """Objective id → reason, for the objectives the last check found open."""
        status = await self.store.objectives(LEARNER, self.key)
        return {k: v.reason for k, v in status.items() if not v.passed}
