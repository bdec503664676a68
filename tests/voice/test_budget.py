"""Budgets: per-minute rate, daily tokens per learner and per server, the station day."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.store.sqlite import SQLiteStore
from bot.voice.budget import Budget, BudgetLimits, Usage, refusal


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now


async def test_rate_limit_per_learner(store: SQLiteStore) -> None:
    clock = Clock(datetime(2025, 3, 1, 12, tzinfo=UTC))
    b = Budget(store, BudgetLimits(requests_per_minute=2), clock=clock)
    assert await b.admit("chen", "g") is None
    assert await b.admit("chen", "g") is None
    assert await b.admit("chen", "g") == "rate"
    assert await b.admit("rivera", "g") is None  # someone else is unaffected
    clock.now += 61
    assert await b.admit("chen", "g") is None


async def test_daily_learner_and_guild_caps(store: SQLiteStore) -> None:
    clock = Clock(datetime(2025, 3, 1, 12, tzinfo=UTC))
    b = Budget(store, BudgetLimits(learner_daily_tokens=1000, guild_daily_tokens=1500,
                                   requests_per_minute=100), clock=clock)  # fmt: skip
    await b.record("chen", "g", Usage(input_tokens=600, output_tokens=300, cache_read_tokens=1000))
    assert await b.admit("chen", "g") == "learner"  # 600 + 300 + 1000/10
    assert await b.admit("rivera", "g") is None
    await b.record("rivera", "g", Usage(input_tokens=600))
    assert await b.admit("rivera", "g") == "guild"
    assert await b.admit("rivera", "other-server") is None
    usage = await store.voice_usage(b.day(), learner_id="chen")
    assert usage["cache_read_tokens"] == 1000 and usage["requests"] == 1


async def test_station_day_turns_over_at_0600(store: SQLiteStore) -> None:
    clock = Clock(datetime(2025, 3, 2, 5, 59, tzinfo=UTC))
    b = Budget(store, BudgetLimits(learner_daily_tokens=10), clock=clock)
    assert b.day() == "2025-03-01"
    await b.record("chen", None, Usage(input_tokens=50))
    assert await b.admit("chen", None) == "learner"
    clock.now += 120
    assert b.day() == "2025-03-02"
    assert await b.admit("chen", None) is None


def test_refusals_are_in_character() -> None:
    assert "ARIA's rationing my comm time until 0600 station time" in refusal("learner", "Chen")
    assert refusal("guild", "Chen").startswith("Chen,")
    assert "one transmission at a time" in refusal("rate", "Chen")
