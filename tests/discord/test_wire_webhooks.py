"""Webhooks over the wire: portraits as avatars, and a day of play in channels that cannot have
a webhook without piling up invalid requests (Discord bans an IP at 10,000 per 10 minutes)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.engine.ports import Address, Outgoing
from bot.transports.discord.invalid import LIMIT
from bot.transports.discord.webhooks import RECHECK_AFTER
from tests.discord.conftest import virtual_pacer
from tests.discord.live import Station
from tests.discord.local_discord import LocalDiscord, pointed_at
from tests.fakes import ScriptedCluster

LINE = Outgoing(kind="line", text='"Chen, listen."', speaker="torres", style="dialogue")
PUBLIC = "https://kepler.example.org"


@pytest.fixture
async def local() -> AsyncIterator[LocalDiscord]:
    server = await LocalDiscord().start()
    with pointed_at(server):
        yield server
    await server.stop()


@pytest.mark.parametrize("public_url", [PUBLIC, ""])
async def test_portraits_are_the_webhook_avatar_and_the_embed_icon(
    local: LocalDiscord, tmp_path: Path, course, public_url: str
) -> None:
    station = Station(local, tmp_path / "k.db", course, ScriptedCluster(), public_url=public_url,
                      pacer=virtual_pacer())  # fmt: skip
    app = await station.start()
    try:
        channel = local.text_channel(5, "bridge")
        await local.dispatch("CHANNEL_CREATE", local.channels[channel])
        dm = local.dm_channel(local.user(7, "Sam"))
        await app.transport.deliver(Address("discord", "channel", str(channel)), LINE, "a")
        await app.transport.deliver(Address("discord", "solo", str(dm)), LINE, "b")
        [hooked] = local.story(channel)
        [embedded] = local.story(dm)
        author = embedded.data["embeds"][0]["author"]
        if public_url:
            assert hooked.data["avatar_url_given"] == f"{PUBLIC}/portraits/torres.png"
            assert author["icon_url"] == f"{PUBLIC}/portraits/torres.png"
        else:
            assert hooked.data["avatar_url_given"] is None and "icon_url" not in author
        assert hooked.username == author["name"] == "Commander Sarah Torres"
    finally:
        await station.stop()


async def test_a_day_in_channels_without_webhooks_stays_far_below_the_invalid_limit(
    local: LocalDiscord, tmp_path: Path, course
) -> None:
    """288 messages (one every 5 minutes for 24 hours) into a channel where Discord answers 403
    to webhook calls and one that already has 15 webhooks."""
    now = [time.time()]
    local.rate = 10_000  # this test is about webhook look-ups, not the posting pace
    station = Station(local, tmp_path / "k.db", course, ScriptedCluster(),
                      clock=lambda: now[0], pacer=virtual_pacer())  # fmt: skip
    app = await station.start()
    try:
        forbidden, full = local.text_channel(8, "no-perms"), local.text_channel(9, "full")
        local.forbidden_webhooks.add(forbidden)
        for cid in (forbidden, full):
            await local.dispatch("CHANNEL_CREATE", local.channels[cid])
        for i in range(15):  # someone else's webhooks fill the channel
            local.webhooks[10_000 + i] = {"id": str(10_000 + i), "type": 1,
                                          "channel_id": str(full), "name": f"other {i}",
                                          "token": "t", "application_id": None, "user": None}  # fmt: skip
        per_window: list[int] = []
        for i in range(288):
            now[0] += 300
            for cid in (forbidden, full):
                key = f"day-{cid}-{i}"
                await app.transport.deliver(Address("discord", "channel", str(cid)), LINE, key)
            per_window.append(station.invalid.in_window())
        lookups = [r for r in local.requests if r[1].endswith("/webhooks")]
        rechecks = int(24 * 3600 / RECHECK_AFTER)
        # One look-up per channel at first and one per recheck period, not one per message.
        print(f"invalid requests over the day: {local.invalid}; webhook look-ups: {len(lookups)};"
              f" most in any 10 minutes: {max(per_window)}")
        assert len(lookups) <= 2 * (1 + rechecks), lookups
        assert local.invalid == station.invalid.total <= 1 + rechecks
        assert max(per_window) <= 1 < LIMIT // 1000  # per 10 minutes: at most one
        assert len(local.story(forbidden)) == len(local.story(full)) == 288  # all delivered
        assert all(m.via == "bot" for m in local.story(forbidden) + local.story(full))
    finally:
        await station.stop()
