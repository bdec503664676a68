"""The browser terminal's world: the bot's HTTP server with the terminal mounted, the store's
sandbox records, a real ``pods/exec`` endpoint running bash with real kubectl against the API
emulator, and the workbench rc file that ``sandbox/workbench.py`` renders."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client

from bot.ops.health import HealthRegistry, HealthServer
from bot.store.sqlite import SQLiteStore
from bot.web.server import TerminalWeb
from bot.web.tokens import LinkSigner
from bot.web.workbenches import HostWorkbenches
from sandbox.backends.base import SandboxRecord
from sandbox.workbench import BASHRC, ETC, HOME, POD, WorkbenchSettings, objects
from tests.emulator import KubeEmulator
from tests.web.exec_endpoint import V4, V5, ExecEndpoint

SECRET = "test-terminal-secret-0123456789"
HOST_TOKEN = "host-bot-token"
IMAGE = "docker.io/example/workbench@sha256:" + "ab" * 32


@dataclass
class Clock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    emu: KubeEmulator
    endpoint: ExecEndpoint
    store: SQLiteStore
    web: TerminalWeb
    signer: LinkSigner
    clock: Clock
    base: str
    tmp: Path
    activity: list[str]

    async def add_learner(self, learner: str, namespace: str) -> Path:
        """A ready sandbox record and its workbench pod (env from the rendered pod spec)."""
        now = time.time()
        await self.store.save_sandbox(SandboxRecord(
            learner_id=learner, backend="vcluster", name=namespace, phase="ready",
            created=now, last_active=now))  # fmt: skip
        sts = next(o for o in objects(namespace, WorkbenchSettings(IMAGE)) if o["kind"] == "StatefulSet")
        env = {e["name"]: e["value"] for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        home = self.tmp / "homes" / namespace  # the PVC: outlives the pod
        self.endpoint.path_map[HOME] = str(home)
        self.endpoint.add_pod(namespace, POD, home, env)
        return home

    async def set_phase(self, learner: str, phase: str, name: str | None = None) -> None:
        record = await self.store.get_sandbox(learner)
        assert record is not None
        await self.store.save_sandbox(replace(record, phase=phase, name=name or record.name))  # type: ignore[arg-type]

    async def pause(self, learner: str) -> None:
        """What a pause does: the workbench pod goes (its shells die), the record says paused."""
        record = await self.store.get_sandbox(learner)
        assert record is not None
        await self.endpoint.stop_pod(record.name, POD)
        await self.set_phase(learner, "paused")

    async def resume(self, learner: str) -> None:
        record = await self.store.get_sandbox(learner)
        assert record is not None
        self.endpoint.start_pod(record.name, POD)
        await self.set_phase(learner, "ready")

    async def link(self, learner: str) -> str:
        url = await self.web.link_for(learner)
        assert url is not None
        return url


def write_mounts(emu: KubeEmulator, etc: Path) -> None:
    """What the pod mounts under /etc/kepler: the rc ConfigMap and the vcluster kubeconfig."""
    (etc / "kubeconfig").mkdir(parents=True, exist_ok=True)
    emu.write_kubeconfig(etc / "kubeconfig" / "config")
    (etc / "workbench.bashrc").write_text(BASHRC.replace(ETC, str(etc)), encoding="utf-8")


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        e.cluster().put({"apiVersion": "v1", "kind": "Node",
                         "metadata": {"name": "kepler-node-1", "labels": {}},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                    "nodeInfo": {"kubeletVersion": "v1.32.0"}}})  # fmt: skip
        yield e


def host_config(url: str) -> client.Configuration:
    cfg = client.Configuration()
    cfg.host = url
    cfg.api_key = {"authorization": HOST_TOKEN}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return cfg


async def make_world(emu: KubeEmulator, tmp: Path, protocols: tuple[str, ...] = (V5, V4),
                     base_url: str = "") -> AsyncIterator[World]:  # fmt: skip
    etc = tmp / "etc"
    write_mounts(emu, etc)
    endpoint = await ExecEndpoint(HOST_TOKEN, {ETC: str(etc)}, protocols).start()
    clock = Clock()
    activity: list[str] = []

    async def on_activity(learner: str) -> None:
        activity.append(learner)

    async with SQLiteStore(tmp / "kepler.db") as store:
        signer = LinkSigner(SECRET, clock=clock, spent=store)  # as ``kepler serve`` wires it
        web = TerminalWeb(signer, HostWorkbenches(store, {"": host_config(endpoint.url)}),
                          base_url=base_url or "http://127.0.0.1", clock=clock,
                          on_activity=on_activity, reap_every=0, kept=store)  # fmt: skip
        server = await HealthServer(HealthRegistry(), host="127.0.0.1", port=0,
                                    mounts=[web.mount]).start()  # fmt: skip
        base = f"http://127.0.0.1:{server.port}"
        web.base_url = base_url or base
        try:
            yield World(emu, endpoint, store, web, signer, clock, base, tmp, activity)
        finally:
            await server.stop()
            await web.aclose()
            await endpoint.stop()


@pytest.fixture
async def world(emu: KubeEmulator, tmp_path: Path) -> AsyncIterator[World]:
    async for w in make_world(emu, tmp_path):
        yield w


class Term:
    """A terminal client as the page is one: the cookie session and the WebSocket."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.http = http
        self.ws = ws
        self.screen = ""
        self.states: list[str] = []

    async def type(self, text: str) -> None:
        await self.ws.send_bytes(text.encode())

    async def expect(self, text: str, timeout: float = 30.0) -> str:
        """Read output until ``text`` shows up (or the socket closes: then fail)."""
        async def run() -> str:
            while text not in self.screen:
                msg = await self.ws.receive()
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self.screen += msg.data.decode(errors="replace")
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    self._status(msg.data)
                else:
                    raise AssertionError(f"closed before {text!r}; screen:\n{self.screen[-2000:]}")
            return self.screen

        try:
            return await asyncio.wait_for(run(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {text!r} in {timeout}s; screen:\n{self.screen[-2000:]}") from None

    def _status(self, data: str) -> None:
        import json

        msg = json.loads(data)
        self.states.append(msg["state"])
        self.screen += f"\n[{msg['state']}] {msg['line']}\n"

    async def until_closed(self, timeout: float = 20.0) -> list[str]:
        async def run() -> None:
            while True:
                msg = await self.ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._status(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.screen += msg.data.decode(errors="replace")
                else:
                    return

        await asyncio.wait_for(run(), timeout)
        return self.states


async def open_terminal(http: aiohttp.ClientSession, world: World, link: str) -> Term:
    async with http.get(link, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
    async with http.get(world.base + "/terminal/") as resp:
        assert resp.status == 200
    ws = await http.ws_connect(world.base + "/terminal/ws")
    return Term(http, ws)


def kubectl_on_path() -> bool:
    return any(os.access(os.path.join(d, "kubectl"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep))  # fmt: skip
