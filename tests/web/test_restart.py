"""A restart of the bot inside a link's ten minutes: spent links stay spent, open terminals stay
open.

Two bot lifetimes over one store file (the HTTP server, the terminal and the store all stop and
start again, as a redeploy does); every request goes over real HTTP to the bot's server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.web.server import COOKIE
from bot.web.tokens import LINK_TTL
from tests.emulator import KubeEmulator
from tests.web.conftest import Term, World, kubectl_on_path, make_world, open_terminal

pytestmark = pytest.mark.skipif(not kubectl_on_path(), reason="kubectl is not on PATH")


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


def _at(world: World, link: str) -> str:
    """A link as the restarted server sees it (a test server gets a new port each life)."""
    return f"{world.base}/terminal/open/{link.rsplit('/', 1)[1]}"


def _db_bytes(tmp: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp.glob("kepler.db*"))


async def _lifetime(emu: KubeEmulator, tmp: Path) -> AsyncIterator[World]:
    async for world in make_world(emu, tmp):
        await world.add_learner("discord:1", "kepler-rs1")  # the record is kept; the pod re-added
        await world.add_learner("discord:2", "kepler-rs2")
        yield world


async def test_a_spent_link_is_refused_after_a_restart(emu: KubeEmulator, tmp_path: Path) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async for world in _lifetime(emu, tmp_path):
            opened = await world.link("discord:1")
            unopened = await world.link("discord:1")
            other = await world.link("discord:2")
            term = await open_terminal(http, world, opened)
            await term.type("echo fir''st-life\r")
            await term.expect("first-life")
            await term.ws.close()
            status, body = await _get(http, opened)
            assert status == 403 and "already opened" in body
            issued_at = world.clock.now

        # What the store holds of the spent link: a digest, never the token or its nonce.
        rows = sqlite3.connect(tmp_path / "kepler.db").execute(
            "SELECT digest, expires FROM spent_links").fetchall()  # fmt: skip
        assert len(rows) == 1 and rows[0][1] == pytest.approx(issued_at + LINK_TTL, abs=1)
        token = opened.rsplit("/", 1)[1]
        assert token.encode() not in _db_bytes(tmp_path)
        assert token.split(".")[0].encode() not in _db_bytes(tmp_path)
        cookie = next(c.value for c in jar if c.key == COOKIE)
        assert cookie.encode() not in _db_bytes(tmp_path)

        async for world in _lifetime(emu, tmp_path):  # the bot restarted, same store file
            opened, unopened, other = (_at(world, u) for u in (opened, unopened, other))
            status, body = await _get(http, opened)
            assert status == 403
            assert "already opened" in body and "<code>/terminal</code>" in body  # how to get one

            # The browser's session outlived the restart: the page and the socket still open,
            # and the shell is the learner's own (their home, their file from before).
            status, _ = await _get(http, world.base + "/terminal/")
            assert status == 200
            again = Term(http, await http.ws_connect(world.base + "/terminal/ws"))
            await again.type("echo sec''ond-life; p''wd\r")
            await again.expect("second-life")
            await again.expect("homes/kepler-rs1")
            await again.ws.close()

            # A link issued before the restart and never opened still opens, once.
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
                assert (await _get(fresh, unopened))[0] == 303
                assert (await _get(fresh, unopened))[0] == 403

            # Expired, forged and learner 2's link rewritten for learner 1: 403 with the way out.
            world.clock.now += LINK_TTL + 1
            status, body = await _get(http, other)
            assert status == 403 and "expired" in body and "/terminal" in body
            world.clock.now -= LINK_TTL + 1
            base, token2 = other.rsplit("/", 1)
            status, body = await _get(http, f"{base}/{token2[:-3]}AAA")
            assert status == 403 and "not valid" in body and "/terminal" in body
            foreign = world.signer.issue("discord:1", "kepler-rs2")  # 1's id, 2's sandbox
            status, body = await _get(http, f"{world.base}/terminal/open/{foreign}")
            assert status == 403 and "reset or deleted" in body

            # Spent links are pruned once they would have expired anyway.
            world.clock.now += LINK_TTL + 1
            newest = await world.link("discord:1")
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as late:
                assert (await _get(late, newest))[0] == 303
            left = sqlite3.connect(tmp_path / "kepler.db").execute(
                "SELECT count(*) FROM spent_links").fetchone()[0]  # fmt: skip
            assert left == 1  # only the link just opened: both earlier ones expired and went


async def test_a_reset_ends_a_kept_session_after_a_restart(emu: KubeEmulator, tmp_path: Path) -> None:
    """A session lasts while its sandbox generation lives, across restarts, and no longer."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async for world in _lifetime(emu, tmp_path):
            term = await open_terminal(http, world, await world.link("discord:1"))
            await term.ws.close()
            # while the bot is down the sandbox is reset: a new generation
            await world.set_phase("discord:1", "ready", name="kepler-rs1-new")
        async for world in make_world(emu, tmp_path):
            gone = Term(http, await http.ws_connect(world.base + "/terminal/ws"))
            assert await gone.until_closed() == ["ended"]
            status, body = await _get(http, world.base + "/terminal/")
            assert status == 403 and "/terminal" in body
        kept = sqlite3.connect(tmp_path / "kepler.db").execute(
            "SELECT count(*) FROM terminal_sessions").fetchone()[0]  # fmt: skip
        assert kept == 0


async def test_kepler_serve_keeps_spent_links_and_sessions_in_its_store(tmp_path: Path) -> None:
    """``build_terminal`` (what ``kepler serve`` runs) hands the store to both."""
    from types import SimpleNamespace

    from bot.store.sqlite import SQLiteStore
    from bot.web.setup import build_terminal
    from tests.web.conftest import SECRET, host_config

    settings = SimpleNamespace(web_secret=SECRET, workbench_image="img", public_url="",
                               health_port=8080)  # fmt: skip
    backend = SimpleNamespace(kube=SimpleNamespace(api=SimpleNamespace(
        configuration=host_config("http://127.0.0.1:9"))))  # fmt: skip

    async def touch(learner: str) -> None: ...

    async with SQLiteStore(tmp_path / "kepler.db") as store:
        terminal = build_terminal(settings, store, SimpleNamespace(pool=None, touch=touch), backend)
        assert terminal is not None
        assert terminal.signer.spent is store and terminal.kept is store
