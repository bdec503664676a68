"""The engine's Transport on Discord.

Story messages go to a mission's DM channel, guild channel or thread. In a guild channel (and
its threads, via ``thread=``) each character speaks through the channel's one webhook with
their own name and avatar; in DMs, or without a webhook (no Manage Webhooks, or 15 webhooks
already), they speak as embeds with name and icon, and the server's owner is told once which
permission is missing. Boards and progress messages are edited in place (message ids in the
store). With browser terminals on, the crew board's rows are kept too, so the board can be
redrawn when a member's terminal connects or disconnects (:meth:`DiscordTransport.redraw_board`,
driven by ``liveboard.py``). Nothing generated mentions anyone.

Idempotence: every outbox message has a stable ``key``. Bot messages carry it as the
``nonce`` (discord.py sets ``enforce_nonce``), so Discord drops a re-send after a crash;
webhooks have no nonce, so each sent piece is recorded in the store as it goes and skipped
on re-delivery.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import replace
from typing import Any

import discord

from bot.content.course import Course
from bot.engine.board import board_text
from bot.engine.ports import Address, Outgoing
from bot.transports.discord import scene
from bot.transports.discord.moments import Moment, Moments
from bot.transports.discord.pacing import Pacer
from bot.transports.discord.render import (
    NO_MENTIONS,
    Piece,
    plain_embed,
    render,
    render_scene,
    speaker_of,
)
from bot.transports.discord.splitting import CONTENT_LIMIT, split_text
from bot.transports.discord.views import ACTIONS, ComponentId, nonce_of, story_view
from bot.transports.discord.webhooks import NoWebhook, WebhookPool, is_unknown_webhook
from bot.web.missionfiles import with_folder_note

log = logging.getLogger(__name__)

SENT = "discord:sent"  # key (or key.piece) -> message id
PINNED = "discord:pinned"  # "<address key>:<kind>" -> message id edited in place
BOARD_ROWS = "discord:board"  # "<address key>:board" -> the rows of the board shown there
GUILD = "discord:guild:{}"
STREAM_INTERVAL = 1.0

MISSING_PERMISSION = {
    "permission": (
        "Kepler Station needs the **Manage Webhooks** permission in <#{channel}> so each crew "
        "member speaks with their own name and portrait. Until it has it, they speak in embeds."
    ),
    "full": (
        "<#{channel}> already has 15 webhooks (Discord's limit), so Kepler Station cannot add its "
        "own; the crew speaks in embeds there. Remove an unused webhook to give them their faces."
    ),
}


def learner_id_of(user: discord.abc.User | Any) -> str:
    return f"discord:{user.id}"


def user_id_of(learner_id: str) -> int | None:
    prefix, _, raw = learner_id.partition(":")
    return int(raw) if prefix == "discord" and raw.isdigit() else None


class DiscordTransport:
    def __init__(
        self,
        client: discord.Client,
        store: Any,
        course: Course,
        webhooks: WebhookPool,
        *,
        clock: Callable[[], float] = time.monotonic,
        public_url: str = "",
        pacer: Pacer | None = None,
        connected: Callable[[], Collection[str]] | None = None,
    ):
        """``connected`` names the learners with a browser terminal open now (``bot.web``);
        the crew board shows them. None: this bot serves no terminals."""
        self.client = client
        self.store = store
        self.course = course
        self.webhooks = webhooks
        self.clock = clock
        self.public_url = public_url
        self.pacer = pacer or Pacer()
        self.moments = Moments(store)
        self.connected = connected
        self._boards: dict[str, str] = {}  # board slot -> the text it shows (this process)
        self._board_locks: dict[str, asyncio.Lock] = {}

    # --- Transport ----------------------------------------------------------------------

    async def forget_sent(self, upto: int) -> None:
        """The engine pruned outbox ids up to ``upto``: their sent marks can go too."""
        await self.store.prune_ledger(SENT, upto)

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
        if await self.store.get_setting(SENT, key):
            return  # sent already, alone or as part of a group (see ``_post``)
        if message.private_to and address.kind != "solo":
            await self._deliver_private(message, key)
        else:
            channel = await self.channel(address)
            if message.kind == "board" and self.connected is not None:
                await self._show_board(channel, address, message, key)
            elif message.kind in ("board", "progress"):
                await self._edit_in_place(channel, address, message, key)
            else:
                await self._post(channel, address, message, key)
        await self.store.set_setting(SENT, key, "1")

    async def stream(self, address: Address, speaker: str, chunks: AsyncIterator[str]) -> str:
        """Post the reply as it arrives, editing at most once a second; long replies continue
        in a new message."""
        channel = await self.channel(address)
        hook, thread = await self._hook(channel)
        who = speaker_of(self.course, speaker, self.public_url)
        shown: list[tuple[Any, str]] = []
        text = ""
        last = float("-inf")

        async def show(final: bool) -> None:
            pieces = split_text(text, CONTENT_LIMIT) or ["…"]
            for i, piece in enumerate(pieces):
                body = piece if final or i < len(pieces) - 1 else piece + " …"
                if i < len(shown):
                    msg, was = shown[i]
                    if was != body:
                        await self._edit_stream(msg, body, hook is None, who)
                        shown[i] = (msg, body)
                else:
                    shown.append((await self._send_stream(channel, hook, thread, who, body), body))

        async for chunk in chunks:
            text += chunk
            if self.clock() - last >= STREAM_INTERVAL:
                last = self.clock()
                await show(final=False)
        text = text.strip()
        await show(final=True)
        return text

    # --- where and how ------------------------------------------------------------------

    async def channel(self, address: Address) -> Any:
        channel_id = int(address.key)
        channel = self.client.get_channel(channel_id)
        if channel is None:
            channel = await self.client.fetch_channel(channel_id)
        return channel

    async def _hook(self, channel: Any) -> tuple[discord.Webhook | None, Any]:
        """(webhook, thread) for a guild channel or thread; (None, None) means embeds."""
        if isinstance(channel, discord.DMChannel) or getattr(channel, "guild", None) is None:
            return None, None
        thread = channel if isinstance(channel, discord.Thread) else None
        parent = channel.parent if thread is not None else channel
        if not isinstance(parent, discord.TextChannel | discord.ForumChannel):
            return None, None
        try:
            return await self.webhooks.get(parent), thread
        except NoWebhook as missing:
            await self.tell_admins(channel.guild, missing.reason, parent.id)
            return None, None

    async def _post(self, channel: Any, address: Address, message: Outgoing, key: str) -> None:
        """Post ``message`` together with the rest of its scene still waiting in the outbox.

        The engine delivers one message at a time, in order; the messages after this one that
        belong to the same group (``scene``) are posted now and marked sent here, so the
        engine's next ``deliver`` calls for them return at once.
        """
        mission = await self.store.find_mission(address)
        hook, thread = await self._hook(channel)
        items = await self._scene(mission, message, key, any_voice=hook is None)
        if self.connected is not None:  # browser terminals: a task's files are in the workbench
            items = [(k, with_folder_note(m)) for k, m in items]
        groups = scene.group(items)
        pieces = render_scene(
            groups, self.course, persona_mode=hook is not None, public_url=self.public_url
        )
        messages = [m for _, m in items]
        keys = [k for k, _ in items]
        buttons = next((m for m in reversed(messages) if scene.has_buttons(m)), None)
        view, base = None, None
        if buttons is not None and mission is not None:
            ref = buttons.data.get("ref") or f"{mission.chapter}.{mission.beat}"
            base = ComponentId("", mission.id, ref, nonce_of(keys[-1]))
            actions = tuple(buttons.actions)
            if buttons.kind == "question" and not buttons.data.get("choices"):
                actions = (*actions, "answer")
            view = story_view(base, actions, buttons.data.get("choices"))
        who = speaker_of(self.course, messages[-1].speaker, self.public_url)
        sent_id: int | None = None
        for i, piece in enumerate(pieces):
            piece_key = f"{key}.{i}"
            if len(pieces) > 1 and await self.store.get_setting(SENT, piece_key):
                continue  # sent before a crash
            await self.pacer.wait(channel.id)
            sent_id = await self._send_piece(
                channel, hook, thread, who, piece, key if i == 0 else piece_key,
                view if piece.last else None,
            )  # fmt: skip
            if len(pieces) > 1:
                await self.store.set_setting(SENT, piece_key, str(sent_id or "?"))
        for other in keys[1:]:
            await self.store.set_setting(SENT, other, "1")
        if view is not None and base is not None and sent_id is not None and mission is not None:
            await self._new_moment(mission.id, channel, hook, thread, base, view, sent_id,
                                   buttons)  # fmt: skip

    async def _scene(
        self, mission: Any, message: Outgoing, key: str, *, any_voice: bool
    ) -> list[tuple[str, Outgoing]]:
        """This message and the unsent ones after it in the outbox that join its group."""
        items = [(key, message)]
        if mission is None or not scene.voice_of(message):
            return items
        pending = await self.store.pending(mission.id)
        keys = [item.key for item in pending]
        if key not in keys:
            return items
        for item in pending[keys.index(key) + 1 :]:
            if not scene.joins([m for _, m in items], item.message, any_voice=any_voice):
                break
            items.append((item.key, item.message))
        return items

    async def _new_moment(
        self,
        mission_id: int,
        channel: Any,
        hook: discord.Webhook | None,
        thread: Any,
        base: ComponentId,
        view: discord.ui.View,
        message_id: int,
        buttons: Outgoing,
    ) -> None:
        """Record the message with the live buttons; disable the previous moment's buttons."""
        guild = None if isinstance(channel, discord.DMChannel) else channel.guild
        parent = thread.parent if thread is not None else channel
        actions = [getattr(i, "custom_id", "").split(":")[1] for i in view.children
                   if getattr(i, "custom_id", "").split(":")[1] in ACTIONS]  # fmt: skip
        moment = Moment(
            ref=base.ref, nonce=base.nonce, channel=channel.id, message=message_id,
            guild=guild.id if guild is not None else None,
            webhook=hook.id if hook is not None else None,
            parent=parent.id if hook is not None else None,
            actions=actions, choices=list(buttons.data.get("choices") or []),
        )  # fmt: skip
        previous = await self.moments.replace(mission_id, moment)
        if previous is None or previous.message == message_id:
            return
        old = ComponentId("", mission_id, previous.ref, previous.nonce)
        dead = story_view(old, tuple(previous.actions), previous.choices, disabled=True)
        try:
            if previous.webhook is not None:
                hook = self.webhooks.cached(previous.parent or 0)
                if hook is None or hook.id != previous.webhook:
                    return  # that webhook is gone: its buttons answer "passed" anyway
                where = discord.Object(previous.channel) if previous.channel != previous.parent else None
                if where is not None:
                    await hook.edit_message(previous.message, view=dead, thread=where)
                else:
                    await hook.edit_message(previous.message, view=dead)
            else:
                target = self.client.get_channel(previous.channel) or channel
                await target.get_partial_message(previous.message).edit(view=dead)
        except discord.HTTPException as exc:
            log.info("could not disable old buttons: %s", exc.status,
                     extra={"channel": previous.channel})  # fmt: skip

    async def _send_piece(
        self,
        channel: Any,
        hook: discord.Webhook | None,
        thread: Any,
        who: Any,
        piece: Piece,
        nonce: str,
        view: discord.ui.View | None,
    ) -> int | None:
        files = [discord.File(path, filename=path.name) for path in piece.files if path.exists()]
        if hook is not None:
            kwargs: dict[str, Any] = {
                "username": who.name,
                "allowed_mentions": NO_MENTIONS,
                "wait": True,
            }
            if who.avatar:
                kwargs["avatar_url"] = who.avatar
            if piece.content is not None:
                kwargs["content"] = piece.content
            if piece.embeds:
                kwargs["embeds"] = piece.embeds
            if files:
                kwargs["files"] = files
            if view is not None:
                kwargs["view"] = view
            if thread is not None:
                kwargs["thread"] = thread
            try:
                msg = await hook.send(**kwargs)
                return msg.id if msg is not None else None
            except discord.NotFound as exc:
                if not is_unknown_webhook(exc):
                    raise
                parent = thread.parent if thread is not None else channel
                log.info("webhook gone; making a new one", extra={"channel": parent.id})
                await self.webhooks.forget(parent.id)
                fresh, thread = await self._hook(channel)
                files = [discord.File(p, filename=p.name) for p in piece.files if p.exists()]
                if fresh is not None:
                    if files:
                        kwargs["files"] = files
                    msg = await fresh.send(**kwargs)
                    return msg.id if msg is not None else None
        msg = await channel.send(
            content=piece.content,
            embeds=piece.embeds or None,
            files=files or None,
            view=view,
            nonce=nonce,
            allowed_mentions=NO_MENTIONS,
        )
        return msg.id

    async def _send_stream(
        self, channel: Any, hook: discord.Webhook | None, thread: Any, who: Any, body: str
    ) -> Any:
        if hook is not None:
            kwargs: dict[str, Any] = {"username": who.name, "allowed_mentions": NO_MENTIONS,
                                      "wait": True, "content": body}  # fmt: skip
            if who.avatar:
                kwargs["avatar_url"] = who.avatar
            if thread is not None:
                kwargs["thread"] = thread
            return await hook.send(**kwargs)
        return await channel.send(embed=_stream_embed(who, body), allowed_mentions=NO_MENTIONS)

    async def _edit_stream(self, msg: Any, body: str, as_embed: bool, who: Any) -> None:
        if as_embed:
            await msg.edit(embed=_stream_embed(who, body), allowed_mentions=NO_MENTIONS)
        else:
            await msg.edit(content=body, allowed_mentions=NO_MENTIONS)

    async def _edit_in_place(
        self, channel: Any, address: Address, message: Outgoing, key: str
    ) -> None:
        slot = f"{address.key}:{message.kind}"
        [piece] = render(message, self.course, persona_mode=False, public_url=self.public_url)[:1]
        stored = await self.store.get_setting(PINNED, slot)
        if stored:
            try:
                await channel.get_partial_message(int(stored)).edit(
                    content=piece.content, embed=piece.embed, allowed_mentions=NO_MENTIONS
                )
                return
            except discord.NotFound:
                pass  # deleted: post a new one
        msg = await channel.send(
            content=piece.content, embed=piece.embed, nonce=key, allowed_mentions=NO_MENTIONS
        )
        await self.store.set_setting(PINNED, slot, str(msg.id))

    # --- the crew board with terminals --------------------------------------------------

    async def _show_board(self, channel: Any, address: Address, message: Outgoing, key: str) -> None:
        """The engine's board, with connected terminals marked; its rows are kept for redraws."""
        assert self.connected is not None
        slot = f"{address.key}:board"
        async with self._board_locks.setdefault(slot, asyncio.Lock()):
            rows = message.data.get("members") or []
            await self.store.set_setting(BOARD_ROWS, slot, json.dumps(rows))
            message = with_terminals(message, self.connected())
            await self._edit_in_place(channel, address, message, key)
            self._boards[slot] = message.text

    async def redraw_board(self, address: Address) -> bool:
        """Edit the board last shown at ``address`` to mark who has a terminal connected now.

        Only an edit (no new post, nothing when the text would not change), paced like posts to
        the channel. False when nothing was edited (no board there, or unchanged)."""
        if self.connected is None:
            return False
        slot = f"{address.key}:board"
        async with self._board_locks.setdefault(slot, asyncio.Lock()):
            rows_json = await self.store.get_setting(BOARD_ROWS, slot)
            pinned = await self.store.get_setting(PINNED, slot)
            if not rows_json or not pinned:
                return False
            rows = json.loads(rows_json)
            text = board_text(rows, self.connected())
            if self._boards.get(slot) == text:
                return False
            board = Outgoing(kind="board", text=text, data={"members": rows})
            [piece] = render(board, self.course, persona_mode=False, public_url=self.public_url)[:1]
            channel = await self.channel(address)
            await self.pacer.wait(channel.id)
            try:
                await channel.get_partial_message(int(pinned)).edit(
                    content=piece.content, embed=piece.embed, allowed_mentions=NO_MENTIONS
                )
            except discord.NotFound:
                return False  # deleted: the engine's next board posts a new one
            self._boards[slot] = text
            return True

    async def _deliver_private(self, message: Outgoing, key: str) -> None:
        """A message for one member of a crew: to their DMs, never to the channel."""
        assert message.private_to is not None
        user = await self.user(message.private_to)
        if user is None:
            return
        channel = user.dm_channel or await user.create_dm()
        for piece in render(message, self.course, persona_mode=False, public_url=self.public_url):
            await channel.send(content=piece.content, embed=piece.embed, nonce=key,
                               allowed_mentions=NO_MENTIONS)  # fmt: skip

    async def user(self, learner_id: str) -> Any:
        user_id = user_id_of(learner_id)
        if user_id is None:
            return None
        return self.client.get_user(user_id) or await self.client.fetch_user(user_id)

    async def tell_admins(self, guild: Any, reason: str, channel_id: int) -> None:
        """Once per server and reason: DM the owner (or post in the channel) what is missing."""
        scope = GUILD.format(guild.id)
        flag = f"told:{reason}"
        if await self.store.get_setting(scope, flag):
            return
        await self.store.set_setting(scope, flag, "1")
        text = MISSING_PERMISSION[reason].format(channel=channel_id)
        embed = plain_embed(text, title="Kepler Station setup")
        try:
            owner = guild.owner or await self.client.fetch_user(guild.owner_id)
            await owner.send(embed=embed, allowed_mentions=NO_MENTIONS)
        except (discord.HTTPException, AttributeError):
            channel = self.client.get_channel(channel_id)
            if channel is not None:
                await channel.send(embed=embed, allowed_mentions=NO_MENTIONS)


def _stream_embed(who: Any, body: str) -> discord.Embed:
    embed = discord.Embed(description=body, colour=who.colour)
    embed.set_author(name=who.name, icon_url=who.avatar)
    return embed


def with_terminals(board: Outgoing, connected: Collection[str]) -> Outgoing:
    """The crew board with each member whose terminal is open marked as connected."""
    rows = board.data.get("members") or []
    return replace(board, text=board_text(rows, connected))
