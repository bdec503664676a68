"""Slash commands. Each one is a line of glue into :class:`Actions`.

``/mission start|join|leave|status|pace``, ``/check``, ``/hint``, ``/catchup``,
``/kubeconfig``, ``/terminal``, ``/sandbox reset|delete|extend``, ``/profile``, and the admin group
``/station settings|caps|teardown``: hidden by default from members without Manage Server
(``default_permissions``) and checked again at run time, since server admins can override
the default.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine.pacing import PACINGS
from bot.transports.discord.render import NO_MENTIONS
from bot.transports.discord.transport import GUILD

if TYPE_CHECKING:
    from bot.transports.discord.actions import Actions

log = logging.getLogger(__name__)

Pace = Literal["together", "quorum", "self-paced"]
Field = Literal["style", "review", "feedback", "environment"]
assert set(PACINGS) == {"together", "quorum", "self-paced"}


async def _deny(interaction: discord.Interaction) -> bool:
    """The runtime half of the admin check (Manage Server in this server)."""
    perms = interaction.permissions
    if interaction.guild is None or not perms.manage_guild:
        await interaction.response.send_message(
            "Only members with Manage Server can change station settings.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        return True
    return False


class KeplerCommands(commands.Cog):
    mission = app_commands.Group(name="mission", description="Your Kepler Station mission")
    sandbox = app_commands.Group(name="sandbox", description="Your own Kubernetes cluster")
    station = app_commands.Group(
        name="station",
        description="Server settings for Kepler Station (Manage Server)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    def __init__(self, actions: Actions, store: object):
        self.actions = actions
        self.store = store

    # --- /mission -----------------------------------------------------------------------

    @mission.command(name="start", description="Start the mission here (DM: just you)")
    @app_commands.describe(
        pace="In a server channel: together (wait for all), quorum, or self-paced threads",
        chapter="Start at this chapter (number or id)",
    )
    async def mission_start(
        self, interaction: discord.Interaction, pace: Pace = "together", chapter: str | None = None
    ) -> None:
        await self.actions.start(interaction, pace, chapter)

    @mission.command(name="join", description="Join the crew in this channel")
    async def mission_join(self, interaction: discord.Interaction) -> None:
        await self.actions.join(interaction)

    @mission.command(name="leave", description="Leave the crew in this channel")
    async def mission_leave(self, interaction: discord.Interaction) -> None:
        await self.actions.leave(interaction)

    @mission.command(name="status", description="Where the mission is and what is still open")
    async def mission_status(self, interaction: discord.Interaction) -> None:
        await self.actions.status(interaction)

    @mission.command(name="pace", description="How the crew moves on")
    @app_commands.describe(quorum="For quorum: the share of active members (0.1-1.0)")
    async def mission_pace(
        self,
        interaction: discord.Interaction,
        pace: Literal["together", "quorum"],
        quorum: app_commands.Range[float, 0.1, 1.0] | None = None,
    ) -> None:
        await self.actions.pace(interaction, pace, quorum)

    # --- learner ------------------------------------------------------------------------

    @app_commands.command(name="check", description="Check your cluster against the task")
    async def check(self, interaction: discord.Interaction) -> None:
        await self.actions.check(interaction)

    @app_commands.command(name="hint", description="A pointer for the first open objective")
    async def hint(self, interaction: discord.Interaction) -> None:
        await self.actions.hint(interaction)

    @app_commands.command(name="catchup", description="Apply earlier chapters' solutions")
    async def catchup(self, interaction: discord.Interaction) -> None:
        await self.actions.catch_up(interaction)

    @app_commands.command(name="kubeconfig", description="Access to your cluster (only you see it)")
    async def kubeconfig(self, interaction: discord.Interaction) -> None:
        await self.actions.kubeconfig(interaction)

    @app_commands.command(name="terminal", description="A terminal in your browser, on your cluster")
    async def terminal(self, interaction: discord.Interaction) -> None:
        await self.actions.terminal(interaction)

    @app_commands.command(
        name="profile", description="Show or change how the commander works with you"
    )
    async def profile(
        self,
        interaction: discord.Interaction,
        field: Field | None = None,
        value: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        await self.actions.profile(interaction, field, value)

    @sandbox.command(name="reset", description="Replace your cluster with a fresh one")
    async def sandbox_reset(self, interaction: discord.Interaction) -> None:
        await self.actions.sandbox(interaction, "reset")

    @sandbox.command(name="delete", description="Delete your cluster")
    async def sandbox_delete(self, interaction: discord.Interaction) -> None:
        await self.actions.sandbox(interaction, "delete")

    @sandbox.command(name="extend", description="Keep your cluster longer")
    async def sandbox_extend(self, interaction: discord.Interaction) -> None:
        await self.actions.sandbox(interaction, "extend")

    # --- /station (admins) --------------------------------------------------------------

    @station.command(name="settings", description="Show this server's Kepler Station settings")
    async def station_settings(self, interaction: discord.Interaction) -> None:
        if await _deny(interaction):
            return
        scope = GUILD.format(interaction.guild_id)
        cap = await self.store.get_setting(scope, "max_sandboxes")  # type: ignore[attr-defined]
        sandboxes = await self.store.sandboxes(str(interaction.guild_id))  # type: ignore[attr-defined]
        await interaction.response.send_message(
            f"Clusters in use: {len(sandboxes)}; cap for this server: {cap or 'default'}.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @station.command(name="caps", description="Most station clusters this server may use")
    async def station_caps(
        self, interaction: discord.Interaction, max_sandboxes: app_commands.Range[int, 0, 1000]
    ) -> None:
        if await _deny(interaction):
            return
        scope = GUILD.format(interaction.guild_id)
        await self.store.set_setting(scope, "max_sandboxes", str(max_sandboxes))  # type: ignore[attr-defined]
        await interaction.response.send_message(
            f"This server may use up to {max_sandboxes} station clusters.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @station.command(
        name="teardown", description="Close every mission and delete every cluster here"
    )
    async def station_teardown(self, interaction: discord.Interaction, confirm: bool) -> None:
        if await _deny(interaction):
            return
        if not confirm:
            await interaction.response.send_message(
                "Nothing done. Run again with confirm: True.", ephemeral=True
            )
            return
        await self.actions.teardown(interaction)
