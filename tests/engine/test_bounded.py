"""Memory stays flat: per-mission structures are forgotten, delivered messages are pruned.

10,000 missions are started (each plays to its first question: several messages through the
outbox) and closed, against a real (in-memory) SQLite store; the Python heap's block count
(``sys.getallocatedblocks``: every live object and buffer) after the last one is compared
with the count after the first thousand. A leak of one small object per mission would show
as 9,000 blocks; the bound is a third of that. (It takes about a minute on a busy 2-core
machine: ~6 ms per mission.)
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import pytest

from bot.engine.engine import KEEP_SENT, Engine
from bot.engine.ports import Address, Outgoing
from bot.store.sqlite import SQLiteStore
from bot.transports.terminal import Ledger
from tests.fakes import CannedVoice, ScriptedCluster, fixture_course

MISSIONS = 10_000
WARM = 1_000


class CountingTransport:
    """Shows nothing, keeps nothing but a count (a real transport keeps nothing either)."""

    def __init__(self) -> None:
        self.count = 0

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
        self.count += 1

    async def stream(self, address, speaker, chunks):  # type: ignore[no-untyped-def]
        return "".join([c async for c in chunks])


@pytest.mark.timeout(600)
async def test_memory_is_flat_over_ten_thousand_missions(tmp_path: Path):
    transport = CountingTransport()
    # In memory: the same SQL without ten thousand fsyncs (the store's rows are data, and live
    # in SQLite's own heap; what is measured is the Python side).
    async with SQLiteStore(":memory:") as store:
        engine = Engine(fixture_course(), store, ScriptedCluster(), CannedVoice(), transport)
        baseline = 0
        for n in range(MISSIONS):
            address = Address("terminal", "solo", f"learner-{n}")
            mission = await engine.start(address, f"l{n}", f"Learner {n}")
            assert await engine.close(mission.id)
            if n + 1 == WARM:
                gc.collect()
                baseline = sys.getallocatedblocks()
        gc.collect()
        grown = sys.getallocatedblocks() - baseline
    assert transport.count >= 3 * MISSIONS  # every mission really played its opening
    assert len(engine._locks) == 0 and len(engine._send_locks) == 0
    assert grown < 3_000, f"heap grew {grown} blocks over {MISSIONS - WARM} missions"


async def test_delivered_messages_and_their_marks_are_pruned(tmp_path: Path):
    now = [time.time()]
    ledger = Ledger(tmp_path / "printed")

    class LedgerTransport(CountingTransport):
        async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
            ledger.add(key)

        async def forget_sent(self, upto: int) -> None:
            ledger.forget(upto)

    async with SQLiteStore(tmp_path / "k.db") as store:
        engine = Engine(fixture_course(), store, ScriptedCluster(), CannedVoice(),
                        LedgerTransport(), clock=lambda: now[0])  # fmt: skip
        mission = await engine.start(Address("terminal", "solo", "a"), "a", "A")
        assert len(ledger.keys) == 3
        assert await engine.prune() == 0  # delivered just now: kept
        now[0] += KEEP_SENT + 1
        upto = await engine.prune()
        assert upto > 0 and ledger.keys == set()
        assert (tmp_path / "printed").read_text() == ""
        rows = await store._rows("SELECT COUNT(*) AS n FROM outbox")
        assert rows[0]["n"] == 0
        await store.set_setting("discord:sent", f"out-{upto}.1", "9")
        await store.set_setting("discord:sent", f"out-{upto + 1}", "9")
        await store.prune_ledger("discord:sent", upto)
        assert await store.get_setting("discord:sent", f"out-{upto}.1") is None
        assert await store.get_setting("discord:sent", f"out-{upto + 1}") == "9"
        await engine.continue_(mission.id, "a")  # the story goes on after a prune
        assert not await store.pending(mission.id)
