"""Play a mission by clicking the buttons the bot posted, as a learner would."""

from __future__ import annotations

from typing import Any

from bot.content.schema import QuestionBeat, TaskBeat
from bot.transports.discord import views
from bot.transports.discord.app import App
from bot.transports.discord.transport import learner_id_of
from tests.discord.world import World


def last_button(world: World, channel_id: int, prefix: str) -> str:
    for posted in reversed(world.story(channel_id)):
        for cid in posted.custom_ids():
            if cid.startswith(prefix):
                return cid
    raise AssertionError(f"no {prefix} button in channel {channel_id}")


async def click(app: App, world: World, user: Any, channel: Any, custom_id: str) -> Any:
    assert views.parse(custom_id) is not None, custom_id
    interaction = world.interaction(user, channel)
    interaction.data = {"custom_id": custom_id}
    await app.actions.click(interaction, custom_id)
    return interaction


async def act(app: App, world: World, cluster: Any, user: Any, channel: Any, mission: Any) -> None:
    """One learner step at the mission's current beat, through the posted buttons."""
    beat = app.course.beat_at(mission.chapter, mission.beat)
    if isinstance(beat, QuestionBeat) and beat.choices:
        await click(
            app,
            world,
            user,
            channel,
            last_button(world, channel.id, f"kepler:choice:{mission.id}:"),
        )
    elif isinstance(beat, QuestionBeat):
        text = f"<@{world.me.id}> 3 Ready nodes, Linux laptop"  # in a channel: a mention
        await app.actions.message(world.message(user, channel, text, [world.me]), world.me)
    elif isinstance(beat, TaskBeat):
        cluster.passing[learner_id_of(user)] = {o.id for o in beat.objectives}
        await click(
            app, world, user, channel, last_button(world, channel.id, f"kepler:check:{mission.id}")
        )
    else:
        await click(
            app,
            world,
            user,
            channel,
            last_button(world, channel.id, f"kepler:continue:{mission.id}"),
        )
