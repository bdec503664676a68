"""One HTTP/2 connection per learner cluster: its watches and reads as streams of it.

Over HTTP/1.1 a learner holds one connection per watched kind plus one for reads: ~6.4 sockets
and, between checks, new TLS handshakes (the largest share of the bot's CPU left at 1,000
learners, and the open-file ceiling at 4,000). kube-apiserver speaks HTTP/2 (ALPN ``h2``, as
client-go uses it), so :mod:`sandbox.apihttp` asks for it and, when the server agrees, carries
everything for that cluster on one :class:`H2Connection`. TLS is
:class:`~sandbox.tlswire.TlsWire`'s.

The framing is the small part of RFC 9113 a client of GETs needs, written here rather than
taken from ``h2``: with ``h2`` the framing was a quarter of the bot's CPU at 1,000 learners
(its state machines, header validation, and a ``repr`` of every frame received for a log that
is off). It sends HEADERS (HPACK literals, RFC 7541 §6.2, the token as never-indexed), RST_STREAM,
PING, SETTINGS, WINDOW_UPDATE and GOAWAY, and reads every frame type; response headers are
decoded with ``hpack`` (the dynamic table and Huffman codes are the server's choice).
The tests check it against an independent implementation: the emulator serves HTTP/2 with
``h2``, whose framing real kubectl accepts.

An :class:`H2Exchange` is one GET and its answer. It reads like
:class:`~sandbox.httpstream.HttpStream` (``response``, ``read``, ``body``, ``deliver_to``,
``close``), so the pool and the watches treat both alike.

Liveness, after client-go's HTTP/2 health check: an answer that has not begun after
:data:`PROBE_AFTER` seconds, or a watch gone silent, sends a PING; a connection that then hears
nothing for :data:`PING_TIMEOUT` seconds is closed, and every stream on it fails (its watches
reopen on a new connection). A server's GOAWAY (shutting down, or kube-apiserver's
``--goaway-chance``) lets the streams it has taken finish; the later ones fail as refused
(retried on a new connection) and no new stream starts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import hpack

from sandbox.httpstream import EventSink
from sandbox.tlswire import TlsWire

WINDOW = 4 * 1024 * 1024  # each stream's receive window: a LIST arrives without waiting
CONNECTION_WINDOW = 16 * 1024 * 1024  # the whole connection's receive window
PROBE_AFTER = 3.0  # seconds without a status line before the connection is pinged
PING_TIMEOUT = 10.0  # seconds a pinged connection may stay silent before it is closed
MAX_BODY_QUEUED = 64 * 1024 * 1024  # an answer nobody reads yet
MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE: we ask for none larger (the default)
MAX_STREAM_ID = 2**31 - 1

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE = 0x2, 0x3, 0x4
NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, CANCEL = 0x0, 0x1, 0x7, 0x8

_pings = itertools.count(1)


def _frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes((kind, flags))
            + sid.to_bytes(4, "big") + payload)


def _int(value: int, prefix: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) in a ``prefix``-bit prefix under ``first``'s bits."""
    top = (1 << prefix) - 1
    if value < top:
        return bytes((first | value,))
    out = bytearray((first | top,))
    value -= top
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _literal(text: bytes) -> bytes:
    """An HPACK string literal, not Huffman-coded (§5.2)."""
    return _int(len(text), 7, 0) + text


def encode_fields(fields: list[tuple[bytes, bytes]]) -> bytes:
    """A header block of literals that touch no dynamic table (§6.2.2, §6.2.3): nothing the
    encoder must remember, so no state to keep in step with the server's decoder. Secrets
    (``authorization``) are marked never-indexed, so that no proxy keeps them in its table."""
    out = bytearray()
    for name, value in fields:
        out += b"\x10" if name in (b"authorization", b"cookie") else b"\x00"
        out += _literal(name) + _literal(value)
    return bytes(out)


class Head:
    """A status line and headers, shaped as ``h11.Response`` (names lower-case bytes)."""

    __slots__ = ("headers", "reason", "status_code")

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.headers = headers
        self.reason = b""  # HTTP/2 has none


class _ProtocolError(Exception):
    """The server broke RFC 9113: the connection ends (with GOAWAY PROTOCOL_ERROR)."""


class H2Connection(TlsWire):
    """The client side of one HTTP/2 connection (TLS handed over by
    :func:`~sandbox.tlswire.handshake`).

    ``on_idle(conn)`` is called when its last stream ends (the pool keeps it or closes it);
    ``on_gone(conn)`` once it can carry no new stream."""

    def __init__(self, authority: str, scheme: str = "https",
                 on_idle: Callable[[H2Connection], None] | None = None,
                 on_gone: Callable[[H2Connection], None] | None = None) -> None:
        super().__init__()
        self.on_idle = on_idle
        self.on_gone = on_gone
        self.home: Any = None  # the pool's key for it
        self.requests = 0  # streams opened on it
        self.pongs = 0  # our PINGs the server answered
        self.heard = time.monotonic()  # when the server last sent anything
        self._fixed = (b"\x82" + (b"\x87" if scheme == "https" else b"\x86")  # GET, scheme
                       + b"\x01" + _literal(authority.encode()))  # :authority, name indexed
        self._decoder = hpack.Decoder()
        self._buf = bytearray()
        self._block: tuple[int, int, bytearray] | None = None  # a header block in CONTINUATIONs
        self._next_sid = 1
        self._max_streams = MAX_STREAM_ID  # the server's SETTINGS_MAX_CONCURRENT_STREAMS
        self._unacked = 0  # connection-level bytes received since our last WINDOW_UPDATE
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
                and len(self._exchanges) < self._max_streams)

    @property
    def streams(self) -> int:
        return len(self._exchanges)

    def request(self, target: str, headers: Mapping[str, str]) -> H2Exchange:
        """Send ``GET target`` on a new stream (raises ``ConnectionResetError`` if it cannot
        take one)."""
        if not self.usable:
            raise ConnectionResetError("HTTP/2 connection closed")
        sid = self._next_sid
        self._next_sid += 2
        if self._next_sid > MAX_STREAM_ID:
            self._going = True  # stream ids used up: this is its last stream
        block = self._fixed + b"\x04" + _literal(target.encode()) + encode_fields(
            [(k.lower().encode(), v.encode()) for k, v in headers.items()])
        exchange = H2Exchange(self, sid)
        self._exchanges[sid] = exchange
        self.requests += 1
        exchange.requests = self.requests
        if len(block) <= MAX_FRAME:
            out = _frame(HEADERS, END_STREAM | END_HEADERS, sid, block)
        else:  # a header block past one frame goes on in CONTINUATION frames
            parts = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)]
            out = _frame(HEADERS, END_STREAM, sid, parts[0]) + b"".join(
                _frame(CONTINUATION, END_HEADERS if i == len(parts) - 1 else 0, sid, part)
                for i, part in enumerate(parts) if i)
        self._send(out)
        return exchange

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close; streams still open fail."""
        if self.open and self._error is None:
            self._going = True
            self._send_quietly(_frame(GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR)))
        self._close_transport()
        self._shut(ConnectionResetError("HTTP/2 connection closed"))

    def probe(self) -> None:
        """PING the server, and close the connection if it then stays silent for
        :data:`PING_TIMEOUT` seconds (a dead server or a dropped route)."""
        if self._ping is not None or not self.open or self._error is not None:
            return
        data = next(_pings).to_bytes(8, "big")
        self._ping = (data, time.monotonic())
        self._send_quietly(_frame(PING, 0, 0, data))
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
            self._send_quietly(_frame(RST_STREAM, 0, exchange.sid, struct.pack(">I", CANCEL)))
        if not self._exchanges:
            if self._going:
                self.close()
            elif self.on_idle is not None:
                self.on_idle(self)

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # it is going anyway; connection_lost tells all
            self._send(data)

    # --- TlsWire ------------------------------------------------------------------------

    def _handshake_done(self) -> None:
        settings = struct.pack(">HIHI", ENABLE_PUSH, 0, INITIAL_WINDOW_SIZE, WINDOW)
        self._send(PREFACE + _frame(SETTINGS, 0, 0, settings)
                   + _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", CONNECTION_WINDOW - 65535)))

    def _feed(self, data: bytes) -> None:
        if not data:
            self._shut(ConnectionResetError("connection closed by the server"))
            self._close_transport()
            return
        self.heard = time.monotonic()
        buf = self._buf
        buf += data
        at = 0
        try:
            while len(buf) - at >= 9 and self._error is None:
                length = int.from_bytes(buf[at:at + 3], "big")
                if length > MAX_FRAME:
                    raise _ProtocolError(f"a frame of {length} bytes (the most is {MAX_FRAME})")
                end = at + 9 + length
                if end > len(buf):
                    break
                kind, flags = buf[at + 3], buf[at + 4]
                sid = int.from_bytes(buf[at + 5:at + 9], "big") & MAX_STREAM_ID
                payload = bytes(buf[at + 9:end])
                at = end
                self._frame(kind, flags, sid, payload)
        except (_ProtocolError, hpack.HPACKError, ValueError, IndexError, struct.error) as exc:
            self._send_quietly(_frame(GOAWAY, 0, 0, struct.pack(">II", 0, PROTOCOL_ERROR)))
            self._fail(ConnectionResetError(f"HTTP/2 protocol error ({exc})"))
            return
        del buf[:at]

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if self._block is not None and kind != CONTINUATION:
            raise _ProtocolError("a header block cut short")
        if kind == DATA:
            self._data(flags, sid, payload)
        elif kind == HEADERS:
            if not sid:
                raise _ProtocolError("HEADERS on stream 0")
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            if flags & END_HEADERS:
                self._headers(sid, flags & END_STREAM, payload)
            else:
                self._block = (sid, flags & END_STREAM, bytearray(payload))
        elif kind == CONTINUATION:
            if self._block is None or self._block[0] != sid:
                raise _ProtocolError("CONTINUATION out of place")
            self._block[2].extend(payload)
            if flags & END_HEADERS:
                block, self._block = self._block, None
                self._headers(block[0], block[1], bytes(block[2]))
        elif kind == RST_STREAM:
            ex = self._exchanges.get(sid)
            if ex is not None:
                code = struct.unpack(">I", payload[:4])[0]
                ex._broken(ConnectionResetError(
                    "stream refused by the server" if code == REFUSED_STREAM
                    else f"stream reset by the server (error {code})"))
        elif kind == SETTINGS:
            if flags & ACK:
                return
            for i in range(0, len(payload) - len(payload) % 6, 6):
                ident, value = struct.unpack(">HI", payload[i:i + 6])
                if ident == MAX_CONCURRENT_STREAMS:
                    self._max_streams = value
            self._send(_frame(SETTINGS, ACK, 0))
        elif kind == PING:
            if flags & ACK:
                self.pongs += 1
                self._ping = None
                if self._ping_timer is not None:
                    self._ping_timer.cancel()
                    self._ping_timer = None
            else:
                self._send(_frame(PING, ACK, 0, payload[:8]))
        elif kind == GOAWAY:
            self._going = True
            last = struct.unpack(">I", payload[:4])[0] & MAX_STREAM_ID
            for ex in [ex for s, ex in self._exchanges.items() if s > last]:  # never taken
                ex._broken(ConnectionResetError("stream refused: the server is going away"))
            if self.on_gone is not None:
                self.on_gone(self)
            if not self._exchanges:
                self.close()
        elif kind == PUSH_PROMISE:
            raise _ProtocolError("PUSH_PROMISE, which we turned off")
        # PRIORITY, WINDOW_UPDATE (we send no DATA) and unknown types: nothing to do

    def _headers(self, sid: int, end: int, block: bytes) -> None:
        fields = self._decoder.decode(block, raw=True)  # always: the table must stay in step
        ex = self._exchanges.get(sid)
        if ex is not None:
            if ex.head is None:
                ex._head(fields)
            if end:
                ex._complete()

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise _ProtocolError("DATA on stream 0")
        size = len(payload)  # flow control counts the padding too
        if flags & PADDED:
            payload = payload[1:len(payload) - payload[0]]
        updates = b""
        self._unacked += size
        if self._unacked >= CONNECTION_WINDOW // 2:
            updates = _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self._unacked))
            self._unacked = 0
        ex = self._exchanges.get(sid)
        if ex is not None and not flags & END_STREAM:
            ex._unacked += size
            if ex._unacked >= WINDOW // 2:
                updates += _frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", ex._unacked))
                ex._unacked = 0
        if updates:
            self._send(updates)
        if ex is not None:
            if payload:
                ex._data(payload)
            if flags & END_STREAM:
                ex._complete()

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

    __slots__ = ("_chunks", "_done", "_error", "_probe", "_sink", "_size", "_unacked", "_waiter",
                 "conn", "head", "home", "requests", "sid")

    def __init__(self, conn: H2Connection, sid: int) -> None:
        self.conn = conn
        self.sid = sid
        self.head: Head | None = None
        self.home: Any = None  # the HTTP/1.1 pool's; an exchange never goes back to a pool
        self.requests = 0  # the stream's number on its connection (1: the first)
        self._chunks: list[bytes] = []
        self._size = 0
        self._unacked = 0  # bytes received since our last WINDOW_UPDATE for this stream
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

    def _head(self, headers: Any) -> None:
        self._stop_probe()
        status = 0
        fields = []
        for name, value in headers:
            if name == b":status":
                status = int(value)
            elif not name.startswith(b":"):
                fields.append((name, value))
        if 100 <= status < 200:
            return  # an interim answer: the real one follows
        if status == 0:
            raise _ProtocolError("an answer without :status")
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
