"""A beat as a scene: consecutive story messages grouped into as few Discord posts as read well.

The engine hands over one message per paragraph. Posted one by one, a scene is a wall of
small messages and a busy channel meets Discord's per-channel rate limit, so the transport
groups the messages of one beat before posting:

- the scene description and narration (the narrator's voice) become one embed;
- one speaker's consecutive lines (their reply to an answer, stage directions in italics,
  dialogue, their question) become one post under their name;
- tasks, reviews, summaries and everything else stay posts of their own.

Discord's limits hold for every post: 2000 characters of content, 4096 per embed description,
6000 across a message's embeds and at most 10 embeds; a group that would break one is split
at paragraph boundaries (``splitting``). Pure functions: no Discord calls here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.engine.ports import Outgoing

GROUPED_KINDS = ("line", "question", "reply")  # a reply to an answer leads into the next lines
CLOSING_KINDS = ("task", "review")  # an embed of their own that may end a speaker's message
NARRATOR_STYLES = ("scene", "narration")
CONTENT_LIMIT = 2000
EMBED_LIMIT = 4096
EMBEDS_TOTAL = 6000
MAX_EMBEDS = 10


@dataclass
class Group:
    """Consecutive messages shown as one post (or a few, if Discord's limits demand it)."""

    voice: str  # "narrator", a persona id, or "" for a message that stays alone
    messages: list[Outgoing] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def voice_of(message: Outgoing) -> str:
    """Who a message is spoken by, for grouping; "" when it does not join a group."""
    if message.kind not in GROUPED_KINDS or message.private_to:
        return ""
    if message.kind == "line" and (message.style in NARRATOR_STYLES or message.speaker is None):
        return "narrator"
    return message.speaker or ""


def groupable(first: Outgoing, other: Outgoing) -> bool:
    """Whether ``other`` joins ``first``'s group: story lines in the same voice, nothing to
    click on ``first``."""
    voice = voice_of(first)
    return bool(voice) and voice_of(other) == voice and not has_buttons(first)


def joins(so_far: list[Outgoing], other: Outgoing, *, any_voice: bool) -> bool:
    """Whether ``other``, next in the outbox, goes into the same Discord message as ``so_far``.

    Never after something to click. Without a webhook (``any_voice``) every speaker is an
    embed of the message, so any story lines join, and a task or review closes the message.
    With a webhook the message has one name: the same voice joins; a scene may lead into one
    speaker's lines (the scene stays an embed above them); a task or review of that speaker
    closes it, as an embed below their words.
    """
    last = so_far[-1]
    voice, next_voice = voice_of(last), voice_of(other)
    if has_buttons(last) or not voice:
        return False
    closing = other.kind in CLOSING_KINDS and not other.private_to
    if any_voice:
        return bool(next_voice) or closing
    if next_voice == voice:
        return True
    if voice == "narrator" and next_voice and all(voice_of(m) == voice for m in so_far):
        return True
    return closing and voice != "narrator" and other.speaker == last.speaker


def has_buttons(message: Outgoing) -> bool:
    return bool(message.actions or message.data.get("choices") or message.kind == "question")


def group(items: list[tuple[str, Outgoing]]) -> list[Group]:
    """Consecutive (key, message) pairs in groups; only the first group matters to a caller
    that posts one group per call, but all are returned for measuring."""
    groups: list[Group] = []
    for key, message in items:
        last = groups[-1] if groups else None
        if last is not None and groupable(last.messages[-1], message):
            last.messages.append(message)
            last.keys.append(key)
        else:
            groups.append(Group(voice_of(message), [message], [key]))
    return groups


def pack(paragraphs: list[str], limit: int) -> list[str]:
    """Paragraphs joined by blank lines into as few blocks of at most ``limit`` as possible
    (a paragraph longer than ``limit`` must already have been split)."""
    blocks: list[str] = []
    for paragraph in paragraphs:
        if blocks and len(blocks[-1]) + 2 + len(paragraph) <= limit:
            blocks[-1] += "\n\n" + paragraph
        else:
            blocks.append(paragraph)
    return blocks


def embed_messages(descriptions: list[str], title_len: int = 0) -> list[list[str]]:
    """Embed descriptions (each ≤ 4096) shared out over messages: ≤ 10 embeds and ≤ 6000
    characters (plus ``title_len`` for author names and titles) per message."""
    messages: list[list[str]] = []
    size = 0
    for description in descriptions:
        cost = len(description) + title_len
        if not messages or len(messages[-1]) >= MAX_EMBEDS or size + cost > EMBEDS_TOTAL:
            messages.append([])
            size = 0
        messages[-1].append(description)
        size += cost
    return messages
