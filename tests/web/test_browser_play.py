"""A learner with only a browser plays chapters 1-6 from Discord: one headless Chromium, one
terminal page.

``kepler serve``'s composition (``bot.transports.discord.App`` with the browser terminal, the
Discord fakes of ``tests/discord``) runs the story in a DM. The learner starts, answers the
opening's setup question with "only a browser" (so chapter 1's task sends them to
``/terminal``), types ``/terminal`` and opens the link it gives, and for each chapter types
that chapter's own kubectl lines (``tests/playthrough/script.py``) into the xterm page, in the
folder the task names, where the bot put the task's files (``bot/web/missionfiles.py``,
through the exec path; the test writes no file). Between tasks the learner clicks what the bot
posted and answers in the DM. The shell behind the exec endpoint runs real kubectl against a
simulated cluster (``tests/simcluster``) that the App's live loop watches, and each chapter
must unlock by itself (chapter 6's drill starts, as its text says, when the learner presses
Check with the rest of the board green). Everything waits on visible output (a per-command
marker with its exit code) or on the engine's own events, under generous deadlines: no
wall-clock bound is asserted. Reproduce: ``uv run pytest tests/web/test_browser_play.py -q``.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from bot.engine.ports import Address
from bot.transports.discord.app import App
from bot.web.missionfiles import TaskFilesTransport, folder_of
from sandbox.backends.kubeconfig import KubeconfigBackend
from sandbox.service import ClusterService
from tests.discord.conftest import virtual_pacer
from tests.discord.driver import click, last_button
from tests.discord.world import World as DiscordWorld
from tests.emulator import KubeEmulator
from tests.fakes import CannedVoice
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

LEARNER = "discord:42"
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
    """Alex on Discord with a browser: the DM, the bot's buttons, and the terminal page."""

    def __init__(self, course: Course, world: World, sim: SimCluster, driver: Any):
        self.course, self.world, self.sim, self.driver = course, world, sim, driver
        self.unlocked: set[str] = set()
        self.commands = 0
        self.discord = DiscordWorld()
        self.alex = self.discord.user(42, "Alex")
        self.dm = self.alex.dm_channel
        self.mission_id = 0

    def _observe(self, event: str, **fields: Any) -> None:
        if event == "unlock":
            self.unlocked.add(str(fields["task"]))

    async def __aenter__(self) -> Learner:
        self.service = ClusterService(KubeconfigBackend(self.sim.kubeconfig), timeout=10.0)
        self.app = App(bot=self.discord.client, store=self.world.store, course=self.course,
                       cluster=self.service, voice=CannedVoice(), service=self.service,
                       terminal=self.world.web, observe=self._observe,
                       pacer=virtual_pacer())  # fmt: skip
        assert isinstance(self.app.engine.transport, TaskFilesTransport)
        self._watching = asyncio.create_task(self._watch())
        return self

    async def _watch(self) -> None:
        """The App's background loops, every second here: the watcher refresh (every 30 s in
        ``kepler serve``) and the outbox flush (every 60 s there; it posts what a cancelled
        watcher left queued, see ``delivered``)."""
        while True:
            await self.app.watch()
            await self.app.flush()
            await asyncio.sleep(1.0)

    async def __aexit__(self, *exc: object) -> None:
        self._watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watching
        await self.app.close()
        await self.service.aclose()

    async def start(self) -> None:
        await self.app.actions.start(self.discord.interaction(self.alex, self.dm))
        await self.app.drain()
        mission = await self.world.store.find_mission(dm_address(self.dm.id))
        assert mission is not None
        self.mission_id = mission.id

    async def ref(self) -> BeatRef:
        mission = await self.world.store.get_mission(self.mission_id)
        assert mission is not None and mission.state == "running", mission
        return BeatRef(mission.chapter, mission.beat)

    def shown(self) -> str:
        return "\n".join(p.text for p in self.discord.story(self.dm.id))

    async def delivered(self, patience: float = 60.0) -> None:
        """Wait until everything the story queued is posted (an unlock by the live loop posts
        in the loop's own task): the buttons on screen are the current beat's. A watcher the
        refresh cancels as its task unlocks can leave the unlock's messages queued; the App's
        flush posts them (seen after rebasing on 215dbfc)."""
        deadline = time.monotonic() + patience
        while pending := await self.world.store.pending(self.mission_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"the outbox still holds messages after {patience}s: "
                                     f"{[(i.message.kind, i.message.text[:60]) for i in pending]}")
            await asyncio.sleep(0.05)

    async def read_on_to_task(self, number: int) -> TaskBeat:
        """Click and answer until chapter ``number``'s task is open."""
        want = self.course.find_chapter(number)
        for _ in range(200):
            await self.delivered()
            ref = await self.ref()
            beat = self.course.beat(ref)
            if isinstance(beat, TaskBeat) and ref.chapter == want:
                return beat
            if isinstance(beat, TaskBeat):
                raise AssertionError(f"waiting on {task_key(self.course, ref)}, not chapter {number}")
            if isinstance(beat, QuestionBeat) and beat.choices:
                await click(self.app, self.discord, self.alex, self.dm,
                            last_button(self.discord, self.dm.id, f"kepler:choice:{self.mission_id}:"))
            elif isinstance(beat, QuestionBeat):
                text = await self.answer(beat)
                await self.app.actions.message(
                    self.discord.message(self.alex, self.dm, text, []), self.discord.me)
            else:
                await click(self.app, self.discord, self.alex, self.dm,
                            last_button(self.discord, self.dm.id, f"kepler:continue:{self.mission_id}"))
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
        return ("A cluster is many nodes run as one system, so one failure does not stop "
                "everything; controllers recreate lost pods on healthy nodes.")  # fmt: skip

    async def open_terminal(self) -> None:
        """``/terminal``: an ephemeral link, opened in the browser."""
        interaction = self.discord.interaction(self.alex, self.dm)
        await self.app.actions.terminal(interaction)
        [sent] = [p for p in self.discord.posted if p.via == "followup" and "view" in p.kwargs
                  and p.kwargs.get("ephemeral")]  # fmt: skip
        (button,) = sent.kwargs["view"].children
        await run(self.driver.get, button.url)
        await run(wait_state, self.driver, "connected")
        await run(wait_match, self.driver, r"kepler\S*:")  # the shell's prompt: it reads input

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
        learner's Check with the rest of the board green (the chapter says so): pressed once."""
        drill = {o.id for o in task.objectives if o.kind == "recovered"} if task.drill else set()
        pressed = False
        deadline = time.monotonic() + patience
        while key not in self.unlocked:
            if time.monotonic() > deadline:
                raise AssertionError(f"{key} did not unlock in {patience}s; open objectives: "
                                     f"{sorted(await self.failing(key))}")  # fmt: skip
            await asyncio.sleep(0.2)
            if drill and not pressed:
                failing = await self.failing(key)
                if failing and failing <= drill:
                    await asyncio.to_thread(self.sim.settle)
                    pressed = True
                    await click(self.app, self.discord, self.alex, self.dm,
                                last_button(self.discord, self.dm.id, f"kepler:check:{self.mission_id}"))


def dm_address(channel_id: int) -> Address:
    return Address("discord", "solo", str(channel_id))


async def test_chapters_1_to_6_from_discord_in_the_browser_terminal(
        emu: KubeEmulator, world: World, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    course = load_course()
    sim = SimCluster(emu, "browser-play", tmp_path).start()
    # The workbench's mounted kubeconfig points at the learner's (simulated) cluster.
    emu.write_kubeconfig(tmp_path / "etc" / "kubeconfig" / "config", sim.name)
    home = await world.add_learner(LEARNER, "kepler-play1")
    try:
        async with Learner(course, world, sim, browser) as learner:
            await learner.start()
            for number in CHAPTERS:
                task = await learner.read_on_to_task(number)
                ref = await learner.ref()
                key = task_key(course, ref)
                await learner.app.drain()  # the task's files, on their way to the home
                if number == 1:
                    shown = learner.shown()
                    assert "Only a browser" in shown and "leave out the `export` line" in shown
                    assert "brew install" not in shown and "winget" not in shown
                    await learner.open_terminal()  # the learner does as told
                    await learner.type("clear; cd ~")
                path = learner_path(course, number)
                if path.files:
                    folder = folder_of(course, ref.chapter)
                    assert f"`cd ~/{folder}`" in learner.shown()  # the task says where
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
            # each story message reaches Discord once (a watcher stopped mid-delivery left
            # its messages to the outbox's flush, which re-sent them under the same nonce)
            dup = learner.discord.duplicates
            assert dup == [], [(n, [p.text[:80] for p in learner.discord.posted
                                    if p.kwargs.get("nonce") == n]) for n in dup]
    finally:
        sim.stop()
        emu.clusters.pop(sim.name, None)
