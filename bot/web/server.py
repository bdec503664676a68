"""The browser terminal: link → page → WebSocket → exec session in the learner's workbench pod.

Mounted on the bot's existing aiohttp server (:class:`bot.ops.health.HealthServer`)::

    GET /terminal/open/<token>   spend a link (bot/web/tokens.py), set the session cookie, 303
    GET /terminal/               the page (xterm.js, vendored) for the session in the cookie
    GET /terminal/ws             the bridge: browser WebSocket ⇄ Kubernetes exec (bot/web/kexec.py)
    GET /terminal/static/...     the page's script, styles and vendored libraries

The session cookie (HttpOnly, SameSite=Strict, Secure behind TLS) names a session that lasts
while the sandbox generation it was opened for exists: a reset or delete ends it, a pause only
interrupts it, and a restart of the bot neither (sessions are kept in the store by a digest of
the cookie, :class:`TerminalSessions`). Anything refused gets a 403 page saying how to get a new
link (``/terminal``).

Browser ⇄ bot frames: binary = terminal bytes both ways; text = JSON control, from the page
``{"t": "resize", "cols": c, "rows": r}``, from the bot ``{"t": "status", "state": s, "line": l}``
with ``state`` one of connected, paused, starting, exited, idle, ended. The page reconnects by
itself after paused/starting (the learner's return wakes the sandbox), on a key after exited,
and never after idle/ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import aiohttp
from aiohttp import web

from bot.core.presence import PresenceListener
from bot.web.kexec import ExecFailed, ExecStream, ExecTarget, open_exec
from bot.web.tokens import LinkRejected, LinkSigner

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
COOKIE = "kepler_terminal"
IDLE_TIMEOUT = 1800.0  # an idle terminal is closed after 30 minutes
ACTIVITY_EVERY = 60.0  # keystrokes tell the sandbox manager "the learner is here" this often
CONNECT_WORK = 20.0  # seconds the on-connect work (the task's files) may hold a terminal back
NEW_LINK = "Type <code>/terminal</code> in Discord (or press <b>Terminal</b> under the message " \
    "that says your cluster is ready) to get a fresh link."

Phase = Literal["ready", "paused", "starting", "gone"]


@dataclass(frozen=True)
class Workbench:
    """Where a learner's workbench stands: its phase and the sandbox generation it belongs to."""

    phase: Phase
    generation: str


class Workbenches(Protocol):
    """What the terminal needs from the sandbox side (``bot/web/workbenches.py`` on hosts)."""

    async def find(self, learner: str) -> Workbench: ...

    async def target(self, learner: str) -> ExecTarget: ...


@dataclass
class TerminalSession:
    id: str
    learner: str
    generation: str
    opened: float


class TerminalSessions(Protocol):
    """Where sessions outlive a restart (the bot's store: ``bot.store.sqlite``). Only a digest
    of the cookie is kept: a copy of the database opens no terminal."""

    async def save_terminal_session(self, digest: str, learner_id: str, generation: str,
                                    opened: float) -> None: ...  # fmt: skip

    async def terminal_session(self, digest: str) -> tuple[str, str, float] | None: ...

    async def drop_terminal_session(self, digest: str) -> None: ...


def _digest(session_id: str) -> str:
    return hashlib.sha256(b"kepler-station/terminal-session/v1\x00" + session_id.encode()).hexdigest()


@dataclass(eq=False)
class _Bridge:
    session: TerminalSession
    browser: web.WebSocketResponse
    last_input: float
    exec: ExecStream | None = None
    closing: str = ""  # why we are closing it ourselves (idle, ended, paused)
    code: int = 1000  # the close code the page gets
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


_LINES = {
    "paused": "Your station cluster is paused to save power. Your files are safe. It wakes when "
              "you return: use /check or /terminal in Discord. This terminal reconnects by itself.",
    "starting": "Your workbench is starting. This terminal connects as soon as it is up.",
    "exited": "The shell ended. Press Enter for a new one.",
    "idle": "Closed after 30 minutes without typing. Reload the page to reconnect.",
    "ended": "This terminal's cluster was reset or deleted. Use /terminal in Discord for a new link.",
}  # fmt: skip

_REASONS = {
    "expired": "This terminal link has expired: a link must be opened within 10 minutes.",
    "used": "This terminal link was already opened. Each link opens one terminal, once.",
    "forged": "This terminal link is not valid.",
    "malformed": "This terminal link is not valid.",
    "stale": "This link belongs to a cluster that has since been reset or deleted.",
    "nosandbox": "There is no station cluster for this link.",
    "session": "This terminal session has ended, or this browser has none.",
}


class TerminalWeb:
    """Issues links, serves the page and bridges each open terminal to its exec session."""

    def __init__(
        self,
        signer: LinkSigner,
        workbenches: Workbenches,
        *,
        base_url: str,
        idle_timeout: float = IDLE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        on_activity: Callable[[str], Awaitable[object]] | None = None,
        reap_every: float = 60.0,
        kept: TerminalSessions | None = None,
        on_connect: Callable[[str], Awaitable[object]] | None = None,
    ):
        """``kept``: where sessions survive a restart (None: in this process only).
        ``on_connect(learner)`` runs before each terminal's shell starts (at most
        :data:`CONNECT_WORK` seconds; a failure is logged): the open task's files go into the
        workbench then (``bot/web/missionfiles.py``)."""
        self.signer = signer
        self.workbenches = workbenches
        self.base_url = base_url.rstrip("/")
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.on_activity = on_activity
        self.reap_every = reap_every
        self.sessions: dict[str, TerminalSession] = {}  # this process's; ``kept`` has them all
        self.kept = kept
        self.on_connect = on_connect
        self._bridges: set[_Bridge] = set()
        self._active: dict[str, float] = {}  # learner -> last activity report
        self._watchers: list[PresenceListener] = []
        self._told: set[str] = set()  # learners the watchers last heard as connected
        self._http: aiohttp.ClientSession | None = None
        self._reaper: asyncio.Task[None] | None = None

    # --- links ------------------------------------------------------------------------------

    async def link_for(self, learner: str) -> str | None:
        """A fresh link to the learner's terminal, or None when they have no sandbox."""
        wb = await self.workbenches.find(learner)
        if wb.phase == "gone":
            return None
        return f"{self.base_url}/terminal/open/{self.signer.issue(learner, wb.generation)}"

    def connected(self) -> dict[str, int]:
        """Learners with a terminal open now, and how many (the crew board shows them)."""
        out: dict[str, int] = {}
        for bridge in self._bridges:
            if bridge.exec is not None and not bridge.closing:
                out[bridge.session.learner] = out.get(bridge.session.learner, 0) + 1
        return out

    def watch(self, listener: PresenceListener) -> Callable[[], None]:
        """Tell ``listener`` whenever a learner's terminal connects or disconnects
        (:class:`bot.core.presence.TerminalPresence`; the Discord crew board listens)."""
        self._watchers.append(listener)
        return lambda: self._watchers.remove(listener) if listener in self._watchers else None

    def _presence(self, learner: str) -> None:
        """Tell the watchers if ``learner`` went from no terminal to one, or back."""
        now = any(b.session.learner == learner and b.exec is not None and not b.closing
                  for b in self._bridges)  # fmt: skip
        if now == (learner in self._told):
            return
        (self._told.add if now else self._told.discard)(learner)
        for listener in list(self._watchers):
            try:
                listener(learner)
            except Exception:
                log.exception("terminal presence listener failed")

    # --- the app ----------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/terminal/open/{token}", self._open)
        app.router.add_get("/terminal/", self._page)
        app.router.add_get("/terminal/ws", self._ws)
        app.router.add_static("/terminal/static/", STATIC, follow_symlinks=False)
        app.on_startup.append(self._started)
        app.on_shutdown.append(self._shutdown)

    async def _started(self, app: web.Application) -> None:
        if self.reap_every > 0:
            self._reaper = asyncio.create_task(self._reap_loop(), name="terminal-reaper")

    async def _shutdown(self, app: web.Application) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for bridge in list(self._bridges):
            await self._end(bridge, "ended", code=1001)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _client(self) -> aiohttp.ClientSession:
        """The exec sessions' HTTP client. An exec WebSocket holds its connection for as long
        as the terminal is open, so the pool has no limit: aiohttp's default of 100 made the
        101st terminal wait for a free connection until its exec timed out ("starting")."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._http

    # --- pages --------------------------------------------------------------------------------

    @staticmethod
    def _headers(resp: web.StreamResponse) -> web.StreamResponse:
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")
        return resp

    def _forbidden(self, reason: str) -> web.Response:
        text = _REASONS.get(reason, _REASONS["session"])
        body = (STATIC / "denied.html").read_text(encoding="utf-8").replace(
            "{{reason}}", html.escape(text)).replace("{{how}}", NEW_LINK)  # fmt: skip
        resp = web.Response(text=body, status=403, content_type="text/html")
        self._headers(resp)
        return resp

    async def _open(self, request: web.Request) -> web.StreamResponse:
        try:
            claims = self.signer.verify(request.match_info["token"])
        except LinkRejected as exc:
            return self._forbidden(exc.reason)
        wb = await self.workbenches.find(claims.learner)
        if wb.phase == "gone":
            return self._forbidden("nosandbox")
        if wb.generation != claims.generation:
            return self._forbidden("stale")
        try:
            await self.signer.redeem(request.match_info["token"])
        except LinkRejected as exc:
            return self._forbidden(exc.reason)
        self._prune()
        session = TerminalSession(secrets.token_urlsafe(32), claims.learner, claims.generation,
                                  time.time())  # fmt: skip
        self.sessions[session.id] = session
        if self.kept is not None:
            await self.kept.save_terminal_session(_digest(session.id), session.learner,
                                                  session.generation, session.opened)  # fmt: skip
        resp = web.Response(status=303, headers={"Location": "/terminal/"})
        resp.set_cookie(COOKIE, session.id, path="/terminal/", httponly=True, samesite="Strict",
                        secure=self._secure(request))  # fmt: skip
        self._headers(resp)
        log.info("terminal link opened", extra={"generation": claims.generation})
        return resp

    def _secure(self, request: web.Request) -> bool:
        forwarded = request.headers.get("X-Forwarded-Proto", "")
        return request.secure or forwarded == "https" or self.base_url.startswith("https://")

    def _prune(self, keep: int = 10000) -> None:
        if len(self.sessions) > keep:  # the oldest go first; a live page reconnects to 403
            for sid, _ in sorted(self.sessions.items(), key=lambda kv: kv[1].opened)[:-keep]:
                self.sessions.pop(sid, None)

    async def _session(self, request: web.Request) -> TerminalSession | None:
        """The cookie's session: this process's, or one kept from before a restart."""
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.get(sid)
        if session is None and sid and self.kept is not None:
            row = await self.kept.terminal_session(_digest(sid))
            if row is not None:
                session = self.sessions[sid] = TerminalSession(sid, *row)
        return session

    async def _forget(self, session: TerminalSession) -> None:
        """The session's sandbox generation is gone: so is the session."""
        self.sessions.pop(session.id, None)
        if self.kept is not None:
            await self.kept.drop_terminal_session(_digest(session.id))

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if await self._session(request) is None:
            return self._forbidden("session")
        resp = web.Response(text=(STATIC / "terminal.html").read_text(encoding="utf-8"),
                            content_type="text/html")  # fmt: skip
        self._headers(resp)
        return resp

    # --- the bridge ---------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(request)
        if session is None:
            return self._forbidden("session")
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") not in self._origins(request):
            return self._forbidden("session")  # another site's page may not drive the terminal
        # No permessage-deflate (browsers offer it): a keystroke frame is a few bytes, and zlib
        # on each one, both ways, cost more CPU than it saved bytes (bench/terminals.py).
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1024 * 1024, compress=False)
        await ws.prepare(request)
        bridge = _Bridge(session, ws, self.clock())
        self._bridges.add(bridge)
        try:
            await self._serve(bridge)
        finally:
            self._bridges.discard(bridge)
            self._presence(session.learner)
            await self._close_exec(bridge)
            if not ws.closed:
                await ws.close(code=bridge.code)
        return ws

    def _origins(self, request: web.Request) -> set[str]:
        host = request.headers.get("Host", "")
        return {self.base_url, f"http://{host}", f"https://{host}"}

    async def _status(self, bridge: _Bridge, state: str) -> None:
        line = _LINES.get(state, "")
        with contextlib.suppress(ConnectionError, RuntimeError):
            await bridge.browser.send_str(json.dumps({"t": "status", "state": state,
                                                      "line": line}))  # fmt: skip

    async def _end(self, bridge: _Bridge, state: str, *, code: int = 1000) -> None:
        """Tell the page why, and end the exec; the handler then closes the socket with ``code``
        (only the handler's task reads the browser socket, so only it closes it)."""
        if not bridge.closing:
            bridge.closing, bridge.code = state, code
            self._presence(bridge.session.learner)
        await self._status(bridge, state)
        await self._close_exec(bridge)

    @staticmethod
    async def _close_exec(bridge: _Bridge) -> None:
        if bridge.exec is not None:
            with contextlib.suppress(Exception):
                await bridge.exec.close()

    async def _serve(self, bridge: _Bridge) -> None:
        session = bridge.session
        wb = await self.workbenches.find(session.learner)
        if wb.phase == "gone" or wb.generation != session.generation:
            await self._forget(session)
            await self._end(bridge, "ended")
            return
        if wb.phase != "ready":
            await self._end(bridge, "paused" if wb.phase == "paused" else "starting")
            return
        if self.on_connect is not None:
            try:
                await asyncio.wait_for(self.on_connect(session.learner), CONNECT_WORK)
            except Exception as exc:  # the terminal matters more than the files
                log.info("terminal on-connect work failed: %s", type(exc).__name__)
        try:
            target = await self.workbenches.target(session.learner)
            bridge.exec = await open_exec(self._client(), target)
        except ExecFailed as exc:
            log.info("terminal exec failed: %s", exc)
            await self._end(bridge, "starting")
            return
        await self._status(bridge, "connected")
        self._presence(session.learner)
        await self._activity(session.learner)
        upstream = asyncio.create_task(self._pump_up(bridge))
        try:
            await self._pump_down(bridge)
        finally:
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await upstream
        if bridge.browser.closed or bridge.closing:
            return  # the tab closed (exec closed in _ws) or we closed it on purpose
        # The exec ended by itself: the shell exited, or the pod went away (pause, reset).
        wb = await self.workbenches.find(session.learner)
        if wb.phase == "gone" or wb.generation != session.generation:
            await self._forget(session)
            await self._end(bridge, "ended")
        elif wb.phase == "ready" and self._exited(bridge.exec):
            await self._end(bridge, "exited")
        else:
            await self._end(bridge, "paused" if wb.phase == "paused" else "starting")

    @staticmethod
    def _exited(stream: ExecStream | None) -> bool:
        """The shell ended by itself (``exit``), not killed with its pod (signal codes > 128)."""
        status = (stream.status if stream is not None else None) or {}
        if status.get("status") == "Success":
            return True
        if status.get("reason") != "NonZeroExitCode":
            return False
        causes = (status.get("details") or {}).get("causes") or []  # type: ignore[union-attr]
        codes = [c.get("message") for c in causes if c.get("reason") == "ExitCode"]
        return bool(codes) and str(codes[0]).isdigit() and int(codes[0]) < 128

    async def _pump_down(self, bridge: _Bridge) -> None:
        """Workbench → browser. The hot path: no logging, no per-frame work but the send."""
        assert bridge.exec is not None
        browser = bridge.browser
        async for data in bridge.exec.output():
            if browser.closed:
                return
            try:
                await browser.send_bytes(data)
            except (ConnectionError, RuntimeError):
                return

    async def _pump_up(self, bridge: _Bridge) -> None:
        """Browser → workbench; when the tab goes, the exec session goes with it. The hot path:
        a keystroke is one send; the activity report is a clock comparison except once a minute."""
        stream = bridge.exec
        assert stream is not None
        learner, active = bridge.session.learner, self._active
        binary, text = aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT
        async for msg in bridge.browser:
            if msg.type == binary:
                now = bridge.last_input = self.clock()
                await stream.send_stdin(msg.data)
                if now - active.get(learner, float("-inf")) >= ACTIVITY_EVERY:
                    await self._activity(learner)
            elif msg.type == text:
                await self._control(bridge, msg.data)
        await bridge.exec.close()  # tab closed: end the shell now, not at the next heartbeat

    async def _control(self, bridge: _Bridge, text: str) -> None:
        assert bridge.exec is not None
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if isinstance(msg, dict) and msg.get("t") == "resize":
            cols, rows = msg.get("cols"), msg.get("rows")
            if isinstance(cols, int) and isinstance(rows, int) and 0 < cols < 1000 and 0 < rows < 500:
                await bridge.exec.resize(cols, rows)

    async def _activity(self, learner: str) -> None:
        """Typing counts as the learner being here (no idle pause while they work)."""
        if self.on_activity is None:
            return
        now = self.clock()
        if now - self._active.get(learner, float("-inf")) < ACTIVITY_EVERY:
            return
        self._active[learner] = now
        try:
            await self.on_activity(learner)
        except Exception:
            log.debug("terminal activity hook failed", exc_info=True)

    # --- idle sessions ------------------------------------------------------------------------

    async def reap(self) -> int:
        """Close terminals idle longer than :attr:`idle_timeout`; how many were closed."""
        now = self.clock()
        idle = [b for b in self._bridges if not b.closing and now - b.last_input >= self.idle_timeout]
        for bridge in idle:
            await self._end(bridge, "idle", code=4000)
        return len(idle)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_every)
            try:
                await self.reap()
            except Exception:
                log.exception("terminal reaper failed")
