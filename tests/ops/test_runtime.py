"""start_ops: the server, checks and backup schedule ``kepler serve`` gets in one call."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

import aiohttp

from bot.config import Settings
from bot.ops.runtime import start_ops
from bot.store.sqlite import SQLiteStore
from tests.emulator import KubeEmulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_start_ops_serves_checks_and_backs_up(tmp_path: Path):
    port = _free_port()
    settings = Settings.from_env({
        "KEPLER_DB": str(tmp_path / "kepler.db"), "KEPLER_HEALTH_PORT": str(port),
        "KEPLER_BACKUP_EVERY": "0.001", "KEPLER_BACKUP_KEEP": "3",
    })  # fmt: skip
    with KubeEmulator() as emu:
        async with SQLiteStore(settings.db) as store:
            ops = await start_ops(settings, store, host_api=emu.api_client("host"))
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        body = json.loads(await r.text())
                        assert r.status == 200, body
                    assert body["checks"] == {"store": True, "host_cluster": True}
                    await asyncio.sleep(0.3)
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                        page = await r.text()
                assert 'kepler_kube_requests_total{code="2xx",method="GET",target="host"}' in page
                assert "kepler_backup_size_bytes" in page
            finally:
                await ops.stop()
                for name in ("discord.http", "discord.gateway"):
                    logging.getLogger(name).handlers.clear()
    backups = list((tmp_path / "backups").glob("kepler-*.db"))
    assert 1 <= len(backups) <= 3
