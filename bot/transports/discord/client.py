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
from discord import app_commands
from discord.ext import commands

from bot.transports.discord.expiry import expired_token, log_expired
from bot.transports.discord.views import DYNAMIC_ITEMS, PREFIX

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


class KeplerTree(app_commands.CommandTree):
    """Slash commands; an expired interaction token is one WARNING line, not a traceback."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if expired_token(error):
            log_expired(interaction, error)
            return
        await super().on_error(interaction, error)


class KeplerBot(commands.Bot):
    """``actions`` handles learners; ``on_connected`` runs after every (re)connect."""

    def __init__(self, **options: Any):
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=KeplerTree,
            **options,
        )
        self.actions: Any = None
        self.on_setup: Callable[[], Awaitable[None]] | None = None
        self.on_connected: Callable[[], Awaitable[None]] | None = None
        # Called with the channel ids whose permissions may have changed (None: a whole guild).
        self.on_permissions_changed: Callable[[list[int] | None], None] | None = None

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

    async def on_guild_channel_update(self, before: Any, after: Any) -> None:
        if self.on_permissions_changed is not None:
            self.on_permissions_changed([after.id])

    async def on_guild_update(self, before: Any, after: Any) -> None:
        if self.on_permissions_changed is not None:
            self.on_permissions_changed(None)

    async def on_guild_role_update(self, before: Any, after: Any) -> None:
        if self.on_permissions_changed is not None:
            self.on_permissions_changed(None)

    async def on_message(self, message: discord.Message) -> None:
        if self.actions is not None:
            try:
                await self.actions.message(message, self.user)
            except Exception:
                log.exception("message handling failed")

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Forms (every one, by custom id) and clicks that no button of ours claims.

        ``kepler:`` buttons are dispatched by :class:`~bot.transports.discord.views.StoryButton`;
        anything else gets a short ephemeral notice instead of "This interaction failed".
        """
        if self.actions is None:
            return
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if interaction.type is discord.InteractionType.modal_submit:
            await self.actions.form(interaction)
        elif interaction.type is discord.InteractionType.component and not custom_id.startswith(
            PREFIX
        ):
            await self.actions.unknown(interaction)
