"""A learner with only a browser, on Discord: the task says where its files are in the browser
terminal, and ``kepler serve``'s composition writes them there (``bot/web/missionfiles.py``)."""

from __future__ import annotations

from bot.content.course import BeatRef
from bot.engine.beats import render
from bot.engine.ports import Address
from bot.web.missionfiles import TaskFilesTransport
from tests.discord.conftest import make_app
from tests.discord.test_terminal import terminal_for


def _task(course):
    chapter = course.find_chapter(2)
    [index] = [i for i, b in enumerate(course.chapters[chapter].beats) if b.type == "task"]
    ref = BeatRef(chapter, index)
    [message] = render(course, ref, course.beat(ref))
    return message


def _texts(world, channel_id: int) -> str:
    return "\n".join(e.description or "" for p in world.in_channel(channel_id) for e in p.embeds)


async def test_a_task_names_its_folder_in_the_browser_terminal(world, store, course, cluster) -> None:
    terminal = terminal_for(store)
    app = make_app(world, store, course, cluster, terminal=terminal)
    assert isinstance(app.engine.transport, TaskFilesTransport)  # task files go to workbenches
    assert terminal.on_connect == app.files.for_learner  # and again when a terminal connects
    channel = world.text_channel(5)
    await app.transport.deliver(Address("discord", "channel", str(channel.id)), _task(course), "t-1")
    text = _texts(world, channel.id)
    assert "these files are already in `~/02-life-support-restoration/`" in text
    assert "`cd ~/02-life-support-restoration`" in text


async def test_without_a_browser_terminal_no_folder_is_promised(world, store, course, cluster) -> None:
    app = make_app(world, store, course, cluster)
    assert app.files is None and not isinstance(app.engine.transport, TaskFilesTransport)
    channel = world.text_channel(6)
    await app.transport.deliver(Address("discord", "channel", str(channel.id)), _task(course), "t-2")
    text = _texts(world, channel.id)
    assert "Deploy backup life support" in text and "~/02-" not in text
