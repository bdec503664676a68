"""The real bot (``App`` + ``KeplerBot``) connected to :class:`LocalDiscord` over loopback.

``Station`` starts the bot as ``kepler serve`` would (login over REST, the gateway, the
``setup_hook`` with commands and persistent buttons) against a store file; ``restart`` stops
it and starts a new one over the same file, as a redeploy does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from bot.store.sqlite import SQLiteStore
from bot.transports.discord.app import App
from bot.transports.discord.client import KeplerBot
from bot.transports.discord.invalid import InvalidRequests
from tests.discord.local_discord import LocalDiscord
from tests.fakes import CannedVoice


class Station:
    def __init__(self, local: LocalDiscord, db: Path, course: Any, cluster: Any, **app: Any):
        self.local = local
        self.db = db
        self.course = course
        self.cluster = cluster
        self.app_options = app
        self.app: App | None = None
        self.store: SQLiteStore | None = None
        self.invalid = InvalidRequests(clock=app.get("clock", time.monotonic))
        self._runner: asyncio.Task[Any] | None = None

    async def start(self) -> App:
        self.local.identified.clear()
        self.store = await SQLiteStore(self.db).__aenter__()
        bot = KeplerBot(guild_ready_timeout=0.05, http_trace=self.invalid.trace_config())
        self.app = App(bot=bot, store=self.store, course=self.course, cluster=self.cluster,
                       voice=CannedVoice(), invalid=self.invalid,
                       **self.app_options)  # fmt: skip
        self._runner = asyncio.create_task(bot.start("local-token"))
        await asyncio.wait_for(self._ready(bot), 20)
        return self.app

    async def _ready(self, bot: KeplerBot) -> None:
        while not bot.is_ready():
            if self._runner is not None and self._runner.done():
                self._runner.result()  # the login or the gateway failed: say why
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.close()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._runner, 10)
        if self.store is not None:
            await self.store.__aexit__(None, None, None)
        self.app = self.store = self._runner = None

    async def restart(self) -> App:
        await self.stop()
        return await self.start()

    async def settle(self) -> None:
        """Let the bot finish what the last events started (dispatch runs in tasks)."""
        assert self.app is not None
        for _ in range(3):
            await asyncio.sleep(0.05)
            while self.app._work:
                await asyncio.sleep(0.02)
