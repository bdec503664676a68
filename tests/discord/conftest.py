from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.content.course import load_course
from bot.store.sqlite import SQLiteStore
from bot.transports.discord.app import App
from bot.transports.discord.pacing import Pacer, VirtualTime
from tests.discord.local_discord import LocalDiscord, pointed_at
from tests.discord.world import World
from tests.fakes import CannedVoice, ScriptedCluster


class LoggedCluster(ScriptedCluster):
    """A scripted cluster that notes when it was read, next to the interaction's own log."""

    log: list[str] | None = None

    async def evaluate(self, learner_id, objectives, ctx):  # type: ignore[override]
        if self.log is not None:
            self.log.append("evaluate")
        return await super().evaluate(learner_id, objectives, ctx)


@pytest.fixture(scope="session")
def course():
    return load_course()


@pytest.fixture
async def local() -> AsyncIterator[LocalDiscord]:
    """A local server that answers as Discord does, with discord.py pointed at it."""
    server = await LocalDiscord().start()
    with pointed_at(server):
        yield server
    await server.stop()


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "kepler.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(db) as s:
        yield s


@pytest.fixture
def cluster() -> LoggedCluster:
    return LoggedCluster()


def virtual_pacer() -> Pacer:
    """Discord's pacing in virtual time: the same decisions, no waiting."""
    time = VirtualTime()
    return Pacer(clock=time.clock, sleep=time.sleep)


def make_app(world: World, store, course, cluster, **kw) -> App:
    kw.setdefault("pacer", virtual_pacer())
    return App(bot=world.client, store=store, course=course, cluster=cluster,
               voice=CannedVoice(), **kw)  # fmt: skip
