"""The bot: gateway intents, invite permissions, and the few events it listens to.

Intents: ``guilds`` (channels, threads and our permissions in them), ``guild_messages``
(to hear a message that mentions the bot in a mission channel) and ``dm_messages`` (free
text in DMs). **No message-content intent**: Discord delivers the content of DMs and of
messages that mention the bot without it, and in channels learners answer with buttons, the
Answer modal or an @mention. No ``members`` or ``presences`` either (both privileged).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord.ext import commands

from bot.transports.discord.views import DYNAMIC_ITEMS

log = logging.getLogger(__name__)

SCOPES = ("bot", "applications.commands")


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    return wanted


def invite_permissions() -> discord.Permissions:
    """What the invite link asks for; each one is used."""
    return discord.Permissions(
        view_channel=True,  # see mission channels
        send_messages=True,  # the story, boards, notices
        send_messages_in_threads=True,  # self-paced threads
        create_public_threads=True,  # one thread per self-paced member
        embed_links=True,  # embeds (boards, tasks, characters without a webhook)
        attach_files=True,  # manifests
        read_message_history=True,  # edit boards in place, reply in threads
        manage_webhooks=True,  # one webhook per channel: each character's name and face
    )


def invite_url(application_id: int | str) -> str:
    return discord.utils.oauth_url(
        int(application_id), permissions=invite_permissions(), scopes=SCOPES
    )


class KeplerBot(commands.Bot):
    """``actions`` handles learners; ``on_connected`` runs after every (re)connect."""

    def __init__(self, **options: Any):
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.actions: Any = None
        self.on_setup: Callable[[], Awaitable[None]] | None = None
        self.on_connected: Callable[[], Awaitable[None]] | None = None

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS)  # buttons keep working after a restart
        if self.on_setup is not None:
            await self.on_setup()

    async def on_ready(self) -> None:
        log.info("connected to Discord", extra={"guilds": len(self.guilds)})
        if self.on_connected is not None:
            await self.on_connected()

    async def on_resumed(self) -> None:
        if self.on_connected is not None:
            await self.on_connected()

    async def on_message(self, message: discord.Message) -> None:
        if self.actions is not None:
            try:
                await self.actions.message(message, self.user)
            except Exception:
                log.exception("message handling failed")
