"""One HTTP/1.1 GET whose answer is read as it arrives, lean enough to hold thousands open.

Kubernetes watches are long-lived responses: the bot holds one per watched kind per learner,
about 5,600 at 1,000 learners. Through aiohttp each cost a 256 KiB TLS read buffer (asyncio's
``sslproto`` allocates one per connection in Python 3.11) and about 70 objects the garbage
collector walks on every full collection: 1.4 MiB and ~400 objects per learner, measured with
``bench/load.py``. Here TLS runs over ``ssl.MemoryBIO`` inside a plain ``asyncio.Protocol``
(reads of :data:`~sandbox.tlswire.CHUNK` bytes) and the HTTP/1.1 framing is ``h11``'s (the sans-IO parser httpx
is built on), so a stream is a protocol, a TLS object and an h11 connection. The TLS half is
:class:`~sandbox.tlswire.TlsWire`, shared with the HTTP/2 connection (:mod:`sandbox.http2`).

Use: ``stream = await HttpStream.get(url, headers, tls, timeout)``, then ``await
stream.response()`` for the status and headers, then ``async for data in stream.body()``;
``stream.close()`` when done. Errors are ``OSError`` (``ssl.SSLError`` included),
``TimeoutError`` and ``h11.ProtocolError``.

Keep-alive (short reads, pooled by :mod:`sandbox.apihttp`): ``HttpStream.connect`` then
``send_get(..., keep_alive=True)`` for each request; once an answer has been read whole,
``recycle()`` readies the connection for the next request (``False`` if it cannot be reused:
the server closed it or asked to). A TLS ``session`` from an earlier connection to the same
server resumes it instead of a full handshake (no certificate chain to send and verify).

Pushed (a watch): once the status line is read, ``deliver_to(sink)`` hands the body to
``sink.on_data`` as it is parsed, inside the protocol's own callback, its end to
``sink.on_complete`` and a broken connection to ``sink.on_end``. An idle stream then holds no task, coroutine, future or
timer: at 1,000 learners those were a third of what a full garbage collection walked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import h11

from sandbox.tlswire import TlsWire, handshake

MAX_QUEUED = 64  # h11 events waiting for the reader before the socket stops being read


class EventSink(Protocol):
    """Where a pushed answer goes (:meth:`HttpStream.deliver_to`, the HTTP/2 exchange's)."""

    def on_data(self, data: bytes) -> None:
        """Body bytes, as soon as they are parsed."""

    def on_complete(self) -> None:
        """The answer ended whole."""

    def on_end(self, error: BaseException) -> None:
        """The connection failed or closed before the answer ended."""


class HttpStream(TlsWire):
    """The protocol of one HTTP/1.1 connection: one request at a time, and its response."""

    def __init__(self) -> None:
        super().__init__()
        self._h11 = h11.Connection(h11.CLIENT)
        self.requests = 0  # requests sent on this connection (> 1: it was reused)
        self.home: Any = None  # where it goes back once done (sandbox.apihttp's pool)
        self._events: deque[object] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._closed = False  # the connection is gone
        self._fed_eof = False
        self._paused = False
        self._sink: EventSink | None = None

    # --- opening ------------------------------------------------------------------------

    @classmethod
    async def get(cls, url: str, headers: Mapping[str, str], tls: ssl.SSLContext | None,
                  connect_timeout: float) -> HttpStream:
        """Connect and send ``GET url`` (``Connection: close``); TLS when ``tls`` is given."""
        parts = urlsplit(url)
        stream = await cls.connect(parts.scheme, parts.hostname or "", parts.port, tls,
                                   connect_timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        stream.send_get(target, parts.netloc.rsplit("@", 1)[-1], headers, keep_alive=False)
        return stream

    @classmethod
    async def connect(cls, scheme: str, host: str, port: int | None,
                      tls: ssl.SSLContext | None, connect_timeout: float,
                      session: ssl.SSLSession | None = None) -> HttpStream:
        """An open connection (TLS when ``tls`` is given, resuming ``session`` if any). A
        context that offers ``h2`` by ALPN belongs to :mod:`sandbox.apihttp`'s pool, which
        picks the protocol the server chose."""
        port = port or (443 if scheme == "https" else 80)
        wire = await handshake(host, port, tls, connect_timeout, session)
        if wire.alpn not in (None, "http/1.1"):
            wire._abort()
            raise ConnectionResetError(f"the server chose {wire.alpn}, not HTTP/1.1")
        return wire.hand_to(cls())

    def send_get(self, target: str, authority: str, headers: Mapping[str, str], *,
                 keep_alive: bool) -> None:
        """Send one ``GET`` (the answer is read with :meth:`response` and :meth:`body`)."""
        extra = [] if keep_alive else [("Connection", "close")]
        request = h11.Request(method="GET", target=target, headers=[
            ("Host", authority), *headers.items(), *extra])
        self.requests += 1
        self._send(self._h11.send(request) + (self._h11.send(h11.EndOfMessage()) or b""))

    def recycle(self) -> bool:
        """Ready the connection for another request once this answer was read whole;
        ``False`` (and nothing changed) if it cannot carry one."""
        if (self._closed or self._error is not None or self._events or self._fed_eof
                or not self.open
                or self._h11.our_state is not h11.DONE
                or self._h11.their_state is not h11.DONE):
            return False
        self._h11.start_next_cycle()
        return True

    @property
    def alive(self) -> bool:
        """Idle and still open: the server has not closed it or sent anything unasked."""
        return (not self._closed and self._error is None and not self._events
                and not self._fed_eof and self.open)

    async def response(self) -> h11.Response:
        """The status line and headers (1xx answers skipped)."""
        while True:
            event = await self._next()
            if isinstance(event, h11.Response):
                return event
            if not isinstance(event, h11.InformationalResponse):
                raise h11.RemoteProtocolError("answer without a status line")

    async def body(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; ends with the response."""
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return

    async def read(self, limit: int) -> bytes:
        """The whole body (at most ``limit`` bytes, else ``ValueError``)."""
        out = bytearray()
        async for data in self.body():
            out += data
            if len(out) > limit:
                raise ValueError("answer too large")
        return bytes(out)

    def deliver_to(self, sink: EventSink) -> None:
        """From now on push the answer to ``sink`` instead of queueing it for a reader (what
        is already queued goes first, at once); :meth:`detach` stops it. Call after
        :meth:`response`."""
        self._sink = sink
        if self._paused and self._transport is not None:
            self._paused = False
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()
        self._dispatch()
        if self._sink is sink and (self._error is not None or self._closed):
            self._end(self._error or ConnectionResetError(
                "connection closed before the answer ended"))

    def detach(self) -> None:
        """Stop pushing events (later ones are queued again, as for a reader)."""
        self._sink = None

    def close(self) -> None:
        self._close_transport()
        self._closed = True

    def timed_out(self) -> None:
        """The answer did not come in time: this connection is of no further use."""
        self.close()

    # --- TlsWire ------------------------------------------------------------------------

    def _lost(self, exc: BaseException | None) -> None:
        if exc is not None and self._error is None:
            self._error = exc
        self._closed = True
        self._wake()
        if self._sink is not None:
            self._end(self._error or ConnectionResetError("connection closed"))

    def _feed(self, data: bytes) -> None:
        if self._fed_eof:
            return
        self._fed_eof = not data
        try:
            self._h11.receive_data(data)
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                self._events.append(event)
                if isinstance(event, h11.ConnectionClosed):
                    break
        except h11.ProtocolError as exc:
            # the connection ended mid-answer: that is a dropped connection, not bad HTTP
            self._fail(ConnectionResetError("connection closed before the answer ended")
                       if not data else exc)
            return
        if self._sink is not None:
            self._dispatch()
            return
        if len(self._events) > MAX_QUEUED and not self._paused and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._abort()
        self._wake()
        if self._sink is not None:
            self._end(exc)

    # --- HTTP ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Queued events to the sink, until none is left or the sink lets go."""
        sink = self._sink
        while self._events and sink is not None and self._sink is sink:
            event = self._events.popleft()
            if isinstance(event, h11.Data):
                sink.on_data(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                sink.on_complete()
            elif isinstance(event, h11.ConnectionClosed):
                self._end(ConnectionResetError("connection closed before the answer ended"))
                return

    def _end(self, error: BaseException) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.on_end(error)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _next(self) -> object:
        while not self._events:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise ConnectionResetError("connection closed before the answer ended")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._events.popleft()
        if self._paused and len(self._events) < MAX_QUEUED // 4 and self._transport is not None:
            self._paused = False
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()
        if isinstance(event, h11.ConnectionClosed):
            raise ConnectionResetError("connection closed before the answer ended")
        return event
