"""The store keeps which host cluster holds each sandbox; older files migrate to host ''."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.store.migrations import MIGRATIONS
from bot.store.sqlite import SQLiteStore
from sandbox.backends.base import SandboxRecord

HOST_MIGRATION = next(i for i, m in enumerate(MIGRATIONS) if "ADD COLUMN host" in m)


async def test_host_round_trips_and_updates(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "k.db") as store:
        record = SandboxRecord("ada", "vcluster", "kepler-1", "ready", 1.0, 2.0, host="ams")
        await store.save_sandbox(record)
        assert (await store.get_sandbox("ada")).host == "ams"
        await store.save_sandbox(replace(record, host="fra"))  # moved on reset
        assert [r.host for r in await store.sandboxes()] == ["fra"]


async def test_records_from_before_hosts_read_as_the_only_host(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    async with SQLiteStore(path, migrations=MIGRATIONS[:HOST_MIGRATION]) as old:
        await old._write(
            "INSERT INTO sandboxes(learner_id, backend, name, phase, created, last_active)"
            " VALUES ('ada', 'vcluster', 'kepler-1', 'paused', 1.0, 2.0)")
    async with SQLiteStore(path) as new:
        record = await new.get_sandbox("ada")
        assert (record.name, record.phase, record.host) == ("kepler-1", "paused", "")
