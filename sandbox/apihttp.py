"""Async GETs to a learner's API server from its client ``Configuration``, errors as ours.

The official client is synchronous (urllib3); the bot's hot paths, reads for checks and
watches, go through :class:`~sandbox.httpstream.HttpStream` on the event loop instead, with
the same credentials: host, CA file, client certificate, ``verify_ssl`` and the bearer token
from ``auth_settings()``. Tokens are sent only in the ``Authorization`` header and never put
in an error text. Failures become :class:`~sandbox.errors.ClusterError` subclasses.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import h11
from kubernetes import client

from sandbox.errors import ClusterError, ClusterForbidden, ClusterTimeout, ClusterUnreachable
from sandbox.httpstream import HttpStream

CONNECT_TIMEOUT = 10.0
HEADERS_TTL = 60.0  # seconds the auth headers are reused before asking the config again
MAX_BODY = 64 * 1024 * 1024  # one LIST or watch event; far above any sane answer

Observe = Callable[[str, str], object]  # (method, "2xx"/"4xx"/…/"error"): metrics

_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}


def ssl_context(cfg: client.Configuration) -> ssl.SSLContext | None:
    """The TLS context for ``cfg`` (``None`` for plain HTTP); cached by its inputs."""
    if not str(cfg.host or "").startswith("https"):
        return None
    key = (bool(cfg.verify_ssl), cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file,
           getattr(cfg, "assert_hostname", None))
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
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ClusterError(f"TLS settings unusable ({type(exc).__name__})") from None
    if len(_contexts) >= 1024:
        _contexts.clear()
    _contexts[key] = ctx
    return ctx


def auth_headers(cfg: client.Configuration) -> dict[str, str]:
    """``Accept`` plus the bearer token header, as the official client would send it."""
    headers = {"Accept": "application/json"}
    for setting in cfg.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[str(setting["key"])] = str(setting["value"])
    return headers


class Credentials:
    """One cluster's request headers, worked out at most every :data:`HEADERS_TTL` seconds.

    The kubeconfig loader installs a refresh hook for every token (it may run an exec
    plugin), so working them out goes to a thread: once a minute per cluster, not once per
    request, or a thousand learners' requests queue up in the default executor (a fifth of
    the event loop's time in the 1,000-learner bench)."""

    def __init__(self, cfg: client.Configuration):
        self.cfg = cfg
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


async def open_get(cfg: client.Configuration, credentials: Credentials, path: str,
                   query: dict[str, str], observe: Observe | None = None
                   ) -> tuple[HttpStream, h11.Response]:
    """Send ``GET path?query`` and read the status line; the caller reads and closes.
    ``observe`` hears of every request's outcome (the bot's request metrics)."""
    base = str(cfg.host or "").rstrip("/")
    url = f"{base}{path}?{urlencode(query)}" if query else f"{base}{path}"
    try:
        stream = await HttpStream.get(url, await credentials.headers(), ssl_context(cfg),
                                      CONNECT_TIMEOUT)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                resp = await stream.response()
        except BaseException:
            stream.close()
            raise
    except Exception:
        if observe is not None:
            observe("GET", "error")
        raise
    if observe is not None:
        observe("GET", f"{resp.status_code // 100}xx")
    return stream, resp


async def get_json(cfg: client.Configuration, credentials: Credentials, path: str,
                   query: dict[str, str], what: str, observe: Observe | None = None) -> Any:
    """One GET answered with JSON (a 2xx); anything else raises a :class:`ClusterError`.
    The caller bounds the time (``asyncio.timeout``)."""
    try:
        stream, resp = await open_get(cfg, credentials, path, query, observe)
        try:
            if not 200 <= resp.status_code < 300:
                raise await status_error(stream, resp, what)
            body = await stream.read(MAX_BODY)
        finally:
            stream.close()
    except ClusterForbidden:
        credentials.refused()
        raise
    except ClusterError:
        raise
    except (OSError, ValueError, h11.ProtocolError) as exc:
        raise map_error(exc, what) from None
    try:
        return json.loads(body)
    except ValueError:
        raise ClusterError(f"{what}: answer is not JSON") from None


async def status_error(stream: HttpStream, resp: h11.Response, what: str) -> ClusterError:
    """The error for a non-2xx answer (its ``Status`` reason when it has one)."""
    code = resp.status_code
    reason = resp.reason.decode("latin-1", "replace")
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            status = json.loads(await stream.read(64 * 1024) or b"{}")
        reason = status.get("reason") or reason
    except (ValueError, AttributeError, OSError, TimeoutError, h11.ProtocolError):
        pass
    if code in (401, 403):
        return ClusterForbidden(f"{what}: {code} {reason}")
    if code == 504:
        return ClusterTimeout(f"{what}: {code} {reason}")
    return ClusterError(f"{what}: {code} {reason}")


def map_error(exc: BaseException, what: str) -> ClusterError:
    """A transport failure as one of ours (no secrets: only the URL and the error class)."""
    if isinstance(exc, TimeoutError):
        return ClusterTimeout(f"{what}: timed out")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ClusterUnreachable(f"{what}: TLS certificate not trusted")
    if isinstance(exc, ssl.SSLError):
        return ClusterUnreachable(f"{what}: TLS error (certificate or protocol)")
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return ClusterUnreachable(f"{what}: connection refused or host unknown")
    if isinstance(exc, ValueError):
        return ClusterError(f"{what}: answer is not JSON")
    if isinstance(exc, h11.ProtocolError):
        return ClusterError(f"{what}: malformed HTTP answer")
    return ClusterUnreachable(f"{what}: connection failed ({type(exc).__name__})")
