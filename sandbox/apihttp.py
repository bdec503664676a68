"""Async GETs to a learner's API server from its client ``Configuration``, errors as ours.

The official client is synchronous (urllib3); the bot's hot paths, reads for checks and
watches, go through :class:`~sandbox.httpstream.HttpStream` on the event loop instead, with
the same credentials: host, CA file, client certificate, ``verify_ssl`` and the bearer token
from ``auth_settings()``. Tokens are sent only in the ``Authorization`` header and never put
in an error text. Failures become :class:`~sandbox.errors.ClusterError` subclasses.

Short reads (:func:`get_json`: the LISTs of a check) reuse connections. Opening one costs a TLS
handshake, and a check reads 2-8 kinds one after another: with ``Connection: close`` the
handshakes were most of the bot's CPU at 1,000 learners (``ssl.do_handshake`` topped the
profile). :class:`Pool` keeps a few idle keep-alive connections per learner cluster, bounded
per cluster, in total and in idle time, and remembers each server's TLS session so that a new
connection resumes it. A pooled connection the server closed meanwhile is retried once on a
fresh one (GETs are idempotent).

HTTP/2 first: the pool offers ``h2`` by ALPN, as client-go does, and when the server takes it
(kube-apiserver does) all of a cluster's watches and reads are streams of one connection
(:mod:`sandbox.http2`), opened once however many requests start together. A server that
answers without ALPN gets HTTP/1.1, where each watch keeps its own connection for its life.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import h11
import orjson
from kubernetes import client

from sandbox.errors import (
    ClusterError,
    ClusterForbidden,
    ClusterUnreachable,
    for_status,
    for_transport,
)
from sandbox.http2 import H2Connection, H2Exchange, Head
from sandbox.httpstream import HttpStream
from sandbox.tlswire import handshake

CONNECT_TIMEOUT = 10.0
HEADERS_TTL = 60.0  # seconds the auth headers are reused before asking the config again
MAX_BODY = 64 * 1024 * 1024  # one LIST or watch event; far above any sane answer
# Seconds an unused connection is kept: under kube-apiserver's own idle timeout (90 s,
# k8s.io/apiserver ServingInfo.Serve) and a cloud load balancer's common 60 s, and over the
# usual spacing of one learner's checks, so that most checks find their last connection.
IDLE_TIMEOUT = 55.0
MAX_IDLE_PER_CLUSTER = 2  # a learner's reads run one after another: one is usually enough
MAX_IDLE_TOTAL = 2048  # beyond this the least recently used idle connection is closed
RETRY_AFTER_MAX = 5.0  # a 429/503 asking to wait longer than this is an error at once

Observe = Callable[[str, str], object]  # (method, "2xx"/"4xx"/…/"error"): metrics
Exchange = HttpStream | H2Exchange  # one request and its answer, on either HTTP version
Response = h11.Response | Head
ALPN = ["h2", "http/1.1"]

_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}


def ssl_context(cfg: client.Configuration, http2: bool = False) -> ssl.SSLContext | None:
    """The TLS context for ``cfg`` (``None`` for plain HTTP); cached by its inputs. With
    ``http2`` it offers ``h2`` and ``http/1.1`` by ALPN (for the pool, which speaks both)."""
    if not str(cfg.host or "").startswith("https"):
        return None
    key = (bool(cfg.verify_ssl), cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file,
           getattr(cfg, "assert_hostname", None), http2)
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
        if http2:
            ctx.set_alpn_protocols(ALPN)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ClusterError(f"TLS settings unusable ({type(exc).__name__})") from None
    if len(_contexts) >= 1024:
        _contexts.clear()
    _contexts[key] = ctx
    return ctx


def identity(cfg: client.Configuration) -> str:
    """A digest of where and as whom ``cfg`` connects: server, TLS settings, the contents of
    its certificate files (loaders write them to new temporary files each time) and its
    tokens. Two configurations with the same identity can share connections and watches."""
    h = hashlib.sha256()
    for part in (cfg.host, cfg.verify_ssl, getattr(cfg, "assert_hostname", None),
                 getattr(cfg, "tls_server_name", None),
                 sorted((cfg.api_key or {}).items()), sorted((cfg.api_key_prefix or {}).items()),
                 cfg.username, cfg.password, cfg.refresh_api_key_hook is not None):
        h.update(repr(part).encode() + b"\0")
    for name in (cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file):
        try:
            h.update(Path(name).read_bytes() if name else b"-")
        except OSError:
            h.update(f"unreadable {name}".encode())
        h.update(b"\0")
    return h.hexdigest()


def auth_headers(cfg: client.Configuration) -> dict[str, str]:
    """``Accept`` plus the bearer token header, as the official client would send it."""
    headers = {"Accept": "application/json"}
    settings: Any = cfg.auth_settings()  # a TypedDict of TypedDicts; read as plain dicts
    for setting in settings.values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[str(setting["key"])] = str(setting["value"])
    return headers


_credential_keys = itertools.count(1)


class Credentials:
    """One cluster's request headers, worked out at most every :data:`HEADERS_TTL` seconds.

    The kubeconfig loader installs a refresh hook for every token (it may run an exec
    plugin), so working them out goes to a thread: once a minute per cluster, not once per
    request, or a thousand learners' requests queue up in the default executor (a fifth of
    the event loop's time in the 1,000-learner bench)."""

    def __init__(self, cfg: client.Configuration):
        self.cfg = cfg
        # the pool's key for this cluster's connections: never reused, unlike ``id(self)``,
        # which a new object takes over once this one is freed (it would be handed this
        # cluster's idle connections, with their TLS client identity)
        self.pool_key = next(_credential_keys)
        self._headers: dict[str, str] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        async with self._lock:  # several requests start together: ask once for all
            now = time.monotonic()
            if self._headers is not None and now - self._at < HEADERS_TTL:
                return self._headers
            if self.cfg.refresh_api_key_hook is not None:
                headers = await asyncio.to_thread(auth_headers, self.cfg)
            else:
                headers = auth_headers(self.cfg)
            self._headers, self._at = headers, now
            return headers

    def refused(self) -> None:
        """The server said 401/403: the token may have been rotated; ask again next time."""
        self._headers = None


Key = tuple[Hashable, ...]
Idle = HttpStream | H2Connection  # an idle HTTP/1.1 connection, or an HTTP/2 one without streams


class Pool:
    """The connections of one event loop to learner clusters, bounded.

    HTTP/2 (when the server chooses it): one connection per cluster carries all its requests,
    and is opened once however many requests start together. HTTP/1.1: at most
    :data:`MAX_IDLE_PER_CLUSTER` idle connections per cluster. Either way at most
    :data:`MAX_IDLE_TOTAL` idle connections in all (the least recently used goes first), none
    kept idle longer than :data:`IDLE_TIMEOUT`. An HTTP/1.1 connection is in the pool only
    while idle: a request takes it out and gives it back once its answer was read whole. TLS
    sessions are kept per server (origin and TLS settings) to resume new connections."""

    def __init__(self, per_cluster: int = MAX_IDLE_PER_CLUSTER, total: int = MAX_IDLE_TOTAL,
                 idle_timeout: float = IDLE_TIMEOUT, resume: bool = True,
                 http2: bool = True) -> None:
        self.resume = resume  # False: full handshakes only (the bench's before/after)
        self.http2 = http2  # False: offer HTTP/1.1 only (the bench's before/after)
        self.per_cluster = per_cluster
        self.total = total
        self.idle_timeout = idle_timeout
        self._idle: OrderedDict[Idle, tuple[Key, float]] = OrderedDict()  # LRU first
        self._by_key: dict[Key, list[HttpStream]] = {}  # idle HTTP/1.1 connections
        self._h2: dict[Key, H2Connection] = {}  # each cluster's HTTP/2 connection
        self._connecting: dict[Key, asyncio.Future[H2Connection | None]] = {}
        self._plain: set[Key] = set()  # servers that answered without h2: nothing to share
        self._sessions: dict[Key, ssl.SSLSession] = {}
        self._timer: asyncio.TimerHandle | None = None
        # counters for the bench and tests: reads' new connections, requests on a kept one,
        # watches' new connections, TLS handshakes that resumed a session, new connections
        # that speak HTTP/2
        self.opened = self.reused = self.streams = self.resumed = self.multiplexed = 0

    def __len__(self) -> int:
        return len(self._idle)

    def take(self, key: Key) -> HttpStream | None:
        """The most recently used idle HTTP/1.1 connection of ``key`` still open, if any."""
        self.prune()
        streams = self._by_key.get(key)
        while streams:
            stream = streams.pop()
            self._idle.pop(stream, None)
            if not streams:
                del self._by_key[key]
            if stream.alive:
                self.reused += 1
                return stream
            stream.close()
        return None

    def shared(self, key: Key) -> H2Connection | None:
        """``key``'s HTTP/2 connection, if it can take another stream."""
        conn = self._h2.get(key)
        if conn is None or not conn.usable:
            return None
        self._idle.pop(conn, None)
        self.reused += 1
        return conn

    def give(self, key: Key, stream: Exchange) -> None:
        """Back to the pool after a whole answer (closed instead if it cannot be reused; an
        HTTP/2 stream just ends, its connection stays with the cluster)."""
        if not isinstance(stream, HttpStream):
            stream.close()
            return
        if not stream.recycle() or self.per_cluster <= 0 or self.total <= 0:
            stream.close()
            return
        streams = self._by_key.setdefault(key, [])
        if len(streams) >= self.per_cluster:
            self._drop(streams[0])
        streams = self._by_key.setdefault(key, [])
        streams.append(stream)
        self._keep(key, stream)

    def _keep(self, key: Key, conn: Idle) -> None:
        while len(self._idle) >= self.total:
            self._drop(next(iter(self._idle)))
        self._idle[conn] = (key, time.monotonic())
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.idle_timeout, self._tick)

    async def connect(self, route: _Route, fresh: bool) -> HttpStream | H2Connection:
        """A new connection for ``route``'s cluster: HTTP/2 if the server takes it. Requests
        that start while one is being opened wait for it instead of opening their own."""
        key = route.key
        plain = route.server in self._plain
        pending = None if fresh or plain else self._connecting.get(key)
        if pending is not None:
            conn = await asyncio.shield(pending)
            if conn is not None and conn.usable:
                self._idle.pop(conn, None)
                self.reused += 1
                return conn
        if not self.http2 or route.tls is None:
            return await HttpStream.connect(route.scheme, route.host, route.port, route.tls,
                                            CONNECT_TIMEOUT, self.session(route.server))
        mine: asyncio.Future[H2Connection | None] | None = None
        if not plain:  # others wait for this one only where it may be shared
            mine = self._connecting[key] = asyncio.get_running_loop().create_future()
        try:
            wire = await handshake(route.host, route.port or 443, route.tls, CONNECT_TIMEOUT,
                                   self.session(route.server))
            if wire.alpn != "h2":
                if len(self._plain) >= 4 * self.total:
                    self._plain.clear()
                self._plain.add(route.server)
                return wire.hand_to(HttpStream())
            self._plain.discard(route.server)  # upgraded since: share again
            conn = wire.hand_to(H2Connection(route.authority, route.scheme,
                                             on_idle=self._h2_idle, on_gone=self._h2_gone))
            conn.home = key
            old = self._h2.get(key)
            self._h2[key] = conn
            if old is not None and not old.streams:
                self._drop_h2(old)
            self.multiplexed += 1
            if mine is not None:
                mine.set_result(conn)
            return conn
        finally:
            if mine is not None:
                if not mine.done():
                    mine.set_result(None)
                if self._connecting.get(key) is mine:
                    del self._connecting[key]

    def _h2_idle(self, conn: H2Connection) -> None:
        """``conn``'s last stream ended: kept for the cluster's next request, or closed."""
        key = conn.home
        if self._h2.get(key) is conn and conn.usable and self.total > 0:
            self._keep(key, conn)
        else:
            self._drop_h2(conn)

    def _h2_gone(self, conn: H2Connection) -> None:
        self._idle.pop(conn, None)
        if self._h2.get(conn.home) is conn:
            del self._h2[conn.home]

    def _drop_h2(self, conn: H2Connection) -> None:
        self._h2_gone(conn)
        conn.close()

    def session(self, server: Key) -> ssl.SSLSession | None:
        return self._sessions.get(server) if self.resume else None

    def remember(self, server: Key, stream: Exchange) -> None:
        """Keep ``stream``'s TLS session to resume the next connection to ``server``.

        Only after a connection's first answer, and not when it resumed the session already
        kept: reading ``SSLSocket.session`` copies the session (CPython serialises it, about
        0.4 ms, which was a sixth of the bot's CPU per check when done after every read)."""
        if stream.requests != 1:
            return  # a kept connection: its session was looked at after its first answer
        if stream.session_reused:
            self.resumed += 1
            if server in self._sessions:
                return
        session = stream.session
        if session is None:
            return
        if server not in self._sessions and len(self._sessions) >= 4 * self.total:
            self._sessions.clear()
        self._sessions[server] = session

    def prune(self) -> None:
        """Close idle connections older than the idle timeout."""
        limit = time.monotonic() - self.idle_timeout
        while self._idle:
            conn, (_key, since) = next(iter(self._idle.items()))
            if since > limit:
                break
            self._drop(conn)

    def close(self) -> None:
        for conn in list(self._idle):
            self._drop(conn)
        for conn in list(self._h2.values()):
            self._drop_h2(conn)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _drop(self, conn: Idle) -> None:
        key, _since = self._idle.pop(conn)
        if isinstance(conn, H2Connection):
            self._drop_h2(conn)
            return
        streams = self._by_key[key]
        streams.remove(conn)
        if not streams:
            del self._by_key[key]
        conn.close()

    def _tick(self) -> None:
        """Idle connections are closed even when no request comes to notice them."""
        self._timer = None
        self.prune()
        if self._idle:  # next when the oldest idle connection expires
            _key, since = next(iter(self._idle.values()))
            self._timer = asyncio.get_running_loop().call_later(
                max(0.01, since + self.idle_timeout - time.monotonic()), self._tick)


# Not weak: a pool's connections refer to their loop. Pools of closed loops (tests run many)
# are dropped when another loop makes its first pool, and their sockets with them.
_pools: dict[asyncio.AbstractEventLoop, Pool] = {}


def pool() -> Pool:
    """The running event loop's connection pool (connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    found = _pools.get(loop)
    if found is None:
        for old in [lp for lp in _pools if lp.is_closed()]:
            del _pools[old]
        found = _pools[loop] = Pool()
    return found


def use_pool(connections: Pool) -> None:
    """Make ``connections`` the running loop's pool (the bench compares settings)."""
    _pools[asyncio.get_running_loop()] = connections


@dataclass(frozen=True)
class _Route:
    """Where ``GET path?query`` on a learner's cluster goes, and its keys in the pool."""

    scheme: str
    host: str
    port: int | None
    tls: ssl.SSLContext | None
    authority: str
    target: str
    server: Key  # origin and TLS settings: whose TLS sessions may resume
    key: Key  # the cluster's connections

    @classmethod
    def of(cls, cfg: client.Configuration, credentials: Credentials, path: str,
           query: dict[str, str], http2: bool) -> _Route:
        base = urlsplit(str(cfg.host or "").rstrip("/"))
        target = f"{base.path}{path}" + (f"?{urlencode(query)}" if query else "")
        tls = ssl_context(cfg, http2)
        server: Key = (base.scheme, base.hostname or "", base.port, id(tls))
        return cls(base.scheme, base.hostname or "", base.port, tls,
                   base.netloc.rsplit("@", 1)[-1], target, server,
                   (credentials.pool_key, *server))

    async def send(self, connections: Pool, headers: dict[str, str], fresh: bool
                   ) -> tuple[Exchange, bool]:
        """The GET sent: as a stream of the cluster's HTTP/2 connection, else on an idle
        HTTP/1.1 one (unless ``fresh``), else on a new connection (resuming the server's TLS
        session); and whether it went on a connection that was already open."""
        if not fresh:
            shared = connections.shared(self.key)
            if shared is not None:
                return shared.request(self.target, headers), True
            stream = connections.take(self.key)
            if stream is not None:
                stream.send_get(self.target, self.authority, headers, keep_alive=True)
                return stream, True
        conn = await connections.connect(self, fresh)
        if isinstance(conn, H2Connection):
            joined = conn.requests > 0  # another request opened it (they started together)
            return conn.request(self.target, headers), joined
        conn.send_get(self.target, self.authority, headers, keep_alive=True)
        return conn, False


def _gone(exc: BaseException) -> bool:
    """A failure that says the kept connection had closed under us: worth one more try on a
    new one (not a certificate the server showed and we refused)."""
    return (isinstance(exc, OSError | h11.ProtocolError)
            and not isinstance(exc, ssl.SSLCertVerificationError))


def _let_go(stream: Exchange, exc: BaseException) -> None:
    if isinstance(exc, TimeoutError):
        stream.timed_out()  # an HTTP/2 connection gets asked whether it is still there
    else:
        stream.close()


async def open_get(cfg: client.Configuration, credentials: Credentials, path: str,
                   query: dict[str, str], observe: Observe | None = None
                   ) -> tuple[Exchange, Response]:
    """Send ``GET path?query`` (a watch) and read the status line; the caller reads the
    answer and then hands the stream to :func:`release`. Over HTTP/2 it is a stream of the
    cluster's connection; over HTTP/1.1 it starts on an idle pooled connection of the cluster
    when there is one (a learner's new watches follow the reads of its check: no handshake).
    Either is retried once on a new connection if the kept one turns out closed. ``observe``
    hears of every request's outcome (the bot's request metrics)."""
    connections = pool()
    route = _Route.of(cfg, credentials, path, query, connections.http2)
    stale = False
    while True:
        stream: Exchange | None = None
        reused = False
        try:
            headers = await credentials.headers()
            stream, reused = await route.send(connections, headers, fresh=stale)
            if not reused:
                connections.streams += 1
            if isinstance(stream, HttpStream):
                stream.home = (connections, route.key)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                resp = await stream.response()
            break
        except BaseException as exc:
            if stream is not None:
                _let_go(stream, exc)
            if reused and not stale and _gone(exc):
                stale = True
                continue
            if observe is not None and isinstance(exc, Exception):
                observe("GET", "error")
            raise
    connections.remember(route.server, stream)
    if observe is not None:
        observe("GET", f"{resp.status_code // 100}xx")
    return stream, resp


def release(stream: Exchange) -> None:
    """Done with a stream of :func:`open_get`: over HTTP/1.1 back to its pool if its answer
    was read whole and the server keeps the connection open, else closed; over HTTP/2 the
    stream ends (reset if its answer had not)."""
    home, stream.home = stream.home, None
    if home is None:
        stream.close()
    else:
        connections, key = home
        connections.give(key, stream)


async def get_json(cfg: client.Configuration, credentials: Credentials, path: str,
                   query: dict[str, str], what: str, observe: Observe | None = None) -> Any:
    """One GET answered with JSON (a 2xx) on a pooled keep-alive connection; anything else
    raises a :class:`ClusterError`. The caller bounds the time (``asyncio.timeout``).

    A pooled connection that fails before its answer ends (the server closed it while idle)
    is retried once on a new one; a 429/503 with a ``Retry-After`` of at most
    :data:`RETRY_AFTER_MAX` seconds is retried once after that wait."""
    return parse_json(await get_bytes(cfg, credentials, path, query, what, observe), what)


async def get_bytes(cfg: client.Configuration, credentials: Credentials, path: str,
                    query: dict[str, str], what: str, observe: Observe | None = None) -> bytes:
    """:func:`get_json`'s answer before parsing (the body of a 2xx)."""
    try:
        return await _get_body(cfg, credentials, path, query, what, observe)
    except ClusterForbidden:
        credentials.refused()
        raise


def parse_json(body: bytes, what: str) -> Any:
    """An answer's JSON, or a :class:`ClusterError` naming ``what``."""
    try:
        return orjson.loads(body)  # a LIST's JSON is most of a check's parsing: 3-4x faster
    except ValueError:  # orjson.JSONDecodeError is one
        raise ClusterError(f"{what}: answer is not JSON") from None


async def _get_body(cfg: client.Configuration, credentials: Credentials, path: str,
                    query: dict[str, str], what: str, observe: Observe | None) -> bytes:
    connections = pool()
    route = _Route.of(cfg, credentials, path, query, connections.http2)
    waited = stale = False
    for _attempt in range(3):  # at most: a stale kept connection, one Retry-After
        stream: Exchange | None = None
        reused = False
        try:
            headers = await credentials.headers()
            stream, reused = await route.send(connections, headers, fresh=stale)
            if not reused:
                connections.opened += 1
            async with asyncio.timeout(CONNECT_TIMEOUT):
                resp = await stream.response()
            if 200 <= resp.status_code < 300:
                body = await stream.read(MAX_BODY)
                connections.remember(route.server, stream)
                connections.give(route.key, stream)
                stream = None
                if observe is not None:
                    observe("GET", f"{resp.status_code // 100}xx")
                return body
            if observe is not None:
                observe("GET", f"{resp.status_code // 100}xx")
            wait = retry_after(resp)
            error = await status_error(stream, resp, what)
            if wait is not None and not waited and wait <= RETRY_AFTER_MAX:
                waited = True
                stream.close()
                stream = None
                await asyncio.sleep(wait)
                continue
            raise error
        except ClusterError:
            raise
        except (OSError, h11.ProtocolError) as exc:
            if reused and not stale and _gone(exc):
                stale = True  # the server closed the kept connection: once more, a new one
                continue
            if observe is not None:
                observe("GET", "error")
            raise map_error(exc, what) from None
        except (ValueError, TimeoutError) as exc:
            if stream is not None:
                _let_go(stream, exc)
                stream = None
            if observe is not None:
                observe("GET", "error")
            raise map_error(exc, what) from None
        finally:
            if stream is not None:
                stream.close()
    raise ClusterUnreachable(f"{what}: connection failed (closed by the server)")


def retry_after(resp: Response) -> float | None:
    """Seconds a 429/503 asks to wait (``Retry-After: N``), if it says."""
    if resp.status_code not in (429, 503):
        return None
    for name, value in resp.headers:
        if name == b"retry-after":
            try:
                return max(0.0, float(value.decode("latin-1")))
            except ValueError:
                return None
    return None


async def status_error(stream: Exchange, resp: Response, what: str) -> ClusterError:
    """The error for a non-2xx answer (its ``Status`` reason when it has one)."""
    code = resp.status_code
    reason = resp.reason.decode("latin-1", "replace")
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            status = json.loads(await stream.read(64 * 1024) or b"{}")
        reason = status.get("reason") or reason
    except (ValueError, AttributeError, OSError, TimeoutError, h11.ProtocolError):
        pass
    return for_status(code, reason, what)


def map_error(exc: BaseException, what: str) -> ClusterError:
    """A transport failure as one of ours (:func:`sandbox.errors.for_transport`)."""
    return for_transport(exc, what)

