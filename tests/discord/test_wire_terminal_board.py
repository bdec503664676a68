"""The crew board follows browser terminals live, over both real wires.

The real bot (``Station``: discord.py against :class:`LocalDiscord`) and the real browser
terminal (``TerminalWeb`` on the bot's HTTP server, exec sessions on the local exec endpoint,
opened over real WebSockets). When a member's terminal connects or disconnects the board
message in the crew's channel is edited, with no engine step in between; changes are gathered
so a flapping connection costs at most one edit and a connect undone in time none.

The gathering window is the live board's ``sleep``; the test holds it shut and releases it
(a gate instead of a clock), so what lands in one window is decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.engine.ports import Address
from tests.discord.live import Station
from tests.discord.local_discord import LocalDiscord, Posted
from tests.emulator import KubeEmulator
from tests.fakes import ScriptedCluster
from tests.web.conftest import Term, World, kubectl_on_path, make_world, open_terminal

pytestmark = pytest.mark.skipif(not kubectl_on_path(), reason="kubectl is not on PATH")


class Gate:
    """The live board's sleep: returns when the test lets it."""

    def __init__(self) -> None:
        self._open = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        await self._open.wait()
        self._open.clear()

    def release(self) -> None:
        self._open.set()


async def until(what: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not what():
        if time.monotonic() > end:
            raise AssertionError("never happened")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


@pytest.fixture
async def web(emu: KubeEmulator, tmp_path: Path) -> AsyncIterator[World]:
    async for world in make_world(emu, tmp_path / "web"):
        yield world


class Crew:
    """Two members in a channel, the station, and one browser (cookie jar) each."""

    def __init__(self, local: LocalDiscord, station: Station, web: World, channel: int) -> None:
        self.local, self.station, self.web, self.channel = local, station, web, channel
        self.http: dict[str, aiohttp.ClientSession] = {}
        self.terms: dict[str, Term] = {}
        self.gate = Gate()

    def attach(self) -> None:
        assert self.station.app is not None
        self.station.app.live_board.sleep = self.gate.sleep

    def board(self) -> Posted:
        [post] = [m for m in self.local.story(self.channel)
                  if (m.data.get("embeds") or [{}])[0].get("title") == "Crew board"]  # fmt: skip
        return post

    def shown(self, name: str) -> str:
        lines = self.board().data["embeds"][0]["description"].splitlines()
        found = [line for line in lines if line.startswith(f"**{name}**")]
        assert found, f"{name} is not on the board: {lines}"
        return found[0]

    async def connect(self, learner: str) -> None:
        http = self.http[learner]
        if learner not in self.terms:  # the first time through the link, then the page reconnects
            self.terms[learner] = await open_terminal(http, self.web, await self.web.link(learner))
        else:
            self.terms[learner] = Term(http, await http.ws_connect(self.web.base + "/terminal/ws"))
        await until(lambda: learner in self.web.web.connected())

    async def disconnect(self, learner: str) -> None:
        await self.terms[learner].ws.close()  # the tab closes
        await until(lambda: learner not in self.web.web.connected())

    async def window(self) -> int:
        """Let the gathered changes be drawn; the board's new edits."""
        assert self.station.app is not None
        before = self.board().edits
        self.gate.release()
        await until(lambda: not self.station.app.live_board.busy)  # type: ignore[union-attr]
        return self.board().edits - before


async def test_board_marks_terminals_live_and_coalesces_flapping(local: LocalDiscord, web: World,
                                                                 tmp_path: Path, course) -> None:  # fmt: skip
    ana, ben = local.user(101, "Ana"), local.user(102, "Ben")
    A, B = f"discord:{ana}", f"discord:{ben}"
    await web.add_learner(A, "kepler-ana")
    await web.add_learner(B, "kepler-ben")
    channel = local.text_channel(88, "study-group")
    station = Station(local, tmp_path / "kepler.db", course, ScriptedCluster(), terminal=web.web)
    app = await station.start()
    crew = Crew(local, station, web, channel)
    crew.attach()
    jar = aiohttp.CookieJar
    async with aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as ha, \
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as hb:  # fmt: skip
        crew.http = {A: ha, B: hb}
        try:
            assert station.store is not None
            address = Address("discord", "channel", str(channel))
            await local.answered(await local.command(ana, channel, "mission", "start", chapter="1"))
            for _ in range(1500):
                if (mission := await station.store.find_mission(address)) is not None:
                    break
                await asyncio.sleep(0.02)
            assert mission is not None
            await local.answered(await local.command(ben, channel, "mission", "join"))
            await station.settle()
            # The engine draws the board (as it does at a task beat); nobody is connected.
            await station.store.enqueue(mission.id, [await app.engine._board(mission)])
            await app.engine.deliver(mission.id)
            assert "connected" not in crew.shown("Ana") + crew.shown("Ben")

            # One window: Ana connects; Ben's connection flaps three times, then stays.
            await crew.connect(A)
            for _ in range(3):
                await crew.connect(B)
                await crew.disconnect(B)
            await crew.connect(B)
            assert await crew.window() == 1  # one edit for all eight changes
            assert crew.shown("Ana").endswith("terminal connected")
            assert crew.shown("Ben").endswith("terminal connected")

            # Ana closes her tab; Ben drops and comes back within the window.
            await crew.disconnect(A)
            await crew.disconnect(B)
            await crew.connect(B)
            assert await crew.window() == 1
            assert "connected" not in crew.shown("Ana")
            assert crew.shown("Ben").endswith("terminal connected")

            # A change undone within the window edits nothing.
            await crew.disconnect(B)
            await crew.connect(B)
            assert await crew.window() == 0

            # A restart of the bot: the board's rows were kept, so it still follows terminals.
            app = await station.restart()
            crew.attach()
            await crew.connect(A)
            assert await crew.window() == 1
            assert crew.shown("Ana").endswith("terminal connected")
            assert len([m for m in local.story(channel) if m.data.get("embeds")
                        and m.data["embeds"][0].get("title") == "Crew board"]) == 1  # fmt: skip
        finally:
            for term in crew.terms.values():
                await term.ws.close()
            await station.stop()
