"""The outbox: a beat's messages and its progress commit together; a crash at any point
between commit and send loses nothing and shows the learner no duplicate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.engine.engine import Engine
from bot.engine.ports import Address, Outgoing
from bot.store.sqlite import SQLiteStore
from tests.fakes import CannedVoice, ScriptedCluster, fixture_course

DM = Address("terminal", "solo", "alex")
STEPS = ["1", "1", "continue"]


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


@dataclass
class Screen:
    """What the learner saw, across restarts; de-duplicates by key like the terminal's ledger."""

    shown: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)


@dataclass
class CrashingTransport:
    screen: Screen
    crash_at: int | None = None  # crash on this delivery (0-based)
    when: str = "before"  # before showing, or after showing but before the mark
    count: int = 0

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
        n, self.count = self.count, self.count + 1
        if n == self.crash_at and self.when == "before":
            raise Crash
        if key not in self.screen.keys:
            self.screen.keys.add(key)
            self.screen.shown.append(message.text)
        if n == self.crash_at and self.when == "after":
            raise Crash

    async def stream(self, address, speaker, chunks):  # pragma: no cover - not used here
        return "".join([c async for c in chunks])


class CrashInUnit(SQLiteStore):
    """Dies inside the transaction, after the messages were queued but before commit."""

    armed = False

    async def update_mission(self, mission_id, **changes):  # type: ignore[no-untyped-def]
        await super().update_mission(mission_id, **changes)
        if self.armed:
            raise Crash


async def _play(path: Path, screen: Screen, *, transport: CrashingTransport | None = None,
                store_cls: type[SQLiteStore] = SQLiteStore, arm_at_step: int | None = None) -> None:
    async with store_cls(path) as store:
        engine = Engine(fixture_course(), store, ScriptedCluster(), CannedVoice(),
                        transport or CrashingTransport(screen))
        await engine.deliver_all()
        mission = await engine.start(DM, "alex", "Alex")
        for i, step in enumerate(STEPS):
            current = await store.get_mission(mission.id)
            answered = await store.answered(mission.id, f"{current.chapter}.{current.beat}")
            if step == "continue":
                if current.chapter == 1 and current.beat == 0:
                    if arm_at_step == i:
                        store.armed = True  # type: ignore[attr-defined]
                    await engine.continue_(mission.id, "alex")
            elif current.chapter == 0 and "alex" not in answered:
                if arm_at_step == i:
                    store.armed = True  # type: ignore[attr-defined]
                await engine.say(mission.id, "alex", step)


async def _reference(tmp_path: Path) -> list[str]:
    screen = Screen()
    await _play(tmp_path / "ref.db", screen)
    return screen.shown


async def test_reference_run_shows_each_line_once(tmp_path: Path):
    shown = await _reference(tmp_path)
    assert shown[0] == "Klaxons sound." and shown[-1] == '"How many nodes are Ready?"'
    assert len(shown) == len(set(shown)) == 7


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("crash_at", range(7))
async def test_crash_between_commit_and_send(tmp_path: Path, when: str, crash_at: int):
    expected = await _reference(tmp_path)
    screen = Screen()
    path = tmp_path / "k.db"
    with pytest.raises(Crash):
        await _play(path, screen, transport=CrashingTransport(screen, crash_at, when))
    await _play(path, screen)  # restart: resend what was committed, then play on
    assert screen.shown == expected


@pytest.mark.parametrize("step", range(len(STEPS)))
async def test_crash_inside_the_transaction_loses_the_input_not_the_story(tmp_path: Path, step: int):
    expected = await _reference(tmp_path)
    screen = Screen()
    path = tmp_path / "k.db"
    with pytest.raises(Crash):
        await _play(path, screen, store_cls=CrashInUnit, arm_at_step=step)
    # Nothing from the rolled-back step was shown; replaying the input completes the story.
    assert screen.shown == expected[: len(screen.shown)]
    await _play(path, screen)
    assert screen.shown == expected
