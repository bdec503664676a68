"""The verdict of one check: objective results for one learner's cluster, or why it could
not be read. The engine's ``Cluster`` port returns it; it lives here so the sandbox, which
produces it, needs nothing from the engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.objectives import ObjectiveResult


@dataclass(frozen=True)
class CheckResult:
    """Objective results for one learner's cluster, or why the cluster could not be read."""

    results: Sequence[ObjectiveResult] = ()
    error: str | None = None

    @property
    def all_passed(self) -> bool:
        return self.error is None and bool(self.results) and all(r.passed for r in self.results)
