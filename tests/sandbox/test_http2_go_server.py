"""The bot's HTTP/2 client against Go's HTTP/2 server, the one kube-apiserver runs.

The other HTTP/2 tests meet Python servers; here every request crosses Go's ``net/http``
server (Caddy, :mod:`tests.emulator.gofront`) on its way to the emulator: its SETTINGS and
stream limit, its flow control, its answers to PING, and the GOAWAY it sends on a graceful
shutdown, as a restarting API server would."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from sandbox import http2
from sandbox.apihttp import Credentials, get_json, open_get, pool, release
from sandbox.errors import ClusterError
from sandbox.snapshot import KINDS, ClusterReader
from sandbox.watch import AsyncChangeNotifier
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob
from tests.emulator.gofront import CADDY, GoFront
from tests.sandbox.h2_support import big_blobs_whole, fill_big, ops_cluster, until

pytestmark = pytest.mark.skipif(
    CADDY is None, reason="caddy (a Go HTTP/2 server) is not installed (CI installs it: "
                          "apt-get install -y caddy, see .ci/run)")

CM = KINDS["ConfigMap"].path


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(io="threads") as e:
        yield e


@pytest.fixture(scope="module")
def go(emu: KubeEmulator) -> Iterator[GoFront]:
    with GoFront(emu) as front:
        yield front


@pytest.fixture
def name(emu: KubeEmulator, go: GoFront) -> str:
    if not go.running:  # a test stopped it and failed before starting it again
        go.start()
    return ops_cluster(emu, "g")


def _connections() -> set[http2.H2Connection]:
    return set(pool()._h2.values())


async def test_reads_and_watches_share_one_connection_to_gos_server(
        emu: KubeEmulator, go: GoFront, name: str) -> None:
    c = emu[name]
    reader = ClusterReader.from_configuration(go.configuration(name))
    before, multiplexed, opened = _connections(), pool().multiplexed, pool().opened
    snap = await reader.read_async({"Deployment", "Pod", "ConfigMap", "Namespace"}, 5)
    assert [i["metadata"]["name"] for i in snap.objects["ConfigMap"]] == ["cfg"]
    notifier = AsyncChangeNotifier(reader, snap.versions)
    notifier.start()
    try:
        await until(lambda: c.count(watch=True) == len(notifier.kinds))
        for _ in range(3):
            await reader.read_async({"Deployment", "Pod"}, 5)
        assert pool().multiplexed - multiplexed == 1  # Go's server chose h2 by ALPN
        assert pool().opened - opened == 1  # four watches and more LISTs: one connection
        (conn,) = _connections() - before
        assert conn.streams == len(notifier.kinds)
        c.put(ob.pod("new", "ops", {"app": "web"}))
        assert await notifier.wait(3.0)  # the event came through Go's server, unbuffered
        assert notifier.last_error is None
    finally:
        await notifier.aclose()
    await until(lambda: conn.streams == 0)


async def test_a_list_past_every_window_arrives_whole(emu: KubeEmulator, go: GoFront,
                                                      name: str) -> None:
    """6 MiB: past the 4 MiB stream window the bot grants, so Go's server must wait for the
    bot's WINDOW_UPDATEs (and its own write buffers) to finish the answer."""
    fill_big(emu, name)
    cfg = go.configuration(name)
    creds = Credentials(cfg)
    lists = await asyncio.gather(*(get_json(cfg, creds, CM, {}, "cm") for _ in range(3)))
    assert all(big_blobs_whole(listed) for listed in lists)


async def test_more_streams_at_once_than_gos_limit(emu: KubeEmulator, go: GoFront,
                                                    name: str) -> None:
    """Go's server takes 250 concurrent streams a connection and resets any past that. 300
    watches open at once: 250 on the first connection, the rest on a second, none reset."""
    cfg = go.configuration(name)
    creds = Credentials(cfg)
    listed = await get_json(cfg, creds, CM, {}, "cm")  # the connection, and Go's SETTINGS
    rv = listed["metadata"]["resourceVersion"]
    multiplexed = pool().multiplexed
    query = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "30"}
    watches = await asyncio.gather(*(open_get(cfg, creds, CM, query) for _ in range(300)))
    try:
        assert [resp.status_code for _, resp in watches] == [200] * 300
        assert pool().multiplexed - multiplexed == 1
        assert sorted(Counter(s.conn for s, _ in watches).values()) == [50, 250]
    finally:
        for stream, _ in watches:
            release(stream)


async def test_gos_server_answers_the_liveness_ping(emu: KubeEmulator, go: GoFront, name: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe a silent watch or a slow answer triggers: Go's server must answer it, or the
    bot would close healthy connections every few seconds."""
    monkeypatch.setattr(http2, "PING_TIMEOUT", 0.5)
    cfg = go.configuration(name)
    creds = Credentials(cfg)
    before = _connections()
    await get_json(cfg, creds, CM, {}, "cm")
    (conn,) = _connections() - before
    for n in range(1, 4):
        conn.probe()
        await until(lambda n=n: conn.pongs == n, 2.0)  # type: ignore[misc]
    await asyncio.sleep(0.8)  # past PING_TIMEOUT: the answered pings closed nothing
    assert conn.usable
    await get_json(cfg, creds, CM, {}, "cm")
    assert _connections() - before == {conn}


async def test_a_graceful_restart_goaway_then_watches_resume(emu: KubeEmulator, go: GoFront,
                                                            name: str) -> None:
    """Go's server shuts down as kube-apiserver does: GOAWAY, open streams get a grace
    period, then the connection closes. The watches come back on a new connection when the
    server does, from where they were: a change made while it was down is still heard."""
    c = emu[name]
    reader = ClusterReader.from_configuration(go.configuration(name))
    snap = await reader.read_async({"Pod", "ConfigMap"}, 5)
    notifier = AsyncChangeNotifier(reader, snap.versions)
    notifier.start()
    try:
        await until(lambda: c.count(watch=True) == 2)
        before = _connections()
        (old,) = [x for x in before if x.streams == 2]
        mark = notifier.mark("Pod")
        assert mark is not None
        go.terminate()  # Go's server sends GOAWAY at once, then gives open streams 3 s
        await until(lambda: not old.usable, 2.5)
        assert old.streams == 2  # told to go away, not cut off: its watches still run
        await asyncio.to_thread(go.stop)
        await until(lambda: old.streams == 0)
        c.put(ob.pod("while-down", "ops", {"app": "web"}))  # nobody is watching right now
        with pytest.raises(ClusterError):  # the listener is gone: no answer, a clear error
            await get_json(reader.api.configuration, reader.credentials, CM, {}, "cm")
        notifier.changed.clear()
        await asyncio.to_thread(go.start)
        assert await notifier.wait(20.0)  # resumed from its last version: the Pod is news
        await until(lambda: notifier.mark("Pod") is not None)
        assert notifier.mark("Pod") == (mark[0], 1)  # heard as an event, with no gap (no 410)
        await until(lambda: c.count(watch=True) >= 2, 20.0)
        listed = await get_json(reader.api.configuration, reader.credentials, CM, {}, "cm")
        assert listed["items"][0]["metadata"]["name"] == "cfg"
        assert old not in _connections()
    finally:
        await notifier.aclose()
