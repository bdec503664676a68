"""Online backup under concurrent writes, restore to an identical state, refusals, schedule, CLI."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from bot.cli import main
from bot.engine.ports import Address, Outgoing
from bot.ops import backup as ops
from bot.ops.metrics import Metrics
from bot.store.migrations import MIGRATIONS
from bot.store.sqlite import SQLiteStore


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows, in a stable order, plus the schema version."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
            " ORDER BY name")]  # fmt: skip
        out = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
        out["user_version"] = [conn.execute("PRAGMA user_version").fetchone()]
        return out
    finally:
        conn.close()


async def _seed(store: SQLiteStore, n: int = 50) -> int:
    mission = await store.create_mission(Address("discord", "channel", "c1"), guild="g1")
    for i in range(n):
        await store.ensure_learner(f"u{i}", f"Learner {i}")
        await store.add_member(mission.id, f"u{i}")
    await store.enqueue(mission.id, [Outgoing(kind="story", text="x" * 500) for _ in range(n)])
    return mission.id


async def test_backup_of_a_live_database_under_concurrent_writes(tmp_path: Path):
    db = tmp_path / "kepler.db"
    async with SQLiteStore(db) as store:
        mission_id = await _seed(store, 200)
        written = 0
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal written
            while not stop.is_set():
                async with store.unit():  # progress and outbox together, as the engine does
                    await store.add_transcript("scope", "user", "u1", f"line {written}", 3)
                    await store.enqueue(mission_id, [Outgoing(kind="story", text=str(written))])
                written += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.05)
        assert written > 0
        await store.enqueue(mission_id, [Outgoing(kind="story", text="y" * 2000)] * 3000)
        start = written
        began = time.perf_counter()
        result = await asyncio.to_thread(ops.backup, db, tmp_path / "backups" / "b.db")
        elapsed = time.perf_counter() - began
        during = written - start
        stop.set()
        await task
        assert during > 0  # the writer went on while the backup ran
        print(f"\nbackup: {result.size} bytes in {elapsed * 1000:.1f} ms, {during} units meanwhile")

    assert result.path.exists() and not Path(str(result.path) + ".partial").exists()
    assert ops.integrity(result.path) == ["ok"]
    assert result.schema_version == len(MIGRATIONS)
    snap = dump(result.path)
    # a consistent snapshot: every transcript line has its outbox message (one unit each)
    lines = len(snap["transcripts"])
    assert lines > 0
    assert len(snap["outbox"]) == 200 + 3000 + lines
    assert len(snap["learners"]) == 200
    # one self-contained file: no WAL needed to read it
    assert not Path(str(result.path) + "-wal").exists()
    header = result.path.read_bytes()[18:20]
    assert header == b"\x01\x01"  # rollback journal, not WAL


async def test_restore_brings_back_the_identical_state_and_keeps_the_old_file(tmp_path: Path):
    db = tmp_path / "kepler.db"
    async with SQLiteStore(db) as store:
        await _seed(store, 20)
        await store.set_setting("g1", "channel", "c1")
    saved = ops.backup(db, tmp_path / "b.db").path
    before = dump(saved)

    async with SQLiteStore(db) as store:  # life goes on after the backup
        await store.ensure_learner("late", "Late Comer")
        await store.set_setting("g1", "channel", "c2")
    changed = dump(db)
    assert changed != before

    result = ops.restore(saved, db)
    assert not result.was_live
    assert dump(db) == before
    assert result.aside is not None and dump(result.aside) == changed
    # the bot opens the restored file as usual (WAL, migrations up to date)
    async with SQLiteStore(db) as store:
        assert await store.get_learner("late") is None
        assert await store.get_setting("g1", "channel") == "c1"


async def test_restore_refuses_a_live_database_unless_forced(tmp_path: Path):
    db = tmp_path / "kepler.db"
    async with SQLiteStore(db) as store:
        await _seed(store, 5)
    saved = ops.backup(db, tmp_path / "b.db").path
    async with SQLiteStore(db) as store:
        await store.ensure_learner("late", "Late Comer")
        assert ops.is_live(db)
        before = dump(db)
        with pytest.raises(ops.RestoreRefused, match="open by a running bot"):
            ops.restore(saved, db)
        assert dump(db) == before  # nothing changed
        assert main(["restore", str(saved), "--db", str(db)]) == 2

        result = await asyncio.to_thread(ops.restore, saved, db, force=True)
        assert result.was_live
        # the open connection sees the restored content at once
        assert await store.get_learner("late") is None
        assert await store.get_learner("u1") is not None
    assert not ops.is_live(db)
    assert dump(db) == dump(saved)


def test_restore_refuses_broken_foreign_and_newer_files(tmp_path: Path):
    db = tmp_path / "kepler.db"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with pytest.raises(ops.RestoreRefused):
        ops.restore(junk, db)
    other = tmp_path / "other.db"
    sqlite3.connect(other).executescript("CREATE TABLE t(x); PRAGMA user_version=1;")
    with pytest.raises(ops.RestoreRefused, match="not a Kepler Station database"):
        ops.restore(other, db)
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.executescript("CREATE TABLE learners(x); CREATE TABLE missions(x);"
                       "CREATE TABLE outbox(x); PRAGMA user_version=99;")  # fmt: skip
    conn.close()
    with pytest.raises(ops.RestoreRefused, match="schema version 99"):
        ops.restore(newer, db)
    with pytest.raises(ops.RestoreRefused, match="no backup file"):
        ops.restore(tmp_path / "missing.db", db)
    assert not db.exists()


async def test_scheduler_writes_prunes_and_reports(tmp_path: Path):
    """Four ticks of an injected clock: four backups, pruned to the newest two, reported."""
    db = tmp_path / "kepler.db"
    now = [1_700_000_000.0]
    ticks: list[float] = []
    fourth_done = asyncio.Event()

    async def tick(seconds: float) -> None:
        # The scheduler's wait: no wall clock, the fake time moves by what it asked for.
        ticks.append(seconds)
        if len(ticks) == 5:  # the 5th wait starts only after the 4th backup finished
            fourth_done.set()
            await asyncio.Event().wait()
        now[0] += seconds

    async with SQLiteStore(db) as store:
        await _seed(store, 3)
        metrics = Metrics()
        scheduler = ops.BackupScheduler(db, tmp_path / "backups", every=3600, keep=2,
                                        metrics=metrics, sleep=tick, clock=lambda: now[0])  # fmt: skip
        (tmp_path / "backups").mkdir()
        (tmp_path / "backups" / "notes.txt").write_text("not a backup")
        scheduler.start()
        await asyncio.wait_for(fourth_done.wait(), timeout=120)  # a hang guard, not a limit
        await scheduler.stop()
    assert ticks == [3600] * 5
    files = sorted(p.name for p in (tmp_path / "backups").iterdir())
    start = 1_700_000_000.0
    assert files == sorted([ops.backup_name(start + 3 * 3600), ops.backup_name(start + 4 * 3600),
                            "notes.txt"])  # fmt: skip
    assert dump(tmp_path / "backups" / ops.backup_name(start + 4 * 3600)) == dump(db)
    assert metrics.backup_last_success._value.get() > 0
    assert metrics.backup_bytes._value.get() > 0

    missing = ops.BackupScheduler(tmp_path / "nope.db", tmp_path / "b2", metrics=metrics)
    assert await missing.run_once() is None
    assert metrics.backup_failures._value.get() == 1


async def test_commands_backup_and_restore(tmp_path: Path, monkeypatch, capsys):
    db = tmp_path / "data" / "kepler.db"
    monkeypatch.setenv("KEPLER_DB", str(db))
    monkeypatch.delenv("KEPLER_BACKUP_DIR", raising=False)
    async with SQLiteStore(db) as store:
        await _seed(store, 3)
    assert main(["backup"]) == 0
    made = list((tmp_path / "data" / "backups").glob("kepler-*-manual.db"))
    assert len(made) == 1
    assert main(["backup", "--to", str(tmp_path / "copy.db")]) == 0
    assert main(["backup", "--db", str(tmp_path / "missing.db")]) == 1

    async with SQLiteStore(db) as store:
        await store.ensure_learner("late", "Late")
    assert main(["restore", str(tmp_path / "copy.db")]) == 0
    out = capsys.readouterr().out
    assert "previous database kept at" in out
    assert dump(db) == dump(tmp_path / "copy.db")
