"""One HTTP/2 connection per learner cluster (:mod:`sandbox.http2`, :mod:`sandbox.apihttp`).

Against the asyncio emulator's HTTPS listener, which takes ``h2`` by ALPN as kube-apiserver
does (its framing is checked against real kubectl in ``tests/emulator/test_aioserver.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from sandbox import http2
from sandbox.apihttp import Credentials, get_json, pool
from sandbox.errors import ClusterError
from sandbox.snapshot import KINDS, ClusterReader
from sandbox.watch import AsyncChangeNotifier
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob
from tests.sandbox.h2_support import big_blobs_whole, fill_big, ops_cluster, until

CM = KINDS["ConfigMap"].path


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(io="asyncio") as e:
        yield e


@pytest.fixture
def name(emu: KubeEmulator) -> str:
    return ops_cluster(emu, "h")


def _opened(emu: KubeEmulator) -> int:
    return emu.https_front.h2_opened


@contextlib.asynccontextmanager
async def _watching(emu: KubeEmulator, name: str, kinds: set[str]
                    ) -> AsyncIterator[tuple[ClusterReader, AsyncChangeNotifier]]:
    """A reader of ``name`` over HTTPS and a notifier whose watches of ``kinds`` are open."""
    c = emu[name]
    reader = ClusterReader.from_configuration(emu.configuration(name, tls=True))
    snap = await reader.read_async(kinds, 5)
    notifier = AsyncChangeNotifier(reader, snap.versions)
    notifier.start()
    try:
        await until(lambda: c.count(watch=True) == len(notifier.kinds))
        yield reader, notifier
    finally:
        await notifier.aclose()


async def test_a_learners_watches_and_reads_share_one_connection(emu: KubeEmulator,
                                                                 name: str) -> None:
    c = emu[name]
    reader = ClusterReader.from_configuration(emu.configuration(name, tls=True))
    before, multiplexed = _opened(emu), pool().multiplexed
    snap = await reader.read_async({"Deployment", "Pod", "Service", "ConfigMap", "Node"}, 5)
    notifier = AsyncChangeNotifier(reader, snap.versions)
    notifier.start()
    try:
        await until(lambda: c.count(watch=True) == len(notifier.kinds))
        for _ in range(3):  # the checks that follow
            await reader.read_async({"Deployment", "Pod"}, 5)
        assert _opened(emu) - before == 1  # five watches and eight LISTs: one connection
        assert pool().multiplexed - multiplexed == 1
        c.put(ob.pod("new", "ops", {"app": "web"}))
        assert await notifier.wait(3.0)
        assert notifier.last_error is None
    finally:
        await notifier.aclose()
    await until(lambda: emu.https_front.h2_streams == 0)  # each watch's stream was reset
    await get_json(reader.api.configuration, reader.credentials, CM, {}, "cm")
    assert _opened(emu) - before == 1  # and the connection stayed for the next check


async def test_requests_that_start_together_open_one_connection(emu: KubeEmulator,
                                                                name: str) -> None:
    cfg = emu.configuration(name, tls=True)
    creds = Credentials(cfg)
    before = _opened(emu)
    answers = await asyncio.gather(*(get_json(cfg, creds, CM, {}, "cm") for _ in range(12)))
    assert all(a["items"][0]["metadata"]["name"] == "cfg" for a in answers)
    assert _opened(emu) - before == 1
    other = Credentials(cfg)  # another learner on the same server: a connection of its own
    await get_json(cfg, other, CM, {}, "cm")
    assert _opened(emu) - before == 2


async def test_a_list_larger_than_the_windows_arrives_whole(emu: KubeEmulator,
                                                            name: str) -> None:
    """Flow control both ways: 6 MiB is past the stream window (4 MiB) the bot grants and far
    past HTTP/2's default 64 KiB, so both sides must keep opening windows."""
    fill_big(emu, name)
    cfg = emu.configuration(name, tls=True)
    assert big_blobs_whole(await get_json(cfg, Credentials(cfg), CM, {}, "cm"))


async def test_goaway_lets_taken_streams_finish_and_new_requests_use_a_new_connection(
        emu: KubeEmulator, name: str) -> None:
    """As Go's server shuts down: the watch it has taken goes on, the next read goes on a
    new connection."""
    c = emu[name]
    async with _watching(emu, name, {"Pod"}) as (reader, notifier):
        before = _opened(emu)
        emu.https_front.go_away()
        await asyncio.sleep(0.1)
        c.put(ob.pod("after-goaway", "ops", {"app": "web"}))
        assert await notifier.wait(3.0)  # heard on the stream the server had taken
        await reader.read_async({"Deployment"}, 5)
        assert _opened(emu) - before == 1  # the read went on a new connection
        assert c.count(watch=True) == 1  # and the watch was not asked again
        assert notifier.last_error is None


async def test_a_cut_connection_fails_its_streams_and_they_reopen_on_a_new_one(
        emu: KubeEmulator, name: str) -> None:
    c = emu[name]
    async with _watching(emu, name, {"Pod", "Service"}) as (_reader, notifier):
        before = _opened(emu)
        emu.https_front.drop()
        await until(lambda: c.count(watch=True) == 4)  # both watches asked again ...
        assert _opened(emu) - before == 1  # ... together, on one new connection
        notifier.changed.clear()
        c.put(ob.service("api", "ops", {"app": "web"}))
        assert await notifier.wait(3.0)


async def test_a_connection_gone_silent_is_pinged_then_closed(
        emu: KubeEmulator, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A route that drops packets without closing: the kept connection must not be reused
    for ever. A read that hears nothing pings it; no answer to the ping closes it; the next
    read opens a new connection and succeeds."""
    monkeypatch.setattr(http2, "PROBE_AFTER", 0.2)
    monkeypatch.setattr(http2, "PING_TIMEOUT", 0.5)
    port = int(emu.url(name, tls=True).split(":")[2].split("/")[0])
    silent = False
    pipes: list[asyncio.Task[None]] = []

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                if not silent:  # else lost on the way, both ways, and nobody says so
                    dst.write(data)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
        pipes.extend([asyncio.ensure_future(pipe(reader, up_w)),
                      asyncio.ensure_future(pipe(up_r, writer))])

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    relay_port = server.sockets[0].getsockname()[1]
    cfg = emu.configuration(name, tls=True)
    cfg.host = cfg.host.replace(f":{port}/", f":{relay_port}/")
    creds = Credentials(cfg)
    try:
        await get_json(cfg, creds, CM, {}, "cm")
        from_bot = pipes[0]
        silent = True
        with pytest.raises((ClusterError, TimeoutError)):
            async with asyncio.timeout(1.5):  # PROBE_AFTER + PING_TIMEOUT, and a retry
                await get_json(cfg, creds, CM, {}, "cm")
        await until(from_bot.done, 2.0)  # the bot closed the connection that went silent
        silent = False
        listed = await asyncio.wait_for(get_json(cfg, creds, CM, {}, "cm"), 3.0)
        assert listed["items"][0]["metadata"]["name"] == "cfg"  # on a new connection
    finally:
        for task in pipes:
            task.cancel()
        server.close()


async def test_a_server_without_http2_gets_http1(name: str) -> None:
    with KubeEmulator(io="asyncio", http2=False) as plain:
        plain.add_cluster("p").put(ob.namespace("ops"), ob.config_map("cfg", "ops"))
        cfg = plain.configuration("p", tls=True)
        creds = Credentials(cfg)
        multiplexed, opened = pool().multiplexed, pool().opened
        for _ in range(3):
            await get_json(cfg, creds, CM, {}, "cm")
        assert pool().multiplexed == multiplexed
        assert pool().opened - opened == 1  # a kept HTTP/1.1 connection
        assert plain.https_front.h2_opened == 0
        # many reads at once to a server known to speak HTTP/1.1 each open their own at once
        await asyncio.gather(*(get_json(cfg, Credentials(cfg), CM, {}, "cm") for _ in range(4)))
        assert plain.https_front.h2_opened == 0
        # the server is upgraded (here: it starts offering h2): new connections share again
        assert plain.https_front.tls is not None
        plain.https_front.tls.set_alpn_protocols(["h2", "http/1.1"])
        upgraded = Credentials(cfg)
        await get_json(cfg, upgraded, CM, {}, "cm")
        await asyncio.gather(*(get_json(cfg, upgraded, CM, {}, "cm") for _ in range(3)))
        assert pool().multiplexed == multiplexed + 1
        assert plain.https_front.h2_opened == 1
