"""How an engine message looks on Discord: content or embeds, in whose name, split to fit.

``render(message, course, persona_mode=...)`` returns :class:`Piece` s; ``render_group`` does
the same for a scene's grouped messages (``scene``). In persona mode (a webhook is available)
each piece is posted under the speaker's name and portrait; otherwise the speaker becomes the
embed's author, with the portrait as its icon. Files and buttons belong to the last piece.

Portraits: a persona's ``avatar`` is a path under the personas folder (``portraits/x.png``),
served by the bot's own HTTP server; with ``KEPLER_PUBLIC_URL`` set it becomes
``<public url>/portraits/x.png``; without one there is no portrait (Discord must fetch it).

Wording fits Discord: the crew quotes Discord's command words because the transport hands
them to the voice (``CommandWords`` in ``app.build``); the course's sentences about
``kepler play`` (the terminal) are left out here. A check result is laid out from the engine's
:class:`bot.engine.feedback.CheckLine` s (``data["lines"]``), never re-parsed from its text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
from rich.color import Color, ColorParseError

from bot.content.course import Course
from bot.engine.feedback import CheckLine, check_text
from bot.engine.ports import Outgoing
from bot.transports.discord.scene import EMBEDS_TOTAL, MAX_EMBEDS, Group, embed_messages, pack
from bot.transports.discord.splitting import CONTENT_LIMIT, EMBED_LIMIT, split_text
from bot.voice.scripted import CommandWords

STATION = "Kepler Station"
SCENE_COLOUR = 0x2B6CB0
TASK_COLOUR = 0xD69E2E
BOARD_COLOUR = 0x38A169
NOTICE_COLOUR = 0x718096
NO_MENTIONS = discord.AllowedMentions.none()
# How the crew quotes Discord's commands (the terminal has its own: bot/transports/terminal.py).
COMMANDS = CommandWords(check="`/check`", hint="`/hint`", proceed="press Continue",
                        terminal="`/terminal`")  # fmt: skip

_TITLES = {"task": None, "review": "Crew assessment", "board": "Crew board", "progress": "Sandbox"}


@dataclass
class Piece:
    """One Discord message: content and/or up to 10 embeds (6000 characters in all)."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    last: bool = False

    @property
    def embed(self) -> discord.Embed | None:
        return self.embeds[0] if self.embeds else None


@dataclass(frozen=True)
class Speaker:
    name: str
    avatar: str | None
    colour: int


def speaker_of(course: Course, speaker: str | None, public_url: str = "") -> Speaker:
    persona = course.persona(speaker)
    if persona is None:
        return Speaker(STATION, None, NOTICE_COLOUR)
    return Speaker(persona.name, portrait_url(persona.avatar, public_url), colour_of(persona.colour))


def portrait_url(avatar: str, public_url: str) -> str | None:
    """A full URL as is; a path under the personas folder only with a public base URL."""
    if avatar.startswith(("https://", "http://")):
        return avatar
    if not avatar or not public_url:
        return None
    return f"{public_url.rstrip('/')}/{avatar.lstrip('/')}"


_TERMINAL_ONLY = re.compile(r"(?:^|(?<=[.!?]) )[^.!?\n]*`kepler play`[^.!?\n]*[.!?]", re.M)


def wording(text: str) -> str:
    """The course's text without its terminal-only sentences (those naming ``kepler play``)."""
    return _TERMINAL_ONLY.sub("", text).replace("  ", " ")


def colour_of(name: str) -> int:
    try:
        r, g, b = Color.parse(name).get_truecolor()
    except ColorParseError:
        return NOTICE_COLOUR
    return (r << 16) | (g << 8) | b


def message_text(message: Outgoing) -> str:
    """The text as shown, with numbered choices under a question; a check result from its
    lines (one per objective, failures first as the engine ordered them)."""
    if message.kind == "status" and "lines" in message.data:
        return check_result(message.data)
    text = wording(message.text)
    if message.kind == "line" and message.style == "stage" and text and not text.startswith("*"):
        text = f"*{text}*"
    choices = message.data.get("choices") or []
    if choices:
        text += "\n" + "\n".join(f"**{i}.** {c['label']}" for i, c in enumerate(choices, 1))
    return text


def render(
    message: Outgoing, course: Course, *, persona_mode: bool, public_url: str = ""
) -> list[Piece]:
    who = speaker_of(course, message.speaker, public_url)
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
        pieces.append(Piece(embeds=[embed]))
    return pieces


def plain_embed(text: str, colour: int = NOTICE_COLOUR, title: str | None = None) -> discord.Embed:
    return discord.Embed(description=text[:EMBED_LIMIT], colour=colour, title=title)


def check_result(data: Mapping[str, Any]) -> str:
    """A check result's ``data`` (``bot.engine.feedback.status_message``) as Discord text."""
    lines = [CheckLine(**row) for row in data.get("lines") or []]
    return check_text(lines, str(data.get("footer") or ""))


def render_scene(
    groups: list[Group], course: Course, *, persona_mode: bool, public_url: str = ""
) -> list[Piece]:
    """The groups of one message (``scene.joins``) as few pieces as Discord's limits allow.

    Without a webhook each group is embeds (a speaker's with them as author) and consecutive
    groups share a message: ≤ 10 embeds, ≤ 6000 characters. With a webhook the post carries
    one name: a leading scene makes the speaker's lines an embed below it; otherwise the
    speaker's words are the content and a closing task or review an embed below them.
    """
    scene_first = persona_mode and len(groups) > 1 and groups[0].voice == "narrator"
    pieces: list[Piece] = []
    for g in groups:
        as_embeds = not persona_mode or (scene_first and bool(g.voice))
        rendered = render_group(g, course, persona_mode=not as_embeds, public_url=public_url)
        if persona_mode:
            for piece in rendered:
                for embed in piece.embeds:
                    embed.remove_author()  # the post's name says who speaks
        for piece in rendered:
            last = pieces[-1] if pieces else None
            if last is not None and _fits(last, piece):
                last.embeds += piece.embeds
                last.files = piece.files
            else:
                pieces.append(piece)
    for piece in pieces:
        piece.last = False
    if pieces:
        pieces[-1].last = True
    return pieces


def _fits(last: Piece, piece: Piece) -> bool:
    """``piece`` can ride in ``last``'s message: embeds only, after ``last``'s content, no
    files before it, within 10 embeds and 6000 characters."""
    return (
        piece.content is None
        and not last.files
        and len(last.embeds) + len(piece.embeds) <= MAX_EMBEDS
        and _size(last.embeds) + _size(piece.embeds) <= EMBEDS_TOTAL
    )


def _size(embeds: list[discord.Embed]) -> int:
    return sum(len(e) for e in embeds)


def render_group(
    group: Group, course: Course, *, persona_mode: bool, public_url: str = ""
) -> list[Piece]:
    """A scene's grouped messages as few pieces as Discord's limits allow.

    The narrator's voice is one embed (scene paragraphs in italics); a speaker's lines are one
    post's content under their name (persona mode) or one embed with them as its author.
    """
    if not group.voice:
        return render(group.messages[0], course, persona_mode=persona_mode, public_url=public_url)
    who = speaker_of(course, group.messages[-1].speaker, public_url)
    narrator = group.voice == "narrator"
    paragraphs: list[str] = []
    limit = CONTENT_LIMIT if persona_mode and not narrator else EMBED_LIMIT - 2
    for message in group.messages:
        text = message_text(message)
        if narrator and message.style == "scene" and "```" not in text:
            text = "\n\n".join(f"*{p.strip()}*" for p in text.split("\n\n") if p.strip())
        paragraphs += split_text(text, limit)
    blocks = pack(paragraphs, limit)
    pieces: list[Piece]
    if persona_mode and not narrator:
        pieces = [Piece(content=block) for block in blocks]
    else:
        colour = SCENE_COLOUR if narrator else who.colour
        author = None if narrator or persona_mode else who
        extra = len(author.name) if author is not None else 0
        pieces = []
        for descriptions in embed_messages(blocks, extra):
            embeds = [discord.Embed(description=d, colour=colour) for d in descriptions]
            if author is not None:
                for embed in embeds[:1]:
                    embed.set_author(name=author.name, icon_url=author.avatar)
            pieces.append(Piece(embeds=embeds))
    if not pieces:
        pieces = [Piece(content="\u200b")]
    pieces[-1].last = True
    pieces[-1].files = [course.resolve(rel) for m in group.messages for rel in m.attachments]
    return pieces
