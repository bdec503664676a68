"""A local ``pods/exec`` endpoint that speaks the real Kubernetes exec WebSocket protocol.

``GET /api/v1/namespaces/{ns}/pods/{pod}/exec?command=…&stdin=true&stdout=true&tty=true``
with a bearer token, upgraded with subprotocol ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``
(whichever the client offers first among :attr:`ExecEndpoint.protocols`). Each session runs
the requested command for real, on a pseudo-terminal: channel 0 is written to it, its output
comes back on channel 1, channel 4 resizes it, and when it exits channel 3 carries the
``Status`` (``Success`` or ``NonZeroExitCode``) as the API server sends it. A ``tty=false``
exec (the bot's one-shot commands, e.g. writing a task's files) runs on pipes: stdout on
channel 1, stderr on 2, then the Status.

A "pod" is a directory: its home (a temp folder that outlives the pod, like the workbench's
volume) and the environment of the pod spec. Paths under ``/etc/kepler`` in the command and the
environment are mapped to a folder of the test's choosing, so the shell sources the rc file
that ``sandbox/workbench.py`` renders. :meth:`stop_pod` kills a pod's sessions and refuses new
ones (a pause), :meth:`start_pod` brings it back with the same home (a resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import struct
import termios
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, web

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"


@dataclass
class Pod:
    home: Path
    env: dict[str, str]
    running: bool = True
    sessions: set[_Session] = field(default_factory=set)


@dataclass(eq=False)
class _Session:
    proc: asyncio.subprocess.Process
    master: int
    ws: web.WebSocketResponse


class ExecEndpoint:
    def __init__(self, token: str, path_map: Mapping[str, str] | None = None,
                 protocols: tuple[str, ...] = (V5, V4)):  # fmt: skip
        self.token = token
        self.path_map = dict(path_map or {})
        self.protocols = protocols
        self.pods: dict[tuple[str, str], Pod] = {}
        self.chosen: list[str] = []  # the subprotocol of every session, in order
        self.sessions_started = 0  # terminal (tty) sessions
        self.one_shots: list[list[str]] = []  # the commands of tty=false execs, in order
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- pods ---------------------------------------------------------------------------------

    def add_pod(self, namespace: str, pod: str, home: Path, env: Mapping[str, str]) -> Pod:
        home.mkdir(parents=True, exist_ok=True)
        self.pods[(namespace, pod)] = p = Pod(home, {k: self._map(v) for k, v in env.items()})
        return p

    async def stop_pod(self, namespace: str, pod: str) -> None:
        p = self.pods[(namespace, pod)]
        p.running = False
        for s in list(p.sessions):
            await self._kill(s)  # the container is gone: its output ends, the stream closes

    def start_pod(self, namespace: str, pod: str) -> None:
        self.pods[(namespace, pod)].running = True

    def live_sessions(self) -> int:
        return sum(len(p.sessions) for p in self.pods.values())

    def _map(self, value: str) -> str:
        for prefix, local in self.path_map.items():
            if value == prefix or value.startswith(prefix + "/"):
                return local + value[len(prefix):]
        return value

    # --- server -------------------------------------------------------------------------------

    async def start(self) -> ExecEndpoint:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/exec", self._exec)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for p in self.pods.values():
            for s in list(p.sessions):
                await self._kill(s)
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _status(code: int, message: str, reason: str = "") -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                "reason": reason, "code": code}  # fmt: skip
        return web.json_response(body, status=code)

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._status(401, "Unauthorized", "Unauthorized")
        key = (request.match_info["ns"], request.match_info["pod"])
        pod = self.pods.get(key)
        if pod is None or not pod.running:
            return self._status(404, f'pods "{key[1]}" not found', "NotFound")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        chosen = next((p for p in offered if p in self.protocols), None)
        if chosen is None:
            return self._status(400, "no supported exec subprotocol", "BadRequest")
        command = [self._map(c) for c in request.query.getall("command", [])]
        if not command:
            return self._status(400, "no command", "BadRequest")
        ws = web.WebSocketResponse(protocols=(chosen,))
        await ws.prepare(request)
        self.chosen.append(chosen)
        if request.query.get("tty") != "true":
            await self._one_shot(ws, pod, command)
            return ws
        self.sessions_started += 1
        master, slave = os.openpty()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               **pod.env, "HOME": str(pod.home)}  # fmt: skip

        def controlling_tty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = await asyncio.create_subprocess_exec(
            *command, stdin=slave, stdout=slave, stderr=slave, cwd=pod.home, env=env,
            preexec_fn=controlling_tty, close_fds=True)
        os.close(slave)
        session = _Session(proc, master, ws)
        pod.sessions.add(session)
        reader = asyncio.create_task(self._read(session, chosen))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, payload = msg.data[0], msg.data[1:]
                if channel == 0:
                    with contextlib.suppress(OSError):
                        os.write(master, payload)
                elif channel == 4:
                    size = json.loads(payload)
                    fcntl.ioctl(master, termios.TIOCSWINSZ,
                                struct.pack("HHHH", size["Height"], size["Width"], 0, 0))
                elif channel == 255 and chosen == V5:
                    pass  # stdin half-closed: a tty keeps running until hung up below
        finally:
            pod.sessions.discard(session)
            await self._kill(session)  # the client went away: hang up the shell, as kubelet does
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(reader, 2.0)
            os.close(master)
        return ws

    async def _one_shot(self, ws: web.WebSocketResponse, pod: Pod, command: list[str]) -> None:
        """``tty=false``: stdout on channel 1, stderr on 2, then the Status on 3 (no stdin)."""
        self.one_shots.append(command)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               **pod.env, "HOME": str(pod.home)}  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=pod.home, env=env)
        out, err = await proc.communicate()
        with contextlib.suppress(ConnectionError, RuntimeError):
            if out:
                await ws.send_bytes(b"\x01" + out)
            if err:
                await ws.send_bytes(b"\x02" + err)
            await ws.send_bytes(b"\x03" + json.dumps(_exit_status(proc.returncode or 0)).encode())
            await ws.close()

    async def _read(self, session: _Session, protocol: str) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(session.master, 65536)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(session.master)
            queue.put_nowait(data)

        loop.add_reader(session.master, readable)
        try:
            while True:
                data = await queue.get()
                if not data:
                    break
                await session.ws.send_bytes(b"\x01" + data)
            code = await session.proc.wait()
            await session.ws.send_bytes(b"\x03" + json.dumps(_exit_status(code)).encode())
            await session.ws.close()
        except (ConnectionError, RuntimeError):
            pass
        finally:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(session.master)

    async def _kill(self, session: _Session) -> None:
        if session.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(session.proc.pid, signal.SIGHUP)
            try:
                await asyncio.wait_for(session.proc.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(session.proc.pid, signal.SIGKILL)
                await session.proc.wait()


def _exit_status(code: int) -> dict[str, object]:
    """The error channel's ``Status`` as the API server sends it when the command ends."""
    if code == 0:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
