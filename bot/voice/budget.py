"""How much the crew may talk: daily tokens per learner and per server, requests per minute.

Usage lives in the store (``voice_usage``) keyed by the *station day*, which starts at
``reset_hour`` UTC ("0600 station time"). Tokens are counted by cost weight: input, output and
cache writes in full, cache reads at a tenth (what they cost). The per-minute rate limit is
kept in memory: it protects the API from a burst, not from a restart.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from bot.store.base import Store

Exhausted = Literal["rate", "learner", "guild"]


class UsageStore(Protocol):
    """The part of :class:`bot.store.base.Store` a budget uses."""

    add_voice_usage = Store.add_voice_usage
    voice_usage = Store.voice_usage


@dataclass(frozen=True)
class BudgetLimits:
    learner_daily_tokens: int = 150_000
    guild_daily_tokens: int = 3_000_000
    requests_per_minute: int = 6
    reset_hour: int = 6  # UTC hour at which the station day turns over


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
        )


def weighted(row: dict[str, int]) -> int:
    return (row.get("input_tokens", 0) + row.get("output_tokens", 0)
            + row.get("cache_creation_tokens", 0) + row.get("cache_read_tokens", 0) // 10)  # fmt: skip


class Budget:
    def __init__(
        self,
        store: UsageStore,
        limits: BudgetLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limits = limits or BudgetLimits()
        self.clock = clock
        self._recent: dict[str, deque[float]] = {}

    def day(self) -> str:
        """The station day: the UTC date, turning over at ``reset_hour``."""
        now = datetime.fromtimestamp(self.clock(), UTC) - timedelta(hours=self.limits.reset_hour)
        return now.date().isoformat()

    async def admit(self, learner_id: str, guild: str | None) -> Exhausted | None:
        """Take one request from the learner's allowance, or say which allowance is spent."""
        now = self.clock()
        recent = self._recent.setdefault(learner_id, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= self.limits.requests_per_minute:
            return "rate"
        day = self.day()
        if weighted(await self.store.voice_usage(day, learner_id=learner_id)) >= (
            self.limits.learner_daily_tokens
        ):
            return "learner"
        if guild is not None and weighted(await self.store.voice_usage(day, guild=guild)) >= (
            self.limits.guild_daily_tokens
        ):
            return "guild"
        recent.append(now)
        return None

    async def record(self, learner_id: str, guild: str | None, usage: Usage) -> None:
        await self.store.add_voice_usage(
            self.day(), learner_id, guild,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
        )  # fmt: skip


def refusal(kind: Exhausted, name: str, reset_hour: int = 6) -> str:
    """The commander explaining, in character, why she is brief this time."""
    at = f"{reset_hour:02d}00 station time"
    if kind == "rate":
        return (f"{name}, one transmission at a time — the comm relay needs a minute to cool. "
                "Here's what I can tell you from the board:")  # fmt: skip
    if kind == "learner":
        return (f"{name}, ARIA's rationing my comm time until {at}. "
                "The mission goes on — short orders from here:")  # fmt: skip
    return (f"{name}, the whole station is on emergency comm rations until {at}. "
            "We keep working — short orders from here:")  # fmt: skip
