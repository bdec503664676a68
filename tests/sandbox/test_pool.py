"""Pooled keep-alive reads (:mod:`sandbox.apihttp`): reuse, bounds, stale connections,
Retry-After and TLS session resumption, against the emulator and a scripted raw server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client

from sandbox.apihttp import Credentials, Pool, get_json, open_get, pool, release
from sandbox.errors import ClusterError
from sandbox.httpstream import HttpStream
from sandbox.snapshot import KINDS
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

CM = KINDS["ConfigMap"].path


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    """HTTP/1.1 alone (no ALPN): what this pool keeps are whole connections. The HTTP/2
    connection a cluster's requests share is checked in ``test_http2.py``."""
    with KubeEmulator() as e:
        yield e


@pytest.fixture
def cluster(emu: KubeEmulator) -> str:
    name = "pooled"
    emu.add_cluster(name).put(ob.namespace("ops"), ob.config_map("cfg", "ops"))
    return name


@pytest.mark.parametrize("tls", [True, False])
async def test_a_clusters_reads_share_one_connection(emu: KubeEmulator, cluster: str,
                                                     tls: bool) -> None:
    cfg = emu.configuration(cluster, tls=tls)
    creds = Credentials(cfg)
    connections = pool()
    opened = connections.opened
    for _ in range(6):
        listed = await get_json(cfg, creds, CM, {}, "cm")
        assert [i["metadata"]["name"] for i in listed["items"]] == ["cfg"]
    assert connections.opened - opened == 1
    assert len(connections) >= 1


async def test_a_new_connection_resumes_the_servers_tls_session(emu: KubeEmulator,
                                                                cluster: str) -> None:
    cfg = emu.configuration(cluster, tls=True)
    connections = pool()
    resumed = connections.resumed
    # two credentials objects: two learner clusters on one server, so two connections (the
    # first object is freed before the second exists: a pool keyed by id() handed the second
    # the first one's connection whenever the second took over its address)
    await get_json(cfg, Credentials(cfg), CM, {}, "cm")
    await get_json(cfg, Credentials(cfg), CM, {}, "cm")
    assert connections.resumed > resumed


async def test_idle_connections_are_bounded_and_expire(emu: KubeEmulator, cluster: str) -> None:
    cfg = emu.configuration(cluster)
    # the bounds are checked with an idle timeout no busy machine reaches; expiry with a short
    # one, waited for with a deadline rather than a fixed sleep
    small = Pool(per_cluster=1, total=2, idle_timeout=60.0)

    async def idle_stream() -> HttpStream:
        host, port = cfg.host.split("//")[1].split("/")[0].split(":")
        s = await HttpStream.connect("http", host, int(port), None, 5.0)
        s.send_get(CM.replace("/api", f"/clusters/{cluster}/api"), f"{host}:{port}",
                   {"Authorization": f"Bearer {emu[cluster].token}"}, keep_alive=True)
        assert (await s.response()).status_code == 200
        await s.read(1 << 20)
        return s

    a, b, c = [await idle_stream() for _ in range(3)]
    small.give(("x",), a)
    small.give(("x",), b)  # per cluster 1: a is closed
    assert len(small) == 1 and not a.alive
    small.give(("y",), c)
    assert len(small) == 2
    d = await idle_stream()
    small.give(("z",), d)  # total 2: the least recently used (b) goes
    assert len(small) == 2 and not b.alive
    assert small.take(("x",)) is None
    small.close()

    short = Pool(per_cluster=1, total=2, idle_timeout=0.2)
    e, f = await idle_stream(), await idle_stream()
    short.give(("x",), e)
    short.give(("y",), f)
    for _ in range(200):  # the idle timer closes them without any request
        if len(short) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(short) == 0 and not e.alive and not f.alive


# --- a scripted raw server ------------------------------------------------------------------

Script = Callable[[int, int], bytes | None]  # (connection no., request no.) -> answer or drop


@dataclass
class Raw:
    """A loopback HTTP/1.1 server answering by ``script``; ``None`` drops the connection."""

    script: Script = lambda conn, n: None
    port: int = 0
    accepted: int = 0

    @property
    def cfg(self) -> client.Configuration:
        cfg = client.Configuration()
        cfg.host = f"http://127.0.0.1:{self.port}"
        return cfg

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        conn, n = self.accepted, 0
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                n += 1
                answer = self.script(conn, n)
                if answer is None:
                    writer.transport.abort()
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def raw() -> AsyncIterator[Raw]:
    r = Raw()
    server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    r.port = server.sockets[0].getsockname()[1]
    yield r
    server.close()


def ok(body: bytes = b'{"items":[]}', extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def test_a_pooled_connection_the_server_dropped_is_retried_once(raw: Raw) -> None:
    # connection 1 answers its first request, then drops the second without answering (the
    # server's idle close racing our request); connection 2 answers everything
    raw.script = lambda c, n: None if (c, n) == (1, 2) else ok()
    cfg = raw.cfg
    creds = Credentials(cfg)
    assert (await get_json(cfg, creds, "/api/v1/pods", {}, "pods"))["items"] == []
    assert (await get_json(cfg, creds, "/api/v1/pods", {}, "pods"))["items"] == []
    assert raw.accepted == 2


async def test_a_fresh_connection_that_fails_is_not_retried(raw: Raw) -> None:
    raw.script = lambda c, n: None
    with pytest.raises(ClusterError):
        await get_json(raw.cfg, Credentials(raw.cfg), "/api/v1/pods", {}, "pods")
    assert raw.accepted == 1


async def test_retry_after_is_honoured_once(raw: Raw) -> None:
    busy = b'{"kind":"Status","reason":"TooManyRequests"}'
    raw.script = lambda c, n: (ok(busy, b"Retry-After: 0\r\n").replace(b"200 OK", b"429 Too Many")
                              if c == 1 and n == 1 else ok())
    cfg = raw.cfg
    assert (await get_json(cfg, Credentials(cfg), "/api/v1/pods", {}, "pods"))["items"] == []


async def test_a_long_retry_after_is_an_error_at_once(raw: Raw) -> None:
    busy = b'{"kind":"Status","reason":"TooManyRequests"}'
    raw.script = lambda c, n: ok(busy, b"Retry-After: 120\r\n").replace(b"200 OK", b"429 Busy")
    cfg = raw.cfg
    with pytest.raises(ClusterError, match="429"):
        await asyncio.wait_for(get_json(cfg, Credentials(cfg), "/api/v1/pods", {}, "pods"), 5)


async def test_connection_close_from_the_server_is_not_pooled(raw: Raw) -> None:
    raw.script = lambda c, n: ok(extra=b"Connection: close\r\n")
    cfg = raw.cfg
    creds = Credentials(cfg)
    for _ in range(3):
        await get_json(cfg, creds, "/api/v1/pods", {}, "pods")
    assert raw.accepted == 3


def test_watch_reconnects_are_jittered_and_bounded() -> None:
    """Watches an overloaded server dropped together must not all come back together."""
    from sandbox.watch import BACKOFF_MAX, backoff

    for failures in (1, 3, 10):
        waits = [backoff(failures) for _ in range(200)]
        cap = min(BACKOFF_MAX, 0.5 * 2 ** failures)
        assert all(cap / 2 <= w <= cap for w in waits)
        assert len({round(w, 3) for w in waits}) > 50  # spread, not one synchronized instant


async def test_a_watch_starts_on_the_clusters_idle_connection(emu: KubeEmulator,
                                                              cluster: str) -> None:
    """A learner's new watches follow the reads of its check: no new handshake for them."""
    cfg = emu.configuration(cluster, tls=True)
    creds = Credentials(cfg)
    connections = pool()
    await get_json(cfg, creds, CM, {}, "cm")
    streams, reused = connections.streams, connections.reused
    stream, resp = await open_get(cfg, creds, CM, {"watch": "1", "timeoutSeconds": "1"})
    try:
        assert resp.status_code == 200
    finally:
        release(stream)
    assert connections.streams == streams and connections.reused == reused + 1
    # the pool is empty now (the emulator closes a watch's connection): the next opens one
    stream, _ = await open_get(cfg, creds, CM, {"watch": "1", "timeoutSeconds": "1"})
    release(stream)
    assert connections.streams == streams + 1


async def test_a_new_clusters_reads_never_take_a_freed_clusters_connection(
        emu: KubeEmulator, cluster: str) -> None:
    # each credentials object is freed after its read, so CPython hands its address (its id())
    # to the next one: the pool must still see five clusters, five connections
    cfg = emu.configuration(cluster)
    connections = pool()
    opened = connections.opened
    for _ in range(5):
        await get_json(cfg, Credentials(cfg), CM, {}, "cm")
    assert connections.opened - opened == 5
