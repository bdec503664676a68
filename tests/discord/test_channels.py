"""Guild channels: webhooks (fallbacks, the 15 limit, Unknown Webhook), crews, self-paced threads,
restarts, deferral, and the kubeconfig's privacy."""

from __future__ import annotations

import contextlib
import re
from unittest.mock import create_autospec

import discord

from bot.engine.ports import Address, Outgoing
from bot.store.sqlite import SQLiteStore
from bot.transports.discord.views import BUTTON_TEMPLATE, StoryButton
from sandbox.backends.base import SandboxBackend, SandboxRecord
from tests.discord.conftest import LoggedCluster, make_app
from tests.discord.driver import act, last_button
from tests.discord.world import World
from tests.fakes import fixture_course

LINE = Outgoing(kind="line", text='"Chen, listen."', speaker="torres", style="dialogue")


async def _deliver(app, channel, n: int = 3) -> None:
    for i in range(n):
        await app.transport.deliver(Address("discord", "channel", str(channel.id)), LINE, f"k{i}")


async def test_characters_speak_through_one_webhook_per_channel(world, store, course, cluster):
    app = make_app(world, store, course, cluster)
    channel = world.text_channel(1)
    await _deliver(app, channel)
    posted = world.story(1)
    assert [p.via for p in posted] == ["webhook"] * 3
    assert {p.username for p in posted} == {"Commander Sarah Torres"}
    assert world.created_webhooks == 1
    stored = await store.get_setting("discord:webhook", "1")
    assert "tok-secret" not in stored  # no key configured: the token is not stored
    world.assert_no_mentions()


async def test_webhook_token_is_stored_encrypted_with_a_key(world, store, course, cluster):
    key = "k" * 43 + "="
    app = make_app(world, store, course, cluster, secret_key=key)
    await _deliver(app, world.text_channel(1), 1)
    stored = await store.get_setting("discord:webhook", "1")
    assert '"token"' in stored and "tok-secret" not in stored
    assert app.webhooks.secrets.open(__import__("json").loads(stored)["token"]) == "tok-secret"


async def test_without_manage_webhooks_embeds_and_one_notice_to_admins(
    world, store, course, cluster
):
    app = make_app(world, store, course, cluster)
    a, b = (
        world.text_channel(1, manage_webhooks=False),
        world.text_channel(2, manage_webhooks=False),
    )
    await _deliver(app, a)
    await app.transport.deliver(Address("discord", "channel", "2"), LINE, "other")
    story = world.story(1)
    assert [p.via for p in story] == ["bot"] * 3
    assert story[0].embed.author.name == "Commander Sarah Torres"
    assert world.created_webhooks == 0
    notices = world.in_channel(world.owner.dm_channel.id)
    assert len(notices) == 1 and "Manage Webhooks" in notices[0].text
    assert world.story(2) and b.send.await_count == 1
    world.assert_no_mentions()


async def test_fifteen_webhooks_full_channel_falls_back_and_reuses_ours(
    world, store, course, cluster
):
    app = make_app(world, store, course, cluster)
    world.text_channel(1, foreign=15)
    await _deliver(app, world.channels[1], 1)
    assert world.created_webhooks == 0 and world.story(1)[0].via == "bot"
    assert "15 webhooks" in world.in_channel(world.owner.dm_channel.id)[0].text

    ch = world.text_channel(2, foreign=14)
    ours = world.webhook(2, owner=world.me)
    world.webhooks[2].append(ours)
    await app.transport.deliver(Address("discord", "channel", "2"), LINE, "x")
    assert world.created_webhooks == 0
    ours.send.assert_awaited_once()
    assert ch.create_webhook.await_count == 0


async def test_unknown_webhook_is_recreated(world, store, course, cluster):
    app = make_app(world, store, course, cluster)
    channel = world.text_channel(1)
    await _deliver(app, channel, 1)
    first = world.webhooks[1][0]
    first.gone = True  # someone deleted it in the server settings
    world.webhooks[1].remove(first)
    await app.transport.deliver(Address("discord", "channel", "1"), LINE, "after")
    assert world.created_webhooks == 2
    assert [p.via for p in world.story(1)] == ["webhook", "webhook"]


async def _crew(world, store, cluster, pace="together"):
    course = fixture_course()
    app = make_app(world, store, course, cluster)
    channel = world.text_channel(1)
    people = [world.member(100 + i, n) for i, n in enumerate(("Ana", "Ben", "Cai"))]
    await app.actions.start(world.interaction(people[0], channel), pace)
    for p in people[1:]:
        await app.actions.join(world.interaction(p, channel))
    return app, channel, people


async def test_together_crew_waits_for_the_slowest_member(world, store, cluster):
    app, channel, people = await _crew(world, store, cluster)
    mission = await store.find_mission(Address("discord", "channel", "1"))
    for _ in range(20):  # everyone answers and continues up to the task
        mission = await store.get_mission(mission.id)
        beat = app.course.beat_at(mission.chapter, mission.beat)
        if type(beat).__name__ == "TaskBeat":
            break
        for p in people if type(beat).__name__ == "QuestionBeat" else people[:1]:
            await act(app, world, cluster, p, channel, mission)
    for p in people[:2]:
        await act(app, world, cluster, p, channel, mission)
    shown = "\n".join(p.text for p in world.story(1))
    assert '"Good work."' not in shown
    board = [
        p
        for p in world.story(1)
        if p.embed and p.embed.title == "Crew board"
    ]
    assert len(board) == 1 and board[0].edits  # one board message, edited in place
    await act(app, world, cluster, people[2], channel, mission)
    assert '"Good work."' in "\n".join(p.text for p in world.story(1))
    assert world.created_webhooks == 1
    world.assert_no_mentions()


async def test_self_paced_members_get_their_own_threads(world, store, cluster):
    app, _channel, people = await _crew(world, store, cluster, pace="self-paced")
    hub = await store.find_mission(Address("discord", "channel", "1"))
    assert hub.state == "hub"
    threads = await store.children(hub.id)
    assert len(threads) == 3
    for mission in threads:
        thread_id = int(mission.address.key)
        posted = world.story(thread_id)
        assert posted and all(
            p.via == "webhook" and p.kwargs["thread"].id == thread_id for p in posted
        )
    assert world.created_webhooks == 1  # the parent's webhook speaks in every thread
    # Ana races ahead on her own.
    ana_thread = world.channels[int(threads[0].address.key)]
    before = len(world.story(ana_thread.id))
    await act(app, world, cluster, people[0], ana_thread, threads[0])
    assert len(world.story(ana_thread.id)) > before
    assert len(world.story(int(threads[1].address.key))) == len(
        world.story(int(threads[2].address.key))
    )


async def test_restart_mid_chapter_neither_repeats_nor_loses_a_beat(world, db, course):
    cluster = LoggedCluster()
    alex = world.user(42, "Alex")
    dm = alex.dm_channel
    async with SQLiteStore(db) as store:
        app = make_app(world, store, course, cluster)
        await app.actions.start(world.interaction(alex, dm))
        mission = await store.find_mission(Address("discord", "solo", str(dm.id)))
        for _ in range(8):
            await act(app, world, cluster, alex, dm, await store.get_mission(mission.id))
        # Crash: the next message reaches Discord but the process dies before recording it.
        real = store.set_setting

        async def crash(scope, key, value):
            if scope == "discord:sent":
                raise SystemExit("killed")
            await real(scope, key, value)

        store.set_setting = crash  # type: ignore[method-assign]
        button = last_button(world, dm.id, "kepler:")
        with contextlib.suppress(SystemExit):
            await act(app, world, cluster, alex, dm, await store.get_mission(mission.id))
        seen = len(world.story(dm.id))
    async with SQLiteStore(db) as store:  # a new bot over the same file
        app = make_app(world, store, course, cluster)
        await app.flush()
        assert world.duplicates, "the re-sent message should carry the same nonce"
        assert len(world.story(dm.id)) >= seen
        nonces = [p.kwargs["nonce"] for p in world.story(dm.id)]
        assert len(nonces) == len(set(nonces)), "a beat was repeated"
        # A button posted before the restart still works: persistent custom_id dispatch.
        button = last_button(world, dm.id, "kepler:")
        match = re.fullmatch(BUTTON_TEMPLATE, button)
        assert match is not None
        item = await StoryButton.from_custom_id(None, discord.ui.Button(custom_id=button), match)  # type: ignore[arg-type]
        interaction = world.interaction(alex, dm)
        interaction.data = {"custom_id": button}
        world.client.actions = app.actions
        before = await store.get_mission(mission.id)
        beat = course.beat_at(before.chapter, before.beat)
        cluster.passing["discord:42"] = {o.id for o in getattr(beat, "objectives", [])}
        await item.callback(interaction)
        after = await store.get_mission(mission.id)
        assert (after.chapter, after.beat) != (before.chapter, before.beat)


async def test_check_defers_before_reading_the_cluster(world, store, course, cluster):
    app = make_app(world, store, course, cluster)
    alex = world.user(42, "Alex")
    dm = alex.dm_channel
    await app.actions.start(world.interaction(alex, dm))
    mission = await store.find_mission(Address("discord", "solo", str(dm.id)))
    while type(course.beat_at(mission.chapter, mission.beat)).__name__ != "TaskBeat":
        await act(app, world, cluster, alex, dm, mission)
        mission = await store.get_mission(mission.id)
    interaction = world.interaction(alex, dm)
    cluster.log = interaction.order
    await app.actions.check(interaction, mission.id)
    assert interaction.order[:2] == ["defer", "evaluate"]
    assert interaction.order[-1] == "followup"
    assert all(p.kwargs["ephemeral"] for p in world.posted if p.via == "followup")


async def test_kubeconfig_only_as_an_ephemeral_file(world, store, course, cluster):
    backend = create_autospec(SandboxBackend, instance=True)
    secret = "apiVersion: v1\nusers:\n- user:\n    token: SECRET-TOKEN\n"
    order: list[str] = []

    async def kubeconfig_for(learner_id):
        order.append("kubeconfig")
        return secret

    backend.kubeconfig_for.side_effect = kubeconfig_for
    app = make_app(world, store, course, cluster, backend=backend)
    await store.save_sandbox(SandboxRecord("discord:42", "vcluster", "ns", "ready", 0.0, 0.0))
    channel = world.text_channel(1)
    user = world.member(42, "Alex")
    interaction = world.interaction(user, channel)
    interaction.order = order
    await app.actions.kubeconfig(interaction)
    assert order[:2] == ["defer", "kubeconfig"]
    [sent] = [p for p in world.posted if p.via == "followup"]
    assert sent.kwargs["ephemeral"] is True and sent.kwargs["file"].filename.endswith(".yaml")
    assert all("SECRET-TOKEN" not in p.text for p in world.posted)
    assert channel.send.await_count == 0
    defer_kwargs = interaction.response.defer.await_args.kwargs
    assert defer_kwargs["ephemeral"] is True


async def test_station_is_refused_without_manage_server(world, store, course, cluster):
    app = make_app(world, store, course, cluster)
    channel = world.text_channel(1)
    user = world.member(5, "Eve")
    interaction = world.interaction(user, channel, manage_guild=False)
    await app.commands.station_caps.callback(app.commands, interaction, 3)
    assert await store.get_setting("discord:guild:500", "max_sandboxes") is None
    ok = world.interaction(user, channel, manage_guild=True)
    await app.commands.station_caps.callback(app.commands, ok, 3)
    assert await store.get_setting("discord:guild:500", "max_sandboxes") == "3"


def test_world_is_isolated():
    assert World().posted == []
