"""The engine's three seams: a transport, a cluster, a voice — and the messages between them.

The engine imports nothing from Discord, Anthropic or Kubernetes. Adapters implement these
protocols; tests use recording fakes and emulated clusters behind the same shapes. The plain
values (``Address``, ``Outgoing``) live in :mod:`bot.core.values` and the check verdict in
:mod:`sandbox.results`, below both the engine and the store; they are re-exported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from bot.content.schema import Drill, FactCheck
from bot.core.values import Action as Action
from bot.core.values import Address as Address
from bot.core.values import MessageKind as MessageKind
from bot.core.values import Outgoing as Outgoing
from sandbox.objectives import EvalContext, ObjectiveSpec
from sandbox.results import CheckResult as CheckResult


class Transport(Protocol):
    """Shows messages. ``key`` is unique per message, for idempotent re-delivery after a crash."""

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None: ...

    async def stream(self, address: Address, speaker: str, chunks: AsyncIterator[str]) -> str:
        """Show text as it arrives (edits at most once a second); return the full text."""
        ...


class Cluster(Protocol):
    """A learner's cluster, as the engine sees it."""

    async def evaluate(
        self, learner_id: str, objectives: Sequence[ObjectiveSpec], ctx: EvalContext
    ) -> CheckResult: ...

    async def run_drill(self, learner_id: str, drill: Drill) -> datetime:
        """Do what the story does to the cluster; return when it started."""
        ...

    async def measure(self, learner_id: str, fact: FactCheck) -> int | None:
        """A number from live state for a Think First answer, or None if unreadable."""
        ...

    async def apply(self, learner_id: str, manifests: Sequence[Path]) -> str:
        """Apply solution manifests (catch-up); return a one-line summary."""
        ...


@dataclass(frozen=True)
class VoiceTurn:
    """What the voice needs to answer in character. Learner text is data, never instructions."""

    purpose: Literal["answer", "judge"]
    learner_id: str
    learner_name: str
    scope: str  # transcript scope: "learner:<id>" or "mission:<id>"
    persona: str
    text: str  # the learner's words
    chapter_id: str
    chapter_title: str
    beat_id: str
    beat_text: str  # the question asked, or the current task's title and instructions
    intent: str = ""  # what a good Think First answer shows
    objectives: Sequence[tuple[str, bool, str]] = ()  # (title, passed, reason)
    profile: dict[str, str] = field(default_factory=dict)
    fact: str = ""  # e.g. "live cluster: 3 Ready nodes"
    hint: str = ""  # the next hint tier for the first open objective of the task
    has_cluster: bool = False  # the voice may read the learner's cluster with its tools
    guild: str | None = None  # server id, for per-server budgets


class Voice(Protocol):
    def reply(self, turn: VoiceTurn) -> AsyncIterator[str]:
        """Yield the reply in chunks. Never raises for API trouble: falls back to scripted lines."""
        ...
