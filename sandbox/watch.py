"""Change notices as asyncio tasks: Kubernetes watches with no thread per stream.

:class:`AsyncChangeNotifier` holds one watch per needed kind (``Event`` excluded) for one
learner's cluster, each an asyncio task on the bot's event loop reading the API server's
JSON lines over its own connection (:class:`~sandbox.httpstream.HttpStream`, lean on memory:
thousands stay open). It asks for ``GET <collection>?watch=1&allowWatchBookmarks=true&
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
import random
import time
from collections.abc import Mapping

import h11
import orjson

from sandbox.apihttp import (
    CONNECT_TIMEOUT,
    MAX_BODY,
    get_json,
    map_error,
    open_get,
    release,
    status_error,
)
from sandbox.errors import ClusterError, ClusterForbidden
from sandbox.httpstream import HttpStream
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

    One asyncio task per kind in ``versions`` (except :data:`NOT_WATCHED`), resuming from the
    last resourceVersion seen; a server timeout of ``window`` seconds (jittered) bounds an idle
    learner to one request per kind per window.
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
        self._tasks: dict[str, asyncio.Task[None]] = {}  # kind -> its watch

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds being watched."""
        return frozenset(self._tasks)

    def start(self) -> None:
        """Start the watches (call from the event loop)."""
        for kind, rv in self.versions.items():
            self._start(kind, rv)

    def _start(self, kind: str, rv: str) -> None:
        self._tasks[kind] = asyncio.get_running_loop().create_task(
            self._run(kind, rv), name=f"watch-{kind}")

    def retarget(self, versions: Mapping[str, str]) -> None:
        """Watch exactly the kinds of ``versions`` from now on: the streams of kinds already
        watched go on from where they are (no new request), the others stop, and new kinds
        start from the given versions. A learner's next task mostly reads the same kinds as
        the last: only the difference costs requests and connections."""
        wanted = {k: v for k, v in versions.items() if k not in NOT_WATCHED}
        for kind in [k for k in self._tasks if k not in wanted]:
            self._tasks.pop(kind).cancel()
            self.versions.pop(kind, None)
        for kind, rv in wanted.items():
            if kind not in self._tasks:
                self.versions[kind] = rv
                self._start(kind, rv)

    def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def aclose(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self, timeout: float | None = None) -> bool:
        """True when a change arrived (the flag is then cleared); False on timeout."""
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except TimeoutError:
            return False
        self.changed.clear()
        return True

    def _fire(self) -> None:
        self.changes += 1
        self.changed.set()

    # -- requests --

    async def _get(self, path: str, query: dict[str, str]) -> tuple[HttpStream, h11.Response]:
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

    async def _stream(self, kind: str, rv: str, window: int) -> tuple[str, bool, int]:
        """One watch request: (last resourceVersion, expired?, events read)."""
        path = KINDS[kind].path
        what = f"{self.reader.server}{path}"
        query = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": str(window)}
        if rv:
            query["resourceVersion"] = rv
        stream, resp = await self._get(path, query)
        try:
            if resp.status_code == 410:
                return rv, True, 0
            if not 200 <= resp.status_code < 300:
                raise await status_error(stream, resp, what)
            seen = 0
            buf = b""
            loop = asyncio.get_running_loop()
            quiet = window + 15.0  # the server sends at least a bookmark well within this
            async with asyncio.timeout(quiet) as deadline:
                async for chunk in stream.body():
                    deadline.reschedule(loop.time() + quiet)
                    buf += chunk
                    if len(buf) > MAX_BODY:
                        raise ClusterError(f"{what}: watch event too large")
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        seen += 1
                        event = orjson.loads(line)
                        obj = event.get("object") or {}
                        kind_ = event.get("type")
                        if kind_ == "ERROR":
                            if obj.get("code") == 410:
                                return rv, True, seen
                            raise ClusterError(f"{what}: watch error {obj.get('code')} "
                                               f"{obj.get('reason') or ''}".rstrip())
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if kind_ != "BOOKMARK":
                            self._fire()
            return rv, False, seen
        finally:
            release(stream)  # kept for the next request if the watch ended whole

    async def _run(self, kind: str, rv: str) -> None:
        failures = 0
        while True:
            window = max(1, round(self.window * random.uniform(0.9, 1.0)))
            started = time.monotonic()
            try:
                rv, expired, seen = await self._stream(kind, rv, window)
                if expired:
                    self._fire()  # we may have missed something: re-check
                    rv = await self._list_version(kind)
                    failures = 0
                elif seen == 0 and time.monotonic() - started < min(1.0, window / 2):
                    failures += 1  # ended at once with nothing: do not spin
                    await asyncio.sleep(backoff(failures))
                else:
                    failures = 0
            except ClusterError as exc:
                self.last_error = exc
                if isinstance(exc, ClusterForbidden):
                    self.reader.credentials.refused()  # the token may have been rotated
                failures += 1
                await asyncio.sleep(backoff(failures))
            except (TimeoutError, OSError, ValueError, h11.ProtocolError) as exc:
                self.last_error = map_error(exc, f"{self.reader.server}{KINDS[kind].path}")
                failures += 1
                await asyncio.sleep(backoff(failures))


def watch_changes(reader: ClusterReader, since: Snapshot, window: float = 600.0
                  ) -> AsyncChangeNotifier:
    """Start an :class:`AsyncChangeNotifier` for the kinds in ``since`` (from their versions);
    call from the event loop. (Here, not on the reader: the watch builds on the reader, never
    the other way round.)"""
    n = AsyncChangeNotifier(reader, since.versions, window=window)
    n.start()
    return n
