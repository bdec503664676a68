from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.content.course import load_course
from bot.store.sqlite import SQLiteStore
from bot.transports.discord.app import App
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


def make_app(world: World, store, course, cluster, **kw) -> App:
    return App(bot=world.client, store=store, course=course, cluster=cluster,
               voice=CannedVoice(), **kw)  # fmt: skip
