"""Sandbox lifecycle: when learners' clusters are made, paused, resumed, warned about, deleted.

:class:`SandboxManager` sits over a :class:`~sandbox.backends.base.SandboxBackend` and the
store. The engine (or an operator command) calls:

* :meth:`~SandboxManager.ensure` on a learner's action: ready → nothing to do; paused →
  resume; none → claim a warm spare or provision, unless the server is full (waitlist);
* :meth:`~SandboxManager.tick` every minute: pause idle sandboxes, warn before a TTL
  deletion, delete expired ones, refill the warm pool, promote the waitlist;
* :meth:`~SandboxManager.reconcile` at start: adopt sandboxes found on the host by their
  labels, delete orphans, forget records whose sandbox is gone.

Caps: one sandbox per learner (the store's primary key, and the backend finds by learner);
``max_per_server`` per Discord server (guild) and ``max_total`` overall, with a FIFO waitlist.

Several host clusters (a :class:`~sandbox.hosts.HostPool` as the backend): a new sandbox goes
where :mod:`sandbox.placement` finds the most room, never to a drained host (``drain``, kept
in the store so the operator's command reaches the running bot); ``reset`` moves a learner
off a drained, unreachable or full host. The record keeps the host. A host that stops
answering is left out of housekeeping, and its learners are told by the crew
(:mod:`sandbox.notices`) once when it goes and once when it comes back.

Times come from ``clock`` (epoch seconds) so tests drive TTLs with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sandbox.apply import Kube, apply_all, load_manifests
from sandbox.backends.base import (
    CapacityExceeded,
    ProgressEvent,
    SandboxBackend,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxRecord,
    SandboxRefused,
)
from sandbox.hosts import HostPool
from sandbox.notices import HOST_BACK, HOST_DOWN
from sandbox.provision import L_SPARE

log = logging.getLogger(__name__)
DRAIN_SCOPE = "sandbox-hosts"  # store settings: key = host name, value "drained"
DOWN_SCOPE = "sandbox-hosts-down"  # host name -> "told": its learners heard HOST_DOWN
Notify = Callable[[str, str], Awaitable[None]]  # (learner_id, message)


@dataclass(frozen=True)
class LifecyclePolicy:
    idle_pause_after: float = 30 * 60  # seconds without a learner action before pausing
    ttl: float = 14 * 24 * 3600  # a sandbox lives this long after its last action
    warn_before: float = 24 * 3600  # warn this long before a TTL deletion
    extend_by: float = 7 * 24 * 3600
    max_per_server: int = 25
    max_total: int = 100
    warm_pool: int = 0


DEFAULT_POLICY = LifecyclePolicy()


class SandboxManager:
    def __init__(
        self,
        backend: SandboxBackend,
        store: Any,
        *,
        policy: LifecyclePolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.time,
        notify: Notify | None = None,
    ):
        self.backend = backend
        self.store = store
        self.policy = policy
        self.clock = clock
        self.notify = notify
        self._locks: dict[str, asyncio.Lock] = {}
        self._refilling = False
        self.pool = backend if isinstance(backend, HostPool) else None
        self._told_down: set[str] | None = None  # hosts whose learners heard HOST_DOWN

    def _lock(self, learner_id: str) -> asyncio.Lock:
        return self._locks.setdefault(learner_id, asyncio.Lock())

    async def _tell(self, learner_id: str, message: str) -> None:
        if self.notify is not None:
            try:
                await self.notify(learner_id, message)
            except Exception:  # a failed notice never stops the lifecycle
                log.exception("notify failed for a learner")

    async def _save(self, record: SandboxRecord) -> SandboxRecord:
        await self.store.save_sandbox(record)
        return record

    def _new_record(self, learner_id: str, name: str, guild: str | None,
                    phase: str = "provisioning", host: str = "") -> SandboxRecord:
        now = self.clock()
        return SandboxRecord(learner_id=learner_id, backend=self.backend.name, name=name,
                             phase=phase, created=now, last_active=now, guild=guild,  # type: ignore[arg-type]
                             expires_at=now + self.policy.ttl, host=host)  # fmt: skip

    # --- hosts -------------------------------------------------------------------------------

    async def drained(self) -> frozenset[str]:
        """Hosts the operator drained (``kepler sandbox drain``); read from the store."""
        if self.pool is None:
            return frozenset()
        found = frozenset([h for h in self.pool.backends
                           if await self.store.get_setting(DRAIN_SCOPE, h) == "drained"])
        self.pool.drained = found
        return found

    async def drain(self, host: str, drained: bool = True) -> None:
        """No new sandboxes on ``host``; existing ones stay until deleted or reset."""
        if self.pool is None or host not in self.pool.backends:
            raise SandboxNotFound(f"no host cluster named {host!r} (see KEPLER_HOSTS)")
        await self.store.set_setting(DRAIN_SCOPE, host, "drained" if drained else None)
        await self.drained()

    def _route(self, record: SandboxRecord | None) -> None:
        if self.pool is not None and record is not None and record.host:
            self.pool.assign(record.learner_id, record.host)

    def _host_down(self, record: SandboxRecord) -> bool:
        """The record's host did not answer its last scan (housekeeping rescans every tick;
        asking again here would make the learner wait out the dark host's timeouts)."""
        return self.pool is not None and record.host in self.pool.down

    async def _host_for(self, record: SandboxRecord | None, learner_id: str) -> str | None:
        """Where a new (or failed) sandbox goes: its host while that still takes sandboxes,
        else wherever placement finds room (held for this learner)."""
        assert self.pool is not None
        if record is not None and record.host and await self.pool.usable(record.host):
            return record.host
        return await self._place(reserve=learner_id)

    async def _place(self, prefer: str = "", reserve: str = "") -> str | None:
        await self.drained()
        assert self.pool is not None
        return await self.pool.place(prefer, reserve)

    # --- bringing a sandbox up ---------------------------------------------------------------

    async def ensure(self, learner_id: str, guild: str | None = None) -> AsyncIterator[ProgressEvent]:
        """Make sure the learner has a ready sandbox; yield progress (edited in one message)."""
        async with self._lock(learner_id):
            record = await self.store.get_sandbox(learner_id)
            self._route(record)
            if (record is not None and record.phase in ("ready", "paused")
                    and self._host_down(record)):
                yield ProgressEvent(learner_id, "failed", HOST_DOWN, done=True)
                return
            if record is not None and record.phase == "ready":
                await self._save(self._touched(record))
                yield ProgressEvent(learner_id, "ready", "sandbox ready", done=True)
                return
            if record is not None and record.phase == "paused":
                async for event in self._run(record, self.backend.resume(learner_id)):
                    yield event
                return
            if record is None and not await self._has_room(guild):
                position = await self.store.add_waiting(learner_id, guild, self.clock())
                yield ProgressEvent(learner_id, "waiting",
                                    f"all sandboxes are in use; you are number {position} in line",
                                    done=True, position=position)  # fmt: skip
                return
            host = ""
            if self.pool is not None:
                host = await self._host_for(record, learner_id) or ""
                if not host:
                    position = await self.store.add_waiting(learner_id, guild, self.clock())
                    yield ProgressEvent(learner_id, "waiting",
                                        f"every host is full; you are number {position} in line",
                                        done=True, position=position)  # fmt: skip
                    return
            await self.store.remove_waiting(learner_id)
            if record is None and self.backend.supports_spares:
                spare = await self._claim(learner_id)
                if spare is not None:
                    if self.pool is not None:
                        self.pool.release(learner_id)
                    await self._save(self._new_record(learner_id, spare.name, guild, "ready",
                                                      spare.host))  # fmt: skip
                    yield ProgressEvent(learner_id, "ready", "sandbox ready (from the warm pool)",
                                        done=True)  # fmt: skip
                    self._refill_soon()
                    return
            record = replace(record, host=host) if record else self._new_record(
                learner_id, "", guild, host=host)
            events = (self.pool.provision_on(host, learner_id) if self.pool is not None
                      else self.backend.provision(learner_id))  # fmt: skip
            async for event in self._run(record, events):
                yield event

    async def _claim(self, learner_id: str) -> SandboxInfo | None:
        try:
            return await self.backend.claim_spare(learner_id)
        except SandboxError as exc:
            log.warning("claiming a spare failed: %s", exc)
            return None

    async def _run(self, record: SandboxRecord,
                   events: AsyncIterator[ProgressEvent]) -> AsyncIterator[ProgressEvent]:
        record = await self._save(replace(record, phase="provisioning", error=""))
        try:
            async for event in events:
                if event.step == "ready":
                    record = replace(self._touched(record), phase="ready", paused_at=None,
                                     error="")  # fmt: skip
                elif event.step == "failed":
                    record = replace(record, phase="failed", error=event.message[:300])
                await self._save(record)
                yield event
        except SandboxError as exc:
            await self._save(replace(record, phase="failed", error=str(exc)[:300]))
            yield ProgressEvent(record.learner_id, "failed", str(exc), done=True)
            return
        if not record.name or record.phase == "ready":
            await self._refresh_name(record)

    async def _refresh_name(self, record: SandboxRecord) -> None:
        with contextlib.suppress(SandboxError):
            for info in await self.backend.list():
                if info.learner_id == record.learner_id and info.name != record.name:
                    current = await self.store.get_sandbox(record.learner_id)
                    if current is not None:
                        await self._save(replace(current, name=info.name))

    def _touched(self, record: SandboxRecord) -> SandboxRecord:
        now = self.clock()
        return replace(record, last_active=now, expires_at=now + self.policy.ttl, warned=False)

    async def _has_room(self, guild: str | None) -> bool:
        records = [r for r in await self.store.sandboxes() if r.phase != "failed"]
        if len(records) >= self.policy.max_total:
            return False
        return sum(1 for r in records if r.guild == guild) < self.policy.max_per_server

    async def touch(self, learner_id: str) -> None:
        """A learner acted: push back idle pause and TTL (resume happens in :meth:`ensure`)."""
        record = await self.store.get_sandbox(learner_id)
        if record is not None:
            await self._save(self._touched(record))

    async def extend(self, learner_id: str, seconds: float | None = None) -> float:
        """Push the TTL deletion back; return the new expiry."""
        record = await self.store.get_sandbox(learner_id)
        if record is None:
            raise SandboxNotFound("no sandbox to extend")
        base = max(record.expires_at or self.clock(), self.clock())
        expires = base + (seconds or self.policy.extend_by)
        await self._save(replace(record, expires_at=expires, warned=False))
        return expires

    # --- operations --------------------------------------------------------------------------

    async def pause(self, learner_id: str) -> None:
        async with self._lock(learner_id):
            record = await self.store.get_sandbox(learner_id)
            self._route(record)
            await self.backend.pause(learner_id)
            if record is not None:
                await self._save(replace(record, phase="paused", paused_at=self.clock()))

    async def resume(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        async for event in self.ensure(learner_id):
            yield event

    async def reset(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        async with self._lock(learner_id):
            record = await self.store.get_sandbox(learner_id) or self._new_record(
                learner_id, "", None)
            self._route(record)
            events = self.backend.reset(learner_id)
            if self.pool is not None:  # stay where it is unless that host is drained, down, full
                current = record.host or self.pool.where(learner_id) or ""
                target = await self._place(prefer=current, reserve=learner_id)
                if target is None:
                    yield ProgressEvent(learner_id, "failed", "no host cluster has room",
                                        done=True)  # fmt: skip
                    return
                if target != current:
                    events = self.pool.move(learner_id, target)
                record = replace(record, host=target)
            async for event in self._run(record, events):
                yield event

    async def delete(self, learner_id: str, reason: str = "on request") -> bool:
        """Delete the learner's sandbox; True if there was one. Promotes the waitlist."""
        async with self._lock(learner_id):
            record = await self.store.get_sandbox(learner_id)
            self._route(record)
            await self.store.remove_waiting(learner_id)
            try:
                await self.backend.delete(learner_id)
            except SandboxRefused:
                raise
            except SandboxNotFound:
                pass
            await self.store.delete_sandbox(learner_id)
            log.info("sandbox deleted (%s)", reason)
        await self._promote()
        return record is not None

    async def leave(self, learner_id: str) -> None:
        """A learner left the course (or the server): their sandbox goes."""
        with contextlib.suppress(SandboxRefused):
            await self.delete(learner_id, "learner left")

    async def apply(self, learner_id: str, manifests: Sequence[Path]) -> str:
        """Server-side apply manifests to the learner's cluster; one-line summary."""
        api = await self.backend.client_for(learner_id)
        try:
            done = await asyncio.to_thread(
                lambda: apply_all(Kube(api), load_manifests(manifests)))
        finally:
            api.close()
        await self.touch(learner_id)
        return f"applied {len(done)} objects: " + ", ".join(done) if done else "nothing to apply"

    async def catch_up(self, learner_id: str, course: Any, upto_chapter: int) -> str:
        """Apply the solution manifests of every chapter before ``upto_chapter`` (a position)."""
        return await self.apply(learner_id, solution_manifests(course, upto_chapter))

    # --- housekeeping ------------------------------------------------------------------------

    async def tick(self) -> dict[str, int]:
        """Idle pause, TTL warnings and deletion, waitlist, warm pool. Safe to call often."""
        now = self.clock()
        counts = {"paused": 0, "warned": 0, "deleted": 0}
        await self._watch_hosts()
        for record in await self.store.sandboxes():
            if self.pool is not None and record.host in self.pool.down:
                continue  # nothing to do there until it answers; its learners were told
            self._route(record)
            try:
                if record.expires_at is not None and now >= record.expires_at:
                    await self.delete(record.learner_id, "expired")
                    counts["deleted"] += 1
                    continue
                if (record.expires_at is not None and not record.warned
                        and now >= record.expires_at - self.policy.warn_before):
                    hours = max(1, round((record.expires_at - now) / 3600))
                    await self._tell(record.learner_id,
                                     f"Your sandbox will be deleted in about {hours} h. "
                                     "Use /sandbox extend to keep it.")  # fmt: skip
                    await self._save(replace(record, warned=True))
                    counts["warned"] += 1
                if record.phase == "ready" and now - record.last_active >= self.policy.idle_pause_after:
                    await self.pause(record.learner_id)
                    counts["paused"] += 1
            except SandboxRefused:
                continue
            except SandboxError as exc:  # one learner's trouble never stops the others
                log.warning("housekeeping failed for a sandbox: %s", exc)
        await self._promote()
        await self.refill()
        return counts

    async def _watch_hosts(self) -> None:
        """Scan every host; tell learners on a host that went away or came back."""
        if self.pool is None:
            return
        await self.drained()
        await self.pool.scan(probe_down=True)
        if self._told_down is None:  # kept in the store: a restart neither repeats nor forgets
            self._told_down = {h for h in self.pool.backends
                               if await self.store.get_setting(DOWN_SCOPE, h) == "told"}
        gone = self.pool.down - self._told_down
        back = self._told_down - self.pool.down
        if not gone and not back:
            return
        for host in gone:
            log.warning("host cluster %s is unreachable", host)
        for host in back:
            log.info("host cluster %s answers again", host)
        for record in await self.store.sandboxes():
            if record.phase in ("ready", "paused", "provisioning"):
                if record.host in gone:
                    await self._tell(record.learner_id, HOST_DOWN)
                elif record.host in back:
                    await self._tell(record.learner_id, HOST_BACK)
        for host in gone | back:
            await self.store.set_setting(DOWN_SCOPE, host, "told" if host in gone else None)
        self._told_down = set(self.pool.down)

    async def _promote(self) -> None:
        for entry in await self.store.waitlist():
            if not await self._has_room(entry.guild):
                continue
            async for event in self.ensure(entry.learner_id, entry.guild):
                if event.done:
                    await self._tell(entry.learner_id, event.message)

    async def refill(self) -> int:
        """Provision spares until the warm pool has ``warm_pool`` (ready or coming)."""
        if not self.backend.supports_spares or self.policy.warm_pool <= 0 or self._refilling:
            return 0
        self._refilling = True
        made = 0
        try:
            infos = await self.backend.list()
            spares = [i for i in infos if i.learner_id is None and i.phase in ("spare",
                                                                               "provisioning")]
            if self.pool is not None:  # a spare on a drained host is never claimed: it goes
                for info in [i for i in spares if i.host in self.pool.drained]:
                    await self._delete_orphan(info)
                    spares.remove(info)
            have = len(spares)
            for _ in range(max(0, self.policy.warm_pool - have)):
                async for event in self.backend.provision_spare():
                    if event.step == "ready":
                        made += 1
        except SandboxError as exc:
            log.warning("refilling the warm pool failed: %s", exc)
        finally:
            self._refilling = False
        return made

    def _refill_soon(self) -> None:
        with contextlib.suppress(RuntimeError):
            task = asyncio.get_running_loop().create_task(self.refill())
            self._background = task

    async def reconcile(self) -> dict[str, int]:
        """Adopt what exists on the host, delete orphans, forget what vanished."""
        counts = {"adopted": 0, "orphans": 0, "forgotten": 0}
        if self.pool is not None:  # housekeeping: ask hosts marked down again too
            await self.pool.scan(probe_down=True)
        infos = await self.backend.list()
        records = {r.learner_id: r for r in await self.store.sandboxes()}
        seen: dict[str, SandboxInfo] = {}
        for info in sorted(infos, key=lambda i: i.created, reverse=True):
            if info.phase == "deleting":
                continue
            if info.learner_id is None:
                if info.labels.get(L_SPARE) == "true" and info.phase in ("spare", "provisioning"):
                    continue  # the warm pool
                await self._delete_orphan(info)
                counts["orphans"] += 1
                continue
            record = records.get(info.learner_id)
            elsewhere = bool(record is not None and record.host and info.host
                             and record.host != info.host)  # moved on reset: the old copy
            if info.learner_id in seen or elsewhere or (record is not None and record.name
                                                        and record.name != info.name):
                await self._delete_orphan(info)  # a second sandbox for the same learner
                counts["orphans"] += 1
                continue
            seen[info.learner_id] = info
            if record is None:
                now = self.clock()
                await self._save(SandboxRecord(
                    learner_id=info.learner_id, backend=self.backend.name, name=info.name,
                    phase="paused" if info.phase == "paused" else info.phase
                    if info.phase in ("ready", "provisioning") else "failed",
                    created=info.created or now, last_active=now, expires_at=now + self.policy.ttl,
                    paused_at=now if info.phase == "paused" else None, host=info.host,
                ))  # fmt: skip
                counts["adopted"] += 1
            elif record.phase != info.phase and info.phase in ("ready", "paused"):
                await self._save(replace(record, phase=info.phase, name=info.name,
                                         host=info.host or record.host))  # fmt: skip
            elif info.host and record.host != info.host:
                await self._save(replace(record, host=info.host))  # from before hosts were kept
        down = self.pool.down if self.pool is not None else set()
        if self.backend.name != "kubeconfig":
            for learner_id, record in records.items():
                if record.host in down or (down and not record.host):
                    continue  # it may well be there: the host did not answer
                if learner_id not in seen and record.phase not in ("provisioning",):
                    await self.store.delete_sandbox(learner_id)
                    counts["forgotten"] += 1
        return counts

    async def _delete_orphan(self, info: SandboxInfo) -> None:
        try:
            await self.backend.delete_named(info.name)
        except SandboxError as exc:
            log.warning("deleting orphan %s failed: %s", info.name, exc)

    async def list(self) -> list[tuple[SandboxInfo, SandboxRecord | None]]:
        """What the backend sees, with the store's record (idle time) where there is one."""
        records = {r.learner_id: r for r in await self.store.sandboxes()}
        out = []
        for info in await self.backend.list():
            record = records.get(info.learner_id or "")
            if record is not None:
                info = replace(info, last_active=record.last_active)
            out.append((info, record))
        if self.pool is not None:  # what the store knows of hosts that did not answer
            for record in records.values():
                if record.host in self.pool.down:
                    out.append((SandboxInfo(
                        learner_id=record.learner_id, name=record.name, phase="unreachable",
                        created=record.created, last_active=record.last_active,
                        host=record.host), record))  # fmt: skip
        return out


def solution_manifests(course: Any, upto_chapter: int) -> list[Path]:
    """Solution manifests (``solution: true``) of chapters ``[0, upto_chapter)``, in order."""
    paths: list[Path] = []
    for index in range(min(upto_chapter, len(course.chapters))):
        for task in course.tasks(index):
            for manifest in task.manifests:
                path = course.manifest_path(index, manifest.file)
                if manifest.solution and path not in paths:
                    paths.append(path)
    return paths


__all__ = ["CapacityExceeded", "LifecyclePolicy", "SandboxManager", "solution_manifests"]
