"""What the store keeps about learners' sandboxes: plain records, no Kubernetes client.

They live apart from :mod:`sandbox.backends` so the store can hold them without importing a
backend (and the Kubernetes client with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Phase = Literal["provisioning", "ready", "paused", "failed", "deleting", "spare", "waiting",
                "unreachable"]


@dataclass(frozen=True)
class SandboxRecord:
    """What the store keeps per learner's sandbox (no secrets)."""

    learner_id: str
    backend: str
    name: str
    phase: Phase
    created: float
    last_active: float
    guild: str | None = None
    expires_at: float | None = None
    warned: bool = False
    paused_at: float | None = None
    error: str = ""
    host: str = ""  # the host cluster that holds it ("" when there is only one)


@dataclass(frozen=True)
class WaitlistEntry:
    learner_id: str
    guild: str | None
    since: float
