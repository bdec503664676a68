"""A fake Discord built from autospecced discord.py objects (no network, no patched internals).

``World`` owns guild channels, threads, DM channels, webhooks and everything posted. Sends
honour ``nonce`` like Discord with ``enforce_nonce``: a repeated nonce in a channel returns the
first message instead of posting again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest.mock import create_autospec

import discord

BOT_ID = 999
_ids = itertools.count(10_000)


@dataclass
class Posted:
    channel: int  # channel or thread id where it shows
    via: str  # bot | webhook | followup | dm
    kwargs: dict[str, Any]
    id: int = field(default_factory=lambda: next(_ids))
    edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def embeds(self) -> list[Any]:
        one = self.kwargs.get("embed")
        return [one] if one is not None else list(self.kwargs.get("embeds") or [])

    @property
    def embed(self) -> Any:
        return self.embeds[0] if self.embeds else None

    @property
    def text(self) -> str:
        return (self.kwargs.get("content") or "") + "\n\n".join(
            e.description or "" for e in self.embeds
        )

    @property
    def username(self) -> str | None:
        return self.kwargs.get("username")

    def custom_ids(self) -> list[str]:
        view = self.kwargs.get("view")
        if view is None:
            return []
        return [getattr(item, "custom_id", None) or item.item.custom_id for item in view.children]


def not_found(code: int, message: str) -> discord.NotFound:
    response = SimpleNamespace(status=404, reason="Not Found")
    return discord.NotFound(response, {"code": code, "message": message})  # type: ignore[arg-type]


class _Typing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class _SentMessage:
    """What a send returns when the world is built with ``plain_messages``: the message's
    ``id`` and ``edit``, all the bot uses of a sent message (an attribute it does not have
    fails loudly)."""

    posted: Posted

    @property
    def id(self) -> int:
        return self.posted.id

    async def edit(self, **kwargs: Any) -> _SentMessage:
        self.posted.edits.append(kwargs)
        return self


class World:
    def __init__(self, *, plain_messages: bool = False) -> None:
        """``plain_messages``: sends return a :class:`_SentMessage` instead of an autospecced
        ``discord.Message`` (building one costs milliseconds: the load bench's thousand
        learners' Check clicks would measure the fake, not the bot)."""
        self.plain_messages = plain_messages
        self.posted: list[Posted] = []
        self.duplicates: list[str] = []  # nonces Discord dropped
        self.channels: dict[int, Any] = {}
        self.users: dict[int, Any] = {}
        self.webhooks: dict[int, list[Any]] = {}  # channel id -> webhooks in it
        self.created_webhooks = 0
        self.me = self.member(BOT_ID, "Kepler")
        self.owner = self.user(1, "Owner")
        self.guild = create_autospec(discord.Guild, instance=True)
        self.guild.id = 500
        self.guild.me = self.me
        self.guild.owner = self.owner
        self.guild.owner_id = self.owner.id
        self.client = create_autospec(discord.Client, instance=True)
        self.client.user = self.me
        self.client.get_channel.side_effect = lambda cid: self.channels.get(cid)

        async def fetch_channel(cid: int) -> Any:
            return self.channels[cid]

        async def fetch_user(uid: int) -> Any:
            return self.users[uid]

        self.client.fetch_channel.side_effect = fetch_channel
        self.client.get_user.side_effect = lambda uid: self.users.get(uid)
        self.client.fetch_user.side_effect = fetch_user

    # --- people ---------------------------------------------------------------------------

    def member(self, uid: int, name: str) -> Any:
        m = create_autospec(discord.Member, instance=True)
        m.id, m.display_name, m.name, m.bot = uid, name, name.lower(), False
        return m

    def user(self, uid: int, name: str) -> Any:
        u = self.member(uid, name)
        dm = self.dm(next(_ids))
        u.dm_channel = dm
        u.send.side_effect = dm.send.side_effect
        self.users[uid] = u
        return u

    # --- places ---------------------------------------------------------------------------

    def _sender(self, channel_id: int, via: str) -> Any:
        nonces: dict[str, Posted] = {}

        async def send(content: Any = None, **kwargs: Any) -> Any:
            if content is not None:
                kwargs["content"] = content
            nonce = kwargs.get("nonce")
            if nonce is not None and nonce in nonces:
                self.duplicates.append(nonce)
                return self._message(nonces[nonce])
            posted = Posted(channel_id, via, kwargs)
            self.posted.append(posted)
            if nonce is not None:
                nonces[nonce] = posted
            return self._message(posted)

        return send

    def _message(self, posted: Posted) -> Any:
        if self.plain_messages:
            return _SentMessage(posted)
        msg = create_autospec(discord.Message, instance=True)
        msg.id = posted.id

        async def edit(**kwargs: Any) -> Any:
            posted.edits.append(kwargs)
            return msg

        msg.edit.side_effect = edit
        return msg

    def _partial(self, message_id: int) -> Any:
        partial = create_autospec(discord.PartialMessage, instance=True)
        partial.id = message_id

        async def edit(**kwargs: Any) -> Any:
            for p in self.posted:
                if p.id == message_id:
                    p.edits.append(kwargs)
                    return None
            raise not_found(10008, "Unknown Message")

        partial.edit.side_effect = edit
        return partial

    def text_channel(self, cid: int, *, manage_webhooks: bool = True, foreign: int = 0) -> Any:
        ch = create_autospec(discord.TextChannel, instance=True)
        ch.id, ch.guild, ch.name = cid, self.guild, f"chan-{cid}"
        ch.permissions_for.return_value = discord.Permissions(
            manage_webhooks=manage_webhooks, send_messages=True, view_channel=True
        )
        ch.send.side_effect = self._sender(cid, "bot")
        ch.get_partial_message.side_effect = self._partial
        self.webhooks[cid] = [self.webhook(cid, owner=self.owner) for _ in range(foreign)]
        threads: dict[int, Any] = {}
        ch.get_thread.side_effect = lambda tid: threads.get(tid)

        async def webhooks() -> list[Any]:
            return list(self.webhooks[cid])

        async def create_webhook(*, name: str, avatar: Any = None, reason: Any = None) -> Any:
            if len(self.webhooks[cid]) >= 15:
                raise discord.HTTPException(SimpleNamespace(status=400, reason="Bad"),
                                            {"code": 30007, "message": "Maximum webhooks"})  # fmt: skip
            hook = self.webhook(cid, owner=self.me)
            self.webhooks[cid].append(hook)
            self.created_webhooks += 1
            return hook

        async def create_thread(*, name: str, type: Any = None, **_: Any) -> Any:
            thread = self.thread(next(_ids), ch, name)
            threads[thread.id] = thread
            return thread

        ch.webhooks.side_effect = webhooks
        ch.create_webhook.side_effect = create_webhook
        ch.create_thread.side_effect = create_thread
        self.channels[cid] = ch
        return ch

    def thread(self, tid: int, parent: Any, name: str = "thread") -> Any:
        th = create_autospec(discord.Thread, instance=True)
        th.id, th.parent, th.guild, th.name = tid, parent, self.guild, name
        th.send.side_effect = self._sender(tid, "bot")
        th.get_partial_message.side_effect = self._partial
        self.channels[tid] = th
        return th

    def dm(self, cid: int) -> Any:
        ch = create_autospec(discord.DMChannel, instance=True)
        ch.id = cid
        ch.send.side_effect = self._sender(cid, "bot")
        ch.get_partial_message.side_effect = self._partial
        ch.typing.return_value = _Typing()
        self.channels[cid] = ch
        return ch

    def webhook(self, channel_id: int, *, owner: Any) -> Any:
        hook = create_autospec(discord.Webhook, instance=True)
        hook.id, hook.token, hook.user, hook.channel_id = (
            next(_ids),
            "tok-secret",
            owner,
            channel_id,
        )
        hook.gone = False

        async def send(**kwargs: Any) -> Any:
            if hook.gone:
                raise not_found(10015, "Unknown Webhook")
            thread = kwargs.get("thread")
            posted = Posted(thread.id if thread is not None else channel_id, "webhook", kwargs)
            self.posted.append(posted)
            return self._message(posted)

        hook.send.side_effect = send
        return hook

    # --- interactions -------------------------------------------------------------------

    def interaction(self, user: Any, channel: Any, *, manage_guild: bool = False) -> Any:
        i = create_autospec(discord.Interaction, instance=True)
        i.user, i.channel, i.client = user, channel, self.client
        in_guild = not isinstance(channel, discord.DMChannel)
        i.guild = self.guild if in_guild else None
        i.guild_id = self.guild.id if in_guild else None
        i.permissions = discord.Permissions(manage_guild=manage_guild)
        i.response = create_autospec(discord.InteractionResponse, instance=True)
        i.followup = create_autospec(discord.Webhook, instance=True)
        i.order = []  # what happened, in order: "defer", "followup", ...

        async def defer(**kwargs: Any) -> None:
            i.order.append("defer")

        async def followup(content: Any = None, **kwargs: Any) -> Any:
            i.order.append("followup")
            if content is not None:
                kwargs["content"] = content
            posted = Posted(channel.id, "followup", kwargs)
            self.posted.append(posted)
            return self._message(posted)

        async def send_message(content: Any = None, **kwargs: Any) -> None:
            i.order.append("send_message")
            if content is not None:
                kwargs["content"] = content
            self.posted.append(Posted(channel.id, "response", kwargs))

        async def delete_original_response() -> None:
            i.order.append("delete")

        i.delete_original_response.side_effect = delete_original_response
        i.response.defer.side_effect = defer
        i.response.send_message.side_effect = send_message
        i.followup.send.side_effect = followup
        return i

    def in_channel(self, cid: int, via: str | None = None) -> list[Posted]:
        return [p for p in self.posted if p.channel == cid and (via is None or p.via == via)]

    def story(self, cid: int) -> list[Posted]:
        """What everyone sees in a channel (not ephemeral replies)."""
        return [p for p in self.posted if p.channel == cid and p.via in ("bot", "webhook")]

    def assert_no_mentions(self) -> None:
        for p in self.posted:
            if p.via in ("bot", "webhook", "dm", "followup"):
                am = p.kwargs.get("allowed_mentions")
                assert am is not None, p.kwargs
                assert (am.everyone, am.users, am.roles) == (False, False, False), p.kwargs

    def message(
        self, author: Any, channel: Any, content: str, mentions: list[Any] | None = None
    ) -> Any:
        msg = create_autospec(discord.Message, instance=True)
        msg.author, msg.channel, msg.content = author, channel, content
        msg.webhook_id, msg.mentions = None, mentions or []
        return msg
