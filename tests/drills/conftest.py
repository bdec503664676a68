"""Fault drills: the bot under the failures it will meet in production. Fast and offline;
nothing here asserts on speed beyond generous bounds (benchmarks live in ``bench/``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.content.course import Course, load_course
from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.engine import Engine
from bot.store.sqlite import SQLiteStore
from tests.emulator import KubeEmulator


@pytest.fixture(scope="session")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


@pytest.fixture(scope="session")
def course() -> Course:
    return load_course()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "kepler.db") as s:
        yield s


async def to_task(engine: Engine, mission_id: int, learner_id: str) -> TaskBeat:
    """Answer and continue until the mission waits on a task; that task."""
    for _ in range(20):
        mission = await engine.store.get_mission(mission_id)
        assert mission is not None and mission.state == "running"
        beat = engine.course.beat_at(mission.chapter, mission.beat)
        if isinstance(beat, TaskBeat):
            return beat
        if isinstance(beat, QuestionBeat):
            await engine.say(mission_id, learner_id, "1")
        else:
            await engine.continue_(mission_id, learner_id)
    raise AssertionError("no task reached")
