"""TLS over ``ssl.MemoryBIO`` inside a plain ``asyncio.Protocol``, shared by both HTTP versions.

asyncio's own TLS (``sslproto``) allocates a 256 KiB read buffer per connection; the bot holds
thousands, so it runs TLS itself: decrypted reads of :data:`CHUNK` bytes. A subclass speaks the
application protocol through three hooks: :meth:`TlsWire._feed` (plaintext in; ``b""`` at the
end), :meth:`TlsWire._send` (plaintext out) and :meth:`TlsWire._fail`.

:func:`connect` opens a connection, finishes the TLS handshake and then hands it to the class
for the protocol the server chose by ALPN: ``h2`` or HTTP/1.1 (no ALPN answer, or plain
HTTP). The plaintext that arrived with the handshake's last flight (an HTTP/2 server's
SETTINGS) goes to the new owner first.
"""

from __future__ import annotations

import abc
import asyncio
import ssl
from typing import TypeVar

CHUNK = 16 * 1024  # bytes decrypted per read

W = TypeVar("W", bound="TlsWire")


class TlsWire(asyncio.Protocol, abc.ABC):
    """One connection's transport and TLS state; plain TCP when the context is ``None``."""

    def __init__(self, tls: ssl.SSLContext | None = None, server_hostname: str | None = None,
                 session: ssl.SSLSession | None = None) -> None:
        self._tls: ssl.SSLObject | None = None
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        if tls is not None:
            self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self._tls = tls.wrap_bio(self._in, self._out, server_hostname=server_hostname,
                                     session=session)
        self._handshaken = tls is None
        self._transport: asyncio.Transport | None = None

    # --- what subclasses implement --------------------------------------------------------

    @abc.abstractmethod
    def _feed(self, data: bytes) -> None:
        """Decrypted bytes from the server; ``b""`` once it has closed its side."""

    @abc.abstractmethod
    def _fail(self, exc: BaseException) -> None:
        """The connection is broken (TLS error, reset): abort it and tell whoever waits."""

    @abc.abstractmethod
    def _lost(self, exc: BaseException | None) -> None:
        """The transport is gone (after ``_fail``, ``close`` or the peer's close)."""

    def _handshake_done(self) -> None:
        """The TLS handshake has completed (or there is none)."""

    # --- what subclasses use ------------------------------------------------------------

    @property
    def alpn(self) -> str | None:
        """The application protocol the server chose (``"h2"``), if it chose one."""
        return self._tls.selected_alpn_protocol() if self._tls is not None else None

    @property
    def session(self) -> ssl.SSLSession | None:
        """The TLS session to resume a later connection with (after an answer was read)."""
        return self._tls.session if self._tls is not None and self._handshaken else None

    @property
    def session_reused(self) -> bool:
        return self._tls is not None and self._handshaken and self._tls.session_reused

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def _send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("connection closed before the request was sent")
        if self._tls is None:
            self._transport.write(data)
        elif not self._handshaken:
            raise ConnectionResetError("request before the TLS handshake")
        else:
            self._tls.write(data)
            self._flush()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _close_transport(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if self._tls is not None:
            self._handshake()
        else:
            self._handshake_done()

    def data_received(self, data: bytes) -> None:
        if self._tls is None or self._in is None:
            self._feed(data)
            return
        self._in.write(data)
        if not self._handshaken:
            self._handshake()
            if not self._handshaken:
                return
        self._decrypt()

    def eof_received(self) -> bool:
        if self._in is not None:
            self._in.write_eof()
            if self._handshaken:
                self._decrypt()
        self._feed(b"")
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    # --- TLS ----------------------------------------------------------------------------

    def _handshake(self) -> None:
        assert self._tls is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            self._fail(exc)
            return
        self._handshaken = True
        self._flush()
        self._handshake_done()
        self._decrypt()  # application data may have come with the last handshake flight

    def _decrypt(self) -> None:
        assert self._tls is not None
        while True:
            try:
                data = self._tls.read(CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the server's close_notify
                self._feed(b"")
                break
            except ssl.SSLEOFError:  # closed without close_notify: a dropped connection
                self._fail(ConnectionResetError("connection closed by the server"))
                return
            except ssl.SSLError as exc:
                self._fail(exc)
                return
            if not data:
                self._feed(b"")
                break
            self._feed(data)
        self._flush()  # TLS 1.3 may answer post-handshake messages

    def _flush(self) -> None:
        if self._out is not None and self._out.pending and self._transport is not None:
            self._transport.write(self._out.read())

    def _take_over(self, other: TlsWire) -> None:
        """Become the protocol of ``other``'s connection, TLS state and all."""
        self._tls, self._in, self._out = other._tls, other._in, other._out
        self._handshaken, self._transport = other._handshaken, other._transport
        if self._transport is not None:
            self._transport.set_protocol(self)


class _Handshake(TlsWire):
    """A connection until its handshake is done: it keeps what arrives for the next owner."""

    def __init__(self, tls: ssl.SSLContext | None, server_hostname: str | None,
                 session: ssl.SSLSession | None) -> None:
        super().__init__(tls, server_hostname, session)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.plain: list[bytes] = []
        self.error: BaseException | None = None
        self.gone = False

    def _handshake_done(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def _feed(self, data: bytes) -> None:
        self.plain.append(data)

    def _fail(self, exc: BaseException) -> None:
        self.error = self.error or exc
        self._abort()
        if not self.ready.done():
            self.ready.set_exception(exc)

    def _lost(self, exc: BaseException | None) -> None:
        self.gone = True
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError(
                "connection closed during the TLS handshake"))

    def hand_to(self, owner: W) -> W:
        """Give the connection to ``owner`` (a fresh protocol object) with what came so far."""
        owner._take_over(self)
        owner._handshake_done()
        for data in self.plain:
            owner._feed(data)
        if self.error is not None:
            owner._fail(self.error)
        elif self.gone:
            owner._lost(None)
        return owner


async def handshake(host: str, port: int, tls: ssl.SSLContext | None, timeout: float,
                    session: ssl.SSLSession | None = None) -> _Handshake:
    """An open connection whose TLS handshake is done (resuming ``session`` if any); give it
    to its protocol with ``hand_to``."""
    wire = _Handshake(tls, host if tls is not None else None, session)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        await loop.create_connection(lambda: wire, host, port)
        try:
            await wire.ready
        except BaseException:
            wire._abort()
            raise
    return wire
