"""How an engine message looks on Discord: content or embeds, in whose name, split to fit.

``render(message, course, persona_mode=...)`` returns :class:`Piece` s. In persona mode (a
webhook is available) each piece is posted under the speaker's name and avatar; otherwise the
speaker becomes the embed's author. Files and buttons belong to the last piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import discord
from rich.color import Color, ColorParseError

from bot.content.course import Course
from bot.engine.ports import Outgoing
from bot.transports.discord.splitting import CONTENT_LIMIT, EMBED_LIMIT, split_text

STATION = "Kepler Station"
SCENE_COLOUR = 0x2B6CB0
TASK_COLOUR = 0xD69E2E
BOARD_COLOUR = 0x38A169
NOTICE_COLOUR = 0x718096
NO_MENTIONS = discord.AllowedMentions.none()

_TITLES = {"task": None, "review": "Crew assessment", "board": "Crew board", "progress": "Sandbox"}


@dataclass
class Piece:
    content: str | None = None
    embed: discord.Embed | None = None
    files: list[Path] = field(default_factory=list)
    last: bool = False


@dataclass(frozen=True)
class Speaker:
    name: str
    avatar: str | None
    colour: int


def speaker_of(course: Course, speaker: str | None) -> Speaker:
    persona = course.persona(speaker)
    if persona is None:
        return Speaker(STATION, None, NOTICE_COLOUR)
    avatar = persona.avatar if persona.avatar.startswith(("https://", "http://")) else None
    return Speaker(persona.name, avatar, colour_of(persona.colour))


def colour_of(name: str) -> int:
    try:
        r, g, b = Color.parse(name).get_truecolor()
    except ColorParseError:
        return NOTICE_COLOUR
    return (r << 16) | (g << 8) | b


def message_text(message: Outgoing) -> str:
    """The text as shown, with numbered choices under a question."""
    text = message.text
    if message.kind == "line" and message.style == "stage" and text and not text.startswith("*"):
        text = f"*{text}*"
    choices = message.data.get("choices") or []
    if choices:
        text += "\n" + "\n".join(f"**{i}.** {c['label']}" for i, c in enumerate(choices, 1))
    return text


def render(message: Outgoing, course: Course, *, persona_mode: bool) -> list[Piece]:
    who = speaker_of(course, message.speaker)
    text = message_text(message)
    kind = message.kind
    pieces: list[Piece]
    if kind == "line" and message.style == "scene":
        pieces = _embeds(text, SCENE_COLOUR, italic=True)
    elif kind in ("line", "question", "reply") and persona_mode:
        pieces = [Piece(content=p) for p in split_text(text, CONTENT_LIMIT)]
    elif kind in ("line", "question", "reply", "status", "hint"):
        if message.speaker is None and kind == "line":
            pieces = [Piece(content=p) for p in split_text(text, CONTENT_LIMIT)]
        else:
            pieces = _embeds(text, who.colour, author=None if persona_mode else who)
    elif kind == "task":
        pieces = _embeds(text, TASK_COLOUR, title="Task")
    elif kind in ("review", "summary", "board", "progress"):
        pieces = _embeds(
            text, BOARD_COLOUR if kind == "board" else who.colour, title=_TITLES.get(kind)
        )
    else:  # notice
        pieces = _embeds(text, NOTICE_COLOUR)
    if not pieces:
        pieces = [Piece(content="\u200b")]
    pieces[-1].last = True
    pieces[-1].files = [course.resolve(rel) for rel in message.attachments]
    return pieces


def _embeds(
    text: str,
    colour: int,
    *,
    title: str | None = None,
    author: Speaker | None = None,
    italic: bool = False,
) -> list[Piece]:
    parts = split_text(text, EMBED_LIMIT - 2) or [""]
    pieces = []
    for i, part in enumerate(parts):
        body = part
        if italic and "```" not in part:
            body = "\n\n".join(f"*{p.strip()}*" for p in part.split("\n\n") if p.strip())
        embed = discord.Embed(description=body or None, colour=colour)
        if i == 0 and title:
            embed.title = title
        if i == 0 and author is not None:
            embed.set_author(name=author.name, icon_url=author.avatar)
        pieces.append(Piece(embed=embed))
    return pieces


def plain_embed(text: str, colour: int = NOTICE_COLOUR, title: str | None = None) -> discord.Embed:
    return discord.Embed(description=text[:EMBED_LIMIT], colour=colour, title=title)
