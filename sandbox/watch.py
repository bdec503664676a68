"""Change notices on the event loop: Kubernetes watches with no thread or task per stream.

:class:`AsyncChangeNotifier` holds one watch per needed kind (``Event`` excluded) for one
learner's cluster, each reading the API server's JSON lines in its connection's callbacks
(over HTTP/2 a stream of the cluster's one connection, :mod:`sandbox.http2`; over HTTP/1.1 a
connection of its own, :class:`~sandbox.httpstream.HttpStream`; thousands stay open). It asks for ``GET <collection>?watch=1&allowWatchBookmarks=true&
resourceVersion=<rv>&timeoutSeconds=<window>`` starting at the snapshot's own list
resourceVersion (nothing between the read and the watch is missed), sets
:attr:`AsyncChangeNotifier.changed` on ``ADDED``/``MODIFIED``/``DELETED``, records
``BOOKMARK`` versions, and resumes from the last version when the server ends the stream, so
an idle learner costs one request per watched kind per window and no re-list. On
``410 Expired`` (an ``ERROR`` event or the status) it sets the event (conservative: re-check)
and restarts from a fresh ``LIST ?limit=1``.

Credentials come from the learner's ``kubernetes.client.Configuration`` (host, bearer token
via ``auth_settings()``, CA file, client certificate, ``verify_ssl``); tokens are sent only in
the ``Authorization`` header and never logged or put in an error text.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Mapping

import h11
import orjson

from sandbox.apihttp import (
    CONNECT_TIMEOUT,
    MAX_BODY,
    Exchange,
    Response,
    get_json,
    map_error,
    open_get,
    release,
    status_error,
)
from sandbox.errors import ClusterError, ClusterForbidden
from sandbox.objectives import Snapshot
from sandbox.snapshot import KINDS, NOT_WATCHED, ClusterReader

# --- the notifier ------------------------------------------------------------------------


BACKOFF_MAX = 30.0


def backoff(failures: int) -> float:
    """Seconds before re-opening a watch after ``failures`` failures in a row: exponential
    up to :data:`BACKOFF_MAX`, jittered over its upper half, so the watches of a thousand
    learners that an overloaded or restarted API server dropped together do not come back
    together (a reconnect storm) and are never retried at once (a spin)."""
    cap = min(BACKOFF_MAX, 0.5 * 2 ** failures)
    return random.uniform(cap / 2, cap)


class AsyncChangeNotifier:
    """Sets :attr:`changed` (an ``asyncio.Event``) when any watched kind changes.

    One watch per kind in ``versions`` (except :data:`NOT_WATCHED`), resuming from the last
    resourceVersion seen; a server timeout of ``window`` seconds (jittered) bounds an idle
    learner to one request per kind per window. A watch holds a task only while it opens its
    request (or waits to retry); once the answer streams, its events are handled in the
    connection's own callbacks (:class:`_KindWatch`).
    """

    def __init__(self, reader: ClusterReader, versions: Mapping[str, str],
                 window: float = 600.0):
        self.reader = reader
        self.versions = {k: v for k, v in versions.items() if k not in NOT_WATCHED}
        self.window = window
        self.changed = asyncio.Event()
        self.changes = 0
        self.requests = 0
        self.last_error: ClusterError | None = None
        self._watches: dict[str, _KindWatch] = {}

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds being watched."""
        return frozenset(self._watches)

    def start(self) -> None:
        """Start the watches (call from the event loop)."""
        for kind, rv in self.versions.items():
            self._start(kind, rv)

    def _start(self, kind: str, rv: str) -> None:
        w = self._watches[kind] = _KindWatch(self, kind, rv)
        w.open()

    def retarget(self, versions: Mapping[str, str]) -> None:
        """Watch exactly the kinds of ``versions`` from now on: the streams of kinds already
        watched go on from where they are (no new request), the others stop, and new kinds
        start from the given versions. A learner's next task mostly reads the same kinds as
        the last: only the difference costs requests and connections."""
        wanted = {k: v for k, v in versions.items() if k not in NOT_WATCHED}
        for kind in [k for k in self._watches if k not in wanted]:
            self._watches.pop(kind).stop()
            self.versions.pop(kind, None)
        for kind, rv in wanted.items():
            if kind not in self._watches:
                self.versions[kind] = rv
                self._start(kind, rv)

    def stop(self) -> None:
        for w in self._watches.values():
            w.stop()
        self._watches.clear()

    async def aclose(self) -> None:
        watches, self._watches = list(self._watches.values()), {}
        openers = [t for t in (w.stop() for w in watches) if t is not None]
        await asyncio.gather(*openers, return_exceptions=True)

    async def wait(self, timeout: float | None = None) -> bool:
        """True when a change arrived (the flag is then cleared); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self.changed.wait()
        except TimeoutError:
            return False
        self.changed.clear()
        return True

    def _fire(self) -> None:
        self.changes += 1
        self.changed.set()

    def mark(self, kind: str) -> tuple[int, int] | None:
        """Where ``kind``'s watch stands while its answer streams: the same mark later means
        no change of that kind was heard in between, and none was missed (the watch had no
        gap). ``None`` when the kind is not being watched on a live stream right now.

        A LIST made after a mark was taken stays exact as long as the mark stays the same
        (:meth:`sandbox.snapshot.ClusterReader.read_async` keeps it): the watch's first
        version is older than the LIST's, so every later change reaches the watch."""
        w = self._watches.get(kind)
        if w is None or w.stream is None:
            return None
        return w.epoch, w.changes

    # -- requests --

    async def _get(self, path: str, query: dict[str, str]) -> tuple[Exchange, Response]:
        self.requests += 1
        return await open_get(self.reader.api.configuration, self.reader.credentials, path,
                              query, self.reader.observe)

    async def _list_version(self, kind: str) -> str:
        """A fresh resourceVersion for ``kind`` (``LIST ?limit=1``)."""
        path = KINDS[kind].path
        self.requests += 1
        async with asyncio.timeout(CONNECT_TIMEOUT):
            listed = await get_json(self.reader.api.configuration, self.reader.credentials,
                                    path, {"limit": "1"}, f"{self.reader.server}{path}",
                                    self.reader.observe)
        return str(((listed or {}).get("metadata") or {}).get("resourceVersion", ""))

    def _failed(self, exc: BaseException, what: str) -> None:
        self.last_error = exc if isinstance(exc, ClusterError) else map_error(exc, what)
        if isinstance(exc, ClusterForbidden):
            self.reader.credentials.refused()  # the token may have been rotated


class _KindWatch:
    """The watch of one kind: a short task opens each request; the answer's events are then
    handled as they arrive (:class:`~sandbox.httpstream.EventSink`), with nothing awaiting.

    After each answer: resume from the last version at once; after ``410 Expired`` fire
    (conservative: re-check) and restart from a fresh ``LIST ?limit=1``; after an error, or an
    answer that ended at once with nothing, wait :func:`backoff`. A stream silent for longer
    than its window and :data:`QUIET_MARGIN` is ended by :data:`_QUIET` (one task for all
    watches)."""

    __slots__ = ("buf", "changes", "epoch", "failures", "heard", "kind", "notifier", "opener",
                 "rv", "seen", "started", "stream", "window")

    def __init__(self, notifier: AsyncChangeNotifier, kind: str, rv: str) -> None:
        self.notifier = notifier
        self.kind = kind
        self.rv = rv
        self.failures = 0
        self.opener: asyncio.Task[None] | None = None
        self.stream: Exchange | None = None
        self.buf = b""
        self.seen = 0  # events read from the current answer
        self.started = self.heard = 0.0  # when it was asked for; when it last sent anything
        self.window = 0  # the current request's timeoutSeconds
        # A run of answers with no gap between them (each resumes where the last ended, so
        # every change after the first version is heard) and the changes heard in it.
        self.epoch = next(_epochs)
        self.changes = 0

    @property
    def quiet(self) -> float:
        """Seconds of silence after which the stream counts as dead: the server sends at least
        a bookmark, or ends the answer, well within this."""
        return self.window + QUIET_MARGIN

    @property
    def what(self) -> str:
        return f"{self.notifier.reader.server}{KINDS[self.kind].path}"

    def open(self, delay: float = 0.0, expired: bool = False) -> None:
        self.opener = asyncio.get_running_loop().create_task(
            self._open(delay, expired), name=f"watch-{self.kind}")

    def stop(self) -> asyncio.Task[None] | None:
        """Stop for good; returns the opening task, cancelled, if one was running."""
        opener, self.opener = self.opener, None
        if opener is not None:
            opener.cancel()
        self._let_go()
        return opener

    async def _open(self, delay: float, expired: bool) -> None:
        n = self.notifier
        path = KINDS[self.kind].path
        while True:
            try:
                if delay:
                    await asyncio.sleep(delay)
                    delay = 0.0
                if expired:
                    n._fire()  # we may have missed something: re-check
                    self.epoch = next(_epochs)  # a gap: what came before says nothing now
                    self.rv = await n._list_version(self.kind)
                    expired = False
                    self.failures = 0
                window = max(1, round(n.window * random.uniform(0.9, 1.0)))
                query = {"watch": "1", "allowWatchBookmarks": "true",
                         "timeoutSeconds": str(window)}
                if self.rv:
                    query["resourceVersion"] = self.rv
                started = time.monotonic()
                stream, resp = await n._get(path, query)
                if resp.status_code == 410:
                    release(stream)
                    expired = True
                    continue
                if not 200 <= resp.status_code < 300:
                    try:
                        raise await status_error(stream, resp, self.what)
                    finally:
                        release(stream)
            except (ClusterError, TimeoutError, OSError, ValueError, h11.ProtocolError) as exc:
                n._failed(exc, self.what)
                self.failures += 1
                delay = backoff(self.failures)
                continue
            self.opener = None
            self.stream, self.buf, self.seen = stream, b"", 0
            self.started = self.heard = started
            self.window = window
            _QUIET.add(self)
            stream.deliver_to(self)
            return

    # -- the answer, pushed by the connection (sandbox.httpstream.EventSink) --

    def on_data(self, data: bytes) -> None:
        self.heard = time.monotonic()
        self.buf += data
        if len(self.buf) > MAX_BODY:
            self._fail(ClusterError(f"{self.what}: watch event too large"))
            return
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if line.strip() and not self._event(line):
                return

    def on_complete(self) -> None:
        self._ended(expired=False)

    def on_end(self, error: BaseException) -> None:
        self.stream = None  # the connection is gone: nothing to hand back
        self._fail(error)

    def _event(self, line: bytes) -> bool:
        """One JSON line of the answer; False once it ended the stream."""
        self.seen += 1
        try:
            event = orjson.loads(line)
        except ValueError as exc:
            self._fail(exc)
            return False
        obj = event.get("object") or {}
        type_ = event.get("type")
        if type_ == "ERROR":
            if obj.get("code") == 410:
                self._ended(expired=True)
            else:
                self._fail(ClusterError(f"{self.what}: watch error {obj.get('code')} "
                                        f"{obj.get('reason') or ''}".rstrip()))
            return False
        self.rv = str((obj.get("metadata") or {}).get("resourceVersion") or self.rv)
        if type_ != "BOOKMARK":
            self.changes += 1
            self.notifier._fire()
        return True

    def _let_go(self) -> None:
        """Detach from the current answer; its connection goes back to the pool if the answer
        was read whole (it is closed otherwise)."""
        _QUIET.discard(self)
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.detach()
            release(stream)

    def _ended(self, expired: bool) -> None:
        quick = time.monotonic() - self.started < min(1.0, self.window / 2)
        self._let_go()
        if expired:
            self.open(expired=True)
        elif self.seen == 0 and quick:  # ended at once with nothing: do not spin
            self.failures += 1
            self.open(delay=backoff(self.failures))
        else:
            self.failures = 0
            self.open()

    def _fail(self, exc: BaseException) -> None:
        self._let_go()
        self.notifier._failed(exc, self.what)
        self.failures += 1
        self.open(delay=backoff(self.failures))


class _QuietStreams:
    """Ends watch streams that have sent nothing for longer than their ``quiet`` (a server
    that died without closing the connection): one task per event loop looks every
    :data:`QUIET_SWEEP` seconds, instead of a timer per stream."""

    def __init__(self) -> None:
        self._watches: dict[asyncio.AbstractEventLoop, set[_KindWatch]] = {}
        self._tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    def add(self, w: _KindWatch) -> None:
        loop = asyncio.get_running_loop()
        for gone in [lp for lp in self._watches if lp.is_closed()]:
            self._watches.pop(gone, None)
            self._tasks.pop(gone, None)
        self._watches.setdefault(loop, set()).add(w)
        if loop not in self._tasks:
            self._tasks[loop] = loop.create_task(self._sweep(loop), name="watch-quiet-sweep")

    def discard(self, w: _KindWatch) -> None:
        for watches in self._watches.values():
            watches.discard(w)

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._watches.get(loop):
                await asyncio.sleep(QUIET_SWEEP)
                now = time.monotonic()
                for w in [w for w in self._watches.get(loop, ()) if now - w.heard > w.quiet]:
                    if w.stream is not None:
                        w.stream.timed_out()  # HTTP/2: is the whole connection gone?
                    w._fail(TimeoutError(f"no word from the server for {w.quiet:.0f} s"))
        finally:
            self._tasks.pop(loop, None)
            if not self._watches.get(loop):
                self._watches.pop(loop, None)


_epochs = itertools.count(1)
QUIET_SWEEP = 5.0  # seconds between looks for silent streams
QUIET_MARGIN = 15.0  # seconds of silence past a request's window before it counts as dead
_QUIET = _QuietStreams()


def watch_changes(reader: ClusterReader, since: Snapshot, window: float = 600.0
                  ) -> AsyncChangeNotifier:
    """Start an :class:`AsyncChangeNotifier` for the kinds in ``since`` (from their versions);
    call from the event loop. (Here, not on the reader: the watch builds on the reader, never
    the other way round.)"""
    n = AsyncChangeNotifier(reader, since.versions, window=window)
    n.start()
    return n
