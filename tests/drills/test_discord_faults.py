"""Discord refusing to post (429 rate limit, 403 missing access) and oversized input.

The unlock is committed before anything is sent, so a refused post only delays the story:
the outbox keeps the messages pending, the learner's click is still answered, and the next
flush (every minute, and after every gateway reconnect) delivers them in order, each once.
Webhook permission fallbacks (embeds, a notice to admins) are drilled in
``tests/discord/test_channels.py``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.engine.engine import MAX_INPUT
from bot.engine.ports import Address
from bot.transports.discord.app import App
from tests.discord.conftest import virtual_pacer
from tests.discord.world import World
from tests.drills.conftest import to_task
from tests.fakes import CannedVoice, ScriptedCluster


def _refusal(status: int) -> discord.HTTPException:
    if status == 429:
        response = SimpleNamespace(status=429, reason="Too Many Requests")
        return discord.HTTPException(response, {"code": 0, "message": "You are being rate limited."})  # type: ignore[arg-type]
    response = SimpleNamespace(status=403, reason="Forbidden")
    return discord.Forbidden(response, {"code": 50007, "message": "Cannot send messages to this user"})  # type: ignore[arg-type]


async def _dm_mission(store: Any, course: Any) -> tuple[App, World, Any, Any, int, ScriptedCluster]:
    world = World()
    cluster = ScriptedCluster()
    app = App(bot=world.client, store=store, course=course, cluster=cluster, voice=CannedVoice(),
              pacer=virtual_pacer())  # fmt: skip
    alex = world.user(42, "Alex")
    dm = alex.dm_channel
    mission = await app.engine.start(Address("discord", "solo", str(dm.id)), "discord:42", "Alex",
                                     chapter=2)  # fmt: skip
    task = await to_task(app.engine, mission.id, "discord:42")
    cluster.passing["discord:42"] = {o.id for o in task.objectives}
    return app, world, alex, dm, mission.id, cluster


@pytest.mark.parametrize("status", [429, 403])
async def test_a_refused_post_keeps_the_story_pending_until_it_goes_through(
    store, course, status: int
) -> None:
    app, world, alex, dm, mission_id, _ = await _dm_mission(store, course)
    key = _task_key(app, await store.get_mission(mission_id))
    send = dm.send.side_effect
    refusals: list[int] = []

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        refusals.append(status)
        raise _refusal(status)

    dm.send.side_effect = refuse
    interaction = world.interaction(alex, dm)
    await app.actions.check(interaction, mission_id)
    assert interaction.order[0] == "defer" and interaction.order[-1] == "followup"  # answered
    assert refusals, "the unlock tried to post"
    assert await store.passed(["discord:42"], key)  # the unlock itself is committed
    pending = await store.pending(mission_id)
    assert pending and pending[0].message.kind == "status"  # the unlock message waits first

    await app.flush()  # Discord still refusing: nothing lost, nothing sent
    assert len(await store.pending(mission_id)) == len(pending)

    dm.send.side_effect = send  # Discord lets us post again
    await app.flush()
    assert await store.pending(mission_id) == []
    story = world.story(dm.id)
    nonces = [p.kwargs.get("nonce") for p in story]
    assert len(nonces) == len(set(nonces)), "a message was posted twice"
    assert not world.duplicates
    texts = [p.text for p in story[-len(pending):]]
    assert texts[0] and all(texts)
    await app.close()


def _task_key(app: App, mission: Any) -> str:
    from bot.content.course import BeatRef
    from bot.engine.beats import task_key

    return task_key(app.course, BeatRef(mission.chapter, mission.beat))


async def test_a_4000_character_message_is_accepted_and_4001_refused_clearly(store, course) -> None:
    app, world, alex, dm, mission_id, _ = await _dm_mission(store, course)
    ok = world.interaction(alex, dm)
    await app.actions.say(ok, mission_id, "x" * MAX_INPUT)
    assert ok.order == ["defer", "delete"]  # accepted: the crew answers in the DM itself
    assert "characters" not in world.posted[-1].text

    long = world.interaction(alex, dm)
    await app.actions.say(long, mission_id, "y" * (MAX_INPUT + 1))
    assert long.order[-1] == "followup"
    assert f"{MAX_INPUT + 1} characters; keep it under {MAX_INPUT}" in world.posted[-1].text

    before = len(world.posted)
    await app.actions.message(world.message(alex, dm, "z" * 6000), world.me)  # a Nitro-length DM
    said = [p.text for p in world.posted[before:]]
    assert any("6000 characters" in t for t in said), said
    await app.close()
