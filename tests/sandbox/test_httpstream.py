"""The lean streaming GET under the watches: HTTP/1.1 over TLS (memory BIO) with h11 framing."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections import Counter

import pytest

from sandbox.apihttp import auth_headers, ssl_context
from sandbox.httpstream import HttpStream
from sandbox.snapshot import KINDS
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob


@pytest.fixture
def cluster(emu: KubeEmulator) -> str:
    name = "stream"
    emu.add_cluster(name).put(ob.namespace("ops"), ob.config_map("cfg", "ops"))
    return name


@pytest.mark.parametrize("tls", [True, False])
async def test_a_list_over_tls_and_plain_http(emu: KubeEmulator, cluster: str, tls: bool) -> None:
    cfg = emu.configuration(cluster, tls=tls)
    url = f"{cfg.host}{KINDS['ConfigMap'].path}"
    stream = await HttpStream.get(url, auth_headers(cfg), ssl_context(cfg), 5.0)
    try:
        resp = await stream.response()
        assert resp.status_code == 200
        body = await stream.read(1 << 20)
    finally:
        stream.close()
    assert b'"name":"cfg"' in body


async def test_a_watch_streams_events_as_they_happen(emu: KubeEmulator, cluster: str) -> None:
    cfg = emu.configuration(cluster, tls=True)
    rv = emu[cluster].resource_version
    url = (f"{cfg.host}{KINDS['ConfigMap'].path}?watch=1&resourceVersion={rv}"
           "&timeoutSeconds=5")
    stream = await HttpStream.get(url, auth_headers(cfg), ssl_context(cfg), 5.0)
    try:
        assert (await stream.response()).status_code == 200
        body = stream.body()
        emu[cluster].put(ob.config_map("new", "ops"))
        chunk = await asyncio.wait_for(anext(body), 3.0)  # one event, not the whole answer
        assert b'"ADDED"' in chunk and b'"name": "new"' in chunk
    finally:
        stream.close()


class _Sink:
    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.complete = 0
        self.ended: list[BaseException] = []
        self.arrived = asyncio.Event()

    def on_data(self, data: bytes) -> None:
        self.events.append(data)
        self.arrived.set()

    def on_complete(self) -> None:
        self.complete += 1
        self.arrived.set()

    def on_end(self, error: BaseException) -> None:
        self.ended.append(error)
        self.arrived.set()


async def test_a_pushed_stream_hands_each_event_to_its_sink(
        emu: KubeEmulator, cluster: str) -> None:
    cfg = emu.configuration(cluster, tls=True)
    rv = emu[cluster].resource_version
    url = (f"{cfg.host}{KINDS['ConfigMap'].path}?watch=1&resourceVersion={rv}"
           "&timeoutSeconds=30")
    stream = await HttpStream.get(url, auth_headers(cfg), ssl_context(cfg), 5.0)
    sink = _Sink()
    try:
        assert (await stream.response()).status_code == 200
        emu[cluster].put(ob.config_map("before", "ops"))
        for _ in range(100):  # arrives while nobody reads: queued
            if stream._events:
                break
            await asyncio.sleep(0.02)
        stream.deliver_to(sink)  # what was queued goes first, at once
        assert len(sink.events) == 1
        assert b'"name": "before"' in sink.events[0]
        sink.arrived.clear()
        emu[cluster].put(ob.config_map("after", "ops"))
        await asyncio.wait_for(sink.arrived.wait(), 3.0)  # pushed from the protocol itself
        assert b'"name": "after"' in sink.events[-1]
        assert not sink.ended and not sink.complete
        sink.arrived.clear()
        assert stream._transport is not None
        stream._transport.abort()  # the connection drops mid-answer
        await asyncio.wait_for(sink.arrived.wait(), 3.0)
        assert len(sink.ended) == 1 and isinstance(sink.ended[0], ConnectionError)
    finally:
        stream.close()


async def test_a_detached_sink_hears_nothing_more(emu: KubeEmulator, cluster: str) -> None:
    cfg = emu.configuration(cluster, tls=False)
    rv = emu[cluster].resource_version
    url = (f"{cfg.host}{KINDS['ConfigMap'].path}?watch=1&resourceVersion={rv}"
           "&timeoutSeconds=30")
    stream = await HttpStream.get(url, auth_headers(cfg), None, 5.0)
    sink = _Sink()
    try:
        assert (await stream.response()).status_code == 200
        stream.deliver_to(sink)
        stream.detach()
        emu[cluster].put(ob.config_map("late", "ops"))
        chunk = await asyncio.wait_for(anext(stream.body()), 3.0)  # queued for a reader again
        assert b'"name": "late"' in chunk
        stream.close()
        await asyncio.sleep(0.05)
        assert sink.events == [] and sink.ended == [] and not sink.complete
    finally:
        stream.close()


async def test_a_certificate_from_another_authority_is_refused(
        emu: KubeEmulator, cluster: str) -> None:
    cfg = emu.configuration(cluster, tls=True)
    other = ssl.create_default_context()  # the system's authorities, not the emulator's
    with pytest.raises(ssl.SSLCertVerificationError):  # at the handshake, before any request
        await HttpStream.get(f"{cfg.host}/api", {}, other, 5.0)


async def test_a_refused_connection_raises_oserror() -> None:
    with pytest.raises(OSError):
        await HttpStream.get("http://127.0.0.1:9/", {}, None, 2.0)  # discard port: closed


async def test_open_streams_hold_few_objects(emu: KubeEmulator, cluster: str) -> None:
    """The reason this module exists: thousands of watches stay open at once."""
    cfg = emu.configuration(cluster, tls=True)
    rv = emu[cluster].resource_version
    url = f"{cfg.host}{KINDS['ConfigMap'].path}?watch=1&resourceVersion={rv}&timeoutSeconds=30"
    headers, tls = auth_headers(cfg), ssl_context(cfg)
    gc.collect()
    existing = {id(o) for o in gc.get_objects()}
    streams = [await HttpStream.get(url, headers, tls, 5.0) for _ in range(20)]
    try:
        for s in streams:
            assert (await s.response()).status_code == 200
        # what each stream holds that did not exist before (the emulator serving them lives
        # in this process too, so a plain count of new objects would include its side)
        owned: Counter[str] = Counter()
        for s in streams:
            seen, todo = set(), [s]
            while todo:
                o = todo.pop()
                if id(o) in seen or id(o) in existing or not gc.is_tracked(o):
                    continue
                seen.add(id(o))
                owned[type(o).__name__] += 1
                todo.extend(gc.get_referents(o))
        per_stream = sum(owned.values()) / len(streams)
        assert per_stream < 40, owned.most_common(10)  # through aiohttp: ~70
    finally:
        for s in streams:
            s.close()
