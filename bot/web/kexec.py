"""The client half of the Kubernetes exec protocol over a WebSocket (``pods/exec``).

The API server speaks ``v5.channel.k8s.io`` since Kubernetes 1.30 and ``v4.channel.k8s.io``
long before; we offer both and use what it picks. Every binary message starts with a channel
byte: 0 stdin, 1 stdout, 2 stderr, 3 error (a ``Status`` JSON when the command ends), 4 resize
(``{"Width": w, "Height": h}``). v5 adds 255 ``close``: ``[255, channel]`` half-closes a
stream (we close stdin with it before hanging up, so the shell sees end of input).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_STDIN = bytes([STDIN])


@dataclass(frozen=True)
class ExecTarget:
    """Where and as whom to exec: the pod's ``exec`` URL (http(s)), headers and TLS."""

    base_url: str  # e.g. https://host:6443 (a path prefix is kept)
    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    ssl: ssl.SSLContext | bool | None = None

    def url(self, tty: bool = True) -> str:
        query: list[tuple[str, str]] = [("container", self.container)]
        query += [("command", c) for c in self.command]
        if tty:  # a terminal: keystrokes in, one merged output stream out
            query += [("stdin", "true"), ("stdout", "true"), ("tty", "true")]
        else:  # a one-shot command (run_exec): no input, both output streams
            query += [("stdout", "true"), ("stderr", "true"), ("tty", "false")]
        base = self.base_url.rstrip("/").replace("https://", "wss://", 1).replace(
            "http://", "ws://", 1)
        return (f"{base}/api/v1/namespaces/{self.namespace}/pods/{self.pod}/exec?"
                f"{urlencode(query)}")  # fmt: skip


class ExecFailed(Exception):
    """The API server refused the exec (no pod, forbidden, unreachable)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ExecStream:
    """One exec session: write stdin and resizes, iterate output, close."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, protocol: str):
        self.ws = ws
        self.protocol = protocol
        self.status: dict[str, object] | None = None  # the error channel's Status, if any

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send_stdin(self, data: bytes) -> None:
        await self.ws.send_bytes(_STDIN + data)

    async def resize(self, cols: int, rows: int) -> None:
        await self.ws.send_bytes(bytes([RESIZE]) + json.dumps(
            {"Width": cols, "Height": rows}).encode())  # fmt: skip

    async def output(self) -> AsyncIterator[bytes]:
        """stdout and stderr bytes until the session ends (the Status lands in :attr:`status`)."""
        binary = aiohttp.WSMsgType.BINARY
        async for msg in self.ws:
            data = msg.data
            if msg.type != binary or not data:
                if msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
                continue
            channel = data[0]
            if channel in (STDOUT, STDERR):
                if len(data) > 1:
                    yield data[1:]
                continue
            payload = data[1:]
            if channel == ERROR and payload:
                try:
                    self.status = json.loads(payload)
                except ValueError:
                    self.status = {"status": "Failure", "message": payload.decode(errors="replace")}

    async def close(self) -> None:
        if self.ws.closed:
            return
        try:
            if self.protocol == V5:
                await self.ws.send_bytes(bytes([CLOSE, STDIN]))
        except (ConnectionError, RuntimeError):
            pass
        await self.ws.close()


async def open_exec(
    session: aiohttp.ClientSession,
    target: ExecTarget,
    *,
    protocols: Sequence[str] = PROTOCOLS,
    timeout: float = 15.0,
    tty: bool = True,
) -> ExecStream:
    """Connect; :class:`ExecFailed` with the HTTP status when the server says no."""
    try:
        ws = await asyncio.wait_for(session.ws_connect(
            target.url(tty), protocols=tuple(protocols), headers=dict(target.headers),
            ssl=target.ssl if target.ssl is not None else True, heartbeat=30.0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            max_msg_size=4 * 1024 * 1024, autoping=True,
        ), timeout)  # fmt: skip
    except aiohttp.WSServerHandshakeError as exc:
        raise ExecFailed(f"exec refused ({exc.status})", exc.status) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ExecFailed(f"exec unreachable ({type(exc).__name__})") from None
    if ws.protocol not in protocols:
        await ws.close()
        raise ExecFailed(f"the API server chose no exec protocol we speak ({ws.protocol})")
    return ExecStream(ws, ws.protocol)


async def run_exec(session: aiohttp.ClientSession, target: ExecTarget, *,
                   timeout: float = 30.0) -> bytes:  # fmt: skip
    """Run ``target.command`` to its end without a terminal (stdin stays empty) and return its
    output; :class:`ExecFailed` when it cannot start, fails, or outlasts ``timeout``."""
    stream = await open_exec(session, target, tty=False, timeout=timeout)
    out = bytearray()

    async def read() -> None:
        async for chunk in stream.output():
            out.extend(chunk)

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise ExecFailed("exec did not finish in time") from None
    finally:
        await stream.close()
    status = stream.status or {}
    if status.get("status") != "Success":
        message = str(status.get("message") or "no exit status")
        raise ExecFailed(f"exec failed: {message}: {bytes(out[-500:]).decode(errors='replace')}")
    return bytes(out)
