"""AsyncChangeNotifier over the emulator: 410 Expired, TLS with a bearer token, no threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sandbox.apihttp import auth_headers
from sandbox.errors import ClusterForbidden
from sandbox.snapshot import KINDS, ClusterReader
from sandbox.watch import AsyncChangeNotifier, watch_changes
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

_n = iter(range(10**6))


@pytest.fixture
def name(emu: KubeEmulator) -> str:
    n = f"w{next(_n)}"
    d = ob.deployment("web", "ops", replicas=1)
    emu.add_cluster(n).put(ob.namespace("ops"), ob.node("n1"), d)
    return n


def _probes(emu: KubeEmulator, name: str, kind: str) -> int:
    c = emu[name]
    with c.lock:
        return sum(1 for r in c.requests
                   if r.path == KINDS[kind].path and r.query.get("limit") == "1")


@pytest.mark.parametrize("how", ["error-event", "status"])
async def test_expired_watch_fires_and_resumes_from_a_fresh_list(
        emu: KubeEmulator, name: str, how: str) -> None:
    c = emu[name]
    r = ClusterReader.from_configuration(emu.configuration(name))
    snap = r.read({"Deployment"}, 5)
    if how == "error-event":  # history compacted past the snapshot: an ERROR 410 in the stream
        c.HISTORY = 3  # type: ignore[misc]
        for i in range(6):
            c.put(ob.config_map(f"noise-{i}", "ops"))  # a kind not watched
    else:  # the watch request itself answered 410 Gone/Expired
        c.fail(410, "GET", KINDS["Deployment"].path + "$", times=1)
    c.clear_requests()
    notifier = watch_changes(r, snap, window=5.0)
    try:
        assert await notifier.wait(2.0)  # conservative: re-check after 410
        for _ in range(40):
            if _probes(emu, name, "Deployment") and c.count(watch=True) >= 2:
                break
            await asyncio.sleep(0.05)
        assert _probes(emu, name, "Deployment") == 1  # one fresh LIST ?limit=1
        assert c.count(watch=True) >= 2  # ... then watching again from its version
        assert not await notifier.wait(0.5)  # quiet once resumed
        c.put(ob.deployment("api", "ops"))
        assert await notifier.wait(2.0)  # and still sees changes
        assert notifier.last_error is None
    finally:
        await notifier.aclose()


async def test_tls_with_a_bearer_token_from_a_kubeconfig(emu: KubeEmulator, name: str) -> None:
    c = emu[name]
    r = ClusterReader.from_kubeconfig(emu.kubeconfig_dict(name))
    assert r.server.startswith("https://")
    assert r.api.configuration.ssl_ca_cert  # the kubeconfig's inline CA, as a file
    assert auth_headers(r.api.configuration)["authorization"] == f"Bearer {c.token}"
    snap = r.read({"Pod", "Deployment"}, 5)
    before = set(threading.enumerate())
    c.clear_requests()
    notifier = watch_changes(r, snap, window=5.0)
    try:
        assert not await notifier.wait(0.5)
        assert c.count(watch=True) == 2  # both kinds watched, authenticated over TLS
        new = {t.name for t in set(threading.enumerate()) - before}
        # no thread per stream (the emulator serves each connection in a thread of its own;
        # the loop's resolver may use its default executor)
        assert all("process_request" in t or t.startswith("asyncio_") for t in new), new
        c.put(ob.config_map("cfg", "ops"), ob.pod("new", "ops", {"app": "web"}))
        assert await notifier.wait(2.0)
        assert notifier.last_error is None
    finally:
        await notifier.aclose()


async def test_a_wrong_token_is_forbidden_and_never_echoed(emu: KubeEmulator, name: str) -> None:
    secret = "not-the-token-0123456789"
    r = ClusterReader.from_configuration(emu.configuration(name, token=secret, tls=True))
    notifier = AsyncChangeNotifier(r, {"Deployment": str(emu[name].resource_version)},
                                   window=5.0)
    notifier.start()
    try:
        assert not await notifier.wait(0.8)
        assert isinstance(notifier.last_error, ClusterForbidden)
        assert secret not in str(notifier.last_error)
        assert "401" in str(notifier.last_error)
    finally:
        await notifier.aclose()


async def test_auth_is_asked_once_a_minute_and_again_after_a_401(
        emu: KubeEmulator, name: str) -> None:
    """The kubeconfig loader's refresh hook may run an exec plugin (in a thread): once for
    every kind and renewal would queue a thousand learners' watches behind each other."""
    c = emu[name]
    cfg = emu.configuration(name, tls=True)
    asked: list[str] = []

    def refresh(conf: object) -> None:  # as the loader's hook does: put the current token in
        asked.append(c.token)
        cfg.api_key = {"BearerToken": c.token}

    cfg.refresh_api_key_hook = refresh
    r = ClusterReader.from_configuration(cfg)
    rv = str(c.resource_version)
    notifier = AsyncChangeNotifier(r, {"Deployment": rv, "Pod": rv, "Namespace": rv},
                                   window=1.0)
    notifier.start()
    try:
        for _ in range(60):  # windows of 1 s: every kind's watch is renewed at least once
            if notifier.requests >= 6:
                break
            await asyncio.sleep(0.1)
        assert notifier.requests >= 6
        assert len(asked) == 1  # three kinds, six requests, one question
        c.token = "rotated-0123456789"  # the server now refuses the old token: 401 ...
        for _ in range(60):
            if len(asked) >= 2:
                break
            await asyncio.sleep(0.1)
        assert asked[-1] == "rotated-0123456789"  # ... and the next attempt asks again
        await asyncio.sleep(0.3)
        notifier.changed.clear()
        c.put(ob.pod("after-rotation", "ops", {"app": "web"}))
        assert await notifier.wait(3.0)  # watching again with the new token
    finally:
        await notifier.aclose()


async def test_a_streaming_watch_holds_no_task(emu: KubeEmulator, name: str) -> None:
    """An open watch is a connection and its callbacks: thousands stay open, and a task,
    coroutines, a future and a timer for each were a third of what a full collection walked."""
    c = emu[name]
    r = ClusterReader.from_configuration(emu.configuration(name, tls=True))
    rv = str(c.resource_version)
    c.clear_requests()
    notifier = AsyncChangeNotifier(r, {"Deployment": rv, "Pod": rv, "Service": rv})
    notifier.start()
    try:
        for _ in range(100):
            if c.count(watch=True) == 3:
                break
            await asyncio.sleep(0.02)
        assert c.count(watch=True) == 3
        await asyncio.sleep(0.05)
        names = [t.get_name() for t in asyncio.all_tasks()]
        assert not [n for n in names if n.startswith("watch-") and n != "watch-quiet-sweep"]
        c.put(ob.pod("new", "ops", {"app": "web"}))
        assert await notifier.wait(2.0)  # heard from the protocol's callback
        assert notifier.kinds == {"Deployment", "Pod", "Service"}
        notifier.retarget({"Pod": rv, "ConfigMap": rv})  # one stream stays, one starts
        for _ in range(100):
            if c.count(watch=True) == 4:
                break
            await asyncio.sleep(0.02)
        assert c.count(watch=True) == 4
        c.put(ob.config_map("cfg", "ops"))
        assert await notifier.wait(2.0)
        assert notifier.last_error is None
    finally:
        await notifier.aclose()
    assert notifier.kinds == frozenset()


async def test_a_silent_server_is_dropped_and_the_watch_reopens(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that stops talking without closing (a host gone, a half-open connection)."""
    from kubernetes import client

    from sandbox import watch

    monkeypatch.setattr(watch, "QUIET_MARGIN", 0.3)
    monkeypatch.setattr(watch, "QUIET_SWEEP", 0.1)
    opened: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []

    async def answer_then_say_nothing(reader: asyncio.StreamReader,
                                      writer: asyncio.StreamWriter) -> None:
        opened.append(writer)
        readers.append(reader)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")

    server = await asyncio.start_server(answer_then_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = client.Configuration(host=f"http://127.0.0.1:{port}")
    notifier = AsyncChangeNotifier(ClusterReader.from_configuration(cfg), {"Pod": "1"},
                                   window=1.0)
    notifier.start()
    try:
        for _ in range(100):  # window 1 s + 0.3 s of silence, then 0.25-0.5 s of backoff
            if len(opened) >= 2:
                break
            await asyncio.sleep(0.05)
        assert len(opened) >= 2  # dropped and asked again
        assert readers[0].at_eof()  # the bot closed the silent connection
        assert notifier.last_error is not None
        assert not await notifier.wait(0.1)  # silence is not a change
    finally:
        await notifier.aclose()
        for w in opened:
            w.close()
        server.close()
        await server.wait_closed()
