"""Migrations apply from an empty file and from every earlier version, keeping the data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.engine.ports import Address, Outgoing
from bot.store.migrations import MIGRATIONS
from bot.store.sqlite import SQLiteStore


async def test_empty_file_reaches_the_latest_version(tmp_path: Path):
    async with SQLiteStore(tmp_path / "k.db") as store:
        assert await store.schema_version() == len(MIGRATIONS)
        mode = await store._one("PRAGMA journal_mode")
        assert mode[0] == "wal"


@pytest.mark.parametrize("start", range(1, len(MIGRATIONS)))
async def test_upgrade_from_each_earlier_version_keeps_data(tmp_path: Path, start: int):
    path = tmp_path / "k.db"
    async with SQLiteStore(path, migrations=MIGRATIONS[:start]) as old:
        assert await old.schema_version() == start
        await old.ensure_learner("alex", "Alex Chen")
        mission = await old.create_mission(Address("terminal", "solo", "alex"))
        await old.enqueue(mission.id, [Outgoing(kind="line", text="kept")])
    async with SQLiteStore(path) as new:
        assert await new.schema_version() == len(MIGRATIONS)
        assert (await new.get_learner("alex")).name == "Alex Chen"
        [item] = await new.pending(mission.id)
        assert item.message.text == "kept"
    # A second start applies nothing and changes nothing.
    async with SQLiteStore(path) as again:
        assert await again.schema_version() == len(MIGRATIONS)


async def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path):
    path = tmp_path / "k.db"
    broken = [*MIGRATIONS, "CREATE TABLE learners (id TEXT);"]  # clashes with migration 1
    with pytest.raises(sqlite3.OperationalError):
        async with SQLiteStore(path, migrations=broken):
            pass
    async with SQLiteStore(path) as store:
        assert await store.schema_version() == len(MIGRATIONS)
