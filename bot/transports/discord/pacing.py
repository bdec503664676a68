"""Pacing story posts inside Discord's per-channel rate limit.

Discord lets a bot post about 5 messages per 5 seconds in one channel; beyond that it answers
429 and discord.py waits. A scene grouped into few posts rarely comes near it, but a crew's
channel also gets boards and replies, so posts to one channel are spaced to at most
``rate`` per ``per`` seconds, leaving headroom instead of meeting the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

RATE = 4  # posts
PER = 5.0  # seconds


class Pacer:
    def __init__(
        self,
        rate: int = RATE,
        per: float = PER,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.rate = rate
        self.per = per
        self.clock = clock
        self.sleep = sleep
        self._sent: dict[int, deque[float]] = {}
        self.waited = 0.0  # total seconds spent waiting, for tests and logs

    async def wait(self, channel_id: int) -> None:
        """Return when one more post to ``channel_id`` stays within the pace."""
        sent = self._sent.setdefault(channel_id, deque())
        while True:
            now = self.clock()
            while sent and sent[0] <= now - self.per:
                sent.popleft()
            if len(sent) < self.rate:
                sent.append(now)
                return
            delay = sent[0] + self.per - now
            self.waited += delay
            await self.sleep(delay)


class VirtualTime:
    """A clock and a sleep that only move each other: pacing without waiting (tests, benches)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
