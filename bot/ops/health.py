"""``/healthz``, ``/livez`` and ``/metrics`` on one small aiohttp server (``KEPLER_HEALTH_PORT``).

Components register named async checks; ``/healthz`` runs them all concurrently, each bounded
by its timeout, and answers::

    200 {"status": "ok",   "checks": {"gateway": true, "store": true, "host_cluster": true}, ...}
    503 {"status": "fail", "checks": {"gateway": true, "store": false, ...},
         "details": {"store": "timed out after 3.0s"}, ...}

200 only when every *required* check passes; an optional check failing is reported but does
not fail the endpoint. ``/livez`` is 200 while the process serves HTTP at all.

A check returns ``True``/``False``, ``(ok, detail)``, or ``None`` (passes); raising fails it with
the exception's first line (redacted) as the detail. The Discord app registers ``gateway``::

    health.register("gateway", discord_gateway_check(client))
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.logs import redact
from bot.ops.metrics import CONTENT_TYPE_LATEST, Metrics

log = logging.getLogger(__name__)

CheckResult = bool | tuple[bool, str] | None
Check = Callable[[], Awaitable[CheckResult]]


@dataclass(frozen=True)
class _Entry:
    check: Check
    required: bool
    timeout: float


class HealthRegistry:
    """Named async checks; :meth:`run` gives the overall verdict and each one's."""

    def __init__(self, metrics: Metrics | None = None, *, cache_for: float = 1.0) -> None:
        self._checks: dict[str, _Entry] = {}
        self.metrics = metrics
        self.cache_for = cache_for
        self._last: tuple[float, bool, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    def register(
        self, name: str, check: Check, *, required: bool = True, timeout: float = 3.0
    ) -> None:
        """Add or replace a check."""
        self._checks[name] = _Entry(check, required, timeout)
        self._last = None

    def unregister(self, name: str) -> None:
        self._checks.pop(name, None)
        self._last = None

    @property
    def names(self) -> list[str]:
        return sorted(self._checks)

    async def _one(self, name: str, entry: _Entry) -> tuple[str, bool, str, float]:
        began = time.perf_counter()
        try:
            result = await asyncio.wait_for(entry.check(), entry.timeout)
        except TimeoutError:
            ok, detail = False, f"timed out after {entry.timeout:g}s"
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0]
            ok, detail = False, redact(f"{type(exc).__name__}: {first}")[:300]
        else:
            if isinstance(result, tuple):
                ok, detail = bool(result[0]), redact(str(result[1]))[:300]
            else:
                ok, detail = result is None or bool(result), ""
        return name, ok, detail, (time.perf_counter() - began) * 1000

    async def run(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, body)``; results are reused for ``cache_for`` seconds."""
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.cache_for:
                return self._last[1], self._last[2]
            results = await asyncio.gather(*(self._one(n, e) for n, e in self._checks.items()))
            healthy = all(ok for name, ok, _, _ in results if self._checks[name].required)
            body: dict[str, Any] = {
                "status": "ok" if healthy else "fail",
                "checks": {name: ok for name, ok, _, _ in results},
                "details": {name: detail for name, _, detail, _ in results if detail},
                "required": sorted(n for n, e in self._checks.items() if e.required),
                "ms": {name: round(ms, 1) for name, _, _, ms in results},
            }
            if self.metrics is not None:
                for name, ok, _, _ in results:
                    self.metrics.health.labels(name).set(1 if ok else 0)
            self._last = (now, healthy, body)
            return healthy, body


# --- standard checks -----------------------------------------------------------------------


def store_check(store: Any, scope: str = "ops") -> Check:
    """A real write through the bot's own store (settings row ``ops/healthz``), read back."""

    async def check() -> CheckResult:
        stamp = f"{time.time():.6f}"
        await store.set_setting(scope, "healthz", stamp)
        back = await store.get_setting(scope, "healthz")
        return (True, "") if back == stamp else (False, "write did not read back")

    return check


def host_cluster_check(api: Any, timeout: float = 3.0) -> Check:
    """``GET /version`` on the host cluster with the bot's own client."""

    async def check() -> CheckResult:
        from kubernetes import client

        def get() -> str:
            info = client.VersionApi(api).get_code(_request_timeout=timeout)
            return str(getattr(info, "git_version", ""))

        return True, await asyncio.to_thread(get)

    return check


def host_clusters_check(apis: Mapping[str, Any], timeout: float = 3.0) -> Check:
    """Several host clusters (``KEPLER_HOSTS``): healthy while at least one answers.

    One host down must not make the bot unhealthy (learners elsewhere carry on); the detail
    names the ones that did not answer.
    """
    checks = {name: host_cluster_check(api, timeout) for name, api in apis.items()}

    async def one(name: str) -> bool:
        try:
            return (await checks[name]())[0]
        except Exception:
            return False

    async def check() -> CheckResult:
        names = sorted(checks)
        answers = await asyncio.gather(*(one(n) for n in names))
        down = [n for n, ok in zip(names, answers, strict=True) if not ok]
        detail = f"{len(names) - len(down)}/{len(names)} hosts answer"
        return len(down) < len(names), detail + (f"; unreachable: {', '.join(down)}" if down else "")

    return check


def discord_gateway_check(bot: Any) -> Check:
    """Ready, not closed, and the websocket open (discord.py ``Client``)."""

    async def check() -> CheckResult:
        if bot.is_closed():
            return False, "client closed"
        if not bot.is_ready():
            return False, "not ready (connecting or resuming)"
        ws = getattr(bot, "ws", None)
        if ws is None or not getattr(ws, "open", False):
            return False, "gateway websocket not open"
        latency = getattr(bot, "latency", float("inf"))
        return True, f"heartbeat {latency * 1000:.0f} ms" if latency != float("inf") else ""

    return check


# --- the server ------------------------------------------------------------------------------


PROXIED = ("Fly-Client-IP", "X-Forwarded-For", "Forwarded")
"""Headers a public edge adds: a request that carries one is not served ``/metrics``."""


class HealthServer:
    """Serves the registry and the metrics. ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(
        self,
        registry: HealthRegistry,
        metrics: Metrics | None = None,
        *,
        host: str | None = None,
        port: int = 9090,
        static: dict[str, Path] | None = None,
        mounts: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        self.registry = registry
        self.mounts = list(mounts)  # more routes on the same server (the browser terminal)
        self.metrics = metrics
        self.static = static or {}  # URL prefix -> folder of files served as they are
        self.host = host  # None: every interface, IPv4 and IPv6 (Fly checks and scrapes on both)
        self._port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/metrics", self._metrics)
        for prefix, folder in self.static.items():
            if folder.is_dir():  # e.g. the crew's portraits, for Discord to fetch
                app.router.add_static(prefix, folder, follow_symlinks=False)
        for mount in self.mounts:
            mount(app)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, body = await self.registry.run()
        return web.Response(
            text=json.dumps(body), status=200 if healthy else 503, content_type="application/json"
        )

    async def _livez(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics(self, request: web.Request) -> web.Response:
        # With the browser terminal the server is public; the metrics stay private. A request
        # through a proxy (Fly's edge sets Fly-Client-IP; any proxy X-Forwarded-For) came from
        # outside, while Fly's Prometheus scrapes the private address directly.
        if self.metrics is None or any(h in request.headers for h in PROXIED):
            raise web.HTTPNotFound()
        await self.metrics.refresh()
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def start(self) -> HealthServer:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        await self._site.start()
        log.info("health server listening", extra={"port": self.port})
        return self

    @property
    def port(self) -> int:
        return self._site.port if self._site is not None else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None

    async def __aenter__(self) -> HealthServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
