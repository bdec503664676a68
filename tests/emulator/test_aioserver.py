"""The asyncio front (``KubeEmulator(io="asyncio")``): what the threaded server cannot do.

The rest of its behaviour is the threaded server's, checked by running the whole of
``test_emulator.py`` against both fronts (its ``emu`` fixture is parametrized)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator import KubeEmulator
from tests.emulator import objects as ob


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(io="asyncio") as e:
        yield e


def _open_watch(emu: KubeEmulator, name: str, tls: ssl.SSLContext) -> ssl.SSLSocket:
    c = emu[name]
    rv = c.resource_version
    sock = tls.wrap_socket(socket.create_connection(("127.0.0.1", _tls_port(emu)), timeout=10),
                           server_hostname="127.0.0.1")
    sock.sendall(f"GET /clusters/{name}/api/v1/namespaces/default/pods?watch=1"
                 f"&resourceVersion={rv}&timeoutSeconds=60 HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {c.token}\r\n\r\n".encode())
    return sock


def _tls_port(emu: KubeEmulator) -> int:
    return int(emu.url("default", tls=True).rsplit(":", 1)[1])


def _client_tls(emu: KubeEmulator) -> ssl.SSLContext:
    emu.url("default", tls=True)  # starts the listener and writes its certificate
    ctx = ssl.create_default_context(cafile=str(emu.ca_path))
    return ctx


def _read_until(sock: ssl.SSLSocket, marker: bytes, timeout: float = 10.0) -> bytes:
    got = b""
    sock.settimeout(timeout)
    while marker not in got:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_a_thousand_open_watches_hold_no_thread_each(emu: KubeEmulator) -> None:
    """1,000 watches over TLS on 100 clusters: no new thread, and a change reaches every
    watch of its cluster."""
    tls = _client_tls(emu)
    names = [f"c{i}" for i in range(100)]
    for name in names:
        emu.add_cluster(name).put(ob.namespace("default"))
    before = threading.active_count()
    socks = [_open_watch(emu, name, tls) for name in names for _ in range(10)]
    try:
        for sock in socks:
            assert b" 200 " in _read_until(sock, b"\r\n\r\n").split(b"\r\n", 1)[0]
        assert threading.active_count() - before <= 2
        emu["c7"].put(ob.pod("web-1"))
        started = time.monotonic()
        for sock in socks[70:80]:  # c7's ten watches
            line = _read_until(sock, b"ADDED")
            assert b'"name": "web-1"' in line or b'"name":"web-1"' in line
        assert time.monotonic() - started < 5
    finally:
        for sock in socks:
            sock.close()


def test_a_client_gone_mid_watch_frees_its_connection(emu: KubeEmulator) -> None:
    tls = _client_tls(emu)
    emu.add_cluster("alice").put(ob.namespace("default"))
    front = emu._tls_front
    assert front is not None
    sock = _open_watch(emu, "alice", tls)
    _read_until(sock, b"\r\n\r\n")
    assert len(front._connections) == 1
    sock.close()
    deadline = time.monotonic() + 5
    while front._connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not front._connections  # not left waiting for the watch's 60 s timeout



def test_real_kubectl_speaks_http2_to_it_and_watches(emu: KubeEmulator, tmp_path: Path) -> None:
    """Go's HTTP/2 client (kubectl's, as client-go's) is strict about framing, flow control
    and headers: it reads lists and a watch from the emulator over ``h2``."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    c = emu.add_cluster("bob")
    c.put(ob.namespace("default"), ob.config_map("first"))
    kc = emu.write_kubeconfig(tmp_path / "config", "bob")
    env = {**os.environ, "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")}
    before = emu.https_front.h2_opened
    out = subprocess.run([kubectl, "--kubeconfig", str(kc), "get", "configmaps", "-o", "name"],
                         capture_output=True, text=True, timeout=20, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["configmap/first"]
    assert emu.https_front.h2_opened > before  # it chose h2
    watch = subprocess.Popen([kubectl, "--kubeconfig", str(kc), "get", "configmaps", "--watch",
                              "--output-watch-events", "-o", "name"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert watch.stdout is not None
        assert "first" in watch.stdout.readline()  # the list it starts from
        deadline = time.monotonic() + 10
        while c.count(watch=True) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        c.put(ob.config_map("second"))
        assert "second" in watch.stdout.readline()  # a DATA frame of the open stream
        assert emu.https_front.h2_streams >= 1
    finally:
        watch.kill()
        watch.wait(10)
    deadline = time.monotonic() + 5
    while emu.https_front.h2_streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emu.https_front.h2_streams == 0  # its stream ended with its connection
