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
import json
import random
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import h11
from kubernetes import client

from sandbox.errors import ClusterError, ClusterForbidden, ClusterTimeout, ClusterUnreachable
from sandbox.httpstream import HttpStream
from sandbox.snapshot import KINDS, NOT_WATCHED, ClusterReader

CONNECT_TIMEOUT = 10.0
MAX_LINE = 64 * 1024 * 1024  # one watch event; far above any sane object
HEADERS_TTL = 60.0  # seconds the auth headers are reused before asking the config again


# --- TLS and auth from a client Configuration -------------------------------------------


_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}


def ssl_context(cfg: client.Configuration) -> ssl.SSLContext | None:
    """The TLS context for ``cfg`` (``None`` for plain HTTP); cached by its inputs."""
    if not str(cfg.host or "").startswith("https"):
        return None
    key = (bool(cfg.verify_ssl), cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file,
           getattr(cfg, "assert_hostname", None))
    ctx = _contexts.get(key)
    if ctx is not None:
        return ctx
    try:
        if cfg.verify_ssl:
            ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
            if getattr(cfg, "assert_hostname", None) is False:
                ctx.check_hostname = False
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ClusterError(f"TLS settings unusable ({type(exc).__name__})") from None
    if len(_contexts) >= 1024:
        _contexts.clear()
    _contexts[key] = ctx
    return ctx


def auth_headers(cfg: client.Configuration) -> dict[str, str]:
    """``Accept`` plus the bearer token header, as the official client would send it."""
    headers = {"Accept": "application/json"}
    for setting in cfg.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[str(setting["key"])] = str(setting["value"])
    return headers


# --- the notifier ------------------------------------------------------------------------


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
        self._tasks: list[asyncio.Task[None]] = []
        self._auth: dict[str, str] | None = None
        self._auth_at = 0.0
        self._auth_lock = asyncio.Lock()
        cfg = reader.api.configuration
        self._base = str(cfg.host or "").rstrip("/")

    def start(self) -> None:
        """Start the watches (call from the event loop)."""
        loop = asyncio.get_running_loop()
        for kind, rv in self.versions.items():
            self._tasks.append(loop.create_task(self._run(kind, rv), name=f"watch-{kind}"))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
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

    async def _headers(self) -> dict[str, str]:
        """The request headers, worked out at most every :data:`HEADERS_TTL` seconds.

        The kubeconfig loader installs a refresh hook for every token (it may run an exec
        plugin), so working them out goes to a thread; once per notifier and minute, not per
        request, or a thousand learners' watch renewals queue up in the default executor."""
        async with self._auth_lock:  # the kinds' tasks start together: ask once for all
            now = time.monotonic()
            if self._auth is not None and now - self._auth_at < HEADERS_TTL:
                return self._auth
            cfg = self.reader.api.configuration
            if cfg.refresh_api_key_hook is not None:
                headers = await asyncio.to_thread(auth_headers, cfg)
            else:
                headers = auth_headers(cfg)
            self._auth, self._auth_at = headers, now
            return headers

    async def _get(self, path: str, query: dict[str, str]) -> tuple[HttpStream, h11.Response]:
        """Send a GET and read the status line; the caller reads the body and closes."""
        tls = ssl_context(self.reader.api.configuration)
        self.requests += 1
        stream = await HttpStream.get(f"{self._base}{path}?{urlencode(query)}",
                                      await self._headers(), tls, CONNECT_TIMEOUT)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                return stream, await stream.response()
        except BaseException:
            stream.close()
            raise

    async def _list_version(self, kind: str) -> str:
        """A fresh resourceVersion for ``kind`` (``LIST ?limit=1``)."""
        path = KINDS[kind].path
        stream, resp = await self._get(path, {"limit": "1"})
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if not 200 <= resp.status_code < 300:
                    raise await _status_error(stream, resp, f"{self.reader.server}{path}")
                try:
                    listed = json.loads(await stream.read(MAX_LINE))
                except ValueError:
                    raise ClusterError(f"{self.reader.server}{path}: answer is not JSON"
                                       ) from None
        finally:
            stream.close()
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
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    raise await _status_error(stream, resp, what)
            seen = 0
            buf = b""
            loop = asyncio.get_running_loop()
            quiet = window + 15.0  # the server sends at least a bookmark well within this
            async with asyncio.timeout(quiet) as deadline:
                async for chunk in stream.body():
                    deadline.reschedule(loop.time() + quiet)
                    buf += chunk
                    if len(buf) > MAX_LINE:
                        raise ClusterError(f"{what}: watch event too large")
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        seen += 1
                        event = json.loads(line)
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
            stream.close()

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
                    await asyncio.sleep(min(30.0, 0.5 * 2 ** failures))
                else:
                    failures = 0
            except ClusterError as exc:
                self.last_error = exc
                if isinstance(exc, ClusterForbidden):
                    self._auth = None  # the token may have been rotated: ask again
                failures += 1
                await asyncio.sleep(min(30.0, 0.5 * 2 ** failures))
            except (TimeoutError, OSError, ValueError, h11.ProtocolError) as exc:
                self.last_error = _map_error(exc, f"{self.reader.server}{KINDS[kind].path}")
                failures += 1
                await asyncio.sleep(min(30.0, 0.5 * 2 ** failures))


async def _status_error(stream: HttpStream, resp: h11.Response, what: str) -> ClusterError:
    code = resp.status_code
    reason = resp.reason.decode("latin-1", "replace")
    try:
        status = json.loads(await stream.read(64 * 1024) or b"{}")
        reason = status.get("reason") or reason
    except (ValueError, AttributeError, OSError, h11.ProtocolError):
        pass
    if code in (401, 403):
        return ClusterForbidden(f"{what}: {code} {reason}")
    if code == 504:
        return ClusterTimeout(f"{what}: {code} {reason}")
    return ClusterError(f"{what}: {code} {reason}")


def _map_error(exc: BaseException, what: str) -> ClusterError:
    if isinstance(exc, TimeoutError):
        return ClusterTimeout(f"{what}: watch timed out")
    if isinstance(exc, ssl.SSLError):
        return ClusterUnreachable(f"{what}: TLS error (certificate or protocol)")
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return ClusterUnreachable(f"{what}: connection refused or host unknown")
    if isinstance(exc, ValueError):
        return ClusterError(f"{what}: watch answer is not JSON")
    if isinstance(exc, h11.ProtocolError):
        return ClusterError(f"{what}: malformed HTTP answer")
    return ClusterUnreachable(f"{what}: connection failed ({type(exc).__name__})")
