"""Everything operational that ``kepler serve`` starts, in one call.

Usage::

    ops = await start_ops(settings, store, host_api=backend.kube.api, manager=manager)
    engine = Engine(..., observe=ops.metrics.observe)
    ops.health.register("gateway", discord_gateway_check(client))
    ...
    await ops.stop()   # on SIGTERM, before closing the store
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.config import Settings
from bot.ops.backup import BackupScheduler, from_settings
from bot.ops.health import HealthRegistry, HealthServer, host_cluster_check, store_check
from bot.ops.metrics import Metrics, install_discord_rate_limit_counter

log = logging.getLogger(__name__)


@dataclass
class Ops:
    metrics: Metrics
    health: HealthRegistry
    server: HealthServer | None
    backups: BackupScheduler | None

    async def stop(self) -> None:
        if self.backups is not None:
            await self.backups.stop()
        if self.server is not None:
            await self.server.stop()


async def start_ops(
    settings: Settings,
    store: Any,
    *,
    host_api: Any | None = None,
    manager: Any | None = None,
    metrics: Metrics | None = None,
    mounts: Sequence[Callable[[web.Application], None]] = (),
) -> Ops:
    """Metrics (store gauges, host sandbox view, Discord rate-limit counter), the health
    registry with ``store`` and ``host_cluster`` checks, the HTTP server on
    ``KEPLER_HEALTH_PORT`` (0: none) and the backup schedule (``KEPLER_BACKUP_EVERY`` 0: none).
    """
    metrics = metrics or Metrics()
    metrics.track_store(settings.db, idle_after=settings.idle_seconds)
    if manager is not None:
        metrics.track_sandboxes(manager)
    install_discord_rate_limit_counter(metrics)
    health = HealthRegistry(metrics)
    health.register("store", store_check(store))
    if host_api is not None:
        metrics.instrument_client(host_api, "host")
        health.register("host_cluster", host_cluster_check(host_api))
    server = None
    if settings.health_port > 0:
        portraits = {"/portraits": Path(settings.personas) / "portraits"}  # KEPLER_PUBLIC_URL
        server = await HealthServer(
            health, metrics, port=settings.health_port, static=portraits, mounts=mounts
        ).start()
    backups = from_settings(settings, metrics)
    if backups is not None:
        backups.start()
    return Ops(metrics, health, server, backups)
