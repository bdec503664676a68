"""The terminal end to end without a browser: links, the bridge, the exec protocol, lifecycle."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.web.kexec import ExecTarget, open_exec
from bot.web.tokens import LINK_TTL
from tests.emulator import KubeEmulator
from tests.web.conftest import (
    HOST_TOKEN,
    World,
    host_config,
    kubectl_on_path,
    make_world,
    open_terminal,
)
from tests.web.exec_endpoint import V4

pytestmark = pytest.mark.skipif(not kubectl_on_path(), reason="kubectl is not on PATH")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        yield s


async def test_link_opens_a_shell_with_kubectl_on_the_learners_cluster(world: World,
                                                                         http: aiohttp.ClientSession) -> None:  # fmt: skip
    await world.add_learner("discord:1", "kepler-aaaa")
    term = await open_terminal(http, world, await world.link("discord:1"))
    await term.type("kubectl get nodes\r")
    await term.expect("kepler-node-1")
    await term.type("type k; complete -p k\r")
    await term.expect("k is aliased to `kubectl'")
    await term.expect("__start_kubectl")
    assert world.endpoint.chosen == ["v5.channel.k8s.io"]
    assert world.web.connected() == {"discord:1": 1}
    assert world.activity == ["discord:1"]  # the terminal keeps the sandbox awake (throttled)
    await term.ws.close()


async def test_v4_when_the_host_offers_no_v5(emu: KubeEmulator, tmp_path: Path,
                                             http: aiohttp.ClientSession) -> None:  # fmt: skip
    async for world in make_world(emu, tmp_path, protocols=(V4,)):
        await world.add_learner("discord:1", "kepler-bbbb")
        term = await open_terminal(http, world, await world.link("discord:1"))
        await term.type("echo $((6*7))\r")
        await term.expect("42")
        assert world.endpoint.chosen == ["v4.channel.k8s.io"]
        await term.ws.close()


async def test_resize_reaches_the_pty(world: World, http: aiohttp.ClientSession) -> None:
    await world.add_learner("discord:1", "kepler-cccc")
    term = await open_terminal(http, world, await world.link("discord:1"))
    await term.ws.send_str(json.dumps({"t": "resize", "cols": 91, "rows": 27}))
    await term.type("stty size\r")
    await term.expect("27 91")
    await term.ws.close()


async def _status_of(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_replayed_expired_forged_and_foreign_links_get_403(world: World,
                                                                 http: aiohttp.ClientSession) -> None:  # fmt: skip
    await world.add_learner("discord:1", "kepler-dddd")
    await world.add_learner("discord:2", "kepler-eeee")
    link = await world.link("discord:1")
    term = await open_terminal(http, world, link)
    await term.ws.close()

    status, body = await _status_of(http, link)  # replay
    assert status == 403 and "already opened" in body and "/terminal" in body

    old = await world.link("discord:1")
    world.clock.now += LINK_TTL + 1
    status, body = await _status_of(http, old)
    assert status == 403 and "expired" in body and "/terminal" in body
    world.clock.now -= LINK_TTL + 1

    base, token = (await world.link("discord:1")).rsplit("/", 1)
    body_part, mac = token.split(".")
    status, body = await _status_of(http, f"{base}/{body_part}.{mac[:-2]}AA")
    assert status == 403 and "not valid" in body

    # A link for learner 1 rewritten to name learner 2 (same signature): forged.
    import base64

    claims = json.loads(base64.urlsafe_b64decode(body_part + "=" * (-len(body_part) % 4)))
    claims["l"] = "discord:2"
    other = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True)
                                     .encode()).rstrip(b"=").decode()  # fmt: skip
    status, _ = await _status_of(http, f"{base}/{other}.{mac}")
    assert status == 403

    # A genuine link for learner 2's id carrying learner 1's sandbox generation: refused.
    spliced = world.signer.issue("discord:2", "kepler-dddd")
    status, body = await _status_of(http, f"{world.base}/terminal/open/{spliced}")
    assert status == 403 and "reset or deleted" in body

    # No session cookie: neither the page nor the socket.
    async with aiohttp.ClientSession() as stranger:
        assert (await _status_of(stranger, world.base + "/terminal/"))[0] == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await stranger.ws_connect(world.base + "/terminal/ws")
        assert err.value.status == 403


async def test_study_group_members_each_get_their_own_workbench(world: World) -> None:
    home1 = await world.add_learner("discord:1", "kepler-g1")
    home2 = await world.add_learner("discord:2", "kepler-g2")
    jar = aiohttp.CookieJar
    async with aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as a, \
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as b:  # fmt: skip
        t1 = await open_terminal(a, world, await world.link("discord:1"))
        t2 = await open_terminal(b, world, await world.link("discord:2"))
        await t1.type("echo one > mine.txt; p''wd\r")
        await t2.type("echo two > mine.txt; p''wd\r")
        await t1.expect(str(home1))
        await t2.expect(str(home2))
        assert world.web.connected() == {"discord:1": 1, "discord:2": 1}
        await t1.ws.close()
        await t2.ws.close()
    assert (home1 / "mine.txt").read_text() == "one\n"
    assert (home2 / "mine.txt").read_text() == "two\n"


async def test_closing_the_tab_ends_the_exec_session(world: World,
                                                     http: aiohttp.ClientSession) -> None:  # fmt: skip
    await world.add_learner("discord:1", "kepler-ffff")
    term = await open_terminal(http, world, await world.link("discord:1"))
    await term.type("echo rea''dy\r")
    await term.expect("ready")
    assert world.endpoint.live_sessions() == 1
    await term.ws.close()
    for _ in range(200):
        if world.endpoint.live_sessions() == 0 and not world.web.connected():
            break
        await asyncio.sleep(0.05)
    assert world.endpoint.live_sessions() == 0
    assert world.web.connected() == {}


async def test_idle_terminal_is_closed_after_thirty_minutes(world: World,
                                                            http: aiohttp.ClientSession) -> None:  # fmt: skip
    await world.add_learner("discord:1", "kepler-idle")
    term = await open_terminal(http, world, await world.link("discord:1"))
    await term.type("echo h''i\r")
    await term.expect("hi")
    world.clock.now += 29 * 60
    assert await world.web.reap() == 0
    world.clock.now += 61
    assert await world.web.reap() == 1
    assert "idle" in await term.until_closed()
    assert "30 minutes" in term.screen
    assert term.ws.close_code == 4000


async def test_pause_shows_a_line_and_resume_reconnects_with_the_same_home(
        world: World, http: aiohttp.ClientSession) -> None:  # fmt: skip
    await world.add_learner("discord:1", "kepler-pp")
    term = await open_terminal(http, world, await world.link("discord:1"))
    await term.type("echo kept > notes.txt && echo wr''itten\r")
    await term.expect("written")
    await world.pause("discord:1")
    states = await term.until_closed()
    assert states[-1] in ("paused", "starting")
    # The page retries: while paused it hears "paused" with the line, then the socket closes.
    again = await http.ws_connect(world.base + "/terminal/ws")
    from tests.web.conftest import Term

    t2 = Term(http, again)
    assert await t2.until_closed() == ["paused"]
    assert "paused to save power" in t2.screen
    await world.resume("discord:1")
    t3 = Term(http, await http.ws_connect(world.base + "/terminal/ws"))
    await t3.type("cat notes.txt\r")
    await t3.expect("kept")
    await t3.ws.close()


async def test_reset_ends_the_session_and_old_links(world: World, http: aiohttp.ClientSession) -> None:
    await world.add_learner("discord:1", "kepler-old")
    old_link = await world.link("discord:1")
    term = await open_terminal(http, world, await world.link("discord:1"))
    await term.type("echo o''n-line\r")
    await term.expect("on-line")
    # A reset: the record moves to the new namespace, then the old one (and its pod) goes.
    await world.set_phase("discord:1", "ready", name="kepler-new")
    await world.endpoint.stop_pod("kepler-old", "workbench-0")
    assert "ended" in await term.until_closed()
    status, body = await _status_of(http, old_link)
    assert status == 403 and "reset or deleted" in body
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(world.base + "/terminal/ws")  # the session went with the sandbox


async def test_exec_client_speaks_to_the_endpoint_directly(world: World) -> None:
    """The protocol layer alone: stdin, stdout, and the Status on the error channel."""
    await world.add_learner("discord:9", "kepler-raw")
    cfg = host_config(world.endpoint.url)
    target = ExecTarget(cfg.host, "kepler-raw", "workbench-0", "workbench", ("bash", "-c", "exit 3"),
                        headers={"Authorization": f"Bearer {HOST_TOKEN}"})  # fmt: skip
    async with aiohttp.ClientSession() as s:
        stream = await open_exec(s, target)
        assert [chunk async for chunk in stream.output()] == []
        assert stream.status is not None and stream.status["reason"] == "NonZeroExitCode"
        await stream.close()


async def test_the_bridge_declines_permessage_deflate(world: World, http: aiohttp.ClientSession) -> None:
    """Browsers offer compression; a keystroke frame is a few bytes, so zlib on each one (both
    ways) costs the bot CPU for nothing (bench/terminals.py measured it): the bot declines."""
    await world.add_learner("discord:1", "kepler-zz")
    async with http.get(await world.link("discord:1"), allow_redirects=False) as resp:
        assert resp.status == 303
    ws = await http.ws_connect(world.base + "/terminal/ws", compress=15)
    assert ws.compress == 0  # offered, not accepted
    await ws.send_bytes(b"echo pl''ain\r")
    screen = ""
    while "plain" not in screen:
        msg = await asyncio.wait_for(ws.receive(), 30)
        assert msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), msg
        screen += msg.data.decode(errors="replace") if isinstance(msg.data, bytes) else msg.data
    await ws.close()


async def test_more_than_a_hundred_terminals_at_once(world: World) -> None:
    """Each open terminal holds one exec connection for its lifetime: the bot's exec client
    must not cap them (aiohttp's default pool of 100 made the 101st wait, then 'starting')."""
    from bot.ops.health import HealthRegistry, HealthServer
    from bot.web.server import TerminalWeb
    from bot.web.workbenches import HostWorkbenches

    class CatWorkbenches(HostWorkbenches):
        """The real lookups; ``cat`` instead of the workbench's bash (101 light shells)."""

        async def target(self, learner: str) -> ExecTarget:
            t = await super().target(learner)
            return ExecTarget(t.base_url, t.namespace, t.pod, t.container, ("cat",), t.headers)

    n = 101
    for i in range(n):
        await world.add_learner(f"discord:{i}", f"kepler-many-{i}")
    web = TerminalWeb(world.signer, CatWorkbenches(world.store, {"": host_config(world.endpoint.url)}),
                      base_url="http://127.0.0.1", reap_every=0)  # fmt: skip
    server = await HealthServer(HealthRegistry(), host="127.0.0.1", port=0,
                                mounts=[web.mount]).start()  # fmt: skip
    base = f"http://127.0.0.1:{server.port}"
    sessions = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in range(n)]
    try:
        sockets = []
        for i, http in enumerate(sessions):
            link = (await web.link_for(f"discord:{i}") or "").removeprefix("http://127.0.0.1")
            async with http.get(base + link, allow_redirects=False) as resp:
                assert resp.status == 303
            sockets.append(await http.ws_connect(base + "/terminal/ws"))

        async def first_status(ws: aiohttp.ClientWebSocketResponse) -> str:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    return str(json.loads(msg.data)["state"])
                assert msg.type == aiohttp.WSMsgType.BINARY, msg

        states = await asyncio.wait_for(asyncio.gather(*map(first_status, sockets)), 120)
        assert states.count("connected") == n, states
        assert len(web.connected()) == n
        await sockets[-1].send_bytes(b"last\r")  # the 101st is a working terminal
        echoed = b""
        while b"last" not in echoed:
            msg = await asyncio.wait_for(sockets[-1].receive(), 30)
            echoed += msg.data if msg.type == aiohttp.WSMsgType.BINARY else b""
    finally:
        for http in sessions:
            await http.close()
        await server.stop()
        await web.aclose()
