"""The engine's view of learners' clusters (the ``Cluster`` port), over any sandbox backend.

One :class:`ClusterService` serves every learner: it keeps a reader per learner (an
``ApiClient`` built once, reused for five minutes), lists exactly the kinds a task's
objectives need (on the event loop, no thread), and judges them with the pure evaluators. Any
failure of one learner's cluster becomes that learner's :class:`CheckResult` error; nothing
raises into the engine.

Reads of one learner's cluster are coalesced: a learner's reads start at least
:data:`READ_GAP` apart; a request that comes while a read is running or too soon after one
began waits for one follow-up read, shared by every request that comes before it starts (so
it still sees everything its callers did before asking). Fifty ``/check`` clicks in a second
cost two or three reads, not fifty; a lone check is not delayed.

Change notices are one long-lived :class:`~sandbox.watch.AsyncChangeNotifier` per watching
learner, kept across waits and resumed from the last resourceVersion seen, with a server-side
window of :data:`WATCH_WINDOW` seconds: an idle learner costs one watch request per watched
kind per window (at most seven kinds in the course: 0.7 requests a minute) and no re-reads.
The watches are asyncio tasks, each stream a lean connection of its own
(:mod:`sandbox.httpstream`): no thread per stream, ~16 KiB and a few objects each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from weakref import WeakValueDictionary

from kubernetes import client

from sandbox.apihttp import Observe, identity
from sandbox.backends.base import SandboxBackend, SandboxError
from sandbox.backends.kubeconfig import KubeconfigBackend
from sandbox.errors import ClusterError, ClusterTimeout
from sandbox.objectives import EvalContext, ObjectiveSpec, Snapshot, evaluate_all, kinds_for
from sandbox.results import CheckResult
from sandbox.snapshot import NOT_WATCHED, ClusterReader
from sandbox.watch import AsyncChangeNotifier

log = logging.getLogger(__name__)

READER_TTL = 300.0
WATCH_WINDOW = 600.0  # server-side watch timeout; bookmarks keep the stream alive meanwhile
READ_GAP = 0.5  # a queued (coalesced) read starts at least this long after the one before it
RETRY_FIRST, RETRY_MAX = 2.0, 60.0  # after failed reads, the watcher retries at 2, 4, 8 … 60 s

NO_CLUSTER = """No Kubernetes cluster answered ({reason}).
The story goes on without one; to do the tasks, start a local cluster and run `kepler play` again:
  kind:     kind create cluster --name kepler        (https://kind.sigs.k8s.io)
  minikube: minikube start                           (https://minikube.sigs.k8s.io)
  k3d:      k3d cluster create kepler                (https://k3d.io)
Then `kubectl get nodes` should list at least one Ready node."""


class Drill(Protocol):
    """What the story does to a cluster (the course's ``Drill``, read by shape only: the
    sandbox sits below the course content and imports nothing from it)."""

    @property
    def action(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def count(self) -> int: ...


class FactCheck(Protocol):
    """A number to read from live state for a Think First answer (the course's ``FactCheck``)."""

    @property
    def measure(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...


@dataclass
class _Reader:
    reader: ClusterReader
    made: float
    identity: str  # where and as whom it connects (sandbox.apihttp.identity)
    read: bool = False  # a read through this reader succeeded (its versions are known)


@dataclass
class _Flights:
    """One learner's cluster reads: the one running and the one queued behind it."""

    current: asyncio.Task[Snapshot] | None = None
    started: float = 0.0  # monotonic start of ``current``
    queued: asyncio.Task[Snapshot] | None = None
    queued_kinds: frozenset[str] = frozenset()

    def release(self, task: asyncio.Task[Snapshot]) -> None:
        """Forget a finished read: its snapshot (hundreds of objects) is its callers' now, and
        a thousand learners' last snapshots kept here would make every full GC slower."""
        if self.current is task:
            self.current = None
        if self.queued is task:
            self.queued = None


@dataclass
class _Watch:
    notifier: AsyncChangeNotifier
    reader: ClusterReader
    kinds: frozenset[str]


class ClusterService:
    def __init__(
        self,
        backend: SandboxBackend,
        *,
        timeout: float = 5.0,
        on_use: object | None = None,
        instrument: Callable[[client.ApiClient], object] | None = None,
        observe: Observe | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        """``on_use`` is an optional async callable(learner_id) run before each read, e.g. the
        lifecycle manager's ``touch`` that resumes a paused sandbox. ``instrument`` is called
        with each learner ApiClient made (metrics count its requests); ``observe`` hears of
        each request the event-loop reads and watches send (they bypass the ApiClient).
        ``sleep`` is the retry back-off's wait (tests record it instead of waiting)."""
        self.sleep = sleep
        self.backend = backend
        self.timeout = timeout
        self.on_use = on_use
        self.instrument = instrument
        self.observe = observe
        self._readers: dict[str, _Reader] = {}
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()
        self._flights: dict[str, _Flights] = {}
        self._versions: dict[str, dict[str, str]] = {}  # learner -> kind -> last list version
        self._watches: dict[str, _Watch] = {}
        self._failures: dict[str, int] = {}  # learner -> reads failed in a row
        self.reads = 0  # cluster reads actually made (after coalescing)

    # --- readers ------------------------------------------------------------------------

    async def reader(self, learner_id: str) -> ClusterReader:
        lock = self._locks.get(learner_id)
        if lock is None:  # kept alive by whoever holds or awaits it, then forgotten
            lock = self._locks[learner_id] = asyncio.Lock()
        async with lock:
            cached = self._readers.get(learner_id)
            if cached and time.monotonic() - cached.made < READER_TTL:
                return cached.reader
            api = await self.backend.client_for(learner_id)
            who = identity(api.configuration)
            if cached and cached.identity == who:
                # The same cluster and credentials: keep the reader, and with it the
                # learner's open watches and kept connections (a new reader would restart
                # every watch and handshake anew, for all learners every READER_TTL).
                api.close()
                cached.made = time.monotonic()
                return cached.reader
            api.configuration.retries = False
            if self.instrument is not None:
                self.instrument(api)
            fresh = _Reader(ClusterReader(api), time.monotonic(), who)
            fresh.reader.observe = self.observe
            self._readers[learner_id] = fresh
            if cached:
                cached.reader.close()
            return fresh.reader

    @property
    def kept_reads(self) -> int:
        """LISTs answered from a kept answer (no request) by the open readers, in total."""
        return sum(r.reader.kept_reads for r in self._readers.values())

    def client_for(self, learner_id: str) -> client.ApiClient | None:
        """The learner's ApiClient if one is open (the voice's read-only tools use it)."""
        cached = self._readers.get(learner_id)
        return cached.reader.api if cached else None

    def forget(self, learner_id: str) -> None:
        cached = self._readers.pop(learner_id, None)
        self._versions.pop(learner_id, None)
        self.unwatch(learner_id)
        if cached:
            cached.reader.close()

    async def snapshot(self, learner_id: str, kinds: set[str]) -> Snapshot:
        """One read of ``kinds``, shared with concurrent callers for the same learner."""
        wanted = frozenset(kinds)
        f = self._flights.setdefault(learner_id, _Flights())
        if f.queued is not None and not f.queued.done() and wanted <= f.queued_kinds:
            task = f.queued  # join the read that starts when the running one ends
        elif (f.current is not None and not f.current.done()) or (
            time.monotonic() - f.started < READ_GAP
        ):
            task = asyncio.create_task(self._read_after(f.current, f, learner_id, wanted))
            if f.queued is None or f.queued.done():
                f.queued, f.queued_kinds = task, wanted
        else:
            task = asyncio.create_task(self._read(learner_id, wanted))
            f.current, f.started = task, time.monotonic()
        task.add_done_callback(_retrieve)
        task.add_done_callback(f.release)
        task.add_done_callback(lambda _t: self._idle(learner_id, f))
        return await asyncio.shield(task)

    def _idle(self, learner_id: str, f: _Flights) -> None:
        """Forget a learner's flight record once no read runs or waits (it is small, but a
        thousand learners who came once should leave nothing behind). ``started`` matters
        only for :data:`READ_GAP`, so a record is kept that long after its last read."""
        if f.current is None and f.queued is None and self._flights.get(learner_id) is f:
            if time.monotonic() - f.started >= READ_GAP:
                del self._flights[learner_id]
            else:
                asyncio.get_running_loop().call_later(READ_GAP, self._idle, learner_id, f)

    async def _read_after(
        self,
        previous: asyncio.Task[Snapshot] | None,
        f: _Flights,
        learner_id: str,
        kinds: frozenset[str],
    ) -> Snapshot:
        if previous is not None:
            await asyncio.wait([previous])
        # A burst of clicks: callers keep joining this read until it starts.
        await asyncio.sleep(max(0.0, f.started + READ_GAP - time.monotonic()))
        me = asyncio.current_task()
        if f.queued is me:
            f.queued = None
        f.current, f.started = me, time.monotonic()
        return await self._read(learner_id, kinds)

    async def _read(self, learner_id: str, kinds: frozenset[str]) -> Snapshot:
        if self.on_use is not None:
            await self.on_use(learner_id)  # type: ignore[operator]
        reader = await self.reader(learner_id)
        self.reads += 1
        w = self._watches.get(learner_id)
        marks = w.notifier.mark if w is not None and w.reader is reader else None
        try:
            snap = await reader.read_async(kinds, self.timeout, marks)
        except ClusterError:
            self._failures[learner_id] = self._failures.get(learner_id, 0) + 1
            raise
        self._failures.pop(learner_id, None)
        cached = self._readers.get(learner_id)
        if cached is not None and cached.reader is reader:
            cached.read = True  # not the snapshot itself: a thousand of them would bloat the heap
            self._versions.setdefault(learner_id, {}).update(snap.versions)
        return snap

    async def wait_for_change(
        self, learner_id: str, timeout: float, kinds: set[str] | None = None
    ) -> bool:
        """Block until a kind read for this learner changes (watch), or ``timeout``.

        The watch outlives the call: the next call resumes it, so waiting again costs no
        request, and changes that arrive between calls are not lost (the next call returns at
        once). True at once when ``kinds`` (e.g. the open task's) includes one never read: a
        read is due first. Cancelling the wait stops the watch (:meth:`unwatch`)."""
        failures = self._failures.get(learner_id, 0)
        if failures:  # the last read failed: retry, backing off so a struggling API server
            # is not asked again every two seconds by every learner it serves
            await self.sleep(min(timeout, RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX))
            return True
        cached = self._readers.get(learner_id)
        versions = self._versions.get(learner_id, {})
        if cached is None or not cached.read or not versions:
            await self.sleep(min(timeout, RETRY_FIRST))
            return True
        if kinds is not None and not set(kinds) <= set(versions):
            return True
        # the open task's kinds (all read so far when not told): a watch per kind costs a
        # request per window while idle, so kinds of earlier tasks are not kept watched
        watched = frozenset(versions if kinds is None else kinds) - NOT_WATCHED
        w = self._watches.get(learner_id)
        if w is not None and w.reader is cached.reader:
            if w.kinds != watched:  # a new task: watch the difference only
                w.notifier.retarget({k: versions[k] for k in watched})
                w.kinds = watched
        else:
            self.unwatch(learner_id)
            notifier = AsyncChangeNotifier(
                cached.reader, {k: versions[k] for k in watched}, window=WATCH_WINDOW
            )
            notifier.start()
            w = self._watches[learner_id] = _Watch(notifier, cached.reader, watched)
        try:
            return await w.notifier.wait(timeout)
        except asyncio.CancelledError:
            self.unwatch(learner_id)
            raise

    def unwatch(self, learner_id: str) -> None:
        """Stop the learner's watch (the learner left the task, went idle or the bot stops)."""
        w = self._watches.pop(learner_id, None)
        if w is not None:
            w.notifier.stop()

    async def aclose(self) -> None:
        """Stop every watch and wait for their connections to close (the bot stops)."""
        watches, self._watches = list(self._watches.values()), {}
        await asyncio.gather(*(w.notifier.aclose() for w in watches), return_exceptions=True)

    # --- the Cluster port ---------------------------------------------------------------

    async def evaluate(
        self, learner_id: str, objectives: Sequence[ObjectiveSpec], ctx: EvalContext
    ) -> CheckResult:
        try:
            snap = await self.snapshot(learner_id, kinds_for(objectives))
        except (ClusterError, SandboxError) as exc:
            self._drop_after(learner_id, exc)
            return CheckResult(error=self.explain(exc))
        return CheckResult(evaluate_all(objectives, snap, ctx))

    async def run_drill(self, learner_id: str, drill: Drill) -> datetime:
        started = datetime.now(UTC)
        api = (await self.reader(learner_id)).api
        selector = ",".join(f"{k}={v}" for k, v in drill.labels.items())

        def act() -> None:
            core = client.CoreV1Api(api)
            pods = core.list_namespaced_pod(
                drill.namespace, label_selector=selector, _request_timeout=self.timeout
            )
            for pod in pods.items[: drill.count]:
                if pod.metadata is not None and pod.metadata.name:
                    core.delete_namespaced_pod(
                        pod.metadata.name, drill.namespace, _request_timeout=self.timeout
                    )

        await asyncio.to_thread(act)
        log.info("drill %s ran", drill.action, extra={"learner": learner_id})
        return started

    async def measure(self, learner_id: str, fact: FactCheck) -> int | None:
        kind = {"ready_nodes": "Node", "nodes": "Node", "namespaces": "Namespace", "pods": "Pod"}[
            fact.measure
        ]
        try:
            snap = await self.snapshot(learner_id, {kind})
        except (ClusterError, SandboxError):
            return None
        items = snap.of(kind)
        if fact.namespace:
            items = [i for i in items if i.get("metadata", {}).get("namespace") == fact.namespace]
        if fact.measure == "ready_nodes":
            items = [
                n
                for n in items
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
        return len(items)

    async def apply(self, learner_id: str, manifests: Sequence[Path]) -> str:
        from sandbox.apply import Kube, apply_all, load_manifests

        try:
            api = (await self.reader(learner_id)).api
            done = await asyncio.to_thread(lambda: apply_all(Kube(api), load_manifests(manifests)))
        except (ClusterError, SandboxError) as exc:
            return self.explain(exc)
        return f"Applied {len(done)} objects: " + ", ".join(done) if done else "Nothing to apply."

    async def probe(self, learner_id: str) -> str:
        """Empty when the learner's cluster answers; otherwise what to do about it."""
        try:
            await self.snapshot(learner_id, {"Node"})
        except (ClusterError, SandboxError) as exc:
            self._drop_after(learner_id, exc)
            return self.explain(exc)
        return ""

    def _drop_after(self, learner_id: str, exc: Exception) -> None:
        """After a failed read: a slow answer keeps the client and the watch (they are fine
        and resume); anything else (refused, unreachable, bad credentials) starts afresh."""
        if not isinstance(exc, ClusterTimeout):
            self.forget(learner_id)

    def explain(self, exc: Exception) -> str:
        if isinstance(self.backend, KubeconfigBackend):
            return NO_CLUSTER.format(reason=str(exc).splitlines()[0][:200])
        return f"Your station cluster is not answering right now ({str(exc).splitlines()[0][:200]}). Try again in a minute."


def _retrieve(task: asyncio.Task[Snapshot]) -> None:
    """A shared read's error reaches its callers; this only keeps asyncio from warning when
    every caller was cancelled before it ended."""
    if not task.cancelled():
        task.exception()


def connect_local(
    *, kubeconfig: Path | None, context: str | None, timeout: float
) -> ClusterService:
    """The service for ``kepler play``: your own kube context, used as is."""
    return ClusterService(KubeconfigBackend(kubeconfig, context), timeout=timeout)
