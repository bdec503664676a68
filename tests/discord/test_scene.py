"""A scene reads as a scene: a beat's messages grouped into few posts, within Discord's limits.

The six-chapter count compares the posts with what the first release sent for the same run:
one post (at least) per story message the engine emitted, the crew board once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import discord
import pytest

from bot.engine.ports import Address, Outgoing
from bot.transports.discord.render import render_scene
from bot.transports.discord.scene import group, joins
from tests.discord.conftest import make_app
from tests.discord.driver import act
from tests.discord.world import World


def _line(text: str, speaker: str | None = "torres", style: str = "dialogue") -> Outgoing:
    return Outgoing(kind="line", text=text, speaker=speaker, style=style, data={"ref": "1.0"})


def _within_limits(pieces) -> None:
    for piece in pieces:
        assert piece.content is None or len(piece.content) <= 2000
        assert len(piece.embeds) <= 10
        assert all(len(e.description or "") <= 4096 for e in piece.embeds)
        assert sum(len(e) for e in piece.embeds) <= 6000


@pytest.mark.parametrize("persona_mode", [True, False])
def test_long_scenes_stay_within_discords_limits(course, persona_mode: bool) -> None:
    scene = [_line("A" * 3000, "narrator", "scene"), _line("B" * 1500, "narrator", "narration")]
    lines = [_line(f'"{i} ' + "x" * 900 + '"') for i in range(12)]
    messages = scene + lines
    items = [(f"k{i}", m) for i, m in enumerate(messages)]
    taken = [items[0]]
    for item in items[1:]:
        if not joins([m for _, m in taken], item[1], any_voice=not persona_mode):
            break
        taken.append(item)
    assert len(taken) == len(items), "one beat, one voice after the scene: one group"
    pieces = render_scene(group(taken), course, persona_mode=persona_mode)
    _within_limits(pieces)
    text = "".join((p.content or "") + "".join(e.description or "" for e in p.embeds)
                   for p in pieces)  # fmt: skip
    assert text.count("x" * 900) == 12 and "A" * 3000 in text  # nothing lost
    assert len(pieces) < len(messages) / 2


def test_a_speakers_lines_are_one_post_and_the_scene_one_embed(course) -> None:
    messages = [_line("The hub hums.", "narrator", "scene"), _line("Lights dim.", "narrator",
                "narration"), _line("Torres turns.", "torres", "stage"), _line('"Chen."'),
                _line('"Listen."')]  # fmt: skip
    items = [(str(i), m) for i, m in enumerate(messages)]
    groups = group(items)
    assert [g.voice for g in groups] == ["narrator", "torres"]
    [piece] = render_scene(groups, course, persona_mode=False)  # a DM: one message
    assert len(piece.embeds) == 2 and piece.embeds[0].author.name is None
    assert piece.embeds[1].author.name == "Commander Sarah Torres"
    assert piece.embeds[1].description == '*Torres turns.*\n\n"Chen."\n\n"Listen."'
    assert isinstance(piece.embeds[0], discord.Embed)


def _first_release_posts(db: Path, mission_id: int) -> int:
    """What the first release posted for the same outbox: a message per story message (the
    board: one message, edited), none in the channel for private ones."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM outbox WHERE mission_id = ?", (mission_id,))
        kinds = [__import__("json").loads(r[0]) for r in rows]
    story = [k for k in kinds if not k.get("private_to")]
    edited = {k["kind"] for k in story if k["kind"] in ("board", "progress")}
    return len([k for k in story if k["kind"] not in ("board", "progress")]) + len(edited)


@pytest.mark.parametrize("where", ["dm", "channel"])
async def test_six_chapters_send_at_most_half_the_messages(
    store, course, cluster, db: Path, where: str
) -> None:
    world = World()
    app = make_app(world, store, course, cluster)
    if where == "dm":
        user = world.user(42, "Alex")
        channel = user.dm_channel
        await app.actions.start(world.interaction(user, channel))
        address = Address("discord", "solo", str(channel.id))
    else:
        user = world.member(42, "Alex")
        channel = world.text_channel(1)
        await app.actions.start(world.interaction(user, channel), "together")
        address = Address("discord", "channel", "1")
    mission = await store.find_mission(address)
    for _ in range(500):
        mission = await store.get_mission(mission.id)
        if mission.state != "running":
            break
        await act(app, world, cluster, user, channel, mission)
    assert mission.state == "done", "the run did not reach the end"
    posted = len(world.story(channel.id))
    before = _first_release_posts(db, mission.id)
    print(f"{where}: {posted} messages now, {before} in the first release")
    assert posted * 2 <= before
