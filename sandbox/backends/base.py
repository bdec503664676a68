"""The sandbox backend interface: where a learner's Kubernetes cluster comes from.

A backend knows how to make, reach, pause and remove one cluster per learner. It keeps no
policy (idle times, TTLs, caps, the warm pool): :class:`sandbox.lifecycle.SandboxManager`
decides those and calls the backend. Two backends exist:

* :class:`sandbox.backends.kubeconfig.KubeconfigBackend` — a cluster the learner brings, used
  as is (``kepler play``);
* :class:`sandbox.backends.vcluster.VClusterBackend` — a vcluster per learner in its own
  namespace of a host cluster.

``client_for`` and ``kubeconfig_for`` are coroutines: reaching a vcluster means reading its
kubeconfig from a host secret. The kubeconfig is a credential; it is returned to the caller
only and never logged.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from kubernetes import client

# Re-exported: the records live in sandbox.records so the store needs no backend.
from sandbox.records import Phase
from sandbox.records import SandboxRecord as SandboxRecord
from sandbox.records import WaitlistEntry as WaitlistEntry

Step = Literal["queued", "namespace", "control-plane", "api", "ready", "failed", "waiting"]
STEPS: tuple[Step, ...] = ("namespace", "control-plane", "api", "ready")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of bringing a sandbox up; ``done`` on the last (ready or failed)."""

    learner_id: str
    step: Step
    message: str
    done: bool = False
    position: int | None = None  # place in the waitlist, for step "waiting"

    @property
    def failed(self) -> bool:
        return self.step == "failed"


@dataclass(frozen=True)
class SandboxInfo:
    """A sandbox as the backend sees it. ``learner_id`` is None for an unclaimed spare."""

    learner_id: str | None
    name: str  # host namespace (vcluster) or context name (kubeconfig)
    phase: Phase
    created: float  # epoch seconds
    last_active: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    host: str = ""  # the host cluster it lives on ("" when there is only one)

    def age(self, now: float) -> float:
        return max(0.0, now - self.created)

    def idle(self, now: float) -> float | None:
        return None if self.last_active is None else max(0.0, now - self.last_active)


# --- errors --------------------------------------------------------------------------------


class SandboxError(Exception):
    """A sandbox operation failed; ``str()`` is safe to show an operator (no credentials)."""

    transient = False


class SandboxUnavailable(SandboxError):
    """The host or the learner's cluster did not answer (connection refused, timeout, 5xx)."""

    transient = True


class SandboxForbidden(SandboxError):
    """The bot's identity lacks a right it needs (see deploy/host-rbac.yaml)."""


class SandboxNotFound(SandboxError):
    """No sandbox for this learner."""


class SandboxRefused(SandboxError):
    """The backend does not do this (e.g. deleting a cluster the learner brought)."""


class CapacityExceeded(SandboxError):
    """No room: the learner is on the waitlist."""


def learner_hash(learner_id: str) -> str:
    """A short, stable, label-safe name for a learner (ids may be long or contain any text)."""
    return hashlib.sha256(learner_id.encode()).hexdigest()[:16]


class SandboxBackend(abc.ABC):
    """Makes and reaches learners' clusters. Every method is safe to call again (idempotent)."""

    name: str = "base"
    supports_spares: bool = False

    @abc.abstractmethod
    def provision(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        """Bring the learner's cluster up: namespace → control plane → API reachable → ready."""

    @abc.abstractmethod
    async def client_for(self, learner_id: str) -> client.ApiClient:
        """An API client for the learner's cluster (the bot's own use: checks, catch-up)."""

    @abc.abstractmethod
    async def kubeconfig_for(self, learner_id: str) -> str:
        """The kubeconfig the learner uses (YAML). Show it to that learner only."""

    @abc.abstractmethod
    async def pause(self, learner_id: str) -> None: ...

    @abc.abstractmethod
    def resume(self, learner_id: str) -> AsyncIterator[ProgressEvent]: ...

    @abc.abstractmethod
    def reset(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        """Replace the learner's cluster by a fresh one."""

    @abc.abstractmethod
    async def delete(self, learner_id: str) -> None: ...

    @abc.abstractmethod
    async def list(self) -> list[SandboxInfo]: ...

    # Warm pool (backends with ``supports_spares``).

    def provision_spare(self) -> AsyncIterator[ProgressEvent]:
        raise SandboxRefused(f"the {self.name} backend keeps no spares")

    async def claim_spare(self, learner_id: str) -> SandboxInfo | None:
        """Give a ready spare to ``learner_id``; None if there is none."""
        return None

    async def delete_named(self, name: str) -> None:
        """Remove a sandbox by its name (orphans and spares, which have no learner)."""
        raise SandboxRefused(f"the {self.name} backend deletes nothing")

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""
