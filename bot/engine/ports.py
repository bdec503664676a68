"""The engine's three seams: a transport, a cluster, a voice — and the messages between them.

The engine imports nothing from Discord, Anthropic or Kubernetes. Adapters implement these
protocols; tests use recording fakes and emulated clusters behind the same shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from bot.content.schema import Drill, FactCheck
from sandbox.objectives import EvalContext, ObjectiveResult, ObjectiveSpec

MessageKind = Literal[
    "line",  # one paragraph of the story (scene, narration, stage or dialogue)
    "question",  # a Think First or profile question; ``choices`` may be set
    "task",  # instructions with manifests and the check/hint actions
    "review",  # the crew's assessment table (``rows``)
    "summary",  # headed lists (``sections``)
    "status",  # objective status after a check
    "hint",  # one hint tier for one objective
    "reply",  # the crew answering the learner (voice or scripted)
    "notice",  # out-of-story information (how to get a cluster, errors in input)
    "board",  # the crew board: one message, edited in place by the transport
    "progress",  # sandbox provisioning progress: one message, edited in place
]
Action = Literal["continue", "check", "hint", "manifest"]


@dataclass(frozen=True)
class Outgoing:
    """One message the engine hands to a transport, addressed to a mission."""

    kind: MessageKind
    text: str = ""
    speaker: str | None = None
    style: str = ""  # for lines: scene | narration | stage | dialogue
    actions: tuple[Action, ...] = ()
    attachments: tuple[str, ...] = ()  # manifest paths, relative to the course root
    private_to: str | None = None  # learner id: show only to them (ephemeral / DM)
    data: dict[str, Any] = field(default_factory=dict)  # rows, sections, choices, board

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "speaker": self.speaker,
            "style": self.style,
            "actions": list(self.actions),
            "attachments": list(self.attachments),
            "private_to": self.private_to,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Outgoing:
        return cls(
            kind=raw["kind"],
            text=raw.get("text", ""),
            speaker=raw.get("speaker"),
            style=raw.get("style", ""),
            actions=tuple(raw.get("actions", ())),
            attachments=tuple(raw.get("attachments", ())),
            private_to=raw.get("private_to"),
            data=raw.get("data", {}),
        )


@dataclass(frozen=True)
class Address:
    """Where a mission lives: a transport name and its own key (DM channel, channel, thread)."""

    transport: str  # "terminal" | "discord"
    kind: Literal["solo", "channel", "thread"]
    key: str


class Transport(Protocol):
    """Shows messages. ``key`` is unique per message, for idempotent re-delivery after a crash."""

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None: ...

    async def stream(self, address: Address, speaker: str, chunks: AsyncIterator[str]) -> str:
        """Show text as it arrives (edits at most once a second); return the full text."""
        ...


@dataclass(frozen=True)
class CheckResult:
    """Objective results for one learner's cluster, or why the cluster could not be read."""

    results: Sequence[ObjectiveResult] = ()
    error: str | None = None

    @property
    def all_passed(self) -> bool:
        return self.error is None and bool(self.results) and all(r.passed for r in self.results)


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
    has_cluster: bool = False  # the voice may read the learner's cluster with its tools
    guild: str | None = None  # server id, for per-server budgets


class Voice(Protocol):
    def reply(self, turn: VoiceTurn) -> AsyncIterator[str]:
        """Yield the reply in chunks. Never raises for API trouble: falls back to scripted lines."""
        ...
