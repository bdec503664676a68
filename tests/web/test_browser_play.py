"""A learner with only a browser plays chapters 1-6: one headless Chromium, one terminal page.

The learner answers the opening's setup question with "only a browser" (as a Discord learner,
so chapter 1 sends them to ``/terminal``), opens their terminal link, and for each chapter
types that chapter's own kubectl lines (``tests/playthrough/script.py``) into the xterm page,
in the folder where the bot put the task's files (``~/<chapter folder>/``, written through the
exec path by ``bot/web/missionfiles.py`` when the task was delivered; the test writes no file).
The shell behind the exec endpoint runs real kubectl against a simulated cluster
(``tests/simcluster``) that the engine's shared live loop watches, and each chapter must unlock
by itself. Everything waits on visible output (a per-command marker with its exit code) or on
the engine's own events, under generous deadlines: no wall-clock bound is asserted.
Reproduce: ``uv run pytest tests/web/test_browser_play.py -q``.
"""

from __future__ import annotations

import asyncio
import math
import re
import shlex
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.content.course import BeatRef, Course, load_course
from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.beats import task_key
from bot.engine.engine import Engine
from bot.engine.live import LiveLoop
from bot.engine.ports import Address
from bot.web.missionfiles import MissionFiles, TaskFilesTransport, folder_of
from sandbox.backends.kubeconfig import KubeconfigBackend
from sandbox.service import ClusterService
from tests.emulator import KubeEmulator
from tests.fakes import CannedVoice, RecordingTransport
from tests.playthrough.script import Step, learner_path
from tests.simcluster import SimCluster
from tests.web.conftest import World, make_world
from tests.web.test_browser import (  # noqa: F401  (browser: the module's Chromium fixture)
    CHROMIUM,
    DRIVER,
    browser,
    run,
    type_text,
    wait_state,
)

LEARNER = "discord:1"
ADDRESS = Address("discord", "solo", "1")
CHAPTERS = [1, 2, 3, 4, 5, 6]
ENVIRONMENT = "Only a browser: a school Chromebook, I cannot install anything"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                       reason="Chromium is not installed (CI installs it, see .ci/run)"),
    pytest.mark.timeout(900),
]

# The last lines of the terminal's buffer, up to the cursor's line (after `clear` the rows
# below the cursor are blank).
TAIL_JS = """
const t = window.keplerTerminal; if (!t) return "";
const b = t.buffer.active; const out = []; const end = b.baseY + b.cursorY + 1;
for (let i = Math.max(0, end - arguments[0]); i < end; i++) {
  const l = b.getLine(i); if (l) out.push(l.translateToString(true)); }
return out.join("\\n");
"""


def tail(driver: Any, lines: int = 200) -> str:
    return str(driver.execute_script(TAIL_JS, lines))


def wait_match(driver: Any, pattern: str, timeout: float = 120.0, lines: int = 200) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = tail(driver, lines)
        found = re.search(pattern, seen)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not on screen after {timeout}s:\n{seen[-2500:]}")


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    from tests.simcluster.conftest import require_kubectl

    require_kubectl()
    with KubeEmulator() as e:
        yield e


@pytest.fixture
async def world(emu: KubeEmulator, tmp_path: Path) -> AsyncIterator[World]:
    async for w in make_world(emu, tmp_path):
        yield w


class Learner:
    """The engine and the shared live loop as ``kepler serve`` wires them (task files into
    the workbench), the learner's answers, and the browser page they type into."""

    def __init__(self, course: Course, world: World, sim: SimCluster, driver: Any):
        self.course, self.world, self.sim, self.driver = course, world, sim, driver
        self.unlocked: set[str] = set()
        self.commands = 0
        self.mission_id = 0
        self.drilled: set[str] = set()

    def _observe(self, event: str, **fields: Any) -> None:
        if event == "unlock":
            self.unlocked.add(str(fields["task"]))

    async def __aenter__(self) -> Learner:
        self.files = MissionFiles(self.world.store, self.course, self.world.web.workbenches)
        self.world.web.on_connect = self.files.for_learner  # as bot/transports/discord/app.py
        self.transport = TaskFilesTransport(RecordingTransport(), self.files)
        self.service = ClusterService(KubeconfigBackend(self.sim.kubeconfig), timeout=10.0)
        self.engine = Engine(self.course, self.world.store, self.service, CannedVoice(),
                             self.transport, observe=self._observe)  # fmt: skip
        self.live = LiveLoop(self.engine, self.service, idle_after=math.inf,
                             include=lambda learner: learner == LEARNER)  # fmt: skip
        self._running = asyncio.create_task(self.live.run(every=1.0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._running.cancel()
        await self.live.close()
        await self.service.aclose()
        await self.transport.aclose()
        await self.files.aclose()

    async def ref(self) -> BeatRef:
        mission = await self.world.store.get_mission(self.mission_id)
        assert mission is not None and mission.state == "running", mission
        return BeatRef(mission.chapter, mission.beat)

    async def read_on_to_task(self, number: int) -> TaskBeat:
        """Continue and answer until chapter ``number``'s task is open."""
        want = self.course.find_chapter(number)
        for _ in range(200):
            ref = await self.ref()
            beat = self.course.beat(ref)
            if isinstance(beat, TaskBeat) and ref.chapter == want:
                return beat
            if isinstance(beat, TaskBeat):
                raise AssertionError(f"waiting on {task_key(self.course, ref)}, not chapter {number}")
            if isinstance(beat, QuestionBeat):
                await self.engine.say(self.mission_id, LEARNER, await self.answer(beat))
            else:
                await self.engine.continue_(self.mission_id, LEARNER)
        raise AssertionError(f"chapter {number}: never reached its task")

    async def answer(self, beat: QuestionBeat) -> str:
        if beat.profile == "environment":
            return ENVIRONMENT
        if beat.fact is not None and beat.fact.required:
            # The survey report, read off the learner's own screen: the Ready nodes listed.
            await self.type("kubectl get nodes")
            ready = set(re.findall(r"^(\S+)\s+Ready\s", await run(tail, self.driver, 60), re.M))
            assert ready, "kubectl get nodes showed no Ready node"
            return f"{len(ready)} Ready: {', '.join(sorted(ready))}"
        if beat.choices:
            return "1"
        return ("A cluster is many nodes run as one system, so one failure does not stop "
                "everything; controllers recreate lost pods on healthy nodes.")  # fmt: skip

    async def type(self, line: str) -> str:
        """Type a line at the prompt and wait for it to finish; its output must end in 0."""
        self.commands += 1
        n = 1000 + self.commands
        await run(type_text, self.driver, f'{line}; echo "done-$(({n}+0))-rc-$?"\n')
        found = await run(wait_match, self.driver, rf"done-{n}-rc-(\d+)")
        if found.group(1) != "0":
            raise AssertionError(f"`{line}` failed ({found.group(1)}):\n"
                                 f"{(await run(tail, self.driver, 80))[-2500:]}")  # fmt: skip
        return found.group(0)

    async def kubectl(self, step: Step) -> None:
        if step.settle_first:  # a log read: the learner waits for the container, as told
            await asyncio.to_thread(self.sim.settle)
        await self.type(shlex.join(["kubectl", *step.argv]))

    async def failing(self, key: str) -> set[str]:
        status = await self.world.store.objectives(LEARNER, key)
        return {k for k, v in status.items() if not v.passed}

    async def until_unlocked(self, task: TaskBeat, key: str, patience: float = 240.0) -> None:
        """Wait for the live loop to unlock the task by itself. A drill task waits for the
        learner's check with the rest of the board green (the chapter says so): asked once."""
        drill = {o.id for o in task.objectives if o.kind == "recovered"} if task.drill else set()
        deadline = time.monotonic() + patience
        while key not in self.unlocked:
            if time.monotonic() > deadline:
                raise AssertionError(f"{key} did not unlock in {patience}s; open objectives: "
                                     f"{sorted(await self.failing(key))}")  # fmt: skip
            await asyncio.sleep(0.2)
            if drill and key not in self.drilled:
                failing = await self.failing(key)
                if failing and failing <= drill:
                    await asyncio.to_thread(self.sim.settle)
                    self.drilled.add(key)
                    await self.engine.check(self.mission_id, LEARNER, explicit=True)


async def test_chapters_1_to_6_in_the_browser_terminal(emu: KubeEmulator, world: World,
                                                       browser: Any, tmp_path: Path) -> None:  # noqa: F811
    course = load_course()
    sim = SimCluster(emu, "browser-play", tmp_path).start()
    # The workbench's mounted kubeconfig points at the learner's (simulated) cluster.
    emu.write_kubeconfig(tmp_path / "etc" / "kubeconfig" / "config", sim.name)
    home = await world.add_learner(LEARNER, "kepler-play1")
    try:
        async with Learner(course, world, sim, browser) as learner:
            mission = await learner.engine.start(ADDRESS, LEARNER, "Chen")
            learner.mission_id = mission.id
            for number in CHAPTERS:
                task = await learner.read_on_to_task(number)
                ref = await learner.ref()
                key = task_key(course, ref)
                await learner.transport.drain()  # the task's files, on their way to the home
                if number == 1:
                    [shown] = [m.text for _, m, _ in learner.transport.delivered
                               if m.kind == "task"]  # fmt: skip
                    assert "/terminal" in shown and "leave out the `export` line" in shown
                    # The learner does as told: /terminal, and opens the link.
                    await run(browser.get, await world.link(LEARNER))
                    await run(wait_state, browser, "connected")
                    await learner.type("clear; cd ~")
                path = learner_path(course, number)
                if path.files:
                    folder = folder_of(course, ref.chapter)
                    await learner.type(f"clear; cd ~/{folder} && ls")
                    listing = await run(tail, browser, 20)
                    for name in path.files:  # the bot put them there; the test wrote none
                        assert name in listing, listing
                        assert (home / folder / name).read_text() == path.files[name]
                if number > 1:
                    assert key not in learner.unlocked, f"chapter {number} unlocked before any work"
                for step in path.steps:
                    await learner.kubectl(step)
                await learner.until_unlocked(task, key)
                print(f"chapter {number}: unlocked after {learner.commands} commands")
    finally:
        sim.stop()
        emu.clusters.pop(sim.name, None)
