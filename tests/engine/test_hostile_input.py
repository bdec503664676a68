"""What a learner types is data: no control sequences, no credentials kept or sent, profile
values checked and bounded."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bot.core.text import REDACTED
from bot.engine.engine import MAX_PROFILE, Engine, InputError
from bot.engine.ports import Address, Outgoing
from bot.transports.terminal import Ledger, TerminalTransport
from tests.fakes import CannedVoice, fixture_course

DM = Address("terminal", "solo", "alex")
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ.c2lnbmF0dXJlLXZhbHVl"


async def _at_pause(engine: Engine) -> int:
    mission = await engine.start(DM, "alex", "Alex Chen")
    await engine.say(mission.id, "alex", "1")
    await engine.say(mission.id, "alex", "1")
    return mission.id


async def test_a_pasted_secret_is_neither_stored_nor_sent(engine: Engine, voice: CannedVoice, store):
    mission_id = await _at_pause(engine)
    pasted = f"\x1b[2Jwhy is this failing? my kubeconfig has token: {JWT} and password=hunter2pw"
    await engine.say(mission_id, "alex", pasted)
    sent = voice.turns[-1].text
    assert JWT not in sent and "hunter2pw" not in sent and "\x1b" not in sent
    assert REDACTED in sent and "why is this failing?" in sent
    stored = " ".join(e.content for e in await store.transcript("learner:alex"))
    assert JWT not in stored and "hunter2pw" not in stored and "\x1b" not in stored


async def test_profile_values_are_checked_and_bounded(engine: Engine, store):
    await _at_pause(engine)
    with pytest.raises(InputError, match=r"hands-on or theory"):
        await engine.profile("alex", "style", "whatever I like")
    assert (await engine.profile("alex", "style", "Hands-on"))["style"] == "hands-on"
    with pytest.raises(InputError, match=str(MAX_PROFILE)):
        await engine.profile("alex", "environment", "x" * (MAX_PROFILE + 1))
    profile = await engine.profile("alex", "environment", "\x1b]0;t\x07Linux, zsh")
    assert profile["environment"] == "Linux, zsh"
    with pytest.raises(InputError):
        await engine.profile("alex", "admin", "yes")


async def test_a_hostile_name_is_cleaned(engine: Engine, store):
    await engine.start(Address("terminal", "solo", "eve"), "eve", "\x1b[31mEve\x1b[0m" + "e" * 500)
    learner = await store.get_learner("eve")
    assert "\x1b" not in learner.name and len(learner.name) <= 80


async def test_the_terminal_prints_no_escape_sequence(tmp_path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    transport = TerminalTransport(fixture_course(), Ledger(tmp_path / "p"), tmp_path / "m", console)
    hostile = "pod log \x1b]52;c;ZWNobyBoaQ==\x07\x1b[2J\x1b[Hcleared?"
    await transport.deliver(DM, Outgoing(kind="reply", text=hostile, speaker="torres"), "k1")
    await transport.deliver(DM, Outgoing(kind="status", text=hostile), "k2")

    async def chunks():
        yield "model says \x1b[1;31m"
        yield "boo\x1b[0m"

    await transport.stream(DM, "torres", chunks())
    printed = out.getvalue()
    assert "\x1b" not in printed and "\x07" not in printed
    assert "cleared?" in printed and "model says boo" in printed
