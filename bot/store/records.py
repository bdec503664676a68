"""Plain records the store returns. No SQL here, so another database can return the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.core.values import Address, Outgoing, Pacing


@dataclass(frozen=True)
class Learner:
    id: str
    name: str
    profile: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mission:
    id: int
    address: Address
    guild: str | None
    parent_id: int | None
    pacing: Pacing
    quorum: float
    chapter: int
    beat: int
    emitted: bool  # the current beat's messages are already in the outbox
    state: str  # running | done | closed
    data: dict[str, Any]  # engine's small state: deferred questions, drill times, continues


@dataclass(frozen=True)
class Member:
    learner_id: str
    name: str
    joined: float
    last_active: float
    left: bool


@dataclass(frozen=True)
class OutboxItem:
    id: int
    mission_id: int
    message: Outgoing

    @property
    def key(self) -> str:
        return f"out-{self.id}"


@dataclass(frozen=True)
class ObjectiveStatus:
    objective_id: str
    passed: bool
    reason: str
    checked_at: float


@dataclass(frozen=True)
class TranscriptEntry:
    id: int
    role: str  # learner | crew
    speaker: str | None
    content: str
    tokens: int
    at: float
