"""Discord's invalid requests (401, 403, 429), counted as Discord counts them.

More than 10,000 invalid requests in 10 minutes get the bot's IP banned from Discord for a
while, so the count is a metric (``kepler_discord_invalid_requests_total``) and kept over a
sliding 10-minute window. A 429 whose ``X-RateLimit-Scope`` is ``shared`` does not count
(Discord's rule). Requests are seen through discord.py's documented ``http_trace`` option (an
``aiohttp.TraceConfig``), so every REST call of the client and its webhooks is counted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

INVALID = (401, 403, 429)
WINDOW = 600.0  # Discord's window: 10 minutes
LIMIT = 10_000  # per window, before a temporary IP ban


class InvalidRequests:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, registry: Any = None):
        self.clock = clock
        self.total = 0
        self._times: deque[float] = deque()
        self._counter: Any = None
        if registry is not None:
            self.attach(registry)

    def attach(self, registry: Any) -> None:
        """Also count on a Prometheus registry (the bot's ``/metrics``)."""
        from prometheus_client import Counter

        self._counter = Counter(
            "kepler_discord_invalid_requests",
            "Discord answers that count toward its invalid-request limit (401/403/429).",
            ["status"],
            registry=registry,
        )

    def record(self, status: int, scope: str | None = None) -> None:
        if status not in INVALID or (status == 429 and scope == "shared"):
            return
        self.total += 1
        self._times.append(self.clock())
        if self._counter is not None:
            self._counter.labels(str(status)).inc()

    def in_window(self) -> int:
        """Invalid requests in the last 10 minutes."""
        cutoff = self.clock() - WINDOW
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()
        return len(self._times)

    def trace_config(self) -> aiohttp.TraceConfig:
        """For ``discord.Client(http_trace=...)``."""
        trace = aiohttp.TraceConfig()

        async def on_end(session: Any, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
            response = params.response
            self.record(response.status, response.headers.get("X-RateLimit-Scope"))

        trace.on_request_end.append(on_end)
        return trace
