"""The values every layer passes around: where a mission lives, what it says, how it paces.

They sit below the engine and the store so that both (and the transports) can use them
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Pacing = Literal["together", "quorum", "self-paced"]
PACINGS: tuple[Pacing, ...] = ("together", "quorum", "self-paced")

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
