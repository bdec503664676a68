"""One HTTP/2 connection per learner cluster: its watches and reads as streams of it.

Over HTTP/1.1 a learner holds one connection per watched kind plus one for reads: ~6.4 sockets
and, between checks, new TLS handshakes (the largest share of the bot's CPU left at 1,000
learners, and the open-file ceiling at 4,000). kube-apiserver speaks HTTP/2 (ALPN ``h2``, as
client-go uses it), so :mod:`sandbox.apihttp` asks for it and, when the server agrees, carries
everything for that cluster on one :class:`H2Connection`. The framing is ``h2``'s (the
sans-IO state machine httpx uses); TLS is :class:`~sandbox.tlswire.TlsWire`'s.

An :class:`H2Exchange` is one GET and its answer. It reads like
:class:`~sandbox.httpstream.HttpStream` (``response``, ``read``, ``body``, ``deliver_to``,
``close``), so the pool and the watches treat both alike.

Liveness, after client-go's HTTP/2 health check: an answer that has not begun after
:data:`PROBE_AFTER` seconds, or a watch gone silent, sends a PING; a connection that then hears
nothing for :data:`PING_TIMEOUT` seconds is closed, and every stream on it fails (its watches
reopen on a new connection). A server's GOAWAY (shutting down, or kube-apiserver's
``--goaway-chance``) ends the connection for every stream: ``h2`` closes its state machine on
GOAWAY and takes no more frames, even for streams the server would finish. So each stream fails
as retryable: a read is retried on a new connection, a watch reopens from its last
resourceVersion (nothing is missed), and the pool opens the new connection once for all.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from sandbox.httpstream import EventSink
from sandbox.tlswire import TlsWire

WINDOW = 4 * 1024 * 1024  # each stream's receive window: a LIST arrives without waiting
CONNECTION_WINDOW = 16 * 1024 * 1024  # the whole connection's receive window
PROBE_AFTER = 3.0  # seconds without a status line before the connection is pinged
PING_TIMEOUT = 10.0  # seconds a pinged connection may stay silent before it is closed
MAX_BODY_QUEUED = 64 * 1024 * 1024  # an answer nobody reads yet

_CONFIG = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False)
_pings = itertools.count(1)


class Head:
    """A status line and headers, shaped as ``h11.Response`` (names lower-case bytes)."""

    __slots__ = ("headers", "reason", "status_code")

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.headers = headers
        self.reason = b""  # HTTP/2 has none


class H2Connection(TlsWire):
    """The client side of one HTTP/2 connection (TLS handed over by :func:`tlswire.handshake`).

    ``on_idle(conn)`` is called when its last stream ends (the pool keeps it or closes it);
    ``on_gone(conn)`` once it can carry no new stream."""

    def __init__(self, authority: str, scheme: str = "https",
                 on_idle: Callable[[H2Connection], None] | None = None,
                 on_gone: Callable[[H2Connection], None] | None = None) -> None:
        super().__init__()
        self.authority = authority
        self.scheme = scheme
        self.on_idle = on_idle
        self.on_gone = on_gone
        self.home: Any = None  # the pool's key for it
        self.requests = 0  # streams opened on it
        self.heard = time.monotonic()  # when the server last sent anything
        self._h2 = h2.connection.H2Connection(_CONFIG)
        self._h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self._exchanges: dict[int, H2Exchange] = {}
        self._error: BaseException | None = None
        self._going = False  # GOAWAY received or sent: no new streams
        self._ping: tuple[bytes, float] | None = None  # outstanding PING, and when it went
        self._ping_timer: asyncio.TimerHandle | None = None

    # --- for the pool ---------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Open, not going away, and with room for another stream."""
        return (self._error is None and not self._going and self.open
                and self._h2.open_outbound_streams
                < self._h2.remote_settings.max_concurrent_streams)

    @property
    def streams(self) -> int:
        return len(self._exchanges)

    def request(self, target: str, headers: Mapping[str, str]) -> H2Exchange:
        """Send ``GET target`` on a new stream (raises ``ConnectionResetError`` if it cannot
        take one)."""
        if self._error is not None or self._going or not self.open:
            raise ConnectionResetError("HTTP/2 connection closed")
        sid = self._h2.get_next_available_stream_id()
        fields = [(b":method", b"GET"), (b":scheme", self.scheme.encode()),
                  (b":authority", self.authority.encode()), (b":path", target.encode()),
                  *((k.lower().encode(), v.encode()) for k, v in headers.items())]
        exchange = H2Exchange(self, sid)
        self._exchanges[sid] = exchange
        self.requests += 1
        exchange.requests = self.requests
        try:
            self._h2.send_headers(sid, fields, end_stream=True)
        except h2.exceptions.ProtocolError as exc:
            del self._exchanges[sid]
            raise ConnectionResetError(f"HTTP/2 stream refused ({exc})") from None
        self._write()
        return exchange

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close; streams still open fail."""
        if self.open and self._error is None:
            self._going = True
            try:
                self._h2.close_connection()
                self._write()
            except (h2.exceptions.ProtocolError, OSError):
                pass
        self._close_transport()
        self._shut(ConnectionResetError("HTTP/2 connection closed"))

    def probe(self) -> None:
        """PING the server, and close the connection if it then stays silent for
        :data:`PING_TIMEOUT` seconds (a dead server or a dropped route)."""
        if self._ping is not None or not self.open or self._error is not None:
            return
        data = next(_pings).to_bytes(8, "big")
        self._ping = (data, time.monotonic())
        try:
            self._h2.ping(data)
            self._write()
        except (h2.exceptions.ProtocolError, OSError) as exc:
            self._fail(exc)
            return
        self._ping_timer = asyncio.get_running_loop().call_later(PING_TIMEOUT, self._pinged)

    def _pinged(self) -> None:
        self._ping_timer = None
        if self._ping is not None and self.heard <= self._ping[1]:
            self._fail(TimeoutError(f"no word from the server for {PING_TIMEOUT:.0f} s"))
        self._ping = None

    # --- streams ----------------------------------------------------------------------

    def _forget(self, exchange: H2Exchange, reset: bool) -> None:
        if self._exchanges.get(exchange.sid) is not exchange:
            return
        del self._exchanges[exchange.sid]
        if reset and self._error is None and self.open:
            try:
                self._h2.reset_stream(exchange.sid, h2.errors.ErrorCodes.CANCEL)
                self._write()
            except (h2.exceptions.ProtocolError, OSError):
                pass
        if not self._exchanges:
            if self._going:
                self.close()
            elif self.on_idle is not None:
                self.on_idle(self)

    def _write(self) -> None:
        data = self._h2.data_to_send()
        if data:
            self._send(data)

    # --- TlsWire ------------------------------------------------------------------------

    def _handshake_done(self) -> None:
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._write()

    def _feed(self, data: bytes) -> None:
        if not data:
            self._shut(ConnectionResetError("connection closed by the server"))
            self._close_transport()
            return
        self.heard = time.monotonic()
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fail(ConnectionResetError(f"HTTP/2 protocol error ({exc})"))
            return
        for event in events:
            self._event(event)
        if self._error is None and self.open:
            try:
                self._write()
            except OSError as exc:
                self._fail(exc)

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            sid = event.stream_id
            self._h2.acknowledge_received_data(event.flow_controlled_length, sid)
            ex = self._exchanges.get(sid)
            if ex is not None:
                ex._data(event.data)
        elif isinstance(event, h2.events.ResponseReceived):
            ex = self._exchanges.get(event.stream_id)
            if ex is not None:
                ex._head(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            ex = self._exchanges.get(event.stream_id)
            if ex is not None:
                ex._complete()
        elif isinstance(event, h2.events.StreamReset):
            ex = self._exchanges.get(event.stream_id)
            if ex is not None:
                refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                ex._broken(ConnectionResetError(
                    "stream refused by the server" if refused
                    else f"stream reset by the server ({event.error_code!r})"))
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._fail(ConnectionResetError("the server is going away (GOAWAY)"))
        elif isinstance(event, h2.events.PingAckReceived):
            self._ping = None
            if self._ping_timer is not None:
                self._ping_timer.cancel()
                self._ping_timer = None

    def _fail(self, exc: BaseException) -> None:
        self._abort()
        self._shut(exc)

    def _lost(self, exc: BaseException | None) -> None:
        self._shut(exc or ConnectionResetError("connection closed"))

    def _shut(self, exc: BaseException) -> None:
        """No stream can go on: fail them all, once."""
        if self._error is not None:
            return
        self._error = exc
        self._going = True
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        exchanges, self._exchanges = list(self._exchanges.values()), {}
        for ex in exchanges:
            ex._broken(exc)
        if self.on_gone is not None:
            self.on_gone(self)


class H2Exchange:
    """One GET on an :class:`H2Connection` and its answer (read like an ``HttpStream``)."""

    __slots__ = ("_chunks", "_done", "_error", "_probe", "_sink", "_size", "_waiter", "conn",
                 "head", "home", "requests", "sid")

    def __init__(self, conn: H2Connection, sid: int) -> None:
        self.conn = conn
        self.sid = sid
        self.head: Head | None = None
        self.home: Any = None  # the HTTP/1.1 pool's; an exchange never goes back to a pool
        self.requests = 0  # the stream's number on its connection (1: the first)
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._sink: EventSink | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._probe: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            PROBE_AFTER, conn.probe)

    @property
    def session(self) -> Any:
        return self.conn.session

    @property
    def session_reused(self) -> bool:
        return self.conn.session_reused

    # --- reading ------------------------------------------------------------------------

    async def response(self) -> Head:
        while self.head is None:
            await self._wait()
        return self.head

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                chunks, self._chunks, self._size = self._chunks, [], 0
                for chunk in chunks:
                    yield chunk
                continue
            if self._done:
                return
            await self._wait()

    async def read(self, limit: int) -> bytes:
        while not self._done:
            if self._size > limit:
                raise ValueError("answer too large")
            await self._wait()
        if self._size > limit:
            raise ValueError("answer too large")
        chunks, self._chunks, self._size = self._chunks, [], 0
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def deliver_to(self, sink: EventSink) -> None:
        """Push the rest of the answer to ``sink`` (what is queued first)."""
        self._sink = sink
        chunks, self._chunks, self._size = self._chunks, [], 0
        for chunk in chunks:
            if self._sink is not sink:
                return
            sink.on_data(chunk)
        if self._sink is not sink:
            return
        if self._done:
            self._sink = None
            sink.on_complete()
        elif self._error is not None:
            self._sink = None
            sink.on_end(self._error)

    def detach(self) -> None:
        self._sink = None

    def close(self) -> None:
        """Done with it: a stream not yet ended is reset (the server stops sending)."""
        self._sink = None
        self._stop_probe()
        self.conn._forget(self, reset=not self._done)

    def timed_out(self) -> None:
        """The answer did not come in time: ask whether the connection is still there."""
        if self.conn.heard < time.monotonic() - PROBE_AFTER:
            self.conn.probe()
        self.close()

    # --- from the connection ------------------------------------------------------------

    def _head(self, headers: list[tuple[bytes, bytes]]) -> None:
        self._stop_probe()
        status = 0
        fields = []
        for name, value in headers:
            if name == b":status":
                status = int(value)
            elif not name.startswith(b":"):
                fields.append((name, value))
        if 100 <= status < 200:
            return
        self.head = Head(status, fields)
        self._wake()

    def _data(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink.on_data(data)
            return
        self._chunks.append(data)
        self._size += len(data)
        if self._size > MAX_BODY_QUEUED:
            self._broken(ValueError("answer too large"))
            self.close()
            return
        self._wake()

    def _complete(self) -> None:
        self._done = True
        self._stop_probe()
        self.conn._forget(self, reset=False)
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.on_complete()
        self._wake()

    def _broken(self, exc: BaseException) -> None:
        if self._done or self._error is not None:
            return
        self._error = exc
        self._stop_probe()
        self.conn._forget(self, reset=False)
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.on_end(exc)
        self._wake()

    def _stop_probe(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        if self._done and self.head is None:
            raise ConnectionResetError("answer ended without a status line")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None and not self._chunks and not self._done:
            raise self._error
