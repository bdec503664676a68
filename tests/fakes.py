"""Fakes at the engine's seams: a recording transport, a scripted cluster, a canned voice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.content.course import Course, load_course
from bot.content.schema import Drill, FactCheck
from bot.engine.ports import Address, CheckResult, Outgoing, VoiceTurn
from sandbox.objectives import EvalContext, ObjectiveResult, ObjectiveSpec

FIXTURE = Path(__file__).parent / "fixtures" / "course"


def fixture_course() -> Course:
    return load_course(FIXTURE / "chapters", FIXTURE / "personas")


@dataclass
class RecordingTransport:
    """Keeps what was delivered; drops a re-delivery with a key it has seen (like a nonce)."""

    delivered: list[tuple[Address, Outgoing, str]] = field(default_factory=list)
    streamed: list[tuple[Address, str, str]] = field(default_factory=list)
    fail: bool = False

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
        if self.fail:
            raise ConnectionError("transport down")
        if any(k == key for _, _, k in self.delivered):
            return
        self.delivered.append((address, message, key))

    async def stream(self, address: Address, speaker: str, chunks: AsyncIterator[str]) -> str:
        text = "".join([c async for c in chunks])
        self.streamed.append((address, speaker, text))
        return text

    def texts(self, address: Address | None = None) -> list[str]:
        return [m.text for a, m, _ in self.delivered if address is None or a == address]

    def kinds(self, address: Address | None = None) -> list[str]:
        return [m.kind for a, m, _ in self.delivered if address is None or a == address]


@dataclass
class ScriptedCluster:
    """Objective results per learner, set by the test: ``passing[learner] = {objective ids}``."""

    passing: dict[str, set[str]] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)
    ready_nodes: int = 3
    drills: list[tuple[str, Drill]] = field(default_factory=list)
    applied: list[tuple[str, list[Path]]] = field(default_factory=list)
    checks: int = 0

    async def evaluate(
        self, learner_id: str, objectives: Sequence[ObjectiveSpec], ctx: EvalContext
    ) -> CheckResult:
        self.checks += 1
        if learner_id in self.unreachable:
            return CheckResult(error="Your cluster did not answer: is it running?")
        ok = self.passing.get(learner_id, set())
        return CheckResult(
            [ObjectiveResult(o.id, o.id in ok, "" if o.id in ok else o.reason) for o in objectives]
        )

    async def run_drill(self, learner_id: str, drill: Drill) -> datetime:
        self.drills.append((learner_id, drill))
        return datetime.now(UTC)

    async def measure(self, learner_id: str, fact: FactCheck) -> int | None:
        return self.ready_nodes

    async def apply(self, learner_id: str, manifests: Sequence[Path]) -> str:
        self.applied.append((learner_id, list(manifests)))
        return f"applied {len(manifests)} files"


@dataclass
class CannedVoice:
    text: str = "Noted, Chen."
    turns: list[VoiceTurn] = field(default_factory=list)

    async def reply(self, turn: VoiceTurn) -> AsyncIterator[str]:
        self.turns.append(turn)
        for word in self.text.split(" "):
            yield word + " "
