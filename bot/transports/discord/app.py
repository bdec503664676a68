"""Composition and background loops for ``kepler serve``.

settings → store → course → sandbox backend, lifecycle manager, cluster service → voice →
Discord transport → engine → actions and commands. Loops: ``engine.tick()`` every minute
(idle members drop out of a crew's count), ``manager.tick()`` every minute (pause, warn,
delete, refill), an outbox flush (``engine.deliver_all()``) after every gateway (re)connect
and every minute in case Discord was down, and one change-watcher per learner on an open task
(a long-lived watch on their cluster; ``engine.cluster_changed`` only when it reports a
change). ``close`` stops the loops, waits for work in flight, then closes the gateway and the
store: the outbox keeps anything unsent.
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
from bot.content.schema import TaskBeat
from bot.engine.engine import Engine
from bot.engine.ports import Cluster, Voice
from bot.transports.discord.actions import Actions
from bot.transports.discord.client import KeplerBot
from bot.transports.discord.commands import KeplerCommands
from bot.transports.discord.secrets import SecretBox
from bot.transports.discord.transport import DiscordTransport, user_id_of
from bot.transports.discord.webhooks import WebhookPool
from sandbox.objectives import kinds_for

log = logging.getLogger(__name__)

TICK = 60.0
WATCH_WINDOW = 55.0
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
    ):
        self.bot = bot
        self.store = store
        self.course = course
        self.manager = manager
        self.service = service
        self.webhooks = WebhookPool(bot, store, SecretBox(secret_key))
        self.transport = DiscordTransport(bot, store, course, self.webhooks)
        self.engine = Engine(
            course, store, cluster, voice, self.transport, idle_after=idle_after, clock=clock,
            observe=observe,
        )
        self.actions = Actions(
            self.engine, store, course, manager=manager, backend=backend, spawn=self.spawn
        )
        self.commands = KeplerCommands(self.actions, store)
        self._loops: list[asyncio.Task[Any]] = []
        self._work: set[asyncio.Task[Any]] = set()
        self._watchers: dict[str, asyncio.Task[Any]] = {}
        self._closing = False
        bot.actions = self.actions
        bot.on_setup = self.setup
        bot.on_connected = self.flush

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
        for task in [*self._loops, *self._watchers.values()]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._watchers.values(), return_exceptions=True)
        if self._work:
            _done, pending = await asyncio.wait(list(self._work), timeout=GRACE)
            for task in pending:
                task.cancel()
        if not self.bot.is_closed():
            await self.bot.close()

    # --- loops --------------------------------------------------------------------------

    async def flush(self) -> None:
        """Send what the outbox still holds (after a restart or a gateway outage)."""
        sent = await self.engine.deliver_all()
        if sent:
            log.info("outbox flushed", extra={"sent": sent})

    async def watch(self) -> None:
        """One watcher per learner who is on an open task, active and has a ready cluster."""
        if self.service is None or self._closing:
            return
        wanted: set[str] = set()
        now = self.engine.clock()
        # Three queries whatever the number of learners (not two per learner).
        members = await self.store.running_members()
        ready = {r.learner_id for r in await self.store.sandboxes() if r.phase == "ready"}
        for mission in await self.store.all_missions():
            if mission.state != "running":
                continue
            if not isinstance(self.course.beat_at(mission.chapter, mission.beat), TaskBeat):
                continue
            for member in members.get(mission.id, []):
                if member.left or now - member.last_active > self.engine.idle_after:
                    continue
                if member.learner_id in ready:
                    wanted.add(member.learner_id)
        for learner, task in list(self._watchers.items()):
            if learner not in wanted or task.done():
                task.cancel()
                del self._watchers[learner]
        for learner in wanted - set(self._watchers):
            if user_id_of(learner) is not None:
                self._watchers[learner] = asyncio.create_task(self._watcher(learner))

    async def _watcher(self, learner: str) -> None:
        while True:
            try:
                # Re-check only on a change (or when the open task needs a kind never read):
                # an idle learner costs the watch alone, no re-reads.
                kinds = await self._task_kinds(learner)
                if await self.service.wait_for_change(learner, WATCH_WINDOW, kinds):
                    await self.engine.cluster_changed(learner)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("watcher failed", exc_info=True)
                await asyncio.sleep(WATCH_WINDOW)

    async def _task_kinds(self, learner: str) -> set[str]:
        kinds: set[str] = set()
        for mission in await self.store.missions_of(learner):
            beat = self.course.beat_at(mission.chapter, mission.beat)
            if mission.state == "running" and isinstance(beat, TaskBeat):
                kinds |= kinds_for(beat.objectives)
        return kinds

    async def _every(self, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background job failed", extra={"job": getattr(job, "__name__", "")})


async def build(settings: Any, stack: contextlib.AsyncExitStack) -> App:
    """The real composition for ``kepler serve`` (resources registered on ``stack``)."""
    from bot.commands.sandbox import build_backend, policy_from_env
    from bot.content.course import load_course
    from bot.ops.health import discord_gateway_check
    from bot.ops.metrics import MeteredUsageStore
    from bot.ops.runtime import start_ops
    from bot.store.sqlite import SQLiteStore
    from bot.voice import BudgetLimits, build_voice
    from sandbox.backends.kubeconfig import KubeconfigBackend
    from sandbox.lifecycle import SandboxManager
    from sandbox.service import ClusterService

    course = load_course(settings.chapters_dir, settings.personas_dir)
    store = await stack.enter_async_context(SQLiteStore(settings.db))
    if getattr(settings, "sandbox_backend", "vcluster") != "kubeconfig":
        backend = build_backend(settings.host_kubeconfig)
    else:
        backend = KubeconfigBackend()
    stack.push_async_callback(backend.close)
    bot = KeplerBot()
    holder: dict[str, App] = {}

    async def notify(learner_id: str, text: str) -> None:
        user = await holder["app"].transport.user(learner_id)
        if user is not None:
            await user.send(text, allowed_mentions=discord.AllowedMentions.none())

    manager = SandboxManager(backend, store, policy=policy_from_env(), notify=notify)
    host = getattr(backend, "kube", None)
    ops = await start_ops(settings, store, host_api=host.api if host else None, manager=manager)
    stack.push_async_callback(ops.stop)  # before the store closes (the stack unwinds LIFO)
    ops.health.register("gateway", discord_gateway_check(bot))
    service = ClusterService(
        backend, timeout=settings.float("check_timeout"), on_use=manager.touch,
        instrument=ops.metrics.instrument_client, observe=ops.metrics.learner_request,
    )
    stack.push_async_callback(service.aclose)  # the watch streams
    voice = build_voice(
        api_key=settings.anthropic_api_key or None,
        model=settings.model,
        store=MeteredUsageStore(store, ops.metrics),
        cluster_provider=service.client_for,
        limits=BudgetLimits(
            learner_daily_tokens=settings.int("voice_daily_tokens"),
            guild_daily_tokens=settings.int("voice_guild_daily_tokens"),
            requests_per_minute=settings.int("voice_per_minute"),
        ),
    )
    app = App(
        bot=bot, store=store, course=course, cluster=service, voice=voice,
        secret_key=settings.secret_key, idle_after=settings.float("idle_minutes") * 60,
        manager=manager, backend=backend, service=service, observe=ops.metrics.observe,
    )  # fmt: skip
    holder["app"] = app
    with contextlib.suppress(Exception):
        await manager.reconcile()
    return app
