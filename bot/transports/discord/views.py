"""Persistent buttons: Continue, Check my cluster, Hint, Show manifest, Answer, and choices.

Each button's ``custom_id`` carries the mission id and the action (``kepler:check:42``,
``kepler:choice:42:2``), so after a restart the bot recognises a click on a message sent long
ago: the classes are registered with ``bot.add_dynamic_items`` (discord.py's persistent
dispatch for custom ids that carry data), and views are built with ``timeout=None``. The
callbacks only hand over to :class:`~bot.transports.discord.actions.Actions`.
"""

from __future__ import annotations

import re
from typing import Any

import discord

ACTIONS: dict[str, tuple[str, discord.ButtonStyle]] = {
    "continue": ("Continue", discord.ButtonStyle.primary),
    "check": ("Check my cluster", discord.ButtonStyle.success),
    "hint": ("Hint", discord.ButtonStyle.secondary),
    "manifest": ("Show manifest", discord.ButtonStyle.secondary),
    "answer": ("Answer", discord.ButtonStyle.primary),
}
ACTION_TEMPLATE = r"kepler:(?P<action>continue|check|hint|manifest|answer):(?P<mission>[0-9]+)"
CHOICE_TEMPLATE = r"kepler:choice:(?P<mission>[0-9]+):(?P<index>[0-9]+)"
MAX_CHOICES = 20  # leaves a row for the action buttons


def action_id(action: str, mission_id: int) -> str:
    return f"kepler:{action}:{mission_id}"


def choice_id(mission_id: int, index: int) -> str:
    return f"kepler:choice:{mission_id}:{index}"


def _actions(interaction: discord.Interaction) -> Any:
    return interaction.client.actions  # type: ignore[attr-defined]


class ActionButton(discord.ui.DynamicItem[discord.ui.Button], template=ACTION_TEMPLATE):
    def __init__(self, action: str, mission_id: int):
        label, style = ACTIONS[action]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=action_id(action, mission_id))
        )
        self.action = action
        self.mission_id = mission_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> ActionButton:
        return cls(match["action"], int(match["mission"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).button(interaction, self.action, self.mission_id)


class ChoiceButton(discord.ui.DynamicItem[discord.ui.Button], template=CHOICE_TEMPLATE):
    def __init__(self, mission_id: int, index: int, label: str = ""):
        super().__init__(
            discord.ui.Button(
                label=(label or str(index))[:80],
                style=discord.ButtonStyle.secondary,
                custom_id=choice_id(mission_id, index),
            )
        )
        self.mission_id = mission_id
        self.index = index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> ChoiceButton:
        return cls(int(match["mission"]), int(match["index"]), item.label or "")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).choice(interaction, self.mission_id, self.index)


def story_view(
    mission_id: int, actions: tuple[str, ...], choices: list[dict[str, str]] | None = None
) -> discord.ui.View | None:
    """Buttons for one message, or None when it has none."""
    view = discord.ui.View(timeout=None)
    for i, choice in enumerate((choices or [])[:MAX_CHOICES], 1):
        view.add_item(ChoiceButton(mission_id, i, f"{i}. {choice['label']}"))
    for action in actions:
        if action in ACTIONS:
            view.add_item(ActionButton(action, mission_id))
    return view if view.children else None


def parse(custom_id: str) -> tuple[str, int, int | None] | None:
    """(action, mission id, choice index) from a custom id of ours, else None."""
    if m := re.fullmatch(ACTION_TEMPLATE, custom_id):
        return m["action"], int(m["mission"]), None
    if m := re.fullmatch(CHOICE_TEMPLATE, custom_id):
        return "choice", int(m["mission"]), int(m["index"])
    return None


class AnswerModal(discord.ui.Modal, title="Answer the commander"):
    """Free text without the message-content intent: a modal's text needs no privilege."""

    answer: discord.ui.TextInput[AnswerModal] = discord.ui.TextInput(
        label="Your answer", style=discord.TextStyle.paragraph, max_length=4000
    )

    def __init__(self, mission_id: int):
        super().__init__(timeout=15 * 60, custom_id=f"kepler:modal:{mission_id}")
        self.mission_id = mission_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).say(interaction, self.mission_id, str(self.answer.value))


DYNAMIC_ITEMS = (ActionButton, ChoiceButton)
