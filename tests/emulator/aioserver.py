"""The emulator's clusters served by one asyncio loop instead of a thread per connection.

The threaded server (:mod:`tests.emulator.server`) needs a thread for every open watch, and a
load run at 4,000 learners holds ~27,000 of them: the machine's load average passed 1,300
and the run said nothing about the bot. Here a connection is a coroutine, and an idle watch
is a coroutine waiting for its cluster's next change (:class:`_Waker`), so tens of thousands
cost memory, not scheduling.

Requests are answered by the very code the threaded server uses (:func:`admit`,
:func:`answer`, :class:`WatchFeed`): routing, auth, faults, delays, objects and watch events
are the same; only the transport differs. HTTP/1.1 with keep-alive (h11), TLS by asyncio.
``KubeEmulator(io="asyncio")`` uses it for both of its listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from typing import TYPE_CHECKING

import h11

from tests.emulator.server import WATCH_HEADERS, Reply, WatchCall, WatchFeed, admit, answer

if TYPE_CHECKING:
    from tests.emulator.server import Cluster, KubeEmulator

IDLE = 120.0  # seconds a keep-alive connection may wait for its next request
READ = 65536


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

    def __init__(self, emu: KubeEmulator, tls: ssl.SSLContext | None) -> None:
        self.emu = emu
        self.tls = tls
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._wakers: dict[str, _Waker] = {}
        self._connections: set[asyncio.Task[None]] = set()
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
        feed = WatchFeed(self.emu, call)
        waker = self._waker(call.cluster)

        async def send(lines: list[bytes]) -> None:
            for line in lines:
                writer.write(conn.send(h11.Data(data=line)) or b"")
            if lines:
                await writer.drain()

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
