"""Prometheus metrics for Kepler Station, on a registry of their own (served at ``/metrics``).

Wiring (``kepler serve``)::

    metrics = Metrics()
    engine = Engine(..., observe=metrics.observe)            # checks, unlocks, deliveries
    metrics.track_store(settings.db, idle_after=...)          # learners, missions, sandboxes
    metrics.track_sandboxes(manager)                          # optional: host view, with spares
    metrics.instrument_client(host_api, "host")               # Kubernetes requests to the host
    ClusterService(backend, instrument=metrics.instrument_client)  # … and to learners' clusters
    Budget(MeteredUsageStore(store, metrics))                  # LLM tokens
    install_discord_rate_limit_counter(metrics)                # or call metrics.discord_rate_limited()

Unlock latency (``kepler_unlock_latency_seconds``) is measured from the start of the cluster
read that found every objective holding (the ``check`` event's time minus its ``seconds``) to
the end of the first delivery (``delivered``) after the ``unlock`` in the same asyncio task —
the moment the learner's Discord channel shows the unlock. It leaves out the wait between the
learner's change and that read (the watch fires within about a second of the change).

Observing never raises: a metrics bug must not break a learner's mission.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MeteredUsageStore",
    "Metrics",
    "install_discord_rate_limit_counter",
]

UNLOCK_MAX_AGE = 600.0  # a "delivered" later than this after the read is not this unlock's
CHECK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0)
UNLOCK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
PHASES = ("provisioning", "ready", "paused", "failed", "deleting", "spare", "waiting")

_read_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "kepler_read_started", default=None
)
_unlock_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "kepler_unlock_started", default=None
)

Refresher = Callable[[], Awaitable[None]]


class Metrics:
    """Every metric the bot exports, plus the adapters that feed them."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        version: str = "",
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.clock = clock
        self._refreshers: list[Refresher] = []
        self._host_view = False
        r = self.registry
        self.build_info = Gauge("kepler_build_info", "Always 1; the version label.", ["version"],
                                registry=r)  # fmt: skip
        self.build_info.labels(version or _version()).set(1)
        self.active_learners = Gauge(
            "kepler_active_learners",
            "Learners in a running mission who acted within the idle window.",
            registry=r,
        )
        self.active_missions = Gauge(
            "kepler_active_missions",
            "Running missions with at least one member active within the idle window.",
            registry=r,
        )
        self.running_missions = Gauge(
            "kepler_running_missions", "Missions in state running (active or not).", registry=r
        )
        self.sandboxes = Gauge("kepler_sandboxes", "Learner sandboxes by phase.", ["phase"],
                               registry=r)  # fmt: skip
        for phase in PHASES:
            self.sandboxes.labels(phase).set(0)
        self.check_seconds = Histogram(
            "kepler_check_duration_seconds",
            "Reading a learner's cluster and judging a task's objectives.",
            ["outcome"],
            buckets=CHECK_BUCKETS,
            registry=r,
        )
        self.unlock_latency = Histogram(
            "kepler_unlock_latency_seconds",
            "Start of the read that found a task done → unlock message delivered.",
            buckets=UNLOCK_BUCKETS,
            registry=r,
        )
        self.unlocks = Counter("kepler_unlocks", "Tasks a learner completed.", registry=r)
        self.delivered = Counter(
            "kepler_messages_delivered", "Outbox messages delivered to a transport.", registry=r
        )
        self.kube_requests = Counter(
            "kepler_kube_requests",
            "Kubernetes API requests by target (host | learner), method and status class.",
            ["target", "method", "code"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "kepler_llm_tokens",
            "Model tokens by kind: input, output, cache_read, cache_creation.",
            ["kind"],
            registry=r,
        )
        for kind in ("input", "output", "cache_read", "cache_creation"):
            self.llm_tokens.labels(kind)
        self.llm_requests = Counter("kepler_llm_requests", "Model calls recorded.", registry=r)
        self.discord_rate_limits = Counter(
            "kepler_discord_rate_limits",
            "Times Discord rate-limited the bot (scope: bucket, global, gateway).",
            ["scope"],
            registry=r,
        )
        for scope in ("bucket", "global", "gateway"):
            self.discord_rate_limits.labels(scope)
        self.discord_rate_limit_wait = Counter(
            "kepler_discord_rate_limit_wait_seconds",
            "Seconds Discord asked the bot to wait.",
            registry=r,
        )
        self.backup_last_success = Gauge(
            "kepler_backup_last_success_timestamp_seconds",
            "Unix time of the last good backup.",
            registry=r,
        )
        self.backup_seconds = Gauge(
            "kepler_backup_duration_seconds", "Duration of the last backup.", registry=r
        )
        self.backup_bytes = Gauge("kepler_backup_size_bytes", "Size of the last backup.",
                                  registry=r)  # fmt: skip
        self.backup_failures = Counter("kepler_backup_failures", "Failed backups.", registry=r)
        self.health = Gauge("kepler_health_check_up", "1 when a health check passes.", ["check"],
                            registry=r)  # fmt: skip

    # --- the engine's observe hook ----------------------------------------------------------

    def observe(self, event: str, **fields: Any) -> None:
        """Pass as ``Engine(observe=...)``: ``check``, ``unlock``, ``delivered``."""
        try:
            now = self.clock()
            if event == "check":
                seconds = max(0.0, float(fields.get("seconds", 0.0)))
                outcome = ("error" if fields.get("error")
                           else "passed" if fields.get("passed") else "failed")  # fmt: skip
                self.check_seconds.labels(outcome).observe(seconds)
                _read_started.set(now - seconds)
                _unlock_started.set(None)
            elif event == "unlock":
                self.unlocks.inc()
                _unlock_started.set(_read_started.get())
            elif event == "delivered":
                self.delivered.inc(max(0, int(fields.get("count", 1))))
                started = _unlock_started.get()
                if started is not None and 0 <= now - started <= UNLOCK_MAX_AGE:
                    self.unlock_latency.observe(now - started)
                _unlock_started.set(None)
        except Exception:  # never into the engine
            log.debug("metrics: observe %s failed", event, exc_info=True)

    # --- other components' hooks ------------------------------------------------------------

    def instrument_client(self, api: Any, target: str = "learner") -> Any:
        """Count every request an ``kubernetes.client.ApiClient`` sends (all go through
        ``call_api``). Idempotent; returns the same client."""
        if getattr(api, "_kepler_metered", False):
            return api
        original = api.call_api
        counter = self.kube_requests

        def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            try:
                resp = original(method, url, *args, **kwargs)
            except Exception:
                counter.labels(target, str(method).upper(), "error").inc()
                raise
            status = getattr(resp, "status", None)
            code = f"{int(status) // 100}xx" if isinstance(status, int) else "unknown"
            counter.labels(target, str(method).upper(), code).inc()
            return resp

        api.call_api = call_api
        api._kepler_metered = True
        return api

    def learner_request(self, method: str, code: str) -> None:
        """One request to a learner's cluster sent outside an ApiClient (the bot's reads and
        watches on the event loop); ``code`` is ``2xx``, ``4xx``, … or ``error``."""
        self.kube_requests.labels("learner", method, code).inc()

    def llm_usage(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_creation_tokens: int = 0,
        requests: int = 1,
    ) -> None:
        for kind, n in (("input", input_tokens), ("output", output_tokens),
                        ("cache_read", cache_read_tokens),
                        ("cache_creation", cache_creation_tokens)):  # fmt: skip
            if n > 0:
                self.llm_tokens.labels(kind).inc(n)
        if requests > 0:
            self.llm_requests.inc(requests)

    def discord_rate_limited(self, scope: str = "bucket", retry_after: float | None = None) -> None:
        """Call when Discord answers 429 or the gateway throttles (scope: bucket, global,
        gateway)."""
        self.discord_rate_limits.labels(scope).inc()
        if retry_after and retry_after > 0:
            self.discord_rate_limit_wait.inc(retry_after)

    def backup_done(self, seconds: float, size: int, at: float | None = None) -> None:
        self.backup_seconds.set(seconds)
        self.backup_bytes.set(size)
        self.backup_last_success.set(at if at is not None else time.time())

    def backup_failed(self) -> None:
        self.backup_failures.inc()

    # --- gauges read at scrape time ---------------------------------------------------------

    def add_refresher(self, refresher: Refresher) -> None:
        """An async callable run before each scrape to update gauges."""
        self._refreshers.append(refresher)

    def track_store(self, db_path: str | Path, *, idle_after: float = 3600.0) -> None:
        """Learners, missions and (unless :meth:`track_sandboxes`) sandboxes by phase, read
        from the SQLite file over a separate read-only connection (never the bot's lock)."""
        path = str(db_path)

        async def refresh() -> None:
            counts = await asyncio.to_thread(store_counts, path, time.time() - idle_after)
            self.active_learners.set(counts["learners"])
            self.active_missions.set(counts["missions"])
            self.running_missions.set(counts["running"])
            if not self._host_view:
                self.set_sandbox_phases(counts["phases"])

        self.add_refresher(refresh)

    def track_sandboxes(self, manager: Any, *, every: float = 60.0) -> None:
        """Sandboxes by phase as the host sees them (``SandboxManager.list()``, includes
        spares). At most one listing per ``every`` seconds: it costs two host requests."""
        self._host_view = True
        last = [float("-inf")]

        async def refresh() -> None:
            if time.monotonic() - last[0] < every:
                return
            last[0] = time.monotonic()
            rows = await manager.list()
            self.set_sandbox_phases(Tally(info.phase for info, _record in rows))

        self.add_refresher(refresh)

    def set_sandbox_phases(self, counts: Mapping[str, int]) -> None:
        for phase in set(PHASES) | set(counts):
            self.sandboxes.labels(phase).set(counts.get(phase, 0))

    async def refresh(self, timeout: float = 5.0) -> None:
        """Run every refresher (each bounded by ``timeout``); failures are logged, not raised."""

        async def one(refresher: Refresher) -> None:
            try:
                await asyncio.wait_for(refresher(), timeout)
            except Exception as exc:
                log.warning("metrics refresh failed: %s", exc)

        await asyncio.gather(*(one(r) for r in self._refreshers))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def store_counts(path: str, active_since: float) -> dict[str, Any]:
    """Counts for the gauges, from a read-only connection; zeros for a file not yet migrated."""
    out: dict[str, Any] = {"learners": 0, "missions": 0, "running": 0, "phases": {}}
    if not Path(path).exists():
        return out
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if {"members", "missions"} <= tables:
            active = (
                " FROM members x JOIN missions m ON m.id = x.mission_id"
                " WHERE x.left = 0 AND m.state = 'running' AND x.last_active >= ?"
            )
            out["learners"] = conn.execute(
                "SELECT count(DISTINCT x.learner_id)" + active, (active_since,)
            ).fetchone()[0]
            out["missions"] = conn.execute(
                "SELECT count(DISTINCT x.mission_id)" + active, (active_since,)
            ).fetchone()[0]
            out["running"] = conn.execute(
                "SELECT count(*) FROM missions WHERE state = 'running'"
            ).fetchone()[0]
        if "sandboxes" in tables:
            out["phases"] = dict(
                conn.execute("SELECT phase, count(*) FROM sandboxes GROUP BY phase").fetchall()
            )
    finally:
        conn.close()
    return out


class MeteredUsageStore:
    """Wraps the store handed to :class:`bot.voice.budget.Budget` so every recorded model call
    also counts its tokens: ``Budget(MeteredUsageStore(store, metrics))``."""

    def __init__(self, inner: Any, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def add_voice_usage(
        self, day: str, learner_id: str, guild: str | None, **usage: int
    ) -> None:
        await self._inner.add_voice_usage(day, learner_id, guild, **usage)
        self._metrics.llm_usage(**usage)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _RateLimitLogCounter(logging.Handler):
    """Counts discord.py's own rate-limit warnings (it retries 429s internally and only
    logs them)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.WARNING)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        text = str(record.msg)
        args = record.args if isinstance(record.args, tuple) else ()
        wait = next((a for a in reversed(args) if isinstance(a, float)), None)
        if text.startswith("We are being rate limited"):
            self.metrics.discord_rate_limited("bucket", wait)
        elif text.startswith("Global rate limit has been hit"):
            self.metrics.discord_rate_limited("global", wait)
        elif "is ratelimited, waiting" in text:
            self.metrics.discord_rate_limited("gateway", wait)


def install_discord_rate_limit_counter(metrics: Metrics) -> logging.Handler:
    """Attach a counter to the ``discord.http`` and ``discord.gateway`` loggers."""
    handler = _RateLimitLogCounter(metrics)
    for name in ("discord.http", "discord.gateway"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.WARNING:  # KEPLER_LOG_LEVEL=ERROR still counts
            logger.setLevel(logging.WARNING)
        logger.addHandler(handler)
    return handler


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("kepler-station")
    except Exception:
        return "unknown"
