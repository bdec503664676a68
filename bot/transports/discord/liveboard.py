"""The crew board follows terminals live: a member's terminal connects or disconnects, their
crew's board is edited to say so.

The browser terminal tells :meth:`LiveBoard.changed` (``bot.core.presence``); nothing is sent
then. Changes are gathered for ``delay`` seconds and each board showing any of those learners
is redrawn once (:meth:`DiscordTransport.redraw_board`: an edit, skipped when its text would not
change). So a flapping connection, or a whole crew connecting at once, costs at most one edit
per board per ``delay``, and a connect undone within it costs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bot.engine.ports import Address

log = logging.getLogger(__name__)

DELAY = 3.0  # seconds of changes gathered into one redraw


class LiveBoard:
    def __init__(
        self,
        transport: Any,
        store: Any,
        *,
        delay: float = DELAY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        """``transport``: :class:`bot.transports.discord.transport.DiscordTransport`."""
        self.transport = transport
        self.store = store
        self.delay = delay
        self.sleep = sleep
        self.redraws = 0  # boards edited, for tests and logs
        self._dirty: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def changed(self, learner: str) -> None:
        """A :data:`bot.core.presence.PresenceListener`: note it, redraw later."""
        self._dirty.add(learner)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="live-board")

    async def _run(self) -> None:
        while self._dirty:
            await self.sleep(self.delay)
            learners, self._dirty = self._dirty, set()
            try:
                self.redraws += await self.redraw(learners)
            except Exception:
                log.exception("live crew board redraw failed")

    async def redraw(self, learners: Iterable[str]) -> int:
        """Redraw every board that shows one of ``learners``; how many were edited."""
        boards: dict[str, Address] = {}
        for learner in learners:
            for mission in await self.store.missions_of(learner):
                places = [mission]  # a thread's crew also shows on its hub channel's board
                if mission.parent_id is not None:
                    parent = await self.store.get_mission(mission.parent_id)
                    places += [parent] if parent is not None else []
                for m in places:
                    if m.address.transport == "discord" and m.address.kind != "solo":
                        boards[m.address.key] = m.address
        edited = 0
        for address in boards.values():
            edited += await self.transport.redraw_board(address)
        return edited

    @property
    def busy(self) -> bool:
        """Changes are waiting or being drawn."""
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
