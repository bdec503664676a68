"""The emulator's clusters served by one asyncio loop instead of a thread per connection.

The threaded server (:mod:`tests.emulator.server`) needs a thread for every open watch, and a
load run at 4,000 learners holds ~27,000 of them: the machine's load average passed 1,300
and the run said nothing about the bot. Here a connection is a coroutine, and an idle watch
is a coroutine waiting for its cluster's next change (:class:`_Waker`), so tens of thousands
cost memory, not scheduling.

Requests are answered by the very code the threaded server uses (:func:`admit`,
:func:`answer`, :class:`WatchFeed`): routing, auth, faults, delays, objects and watch events
are the same; only the transport differs. HTTP/1.1 with keep-alive (h11), TLS by asyncio,
and over TLS HTTP/2 (``h2``) for a client that asks for it by ALPN, as kube-apiserver serves
it: each request a stream, a watch's lines as DATA frames within the flow-control windows, a
client's RST_STREAM ends its watch. ``KubeEmulator(io="asyncio")`` uses it for both of its
listeners (``http2=False``: HTTP/1.1 only).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h11
from hyperframe.frame import GoAwayFrame

from tests.emulator.server import WATCH_HEADERS, Reply, WatchCall, WatchFeed, admit, answer

if TYPE_CHECKING:
    from tests.emulator.server import Cluster, KubeEmulator

IDLE = 120.0  # seconds a keep-alive connection may wait for its next request
READ = 65536
# not allowed in HTTP/2 (RFC 9113 8.2.2): the framing does their work
HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection"}


class _Headers(dict[str, str]):
    """A request's headers by lower-case name, looked up in any case (as ``email.message``)."""

    def get(self, key: str, default: None = None, /) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)


class _Waker:
    """Wakes the watches of one cluster when it changes (called on the loop)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def fire(self) -> None:
        self.event.set()
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Until the next change or ``timeout``. The caller looked at the cluster in this
        same step of the loop, so no change can fall between its look and this wait."""
        event = self.event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()


class AsyncFront:
    """A listener for ``emu``'s clusters (HTTPS with ``tls``, else plain HTTP) on its own
    loop, in a background thread."""

    def __init__(self, emu: KubeEmulator, tls: ssl.SSLContext | None,
                 http2: bool = True) -> None:
        self.emu = emu
        self.tls = tls
        if tls is not None and http2:
            tls.set_alpn_protocols(["h2", "http/1.1"])
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._wakers: dict[str, _Waker] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self.h2: set[_H2Connection] = set()  # open HTTP/2 connections
        self.h2_opened = 0  # HTTP/2 connections ever opened
        self._thread = threading.Thread(target=self.loop.run_forever, name="kube-emulator-aio",
                                        daemon=True)

    def start(self) -> AsyncFront:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._connection, "127.0.0.1", 0, ssl=self.tls,
                                          backlog=4096, limit=READ)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the front's loop and wait for it (from another thread)."""
        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def go_away(self) -> None:
        """Send GOAWAY on every HTTP/2 connection, as kube-apiserver does when it shuts down
        (or by ``--goaway-chance``): the streams it has taken finish, then it closes."""
        self.call(lambda: [c.go_away() for c in list(self.h2)])

    def drop(self) -> None:
        """Cut every HTTP/2 connection at once (a restart or a dropped route)."""
        self.call(lambda: [c.writer.transport.abort() for c in list(self.h2)])

    @property
    def h2_streams(self) -> int:
        """Requests being answered on HTTP/2 connections now (open watches among them)."""
        return sum(len(c.tasks) for c in list(self.h2))

    def _waker(self, cluster: Cluster) -> _Waker:
        waker = self._wakers.get(cluster.name)
        if waker is None:
            waker = self._wakers[cluster.name] = _Waker()
            loop = self.loop
            cluster.listeners.append(lambda: loop.call_soon_threadsafe(waker.fire))
        return waker

    # -- one connection --

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            h2conn = _H2Connection(self, reader, writer)
            self.h2.add(h2conn)
            self.h2_opened += 1
            try:
                await h2conn.serve()
            except asyncio.CancelledError:
                return
            finally:
                self.h2.discard(h2conn)
                self._connections.discard(task)
                writer.transport.abort()
            return
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._request(conn, reader)
                if request is None:
                    break
                if not await self._respond(conn, reader, writer, *request):
                    break
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (OSError, h11.ProtocolError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly, since Python 3.11's
            return  # start_server reports a handler that ends cancelled as an error
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    @staticmethod
    async def _request(conn: h11.Connection, reader: asyncio.StreamReader
                       ) -> tuple[h11.Request, bytes] | None:
        """The next request and its body; ``None`` once the client is gone."""
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(IDLE if request is None else 30.0):
                    conn.receive_data(await reader.read(READ))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            else:  # ConnectionClosed, PAUSED
                return None

    async def _respond(self, conn: h11.Connection, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, request: h11.Request, body: bytes) -> bool:
        """Answer one request; False if the connection must close."""
        headers = _Headers((k.decode("latin-1").lower(), v.decode("latin-1"))
                           for k, v in request.headers)
        method, target = request.method.decode(), request.target.decode("latin-1")
        admitted = admit(self.emu, method, target, headers)
        if admitted is None:  # an unreachable cluster: close without a word
            return False
        if isinstance(admitted, Reply):
            return await self._send(conn, writer, admitted)
        cluster, path, query, delay = admitted
        if delay:
            await asyncio.sleep(delay)
        outcome = answer(cluster, method, path, query, headers, body)
        if isinstance(outcome, Reply):
            return await self._send(conn, writer, outcome)
        return await self._stream(conn, reader, writer, outcome)

    @staticmethod
    async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, reply: Reply) -> bool:
        writer.write(conn.send(h11.Response(status_code=reply.code, headers=reply.headers()))
                     or b"")
        writer.write(conn.send(h11.Data(data=reply.body)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        return True

    async def _stream(self, conn: h11.Connection, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, call: WatchCall) -> bool:
        """A watch: chunked lines until its timeout, then the connection stays open (as
        kube-apiserver's does). A client that goes away ends it at once."""
        writer.write(conn.send(h11.Response(status_code=200, headers=WATCH_HEADERS)) or b"")
        watching = asyncio.ensure_future(self._feed(conn, writer, call))
        gone = asyncio.ensure_future(reader.read(1))  # a client sends nothing mid-answer
        try:
            await asyncio.wait({watching, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watching, gone):
                task.cancel()
            # the reader takes one waiter at a time: the next request's read comes after
            await asyncio.gather(watching, gone, return_exceptions=True)
        if not watching.done() or watching.cancelled() or watching.exception() is not None:
            return False
        if gone.done() and not gone.cancelled():
            return False  # the client closed (or sent bytes we cannot take mid-answer)
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        return True

    async def _feed(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                    call: WatchCall) -> None:
        async def send(lines: list[bytes]) -> None:
            for line in lines:
                writer.write(conn.send(h11.Data(data=line)) or b"")
            if lines:
                await writer.drain()

        await self.watch(call, send)

    async def watch(self, call: WatchCall,
                    send: Callable[[list[bytes]], Awaitable[None]]) -> None:
        """Stream ``call``'s lines through ``send`` until the watch's time is up."""
        feed = WatchFeed(self.emu, call)
        waker = self._waker(call.cluster)
        lines, over = feed.start()
        await send(lines)
        if over:
            return
        while not self.emu.stopping:
            if not feed.pending():
                left = feed.left()
                if left <= 0:
                    break
                await waker.wait(min(left, self.emu.bookmark_interval))
            await send(feed.take())
            if feed.left() <= 0:
                break
        await send(feed.closing())


class _H2Connection:
    """One HTTP/2 connection: a reader that feeds the state machine, a task per request."""

    def __init__(self, front: AsyncFront, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.front = front
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        self.requests: dict[int, tuple[list[tuple[bytes, bytes]], bytearray]] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.window = asyncio.Event()  # set when the client opens a flow-control window
        self.going = False  # GOAWAY sent: close once the streams taken are answered
        self.last = 0  # the last stream taken when GOAWAY went out

    def go_away(self) -> None:
        """A graceful GOAWAY as Go's server sends it: the streams taken run to their end,
        later ones are refused, the connection closes once idle. Written as a raw frame: after
        ``h2``'s own ``close_connection`` its state machine sends nothing more, not even the
        rest of the streams it has taken."""
        self.going = True
        self.last = self.h2.highest_inbound_stream_id
        self.writer.write(GoAwayFrame(0, last_stream_id=self.last, error_code=0).serialize())
        if not self.tasks:
            self.writer.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)

    async def serve(self) -> None:
        self.h2.initiate_connection()
        self.flush()
        try:
            while True:
                async with asyncio.timeout(None if self.tasks else IDLE):
                    data = await self.reader.read(READ)
                if not data:
                    break
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    break
                for event in events:
                    self.event(event)
                self.flush()
                await self.writer.drain()
        except (OSError, ssl.SSLError, TimeoutError):
            pass
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.requests[event.stream_id] = (list(event.headers), bytearray())
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.stream_id in self.requests:
                self.requests[event.stream_id][1].extend(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            request = self.requests.pop(event.stream_id, None)
            if request is not None and self.going and event.stream_id > self.last:
                self.h2.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            elif request is not None:
                sid = event.stream_id
                self.tasks[sid] = asyncio.ensure_future(self.respond(sid, *request))
        elif isinstance(event, h2.events.StreamReset):
            self.requests.pop(event.stream_id, None)
            task = self.tasks.pop(event.stream_id, None)
            if task is not None:
                task.cancel()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window.set()
            self.window = asyncio.Event()

    async def respond(self, sid: int, fields: list[tuple[bytes, bytes]], body: bytearray
                      ) -> None:
        try:
            pseudo = {k.decode("latin-1"): v.decode("latin-1") for k, v in fields
                      if k.startswith(b":")}
            headers = _Headers((k.decode("latin-1"), v.decode("latin-1"))
                               for k, v in fields if not k.startswith(b":"))
            method, target = pseudo.get(":method", "GET"), pseudo.get(":path", "/")
            admitted = admit(self.front.emu, method, target, headers)
            if admitted is None:  # an unreachable cluster: the connection goes without a word
                self.writer.transport.abort()
                return
            if isinstance(admitted, Reply):
                await self.reply(sid, admitted)
                return
            cluster, path, query, delay = admitted
            if delay:
                await asyncio.sleep(delay)
            outcome = answer(cluster, method, path, query, headers, bytes(body))
            if isinstance(outcome, Reply):
                await self.reply(sid, outcome)
                return
            self.head(sid, 200, WATCH_HEADERS)

            async def send(lines: list[bytes]) -> None:
                if lines:
                    await self.data(sid, b"".join(lines))

            await self.front.watch(outcome, send)
            self.h2.end_stream(sid)
            self.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, OSError):
            pass  # the client reset the stream or went away
        finally:
            self.tasks.pop(sid, None)
            if self.going and not self.tasks:
                self.writer.close()

    def head(self, sid: int, code: int, headers: list[tuple[str, str]]) -> None:
        fields = [(b":status", str(code).encode())]
        fields += [(k.lower().encode(), v.encode()) for k, v in headers
                   if k.lower() not in HOP_BY_HOP]
        self.h2.send_headers(sid, fields)
        self.flush()

    async def reply(self, sid: int, reply: Reply) -> None:
        self.head(sid, reply.code, reply.headers())
        await self.data(sid, reply.body)
        self.h2.end_stream(sid)
        self.flush()

    async def data(self, sid: int, data: bytes) -> None:
        """``data`` as DATA frames, waiting whenever the client's windows are shut."""
        view = memoryview(data)
        while view:
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if room <= 0:
                await self.window.wait()
                continue
            self.h2.send_data(sid, bytes(view[:room]))
            view = view[room:]
            self.flush()
        await self.writer.drain()
