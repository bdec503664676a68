"""Composition and background loops for ``kepler serve``.

settings → store → course → sandbox backend, lifecycle manager, cluster service → voice →
Discord transport → engine → actions and commands. Loops: ``engine.tick()`` every minute
(idle members drop out of a crew's count), ``manager.tick()`` every minute (pause, warn,
delete, refill), an outbox flush (``engine.deliver_all()``) after every gateway (re)connect
and every minute in case Discord was down, and the shared live loop (:mod:`bot.engine.live`:
one change-watcher per learner on an open task). ``close`` stops the loops, waits for work in
flight, then closes the gateway and the store: the outbox keeps anything unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import discord

from bot.content.course import Course
from bot.engine.engine import Engine
from bot.engine.live import LiveLoop
from bot.engine.ports import Cluster, Voice
from bot.transports.discord.actions import Actions
from bot.transports.discord.client import KeplerBot
from bot.transports.discord.commands import KeplerCommands
from bot.transports.discord.invalid import InvalidRequests
from bot.transports.discord.liveboard import DELAY as BOARD_DELAY
from bot.transports.discord.liveboard import LiveBoard
from bot.transports.discord.pacing import Pacer
from bot.transports.discord.secrets import SecretBox
from bot.transports.discord.transport import DiscordTransport, user_id_of
from bot.transports.discord.webhooks import WebhookPool
from bot.web.missionfiles import MissionFiles, TaskFilesTransport

log = logging.getLogger(__name__)

TICK = 60.0
GRACE = 10.0  # seconds to let work in flight finish on shutdown


class App:
    def __init__(
        self,
        *,
        bot: KeplerBot,
        store: Any,
        course: Course,
        cluster: Cluster,
        voice: Voice,
        secret_key: str = "",
        idle_after: float = 3600.0,
        manager: Any = None,
        backend: Any = None,
        service: Any = None,
        clock: Callable[[], float] = time.time,
        observe: Callable[..., None] | None = None,
        public_url: str = "",
        pacer: Pacer | None = None,
        invalid: InvalidRequests | None = None,
        terminal: Any = None,
        board_delay: float = BOARD_DELAY,
    ):
        self.bot = bot
        self.store = store
        self.course = course
        self.manager = manager
        self.service = service
        self.invalid = invalid or InvalidRequests()
        self.webhooks = WebhookPool(bot, store, SecretBox(secret_key), clock=clock)
        self.transport = DiscordTransport(
            bot, store, course, self.webhooks, public_url=public_url, pacer=pacer,
            connected=terminal.connected if terminal is not None else None,  # the crew board
        )  # fmt: skip
        self.files = _mission_files(store, course, terminal)
        engine_transport: Any = self.transport
        if self.files is not None:  # a task's files also go into each learner's workbench
            engine_transport = TaskFilesTransport(self.transport, self.files, spawn=self.spawn)
        self.engine = Engine(
            course, store, cluster, voice, engine_transport, idle_after=idle_after, clock=clock,
            observe=observe, fallback=getattr(voice, "scripted", None),
        )
        self.actions = Actions(
            self.engine, store, course, manager=manager, backend=backend, spawn=self.spawn,
            public_url=public_url, terminal=terminal,
        )  # fmt: skip
        self.commands = KeplerCommands(self.actions, store)
        # the crew board follows terminals live (bot.core.presence: web → board, one way)
        self.live_board = LiveBoard(self.transport, store, delay=board_delay)
        self._unwatch = terminal.watch(self.live_board.changed) if terminal is not None else None
        self._loops: list[asyncio.Task[Any]] = []
        self._work: set[asyncio.Task[Any]] = set()
        self.live = (
            LiveLoop(self.engine, service, include=_is_discord_user, ready=self._ready)
            if service is not None
            else None
        )
        self._closing = False
        bot.actions = self.actions
        bot.on_setup = self.setup
        bot.on_connected = self.flush
        bot.on_permissions_changed = self.webhooks.recheck  # a webhook may now be allowed

    # --- lifecycle ----------------------------------------------------------------------

    async def setup(self) -> None:
        """From the bot's ``setup_hook``: commands, then the background loops."""
        await self.bot.add_cog(self.commands)
        self.start_loops()

    def start_loops(self) -> None:
        self._loops = [
            asyncio.create_task(self._every(TICK, self.engine.tick), name="engine-tick"),
            asyncio.create_task(self._every(TICK, self.flush), name="outbox-flush"),
            asyncio.create_task(self._every(TICK / 2, self.watch), name="watchers"),
        ]
        if self.manager is not None:
            self._loops.append(
                asyncio.create_task(self._every(TICK, self.manager.tick), name="sandbox-tick")
            )

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Background work for an interaction (e.g. provisioning), awaited on shutdown."""
        task = asyncio.create_task(coro)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    async def drain(self, timeout: float = GRACE) -> None:
        """Wait for background work in flight (provisioning started by interactions)."""
        while self._work:
            _done, pending = await asyncio.wait(list(self._work), timeout=timeout)
            if pending:
                return

    async def close(self) -> None:
        """Stop loops and watchers, let work in flight finish, close the gateway."""
        self._closing = True
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self.live is not None:
            await self.live.close()
        if self._unwatch is not None:
            self._unwatch()
        await self.live_board.aclose()
        if self._work:
            _done, pending = await asyncio.wait(list(self._work), timeout=GRACE)
            for task in pending:
                task.cancel()
        if self.files is not None:
            await self.files.aclose()
        if not self.bot.is_closed():
            await self.bot.close()

    # --- loops --------------------------------------------------------------------------

    async def _ready(self) -> set[str]:
        return {r.learner_id for r in await self.store.sandboxes() if r.phase == "ready"}

    async def flush(self) -> None:
        """Send what the outbox still holds (after a restart or a gateway outage)."""
        sent = await self.engine.deliver_all()
        if sent:
            log.info("outbox flushed", extra={"sent": sent})

    async def watch(self) -> None:
        """Start or stop change watchers (the shared live loop, :mod:`bot.engine.live`)."""
        if self.live is not None and not self._closing:
            await self.live.refresh()

    async def _every(self, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background job failed", extra={"job": getattr(job, "__name__", "")})


def _mission_files(store: Any, course: Course, terminal: Any) -> MissionFiles | None:
    """With a browser terminal, the open task's files are written into the workbench home when
    the task opens and whenever a terminal connects."""
    workbenches = getattr(terminal, "workbenches", None)
    if workbenches is None:
        return None
    files = MissionFiles(store, course, workbenches)
    terminal.on_connect = files.for_learner
    return files


def warn_if_dev_mode(guild_id: str) -> None:
    """Development mode (``DISCORD_GUILD_ID``) hides the commands from DMs: say so at start."""
    if guild_id:
        log.warning(
            "DISCORD_GUILD_ID is set: slash commands exist only in that server, so DMs with the "
            "bot show no commands. To test DMs, unset it and sync globally (docs/discord.md).",
            extra={"guild": guild_id},
        )


async def build(settings: Any, stack: contextlib.AsyncExitStack) -> App:
    """The real composition for ``kepler serve`` (resources registered on ``stack``)."""
    from bot.commands.sandbox import build_backend
    from bot.content.course import load_course
    from bot.ops.health import discord_gateway_check
    from bot.ops.metrics import MeteredUsageStore
    from bot.ops.runtime import start_ops
    from bot.store.sqlite import SQLiteStore
    from bot.transports.discord.render import COMMANDS
    from bot.voice import BudgetLimits, build_voice
    from bot.web.setup import build_terminal
    from sandbox.backends.kubeconfig import KubeconfigBackend
    from sandbox.lifecycle import SandboxManager
    from sandbox.service import ClusterService

    course = load_course(settings.chapters_dir, settings.personas_dir)
    store = await stack.enter_async_context(SQLiteStore(settings.db))
    if settings.sandbox_backend != "kubeconfig":
        backend = build_backend(settings.host_kubeconfig, settings.hosts, settings)
    else:
        backend = KubeconfigBackend()
    stack.push_async_callback(backend.close)
    warn_if_dev_mode(settings.discord_guild_id)
    invalid = InvalidRequests()
    bot = KeplerBot(http_trace=invalid.trace_config())
    holder: dict[str, App] = {}

    async def notify(learner_id: str, text: str) -> None:
        user = await holder["app"].transport.user(learner_id)
        if user is not None:
            await user.send(text, allowed_mentions=discord.AllowedMentions.none())

    manager = SandboxManager(backend, store, policy=settings.lifecycle_policy(), notify=notify)
    host = getattr(backend, "kube", None)
    terminal = build_terminal(settings, store, manager, backend)  # bot/web: the browser terminal
    ops = await start_ops(settings, store, host_api=host.api if host else None, manager=manager,
                          mounts=[terminal.mount] if terminal else [])  # fmt: skip
    if manager.pool is not None:  # several hosts: healthy while one answers; each instrumented
        from bot.ops.health import host_clusters_check

        apis = {name: b.kube.api for name, b in manager.pool.backends.items()}  # type: ignore[attr-defined]
        for api in apis.values():
            ops.metrics.instrument_client(api, "host")
        ops.health.register("host_cluster", host_clusters_check(apis))
    stack.push_async_callback(ops.stop)  # before the store closes (the stack unwinds LIFO)
    invalid.attach(ops.metrics.registry)
    ops.health.register("gateway", discord_gateway_check(bot))
    service = ClusterService(
        backend, timeout=settings.check_timeout, on_use=manager.touch,
        instrument=ops.metrics.instrument_client, observe=ops.metrics.learner_request,
    )
    stack.push_async_callback(service.aclose)  # the watch streams
    voice = build_voice(
        api_key=settings.anthropic_api_key or None,
        model=settings.model,
        store=MeteredUsageStore(store, ops.metrics),
        cluster_provider=service.client_for,
        commands=COMMANDS,  # the crew (scripted and Claude) quotes /check, /hint, Continue
        limits=BudgetLimits(
            learner_daily_tokens=settings.voice_daily_tokens,
            guild_daily_tokens=settings.voice_guild_daily_tokens,
            requests_per_minute=settings.voice_per_minute,
        ),
    )
    app = App(
        bot=bot, store=store, course=course, cluster=service, voice=voice,
        secret_key=settings.secret_key, idle_after=settings.idle_seconds,
        manager=manager, backend=backend, service=service, observe=ops.metrics.observe,
        public_url=settings.public_url, invalid=invalid, terminal=terminal,
    )  # fmt: skip
    holder["app"] = app
    with contextlib.suppress(Exception):
        await manager.reconcile()
    return app


def _is_discord_user(learner_id: str) -> bool:
    return user_id_of(learner_id) is not None
