"""Persistent buttons and answer forms whose ids say which beat they belong to.

A component's ``custom_id`` carries everything needed to act on it long after it was sent,
across restarts, without in-memory view state::

    kepler:<action>:<mission>:<chapter>.<beat>:<nonce>[:<choice>]     (a button)
    kepler:form:<mission>:<chapter>.<beat>:<nonce>:<user>             (an answer form)

``<chapter>.<beat>`` is the beat the message presented and ``<nonce>`` tells apart two
presentations of the same beat (a mission restarted at that chapter), so a click on a beat
that has passed can be recognised and refused instead of answering the question open now.
Forms carry the member too: every member of a crew gets their own form id, so concurrent
answers never collide.

Buttons are dispatched by one :class:`StoryButton` registered with ``bot.add_dynamic_items``
(discord.py's persistent dispatch for custom ids that carry data). Forms are sent *untracked*
(stopped before sending, so discord.py keeps no state for them) and every submission is
parsed from its custom id in ``on_interaction``: a form opened before a restart is handled
exactly like one opened after it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import discord

ACTIONS: dict[str, tuple[str, discord.ButtonStyle]] = {
    "continue": ("Continue", discord.ButtonStyle.primary),
    "check": ("Check my cluster", discord.ButtonStyle.success),
    "hint": ("Hint", discord.ButtonStyle.secondary),
    "manifest": ("Show manifest", discord.ButtonStyle.secondary),
    "answer": ("Answer", discord.ButtonStyle.primary),
}
PREFIX = "kepler:"
BUTTON_TEMPLATE = r"kepler:(?P<rest>.+)"
_BUTTON = re.compile(
    r"kepler:(?P<action>continue|check|hint|manifest|answer|choice):(?P<mission>[0-9]+)"
    r":(?P<ref>[0-9]+\.[0-9]+):(?P<nonce>[0-9a-f]{6})(?::(?P<index>[0-9]+))?"
)
_FORM = re.compile(
    r"kepler:form:(?P<mission>[0-9]+):(?P<ref>[0-9]+\.[0-9]+):(?P<nonce>[0-9a-f]{6})"
    r":(?P<user>[0-9]+)"
)
# Ids of the first release. Check and Hint meant "the task open now" and keep meaning it;
# the others carry no beat, so whatever they answered has passed.
_LEGACY_TASK = re.compile(r"kepler:(?P<action>check|hint):(?P<mission>[0-9]+)")
_LEGACY = re.compile(
    r"kepler:(?:(?:continue|check|hint|manifest|answer|modal):[0-9]+|choice:[0-9]+:[0-9]+)"
)
MAX_CHOICES = 20  # leaves a row for the action buttons


@dataclass(frozen=True)
class ComponentId:
    """What a button or form custom id says."""

    action: str  # continue|check|hint|manifest|answer|choice|form|legacy
    mission_id: int = 0
    ref: str = ""  # "<chapter>.<beat>"; "" only for a first-release Check or Hint
    nonce: str = ""
    index: int | None = None  # the choice, for "choice"
    user_id: int | None = None  # the member, for "form"

    @property
    def custom_id(self) -> str:
        base = f"{PREFIX}{self.action}:{self.mission_id}:{self.ref}:{self.nonce}"
        if self.action == "choice":
            return f"{base}:{self.index}"
        if self.action == "form":
            return f"{base}:{self.user_id}"
        return base

    def form_for(self, user_id: int) -> ComponentId:
        return ComponentId("form", self.mission_id, self.ref, self.nonce, user_id=user_id)


def nonce_of(key: str) -> str:
    """Six hex digits from the message's outbox key: stable across re-sends."""
    return hashlib.blake2s(key.encode(), digest_size=3).hexdigest()


def parse(custom_id: str) -> ComponentId | None:
    """The id of one of our buttons or forms; ``action == "legacy"`` for first-release ids."""
    if m := _BUTTON.fullmatch(custom_id):
        index = int(m["index"]) if m["index"] is not None else None
        if (m["action"] == "choice") != (index is not None):
            return None
        return ComponentId(m["action"], int(m["mission"]), m["ref"], m["nonce"], index)
    if m := _FORM.fullmatch(custom_id):
        return ComponentId("form", int(m["mission"]), m["ref"], m["nonce"], user_id=int(m["user"]))
    if m := _LEGACY_TASK.fullmatch(custom_id):
        return ComponentId(m["action"], int(m["mission"]))  # no ref: whatever task is open
    if _LEGACY.fullmatch(custom_id):
        return ComponentId("legacy")
    return None


def _actions(interaction: discord.Interaction) -> Any:
    return interaction.client.actions  # type: ignore[attr-defined]


class StoryButton(discord.ui.DynamicItem[discord.ui.Button], template=BUTTON_TEMPLATE):
    """Every ``kepler:`` button, whenever it was sent; the parsing happens in ``callback``."""

    def __init__(self, custom_id: str, label: str = "", style: Any = None, disabled: bool = False):
        super().__init__(
            discord.ui.Button(
                label=label[:80] or "…",
                style=style or discord.ButtonStyle.secondary,
                custom_id=custom_id,
                disabled=disabled,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> StoryButton:
        return cls(item.custom_id or "", item.label or "")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _actions(interaction).click(interaction, self.item.custom_id or "")


def story_view(
    base: ComponentId,
    actions: tuple[str, ...],
    choices: list[dict[str, str]] | None = None,
    *,
    disabled: bool = False,
) -> discord.ui.View | None:
    """Buttons for one message (``base`` names the mission, beat and nonce), or None."""
    view = discord.ui.View(timeout=None)
    for i, choice in enumerate((choices or [])[:MAX_CHOICES], 1):
        cid = ComponentId("choice", base.mission_id, base.ref, base.nonce, i).custom_id
        view.add_item(StoryButton(cid, f"{i}. {choice['label']}", disabled=disabled))
    for action in actions:
        if action in ACTIONS:
            label, style = ACTIONS[action]
            cid = ComponentId(action, base.mission_id, base.ref, base.nonce).custom_id
            view.add_item(StoryButton(cid, label, style, disabled=disabled))
    return view if view.children else None


class AnswerForm(discord.ui.Modal, title="Answer the commander"):
    """Free text without the message-content intent: a form's text needs no privilege."""

    answer: discord.ui.TextInput[AnswerForm] = discord.ui.TextInput(
        label="Your answer", style=discord.TextStyle.paragraph, max_length=4000,
        custom_id="answer",
    )  # fmt: skip

    def __init__(self, cid: ComponentId):
        super().__init__(timeout=None, custom_id=cid.custom_id)

    def is_finished(self) -> bool:
        """Always: ``send_modal`` then keeps no state for it, and the submission is handled
        from its custom id alone (see the module doc), before or after a restart."""
        return True


def form_text(data: dict[str, Any]) -> str:
    """The answer typed into a submitted form (raw ``MODAL_SUBMIT`` data)."""
    stack = list(data.get("components", []))
    while stack:  # action rows (``components``) or labels (``component``) around the input
        component = stack.pop()
        if component.get("custom_id") == "answer":
            return str(component.get("value") or "")
        stack += component.get("components", [])
        if "component" in component:
            stack.append(component["component"])
    return ""


TERMINAL_ID = "kepler:terminal"  # handled by Actions.click before the story ids


def terminal_button_view() -> discord.ui.View:
    """Under "your cluster is ready": a fresh terminal link for whoever presses it (ephemeral;
    links expire in minutes, so the message carries the button, never a link)."""
    view = discord.ui.View(timeout=None)
    view.add_item(StoryButton(TERMINAL_ID, "Terminal", discord.ButtonStyle.primary))
    return view


def terminal_link_view(url: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Open your terminal", url=url))
    return view


DYNAMIC_ITEMS = (StoryButton,)
