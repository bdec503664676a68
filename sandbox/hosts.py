"""Several host clusters behind one backend: routing by learner, scans, placement, moves.

``KEPLER_HOSTS`` names the host clusters (:func:`parse_hosts`); :class:`HostPool` holds one
backend per host and is itself a :class:`~sandbox.backends.base.SandboxBackend`, so the
cluster service and the lifecycle reach a learner's sandbox the same way whether there is one
host or ten. It remembers which host holds which learner (from the store's records, its own
scans and its placements) and otherwise asks every reachable host.

One host being unreachable must not stop the others: :meth:`HostPool.scan` lists every host
at once and marks a host that does not answer as *down* (:attr:`HostPool.down`); a learner
whose sandbox lives there gets :class:`SandboxUnavailable` at once instead of a timeout on
every request, and placement skips the host until a scan sees it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from kubernetes import client

from sandbox.backends.base import (
    ProgressEvent,
    SandboxBackend,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxUnavailable,
)
from sandbox.placement import Capacity, Footprint, HostLoad, cpu_millis, memory_bytes, place, ranked

HOLDS_REQUESTS = ("ready", "provisioning", "spare")
REUSE = 2.0  # seconds a scan serves the decisions of one placement
INFLIGHT_FOR = 900.0  # a placement not provisioned by then is forgotten (the bot gave up)
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


@dataclass(frozen=True)
class HostConfig:
    """One host cluster as the operator names it in ``KEPLER_HOSTS``."""

    name: str
    kubeconfig: str = ""  # file; "" = HOST_KUBECONFIG (or in-cluster when that is empty too)
    context: str = ""  # context in that file; "" = its current context
    capacity: Capacity = field(default_factory=Capacity)
    sandbox_host: str = ""  # KEPLER_SANDBOX_HOST for this host ("" = the global one)
    node_address: str = ""  # KEPLER_SANDBOX_NODE_ADDRESS for this host


def parse_hosts(text: str) -> list[HostConfig]:
    """``KEPLER_HOSTS``: entries separated by spaces, commas or newlines.

    Each entry is ``NAME=SOURCE`` followed by ``;key=value`` options. SOURCE is a kubeconfig
    file, ``FILE#CONTEXT``, ``#CONTEXT`` (a context in ``HOST_KUBECONFIG``) or empty.
    Options: ``max`` (sandboxes, paused ones included), ``cpu`` and ``memory`` (what
    sandboxes may request there in total, Kubernetes quantities), ``sandbox-host`` and
    ``node-address`` (exposure for this host). Example::

        ams=/etc/kepler/ams.yaml;max=60;cpu=24;memory=48Gi fra=#fra;max=30
    """
    hosts: list[HostConfig] = []
    for entry in re.split(r"[\s,]+", text.strip()):
        if not entry:
            continue
        head, *options = entry.split(";")
        name, sep, source = head.partition("=")
        if not sep or not _NAME.match(name):
            raise ValueError(f"KEPLER_HOSTS: {head!r} is not NAME=SOURCE with a DNS-label name")
        path, _, context = source.partition("#")
        kw: dict[str, object] = {"kubeconfig": path, "context": context}
        cap: dict[str, int] = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or not value:
                raise ValueError(f"KEPLER_HOSTS: host {name}: {option!r} is not key=value")
            try:
                if key == "max":
                    cap["max_sandboxes"] = int(value)
                elif key == "cpu":
                    cap["cpu_m"] = cpu_millis(value)
                elif key == "memory":
                    cap["memory"] = memory_bytes(value)
                elif key in ("sandbox-host", "node-address"):
                    kw[key.replace("-", "_")] = value
                else:
                    raise ValueError(f"unknown option {key!r}")
            except ValueError as exc:
                raise ValueError(f"KEPLER_HOSTS: host {name}: {key}={value}: {exc}") from None
        if any(h.name == name for h in hosts):
            raise ValueError(f"KEPLER_HOSTS: host {name} is named twice")
        hosts.append(HostConfig(name=name, capacity=Capacity(**cap), **kw))  # type: ignore[arg-type]
    return hosts


class HostPool(SandboxBackend):
    """One backend per host cluster, routed by learner; placement for new sandboxes."""

    name = "vcluster"
    supports_spares = True

    def __init__(self, backends: Mapping[str, SandboxBackend], hosts: Sequence[HostConfig],
                 each: Footprint):  # fmt: skip
        if not backends or set(backends) != {h.name for h in hosts}:
            raise ValueError("a backend for every configured host, and hosts for every backend")
        self.backends = dict(backends)
        self.hosts = {h.name: h for h in hosts}
        self.each = each
        self.name = next(iter(self.backends.values())).name
        self.supports_spares = all(b.supports_spares for b in self.backends.values())
        self.down: set[str] = set()  # hosts whose last scan failed
        self.drained: frozenset[str] = frozenset()  # set by the lifecycle from the store
        self._where: dict[str, str] = {}  # learner -> host
        self._names: dict[str, str] = {}  # sandbox name -> host (orphans, spares)
        self._last: tuple[float, dict[str, list[SandboxInfo] | None]] | None = None
        # Placed but not yet finished provisioning: counted by placement, so a class that
        # starts together does not all land on the host that looked emptiest a moment ago.
        self._inflight: dict[str, tuple[str, float]] = {}  # learner (or spare token) -> host

    # --- routing -------------------------------------------------------------------------

    def on(self, host: str) -> SandboxBackend:
        try:
            return self.backends[host]
        except KeyError:
            raise SandboxNotFound(f"no host cluster named {host!r}") from None

    def assign(self, learner_id: str, host: str) -> None:
        """The store (or a placement) says where this learner's sandbox lives."""
        if host in self.backends:
            self._where[learner_id] = host

    def where(self, learner_id: str) -> str | None:
        return self._where.get(learner_id)

    async def host_of(self, learner_id: str) -> str:
        """The learner's host; SandboxUnavailable at once when that host is down."""
        host = self._where.get(learner_id)
        if host is None:
            await self.scan()
            host = self._where.get(learner_id)
        if host is None:
            raise SandboxNotFound("no sandbox for this learner on any reachable host")
        if host in self.down:
            raise SandboxUnavailable(f"host cluster {host} is unreachable")
        return host

    # --- scans and placement -------------------------------------------------------------

    async def _list_one(self, host: str) -> list[SandboxInfo] | None:
        try:
            infos = await self.backends[host].list()
        except SandboxError:
            self.down.add(host)
            return None
        self.down.discard(host)
        return [replace(i, host=host) for i in infos]

    async def scan(self, max_age: float = 0.0,
                   probe_down: bool = False) -> dict[str, list[SandboxInfo] | None]:
        """List every host at once; None for a host that did not answer (now in ``down``).

        ``max_age``: reuse a scan at most this old (one placement makes several decisions).
        Hosts already down are left out (None) unless ``probe_down``: only housekeeping asks
        them again, so a dark host's timeouts never hold up a placement or a listing.
        """
        if not probe_down and self._last is not None and (
                time.monotonic() - self._last[0] <= max_age):
            return self._last[1]
        names = [h for h in self.backends if probe_down or h not in self.down]
        results = await asyncio.gather(*(self._list_one(h) for h in names))
        found: dict[str, list[SandboxInfo] | None] = dict.fromkeys(self.backends)
        found.update(zip(names, results, strict=True))
        for host, infos in found.items():
            for info in infos or []:
                if info.phase == "deleting":
                    continue
                self._names[info.name] = host
                if info.learner_id is not None:
                    self._where.setdefault(info.learner_id, host)
        self._last = (time.monotonic(), found)
        return found

    def loads(self, found: Mapping[str, list[SandboxInfo] | None]) -> list[HostLoad]:
        out = []
        now = time.monotonic()
        for key, (_, since) in list(self._inflight.items()):
            if now - since > INFLIGHT_FOR:
                del self._inflight[key]
        for host, infos in found.items():
            live = [i for i in infos or [] if i.phase != "deleting"]
            there = {i.learner_id for i in live}
            coming = sum(1 for key, (h, _) in self._inflight.items()
                         if h == host and key not in there)  # fmt: skip
            out.append(HostLoad(
                name=host, capacity=self.hosts[host].capacity, sandboxes=len(live) + coming,
                active=sum(1 for i in live if i.phase in HOLDS_REQUESTS) + coming,
                drained=host in self.drained, reachable=infos is not None,
            ))  # fmt: skip
        return out

    async def place(self, prefer: str = "", reserve: str = "") -> str | None:
        """The host for one more sandbox now, or None when none has room.

        ``reserve`` (a learner id) holds the place until :meth:`release` or the end of
        :meth:`provision_on`; the choice and the hold happen without a pause in between.
        """
        found = await self.scan(REUSE)
        host = place(self.loads(found), self.each, prefer)
        if host is not None and reserve:
            self._inflight[reserve] = (host, time.monotonic())
        return host

    def release(self, key: str) -> None:
        """The placement is done (or dropped); the next decision scans afresh."""
        self._inflight.pop(key, None)
        self._last = None

    async def usable(self, host: str) -> bool:
        """Reachable, not drained, under its caps (a fresh scan)."""
        return any(h.name == host for h in ranked(self.loads(await self.scan(REUSE)), self.each))

    # --- the backend interface, routed ---------------------------------------------------

    def provision(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        return self._placed(learner_id)

    async def _placed(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        host = await self.place(reserve=learner_id)
        if host is None:
            yield ProgressEvent(learner_id, "failed", "no host cluster has room", done=True)
            return
        async for event in self.provision_on(host, learner_id):
            yield event

    async def provision_on(self, host: str, learner_id: str) -> AsyncIterator[ProgressEvent]:
        """Provision on ``host`` (the lifecycle placed it); the learner is routed there."""
        self.assign(learner_id, host)
        self._inflight.setdefault(learner_id, (host, time.monotonic()))
        try:
            async for event in self.on(host).provision(learner_id):
                yield event
        finally:
            self.release(learner_id)

    async def move(self, learner_id: str, to: str) -> AsyncIterator[ProgressEvent]:
        """Reset onto another host: a fresh sandbox on ``to``, then the old one goes.

        The old host may be drained or unreachable; when it cannot delete now, the old
        namespace is an orphan that :meth:`SandboxManager.reconcile` removes later.
        """
        old = self._where.get(learner_id)
        ok = False
        self._inflight.setdefault(learner_id, (to, time.monotonic()))
        try:
            async for event in self.on(to).provision(learner_id):
                ok = ok or event.step == "ready"
                yield event
        finally:
            self.release(learner_id)
        if not ok:
            return
        self._where[learner_id] = to
        if old and old != to:
            with contextlib.suppress(SandboxError):
                await self.on(old).delete(learner_id)

    async def client_for(self, learner_id: str) -> client.ApiClient:
        return await self.on(await self.host_of(learner_id)).client_for(learner_id)

    async def kubeconfig_for(self, learner_id: str) -> str:
        return await self.on(await self.host_of(learner_id)).kubeconfig_for(learner_id)

    async def pause(self, learner_id: str) -> None:
        await self.on(await self.host_of(learner_id)).pause(learner_id)
        self._last = None

    def resume(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        return self._routed(learner_id, "resume")

    def reset(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        return self._routed(learner_id, "reset")

    async def _routed(self, learner_id: str, op: str) -> AsyncIterator[ProgressEvent]:
        try:
            backend = self.on(await self.host_of(learner_id))
        except SandboxError as exc:
            yield ProgressEvent(learner_id, "failed", str(exc), done=True)
            return
        try:
            async for event in getattr(backend, op)(learner_id):
                yield event
        finally:
            self._last = None  # a resumed sandbox holds requests again

    async def delete(self, learner_id: str) -> None:
        try:
            host = await self.host_of(learner_id)
        except SandboxNotFound:
            return
        await self.on(host).delete(learner_id)
        self._where.pop(learner_id, None)
        self._last = None

    async def list(self) -> list[SandboxInfo]:
        return [i for infos in (await self.scan()).values() for i in infos or []]

    def provision_spare(self) -> AsyncIterator[ProgressEvent]:
        return self._spare()

    async def _spare(self) -> AsyncIterator[ProgressEvent]:
        token = f"spare:{time.monotonic_ns()}"
        host = await self.place(reserve=token)
        if host is None:
            yield ProgressEvent("", "failed", "no host cluster has room for a spare", done=True)
            return
        try:
            async for event in self.on(host).provision_spare():
                yield event
        finally:
            self.release(token)

    async def claim_spare(self, learner_id: str) -> SandboxInfo | None:
        """A spare from the best host that has one (never a drained or unreachable host)."""
        for load in ranked(self.loads(await self.scan(REUSE)), self.each):
            info = await self.on(load.name).claim_spare(learner_id)
            if info is not None:
                self._where[learner_id] = load.name
                return replace(info, host=load.name)
        return None

    async def delete_named(self, name: str) -> None:
        host = self._names.get(name)
        if host is None:
            raise SandboxNotFound(f"no sandbox named {name} on a known host")
        await self.on(host).delete_named(name)
        self._names.pop(name, None)
        self._last = None

    async def close(self) -> None:
        for backend in self.backends.values():
            with contextlib.suppress(Exception):
                await backend.close()
