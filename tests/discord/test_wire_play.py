"""Chapters 1–2 over Discord's wire: a solo player in DMs and a crew of three in a channel.

The real bot logs in, connects to the gateway and gets every click, form and command as a raw
``INTERACTION_CREATE`` from :class:`LocalDiscord`; everything it does reaches that server over
HTTP, where rate limits, error codes and Discord's limits are enforced. Stale clicks, concurrent
forms, a restart with a form open and a channel without webhooks are part of the play; every
interaction must get an answer and no answer may be lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.ports import Address
from bot.transports.discord.views import parse
from tests.discord.live import Station
from tests.discord.local_discord import LocalDiscord, Posted
from tests.fakes import ScriptedCluster

PASSED = "That moment has passed."


@pytest.fixture
async def station(local: LocalDiscord, tmp_path: Path, course) -> AsyncIterator[Station]:
    st = Station(local, tmp_path / "kepler.db", course, ScriptedCluster())
    await st.start()
    yield st
    await st.stop()


async def until(what: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Poll for an outcome (the bot works in tasks of its own); fail after ``timeout``."""
    end = time.monotonic() + timeout
    while not await what():
        if time.monotonic() > end:
            raise AssertionError("the bot never got there")
        await asyncio.sleep(0.02)


async def mission_at(station: Station, address: Address) -> Any:
    assert station.store is not None
    mission = await station.store.find_mission(address)
    assert mission is not None
    return mission


def reply_text(local: LocalDiscord, interaction: Any) -> str:
    return "\n".join(m.text for m in local.replies(interaction.id))


async def replied(local: LocalDiscord, interaction: Any) -> str:
    """The text the bot answered to an interaction (waits for it)."""
    await local.answered(interaction)

    async def has_text() -> bool:
        return bool(reply_text(local, interaction))

    await until(has_text)
    return reply_text(local, interaction)


def newest(local: LocalDiscord, cid: int, prefix: str) -> str:
    ids = local.buttons(cid, prefix)
    assert ids, f"no {prefix} button in {cid}"
    return ids[-1]


async def step(
    local: LocalDiscord, station: Station, uid: int, cid: int, address: Address,
    text: str = "3 Ready nodes on a Linux laptop",
) -> Any:  # fmt: skip
    """One learner action at the current beat, through what the bot posted."""
    assert station.app is not None
    mission = await mission_at(station, address)
    beat = station.course.beat_at(mission.chapter, mission.beat)
    if isinstance(beat, QuestionBeat) and beat.choices:
        click = await local.click(uid, newest(local, cid, f"kepler:choice:{mission.id}:"))
    elif isinstance(beat, QuestionBeat):
        opened = await local.click(uid, newest(local, cid, f"kepler:answer:{mission.id}:"))
        await local.answered(opened)
        assert opened.response == 9, "the Answer button opens a form"
        click = await local.submit_form(uid, opened, text)
    elif isinstance(beat, TaskBeat):
        station.cluster.passing[f"discord:{uid}"] = {o.id for o in beat.objectives}
        click = await local.click(uid, newest(local, cid, f"kepler:check:{mission.id}:"))
    else:
        click = await local.click(uid, newest(local, cid, f"kepler:continue:{mission.id}:"))
    await local.answered(click)
    return click


async def moved(station: Station, address: Address, before: Any) -> None:
    """Wait until the mission left ``before``'s beat and everything it said was sent."""

    async def done() -> bool:
        assert station.store is not None
        now = await mission_at(station, address)
        return (now.chapter, now.beat, now.state) != (before.chapter, before.beat, before.state) \
            and not await station.store.pending(now.id)  # fmt: skip

    await until(done)


# --- a solo player in DMs -------------------------------------------------------------------


async def test_solo_player_in_dms_plays_chapters_one_and_two(
    local: LocalDiscord, station: Station, caplog: pytest.LogCaptureFixture
) -> None:
    alex = local.user(4242, "Alex")
    dm = local.dm_channel(alex)
    address = Address("discord", "solo", str(dm))
    start = await local.command(alex, dm, "mission", "start", chapter="1")
    assert "mission is open" in await replied(local, start)
    await until(_has_buttons(local, dm))
    interactions = [start]

    first = await mission_at(station, address)
    assert first.chapter == 1
    # Continue on the first beat; then its old Continue button is a moment that has passed.
    old_continue = newest(local, dm, "kepler:continue:")
    interactions.append(await step(local, station, alex, dm, address))
    await moved(station, address, first)
    here = await mission_at(station, address)
    stale = await local.click(alex, old_continue)
    interactions.append(stale)
    answer = await replied(local, stale)
    assert answer.startswith(PASSED) and "https://discord.com/channels/@me/" in answer
    assert local.replies(stale.id)[0].ephemeral
    after = await mission_at(station, address)
    assert (after.chapter, after.beat) == (here.chapter, here.beat), "a stale click moved on"
    old = next(m for m in local.story(dm) if old_continue in m.custom_ids(enabled=False))
    assert all(b.get("disabled") for b in old.buttons()), "answered beat keeps live buttons"

    # Unknown clicks get a short ephemeral notice, never "This interaction failed".
    for bogus in ("kepler:bogus:1", "someone-else:thing"):
        message = Posted({**local.story(dm)[-1].data, "components": [{"type": 1, "components": [
            {"type": 2, "style": 2, "label": "?", "custom_id": bogus}]}]}, "bot")  # fmt: skip
        click = await local.click(alex, bogus, message)
        interactions.append(click)
        assert "not one I know" in await replied(local, click)

    restarted = False
    expired = False
    stale_form = False
    for _ in range(40):
        mission = await mission_at(station, address)
        if mission.chapter >= 3 or mission.state != "running":
            break
        beat = station.course.beat_at(mission.chapter, mission.beat)
        if isinstance(beat, QuestionBeat) and not beat.choices and restarted and not stale_form:
            # A form opened, then the question answered by a DM: the form's moment has passed.
            opened = await local.click(alex, newest(local, dm, f"kepler:answer:{mission.id}:"))
            await local.answered(opened)
            await local.dm(alex, "3 Ready nodes; pods restart on other nodes")
            await moved(station, address, mission)
            late_form = await local.submit_form(alex, opened, "a second answer")
            assert (await replied(local, late_form)).startswith(PASSED)
            assert station.store is not None
            ref = f"{mission.chapter}.{mission.beat}"
            answers = await station.store.answered(mission.id, ref)
            assert answers == {f"discord:{alex}": "3 Ready nodes; pods restart on other nodes"}
            interactions += [opened, late_form]
            stale_form = True
            continue
        if isinstance(beat, QuestionBeat) and not beat.choices and not restarted:
            # A form opened before a restart is submitted after it.
            opened = await local.click(alex, newest(local, dm, f"kepler:answer:{mission.id}:"))
            await local.answered(opened)
            assert opened.response == 9
            assert str(alex) in opened.modal["custom_id"]  # per member
            await station.restart()
            restarted = True
            form = await local.submit_form(alex, opened, "3 nodes report Ready")
            await local.answered(form)
            interactions += [opened, form]
            await moved(station, address, mission)
            assert station.store is not None
            answers = await station.store.answered(mission.id, f"{mission.chapter}.{mission.beat}")
            assert f"discord:{alex}" in answers
            continue
        if isinstance(beat, TaskBeat):
            legacy = expired  # the second task: a Check button of the first release still checks
            if not expired:  # a click Discord no longer knows: one WARNING line, no traceback
                caplog.clear()
                local.expire_next = True
                late = await local.click(alex, newest(local, dm, f"kepler:check:{mission.id}:"))
                await local.answered(late)
                await until(_logged(caplog, "expired"))
                lines = [r for r in caplog.records if "expired" in r.getMessage()]
                assert len(lines) == 1 and lines[0].levelno == logging.WARNING
                assert lines[0].exc_info is None and "kepler:check" in lines[0].getMessage()
                assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
                expired = True
            station.cluster.passing[f"discord:{alex}"] = {o.id for o in beat.objectives}
            if legacy:
                old_id = f"kepler:check:{mission.id}"
                message = Posted({**local.story(dm)[0].data, "components": [{"type": 1,
                                  "components": [{"type": 2, "style": 3, "label": "Check",
                                                  "custom_id": old_id}]}]}, "bot")  # fmt: skip
                check = await local.click(alex, old_id, message)
            else:
                check = await local.click(alex, newest(local, dm, f"kepler:check:{mission.id}:"))
            interactions.append(check)
            result = await replied(local, check)
            titles = [o.title for o in beat.objectives]
            assert result.splitlines()[: len(titles)] == [f"✅ {t}" for t in titles]
            assert "Done." not in result
            await moved(station, address, mission)
            continue
        click = await step(local, station, alex, dm, address)
        interactions.append(click)
        await moved(station, address, mission)
    mission = await mission_at(station, address)
    assert mission.chapter == 3, "chapters 1 and 2 did not finish"
    assert restarted and expired and stale_form
    assert not [r for r in local.requests if r[2] == 429], "pacing stays inside the limit"
    for interaction in interactions:
        assert interaction.response is not None, f"unanswered: {interaction.kind}"
    shown = "\n".join(m.text for m in local.story(dm))
    assert "kepler play" not in shown and "Answer recorded" not in shown
    assert "Done." not in "\n".join(m.text for m in local.messages)
    for chapter in station.course.chapters[1:3]:
        for beat in chapter.beats:
            for line in getattr(beat, "lines", [])[:1]:
                assert line.text[:50] in shown, line.text


def _logged(caplog: pytest.LogCaptureFixture, word: str) -> Any:
    async def found() -> bool:
        return any(word in r.getMessage() for r in caplog.records)

    return found


def _has_buttons(local: LocalDiscord, cid: int) -> Any:
    async def found() -> bool:
        return bool(local.buttons(cid))

    return found


# --- a crew of three in a channel without webhooks -----------------------------------------


async def test_crew_of_three_plays_chapters_one_and_two_in_a_webhookless_channel(
    local: LocalDiscord, station: Station
) -> None:
    channel = local.text_channel(77, "study-group")
    await local.dispatch("CHANNEL_CREATE", local.channels[channel])
    local.forbidden_webhooks.add(channel)  # Discord answers 403 to every webhook call here
    crew = [local.user(100 + i, name) for i, name in enumerate(("Ana", "Ben", "Cai"))]
    address = Address("discord", "channel", str(channel))
    start = await local.command(crew[0], channel, "mission", "start", chapter="1")
    await replied(local, start)
    for member in crew[1:]:
        join = await local.command(member, channel, "mission", "join")
        assert "on the crew" in await replied(local, join)
    interactions: list[Any] = []
    stale_checked = forms_checked = False
    for _ in range(60):
        mission = await mission_at(station, address)
        if mission.chapter >= 3 or mission.state != "running":
            break
        beat = station.course.beat_at(mission.chapter, mission.beat)
        ref = f"{mission.chapter}.{mission.beat}"
        if isinstance(beat, QuestionBeat) and not beat.choices:
            # All three open their forms, then submit at the same moment.
            button = newest(local, channel, f"kepler:answer:{mission.id}:")
            opened = [await local.click(m, button) for m in crew]
            for o in opened:
                await local.answered(o)
            ids = {o.modal["custom_id"] for o in opened}
            assert len(ids) == 3, "each member gets their own form"
            # Ben's form submitted by Ana changes nothing.
            wrong = await local.submit_form(crew[0], opened[1], "not mine")
            assert "not one I know" in await replied(local, wrong)
            forms = await asyncio.gather(*(
                local.submit_form(m, o, f"3 nodes Ready, crew member {i + 1} reports")
                for i, (m, o) in enumerate(zip(crew, opened, strict=True))))  # fmt: skip
            interactions += [*opened, wrong, *forms]
            await moved(station, address, mission)
            assert station.store is not None
            answers = await station.store.answered(mission.id, ref)
            assert set(answers) == {f"discord:{m}" for m in crew}, "an answer was lost"
            forms_checked = True
            continue
        if isinstance(beat, TaskBeat):
            for member in crew:
                station.cluster.passing[f"discord:{member}"] = {o.id for o in beat.objectives}
                check = await local.click(member, newest(local, channel, f"kepler:check:{mission.id}:"))
                interactions.append(check)
                if member != crew[-1]:
                    result = await replied(local, check)
                    assert result.startswith("✅") and all(m.ephemeral for m in
                                                           local.replies(check.id))  # fmt: skip
            await moved(station, address, mission)
            continue
        old = newest(local, channel, f"kepler:continue:{mission.id}:")
        click = await step(local, station, crew[1], channel, address)
        interactions.append(click)
        await moved(station, address, mission)
        if not stale_checked:  # Cai clicks the Continue Ben already used
            late = await local.click(crew[2], old)
            interactions.append(late)
            assert (await replied(local, late)).startswith(PASSED)
            now = await mission_at(station, address)
            assert station.course.beat_at(now.chapter, now.beat) is not beat
            stale_checked = True
    mission = await mission_at(station, address)
    assert mission.chapter == 3 and stale_checked and forms_checked
    for interaction in interactions:
        assert interaction.response is not None, f"unanswered: {interaction.kind}"
    story = local.story(channel)
    assert story and all(m.via == "bot" for m in story), "no webhook here: embeds by the bot"
    authors = {e.get("author", {}).get("name") for m in story for e in m.data["embeds"]}
    assert "Commander Sarah Torres" in authors
    # The 403 was asked once, not before every message.
    webhook_calls = [r for r in local.requests if r[1].endswith(f"/channels/{channel}/webhooks")]
    assert len(webhook_calls) == 1, webhook_calls
    # A permission change (CHANNEL_UPDATE) makes the bot look again, and the crew gets faces.
    local.forbidden_webhooks.discard(channel)
    await local.dispatch("CHANNEL_UPDATE", local.channels[channel])
    assert station.app is not None
    await asyncio.sleep(0.2)
    await station.app.transport.deliver(address, _line(), "after-update")
    assert local.story(channel)[-1].via == "webhook"
    assert not [r for r in local.requests if r[2] == 429], "pacing stays inside the limit"
    assert local.invalid == 1 == station.invalid.total  # the one 403, seen by the bot's metric


def _line() -> Any:
    from bot.engine.ports import Outgoing

    return Outgoing(kind="line", text='"Good work."', speaker="torres", style="dialogue")


def _ids(posted: list[Posted]) -> list[str]:
    return [c for m in posted for c in m.custom_ids(enabled=False)]


def test_component_ids_name_their_beat() -> None:
    cid = parse("kepler:choice:12:1.3:abcdef:2")
    assert cid is not None and (cid.mission_id, cid.ref, cid.nonce, cid.index) == (
        12, "1.3", "abcdef", 2)  # fmt: skip
    assert parse("kepler:choice:12:2") is not None and parse("kepler:choice:12:2").action == "legacy"
    assert parse("kepler:bogus:1") is None
    legacy_check = parse("kepler:check:12")  # first release: still checks the task open now
    assert legacy_check is not None and (legacy_check.action, legacy_check.ref) == ("check", "")
