from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.engine.engine import Engine
from bot.store.sqlite import SQLiteStore
from tests.fakes import CannedVoice, RecordingTransport, ScriptedCluster, fixture_course


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "kepler.db") as s:
        yield s


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def cluster() -> ScriptedCluster:
    return ScriptedCluster()


@pytest.fixture
def voice() -> CannedVoice:
    return CannedVoice()


@pytest.fixture
def engine(store, cluster, voice, transport) -> Engine:
    return Engine(fixture_course(), store, cluster, voice, transport)
