"""The crew without the model: in-character lines built from the turn's own state.

Used when there is no API key, when the API is unavailable after the SDK's retries, and when a
budget is spent. Every sentence is derived from what the turn carries (the board's objectives,
the next hint, the live fact behind a Think First answer), so the scripted crew cannot
contradict the board: it never says "not yet" over a green board, never sends a learner who
answered well to ask for a hint, and never claims the crew or ARIA is unreachable.

Command words belong to the transport (``check`` in a terminal, ``/check`` on Discord): the
transport hands them in as :class:`CommandWords`. Deterministic for a given turn.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from bot.content.schema import Persona
from bot.engine.ports import VoiceTurn
from bot.voice.safety import clean

_LEARNER_SAID = re.compile(r"\s*\(the learner (?:said ([^)]*)|gave no number)\)")


@dataclass(frozen=True)
class CommandWords:
    """How the learner's transport spells its commands, as the crew should quote them."""

    check: str = "`check`"
    hint: str = "`hint`"
    proceed: str = "continue"
    terminal: str = ""  # how to open a terminal in the browser ("" where none is offered)


def address(learner_name: str) -> str:
    """How the crew addresses a learner: the last word of their name ("Alex Chen" → "Chen")."""
    words = learner_name.strip().split()
    return words[-1] if words else "Engineer"


def _sentence(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _stop(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."


class ScriptedVoice:
    """A :class:`bot.engine.ports.Voice` that never calls out."""

    def __init__(
        self,
        personas: Mapping[str, Persona] | None = None,
        *,
        seed: int = 0,
        commands: CommandWords | None = None,
    ) -> None:
        self.personas = dict(personas or {})
        self.seed = seed
        self.commands = commands or CommandWords()

    async def reply(self, turn: VoiceTurn) -> AsyncIterator[str]:
        yield self.line(turn)

    def line(self, turn: VoiceTurn, prefix: str = "") -> str:
        body = self._judge(turn) if turn.purpose == "judge" else self._answer(turn)
        return clean(" ".join(p for p in (prefix, body) if p))

    def _judge(self, turn: VoiceTurn) -> str:
        """A Think First answer: what the display shows against what was said, and the point."""
        name = address(turn.learner_name)
        parts = [f"Noted, {name}."]
        if turn.fact:
            said = _LEARNER_SAID.search(turn.fact)
            reading = _LEARNER_SAID.sub("", turn.fact).removeprefix("live cluster:").strip()
            if said and said.group(1):
                parts.append(f"You said {said.group(1)}; the display shows {reading}. "
                             "Look at it again and tell me what you see.")  # fmt: skip
            elif said:
                parts.append(f"Give me the number: the display shows {reading}, "
                             "and I need to hear it from your own survey.")  # fmt: skip
            else:
                parts.append(f"The display agrees: {reading}.")
        if turn.intent:
            parts.append(f"What I'm listening for: {_stop(_sentence(turn.intent))}")
        return " ".join(parts)

    def _answer(self, turn: VoiceTurn) -> str:
        """A free-text question: the board's first open objective and its next hint."""
        name = address(turn.learner_name)
        words = self.commands
        failing = next(((t, r) for t, ok, r in turn.objectives if not ok), None)
        if failing is not None:
            title, reason = failing
            parts = [f"{name}, the board still shows \"{title}\" open"]
            parts[0] += f": {_stop(_sentence(reason))}" if reason else "."
            if turn.hint:
                parts.append(f"Here's where I'd look: {_stop(_sentence(turn.hint))}")
            parts.append(f"Change what needs changing; {words.check} shows where you stand.")
            return " ".join(parts)
        if turn.objectives:
            return (f"{name}, every objective on this task reads green. {words.check} logs it "
                    "and we move on.")  # fmt: skip
        if turn.beat_text:  # a question back while the crew's question is open
            return (f"Fair question, {name}. Reason it out from what you've seen so far; the "
                    f"question stands: {_stop(_sentence(turn.beat_text, 240))} Give me your "
                    "answer in your own words and I'll tell you what I hear in it.")  # fmt: skip
        return (f"I hear you, {name}. Nothing is waiting on the cluster right now; "
                f"{words.proceed} when you're ready and we take the next step together.")
