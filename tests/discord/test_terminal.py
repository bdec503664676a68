"""/terminal and the Terminal button: an ephemeral, working link for the learner alone; the crew
board says who has a terminal open."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.engine.ports import Address
from bot.web.server import TerminalWeb
from bot.web.tokens import LinkSigner
from bot.web.workbenches import HostWorkbenches
from sandbox.backends.base import SandboxRecord
from tests.discord.conftest import make_app
from tests.web.conftest import SECRET, host_config


def terminal_for(store) -> TerminalWeb:
    return TerminalWeb(LinkSigner(SECRET), HostWorkbenches(store, {"": host_config("http://127.0.0.1:9")}),
                       base_url="https://kepler.example", reap_every=0)  # fmt: skip


async def test_terminal_gives_an_ephemeral_link_button_that_opens(world, store, course, cluster,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    from aiohttp import web

    terminal = terminal_for(store)
    app = make_app(world, store, course, cluster, terminal=terminal)
    await store.save_sandbox(SandboxRecord("discord:42", "vcluster", "kepler-ab12", "ready", 0.0, 0.0))
    channel = world.text_channel(1)
    interaction = world.interaction(world.member(42, "Alex"), channel)
    await app.actions.terminal(interaction)
    [sent] = [p for p in world.posted if p.via == "followup"]
    assert sent.kwargs["ephemeral"] is True
    (button,) = sent.kwargs["view"].children
    assert button.url.startswith("https://kepler.example/terminal/open/")
    assert channel.send.await_count == 0
    # The link is genuine: it opens learner 42's terminal on the bot's HTTP server.
    server = web.Application()
    terminal.mount(server)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        path = button.url.removeprefix("https://kepler.example")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False) as r:
                assert r.status == 303
            async with http.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False) as r:
                assert r.status == 403
    finally:
        await runner.cleanup()


async def test_terminal_without_a_cluster_or_when_off(world, store, course, cluster) -> None:
    app = make_app(world, store, course, cluster, terminal=terminal_for(store))
    await app.actions.terminal(world.interaction(world.member(7, "Sam"), world.text_channel(1)))
    off = make_app(world, store, course, cluster)
    await off.actions.terminal(world.interaction(world.member(7, "Sam"), world.text_channel(1)))
    texts = [p.text for p in world.posted if p.via == "followup"]
    assert "not ready yet" in texts[0]
    assert "not switched on" in texts[1]
    assert all(p.kwargs.get("ephemeral") for p in world.posted if p.via == "followup")


async def test_cluster_ready_message_carries_the_terminal_button(world, store, course, cluster) -> None:
    from bot.transports.discord.actions import Progress
    from sandbox.backends.base import ProgressEvent

    app = make_app(world, store, course, cluster, terminal=terminal_for(store))
    channel = world.text_channel(1)
    interaction = world.interaction(world.member(42, "Alex"), channel)

    async def events():
        yield ProgressEvent("discord:42", "ready", "sandbox ready", done=True)

    await app.actions._progress(events(), Progress(interaction))
    [sent] = [p for p in world.posted if p.via == "followup"]
    assert sent.kwargs["view"].children[0].item.custom_id == "kepler:terminal"


async def test_crew_board_says_who_has_a_terminal_open(world, store, course, cluster) -> None:
    terminal = terminal_for(store)
    app = make_app(world, store, course, cluster, terminal=terminal)
    channel = world.text_channel(1)
    alex, sam = world.member(42, "Alex"), world.member(43, "Sam")
    await app.actions.start(world.interaction(alex, channel))
    await app.actions.join(world.interaction(sam, channel))
    mission = await store.find_mission(Address("discord", "channel", str(channel.id)))
    assert mission is not None
    terminal.connected = lambda: {"discord:43": 1}  # type: ignore[method-assign]
    lines = await app.actions._terminals_open(mission.id)
    assert lines[0].text == "Terminals open now: <@43>."


async def test_the_crew_board_in_the_channel_marks_connected_terminals(world, store, course,
                                                                       cluster) -> None:  # fmt: skip
    """The engine's board, delivered by the Discord transport, says whose terminal is open;
    the engine never learns of terminals (the transport re-renders the rows it sent)."""
    terminal = terminal_for(store)
    app = make_app(world, store, course, cluster, terminal=terminal)
    assert app.transport.connected == terminal.connected  # the terminal's own list is asked
    open_now: dict[str, int] = {}
    app.transport.connected = lambda: open_now  # who is connected, as TerminalWeb reports it
    channel = world.text_channel(1)
    alex, sam = world.member(42, "Alex"), world.member(43, "Sam")
    await app.actions.start(world.interaction(alex, channel))
    await app.actions.join(world.interaction(sam, channel))
    address = Address("discord", "channel", str(channel.id))
    mission = await store.find_mission(address)
    assert mission is not None
    board = await app.engine._board(mission)
    assert "terminal" not in board.text  # the engine's text: no terminals in it

    def shown() -> list[str]:
        [post] = [p for p in world.in_channel(channel.id) if p.embed is not None
                  and p.embed.title == "Crew board"]  # fmt: skip
        latest = post.edits[-1] if post.edits else post.kwargs
        return latest["embed"].description.splitlines()

    await app.transport.deliver(address, board, "board-1")
    assert not any("connected" in line for line in shown())
    open_now["discord:43"] = 1
    await app.transport.deliver(address, board, "board-2")
    [sam_line] = [line for line in shown() if line.startswith("**Sam**")]
    [alex_line] = [line for line in shown() if line.startswith("**Alex**")]
    assert sam_line.endswith("terminal connected") and "connected" not in alex_line
    # without terminals on this bot the board is the engine's text as it was
    off = make_app(world, store, course, cluster)
    assert off.transport.connected is None
