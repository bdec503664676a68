"""The crew without the model: in-character lines built from the persona and the turn itself.

Used when there is no API key, when the API is unavailable after the SDK's retries, and when a
budget is spent. Deterministic for a given seed and turn, so tests can pin it.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Mapping

from bot.content.schema import Persona
from bot.engine.ports import VoiceTurn
from bot.voice.safety import clean

DEFAULT_FALLBACK = (
    "Noted, Chen. Keep your eyes on the diagnostics and run `check` when you're ready.",
    "Steady, Chen. The cluster usually tells you what's wrong before you ask.",
)
_LEARNER_SAID = re.compile(r"\s*\(the learner said ([^)]*)\)")


def address(learner_name: str) -> str:
    """How the crew addresses a learner: the last word of their name ("Alex Chen" → "Chen")."""
    words = learner_name.strip().split()
    return words[-1] if words else "Engineer"


def _sentence(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


class ScriptedVoice:
    """A :class:`bot.engine.ports.Voice` that never calls out."""

    def __init__(self, personas: Mapping[str, Persona] | None = None, *, seed: int = 0) -> None:
        self.personas = dict(personas or {})
        self.seed = seed

    async def reply(self, turn: VoiceTurn) -> AsyncIterator[str]:
        yield self.line(turn)

    def fallback(self, turn: VoiceTurn) -> str:
        """One of the persona's fallback lines, chosen deterministically for this turn."""
        persona = self.personas.get(turn.persona)
        lines = tuple(persona.fallback) if persona and persona.fallback else DEFAULT_FALLBACK
        rng = random.Random(f"{self.seed}|{turn.scope}|{turn.beat_id}|{turn.text}")
        return rng.choice(lines).replace("Chen", address(turn.learner_name))

    def line(self, turn: VoiceTurn, prefix: str = "") -> str:
        body = self._judge(turn) if turn.purpose == "judge" else self._answer(turn)
        return clean(" ".join(p for p in (prefix, body) if p))

    def _judge(self, turn: VoiceTurn) -> str:
        name = address(turn.learner_name)
        parts = [f"Noted, {name}."]
        if turn.fact:
            said = _LEARNER_SAID.search(turn.fact)
            reading = _LEARNER_SAID.sub("", turn.fact).removeprefix("live cluster:").strip()
            if said:
                parts.append(f"You said {said.group(1)}; the display shows {reading}.")
            else:
                parts.append(f"The display agrees: {reading}.")
        if turn.intent:
            parts.append(f"What I'm listening for: {_sentence(turn.intent).rstrip('.')}.")
        parts.append(self.fallback(turn))
        return " ".join(parts)

    def _answer(self, turn: VoiceTurn) -> str:
        name = address(turn.learner_name)
        failing = next(((t, r) for t, ok, r in turn.objectives if not ok), None)
        if failing is not None:
            title, reason = failing
            why = f": {_sentence(reason).rstrip('.')}" if reason else ""
            return (f"{name}, look at \"{title}\" first{why}. Ask for a `hint` if you need one, "
                    "and run `check` once you've changed something.")  # fmt: skip
        if turn.objectives:
            return (f"{name}, every objective on this task reads green. Run `check` to log it "
                    "and we move on.")  # fmt: skip
        return self.fallback(turn)
