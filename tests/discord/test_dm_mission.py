"""A learner DMs the commander: the opening, a sandbox with one progress message edited in place,
and the real course through the end of chapter 1 — all by clicking what the bot posted."""

from __future__ import annotations

from unittest.mock import create_autospec

from bot.engine.ports import Address
from bot.transports.discord.render import message_text
from sandbox.backends.base import ProgressEvent
from sandbox.lifecycle import SandboxManager
from tests.discord.conftest import make_app
from tests.discord.driver import act


def fake_manager():
    manager = create_autospec(SandboxManager, instance=True)

    async def ensure(learner_id, guild=None):
        for step, text in (("namespace", "namespace ready"), ("control-plane", "control plane up"),
                           ("api", "API answering")):  # fmt: skip
            yield ProgressEvent(learner_id, step, text)
        yield ProgressEvent(learner_id, "ready", "sandbox ready", done=True)

    manager.ensure.side_effect = ensure
    return manager


async def test_dm_mission_from_the_opening_to_the_end_of_chapter_one(world, store, course, cluster):
    manager = fake_manager()
    app = make_app(world, store, course, cluster, manager=manager)
    alex = world.user(42, "Alex")
    dm = alex.dm_channel

    start = world.interaction(alex, dm)
    await app.actions.start(start)
    await app.drain()
    assert start.order[0] == "defer"
    manager.ensure.assert_called_once_with("discord:42", None)

    # One progress message (an ephemeral follow-up), edited in place to ready.
    progress = [p for p in world.posted if p.via == "followup" and p.embed
                and "cluster" in (p.embed.title or "")]  # fmt: skip
    assert len(progress) == 1
    assert progress[0].kwargs["ephemeral"] is True
    assert "sandbox ready" in progress[0].edits[-1]["embed"].description
    assert len(progress[0].edits) == 3

    mission = await store.find_mission(Address("discord", "solo", str(dm.id)))
    for _ in range(60):
        mission = await store.get_mission(mission.id)
        if mission.chapter >= 2:
            break
        await act(app, world, cluster, alex, dm, mission)
    assert mission.chapter == 2, "chapter 1 did not finish"

    shown = "\n".join(p.text for p in world.story(dm.id))
    for chapter in course.chapters[:2]:
        for beat in chapter.beats:
            for line in getattr(beat, "lines", [])[:1]:
                assert line.text[:60] in shown, line.text
    first_of_two = course.chapters[2].beats[0].lines[0].text
    assert first_of_two[:60] in shown
    # In a DM the crew speaks in embeds through the bot itself, each with the outbox key as nonce.
    story = world.story(dm.id)
    assert all(p.via == "bot" and p.kwargs.get("nonce") for p in story)
    assert len({p.kwargs["nonce"] for p in story}) == len(story)
    authors = {
        p.embed.author.name
        for p in story
        if p.embed and p.embed.author
    }
    assert "Commander Sarah Torres" in authors
    assert world.duplicates == []
    world.assert_no_mentions()
    assert message_text  # rendering helper stays importable


async def test_free_text_in_dm_reaches_the_engine(world, store, course, cluster):
    app = make_app(world, store, course, cluster)
    sam = world.user(7, "Sam")
    dm = sam.dm_channel
    await app.actions.message(world.message(sam, dm, "hello commander"), world.me)  # opens
    mission = await store.find_mission(Address("discord", "solo", str(dm.id)))
    assert mission is not None and world.story(dm.id)
    before = len(world.story(dm.id))
    # The story pauses (no question open): free text is conversation, streamed back.
    await app.actions.message(world.message(sam, dm, "what happened?"), world.me)
    after = world.in_channel(dm.id)[before:]
    assert any("Noted, Chen." in (p.edits[-1]["embed"].description if p.edits else p.text)
               for p in after)  # fmt: skip
    world.assert_no_mentions()
