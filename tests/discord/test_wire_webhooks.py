"""Webhooks over the wire: portraits as avatars, and a day of play in channels that cannot have
a webhook without piling up invalid requests (Discord bans an IP at 10,000 per 10 minutes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.engine.ports import Address, Outgoing
from bot.transports.discord.invalid import LIMIT
from bot.transports.discord.webhooks import RECHECK_AFTER
from tests.discord.conftest import virtual_pacer
from tests.discord.live import Station
from tests.discord.local_discord import LocalDiscord
from tests.fakes import ScriptedCluster

LINE = Outgoing(kind="line", text='"Chen, listen."', speaker="torres", style="dialogue")
PUBLIC = "https://kepler.example.org"


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


async def test_buttons_sent_through_a_webhook_work_and_are_disabled_when_passed(
    local: LocalDiscord, tmp_path: Path, course
) -> None:
    station = Station(local, tmp_path / "k.db", course, ScriptedCluster(), pacer=virtual_pacer())
    await station.start()
    try:
        channel = local.text_channel(6, "bridge")
        await local.dispatch("CHANNEL_CREATE", local.channels[channel])
        ana = local.user(101, "Ana")
        start = await local.command(ana, channel, "mission", "start", chapter="1")
        await local.answered(start)
        address = Address("discord", "channel", str(channel))

        async def buttons_posted() -> bool:
            return bool(local.buttons(channel, "kepler:continue:"))

        await _until(buttons_posted)
        [first] = local.buttons(channel, "kepler:continue:")
        holder = next(m for m in local.story(channel) if first in m.custom_ids())
        assert holder.via == "webhook" and holder.username == "Commander Sarah Torres"
        assert station.store is not None
        before = await station.store.find_mission(address)
        click = await local.click(ana, first)
        await local.answered(click)
        assert click.response == 6  # acknowledged without a message: the story is the reply

        async def moved_on() -> bool:
            return len(local.buttons(channel, "kepler:continue:")) == 1 and first not in \
                local.buttons(channel, "kepler:continue:")  # fmt: skip

        await _until(moved_on)
        after = await station.store.find_mission(address)
        assert (after.chapter, after.beat) != (before.chapter, before.beat)
        assert holder.edits == 1 and all(b["disabled"] for b in holder.buttons())
    finally:
        await station.stop()


async def _until(what, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    end = time.monotonic() + timeout
    while not await what():
        assert time.monotonic() < end, "the bot never got there"
        await asyncio.sleep(0.02)


async def test_an_expired_command_token_is_one_warning_line(
    local: LocalDiscord, tmp_path: Path, course, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    station = Station(local, tmp_path / "k.db", course, ScriptedCluster(), pacer=virtual_pacer())
    await station.start()
    try:
        sam = local.user(8, "Sam")
        dm = local.dm_channel(sam)
        caplog.clear()
        local.expire_next = True
        late = await local.command(sam, dm, "profile")
        await local.answered(late)

        async def logged() -> bool:
            return any("expired" in r.getMessage() for r in caplog.records)

        await _until(logged)
        [line] = [r for r in caplog.records if "expired" in r.getMessage()]
        assert line.levelno == logging.WARNING and line.exc_info is None
        assert "10062" in line.getMessage() and "profile" in line.getMessage()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await station.stop()


def test_development_mode_warns_that_dms_show_no_commands(caplog: pytest.LogCaptureFixture) -> None:
    from bot.transports.discord.app import warn_if_dev_mode

    warn_if_dev_mode("")
    assert not caplog.records
    warn_if_dev_mode("123456789")
    [line] = caplog.records
    assert "DMs with the bot show no commands" in line.getMessage()
