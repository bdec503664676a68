"""Conversation memory: recent turns within a token budget, older ones folded into a summary.

Transcripts are written by the engine (``learner`` and ``crew`` entries per scope). Here they
are read back for a prompt. In a shared mission scope only this learner's own exchanges (their
message and the crew's reply to it) are used, and the summary of them is kept under a
per-learner key, so one learner's prompt never carries another's words.

Tokens are estimated as characters / 4 (offline, no API call).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.store.records import TranscriptEntry

Summariser = Callable[[str, Sequence[TranscriptEntry]], Awaitable[str]]
SUMMARY_CHARS = 1500


class TranscriptStore(Protocol):
    async def transcript(self, scope: str, after_id: int = 0) -> list[TranscriptEntry]: ...

    async def summary(self, scope: str) -> tuple[str, int]: ...

    async def set_summary(self, scope: str, summary: str, upto_id: int) -> None: ...


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Recall:
    summary: str = ""
    turns: list[TranscriptEntry] = field(default_factory=list)


def summary_key(scope: str, learner_id: str) -> str:
    return scope if scope.startswith("learner:") else f"{scope}|learner:{learner_id}"


def own_exchanges(entries: Sequence[TranscriptEntry], learner_id: str) -> list[TranscriptEntry]:
    """This learner's messages and the crew lines answering them (for shared scopes)."""
    out: list[TranscriptEntry] = []
    mine = False
    for e in entries:
        if e.role == "learner":
            mine = e.speaker == learner_id
            if mine:
                out.append(e)
        elif mine:
            out.append(e)
    return out


def _first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    s = m.group(1) if m else text
    return s if len(s) <= limit else s[: limit - 1].rsplit(" ", 1)[0] + "…"


async def extractive_summary(previous: str, entries: Sequence[TranscriptEntry]) -> str:
    """A deterministic summary: one line per folded entry, oldest lines dropped first."""
    lines = [ln for ln in previous.splitlines() if ln.strip()]
    for e in entries:
        who = "Learner" if e.role == "learner" else (e.speaker or "crew").capitalize()
        lines.append(f"- {who}: {_first_sentence(e.content)}")
    while lines and sum(len(ln) + 1 for ln in lines) > SUMMARY_CHARS:
        lines.pop(0)
    return "\n".join(lines)


class Memory:
    def __init__(
        self,
        store: TranscriptStore,
        *,
        budget_tokens: int = 1500,
        summariser: Summariser = extractive_summary,
    ) -> None:
        self.store = store
        self.budget_tokens = budget_tokens
        self.summariser = summariser

    async def recall(
        self, scope: str, learner_id: str, current: str = "", summariser: Summariser | None = None
    ) -> Recall:
        """Recent turns (oldest first) within the budget; fold what falls out into the summary.

        ``current`` is the learner's message being answered: if the engine already stored it
        as the last entry it is dropped here (the prompt adds it separately, as data).
        """
        key = summary_key(scope, learner_id)
        summary, upto = await self.store.summary(key)
        entries = await self.store.transcript(scope, upto)
        if not scope.startswith("learner:"):
            entries = own_exchanges(entries, learner_id)
        if entries and entries[-1].role == "learner" and entries[-1].content == current:
            entries = entries[:-1]
        # Over budget, fold down to half of it, not just the oldest turn: the kept turns are
        # the start of the prompt's cached prefix, so they should change every few turns,
        # not on every turn.
        costs = [e.tokens or estimate_tokens(e.content) for e in entries]
        limit = self.budget_tokens if sum(costs) <= self.budget_tokens else self.budget_tokens // 2
        kept: list[TranscriptEntry] = []
        used = 0
        for e, cost in zip(reversed(entries), reversed(costs), strict=True):
            if used + cost > limit:
                break
            kept.append(e)
            used += cost
        kept.reverse()
        # Start the kept window on a learner entry, so the conversation alternates cleanly.
        while kept and kept[0].role != "learner":
            kept.pop(0)
        folded = entries[: len(entries) - len(kept)]
        if folded:
            summary = await (summariser or self.summariser)(summary, folded)
            await self.store.set_summary(key, summary, folded[-1].id)
        return Recall(summary, kept)
