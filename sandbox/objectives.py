"""Objective kinds: what a chapter asks the learner's cluster to show, and how it is judged.

An objective is data in a chapter file (``kind: ready_pods`` and its fields) and a pure
function here that judges it over a :class:`Snapshot` — plain JSON objects exactly as the
Kubernetes API returns them. Nothing in this module talks to a cluster.

Every spec names the resource kinds it reads (:meth:`ObjectiveBase.kinds`), so the sandbox
lists exactly those kinds, once each, per check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Kinds an objective may read. The sandbox knows how to LIST each of them.
ResourceKind = Literal[
    "Node",
    "Namespace",
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "StorageClass",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "Event",
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Spec):
    """Which objects an objective looks at: a kind, and optionally a name, namespace, labels."""

    kind: ResourceKind
    name: str | None = None
    namespace: str | None = Field(
        default=None, description="Namespace to look in; omit to accept any namespace."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels that must all match.")


class ObjectiveBase(_Spec):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Unique within the task.")
    title: str = Field(description="What the crew sees on the board, e.g. 'Backup pod running'.")
    reason: str = Field(
        description="Plain sentence shown when the objective fails; the evaluator adds specifics."
    )
    hints: tuple[str, str, str] = Field(
        description="Three tiers: where to look, what to look for, how close you are. Never the answer."
    )


class MatchObjective(ObjectiveBase):
    """Objects of ``target`` that contain ``fields`` (a partial spec, as kuttl asserts do)."""

    kind: Literal["match"]
    target: Target
    fields: dict[str, Any] = Field(default_factory=dict)
    min: int = 1
    max: int | None = None

    def kinds(self) -> set[str]:
        return {self.target.kind}


class ReadyPodsObjective(ObjectiveBase):
    """At least ``min`` Running and Ready pods with ``labels``; on distinct nodes if asked."""

    kind: Literal["ready_pods"]
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    name: str | None = None
    min: int = 1
    distinct_nodes: bool = Field(
        default=False,
        description="Require the pods on different nodes, as far as the cluster has Ready nodes.",
    )

    def kinds(self) -> set[str]:
        return {"Pod", "Node"} if self.distinct_nodes else {"Pod"}


class ConditionObjective(ObjectiveBase):
    """An object whose ``status.conditions`` has ``type`` with ``status``."""

    kind: Literal["condition"]
    target: Target
    type: str
    status: Literal["True", "False", "Unknown"] = "True"

    def kinds(self) -> set[str]:
        return {self.target.kind}


class NodesReadyObjective(ObjectiveBase):
    """At least ``min`` nodes report Ready."""

    kind: Literal["nodes_ready"]
    min: int = 1

    def kinds(self) -> set[str]:
        return {"Node"}


class RolloutObjective(ObjectiveBase):
    """A Deployment whose rollout finished: generation observed, updated = ready = desired."""

    kind: Literal["rollout_complete"]
    name: str
    namespace: str | None = None
    image: str | None = Field(default=None, description="Every container of the template runs this image.")
    min_replicas: int = 1

    def kinds(self) -> set[str]:
        return {"Deployment"}


class ServiceEndpointsObjective(ObjectiveBase):
    """A Service that selects ready pods (has ready endpoints)."""

    kind: Literal["service_endpoints"]
    name: str
    namespace: str | None = None
    min_ready: int = 1
    type: str | None = Field(default=None, description="Required spec.type, e.g. LoadBalancer.")

    def kinds(self) -> set[str]:
        return {"Service", "EndpointSlice"}


class PvcBoundObjective(ObjectiveBase):
    """A PersistentVolumeClaim that is Bound, and (optionally) mounted by a Running pod."""

    kind: Literal["pvc_bound"]
    name: str
    namespace: str | None = None
    mounted: bool = True
    storage_class: str | None = None

    def kinds(self) -> set[str]:
        return {"PersistentVolumeClaim", "Pod"} if self.mounted else {"PersistentVolumeClaim"}


class NamespaceObjective(ObjectiveBase):
    """Namespaces that exist, are Active, and carry ``labels``."""

    kind: Literal["namespaces"]
    names: list[str] = Field(min_length=1)
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels each namespace must carry; the value '{name}' means the namespace's own name.",
    )

    def kinds(self) -> set[str]:
        return {"Namespace"}


class NetworkPolicyObjective(ObjectiveBase):
    """A NetworkPolicy in ``namespace`` that selects all pods there (if asked) with these types."""

    kind: Literal["network_policy"]
    namespace: str
    name: str | None = None
    policy_types: list[Literal["Ingress", "Egress"]] = Field(default_factory=list)
    selects_all_pods: bool = True
    allows_from_namespace: str | None = Field(
        default=None, description="Ingress must admit only this namespace (by a namespaceSelector)."
    )

    def kinds(self) -> set[str]:
        return {"NetworkPolicy"}


class AutoscalerObjective(ObjectiveBase):
    """A HorizontalPodAutoscaler targeting ``deployment`` with the replica bounds given."""

    kind: Literal["autoscaler"]
    namespace: str | None = None
    deployment: str
    min_replicas: int | None = None
    max_replicas: int | None = None
    metrics: list[str] = Field(default_factory=list, description="Resource metric names, e.g. cpu.")
    able_to_scale: bool = Field(
        default=False, description="Require the AbleToScale and ScalingActive conditions True."
    )

    def kinds(self) -> set[str]:
        return {"HorizontalPodAutoscaler", "Deployment"}


class HealthyPodsObjective(ObjectiveBase):
    """No pod in scope is stuck: no ImagePullBackOff, ErrImagePull, CrashLoopBackOff and the like."""

    kind: Literal["no_failing_pods"]
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    def kinds(self) -> set[str]:
        return {"Pod"}


class RecoveredObjective(ObjectiveBase):
    """After a drill: a Deployment is back to all replicas Ready with pods created after the drill."""

    kind: Literal["recovered"]
    deployment: str
    namespace: str | None = None
    within_seconds: int = 180

    def kinds(self) -> set[str]:
        return {"Deployment", "Pod"}


ObjectiveSpec = Annotated[
    MatchObjective
    | ReadyPodsObjective
    | ConditionObjective
    | NodesReadyObjective
    | RolloutObjective
    | ServiceEndpointsObjective
    | PvcBoundObjective
    | NamespaceObjective
    | NetworkPolicyObjective
    | AutoscalerObjective
    | HealthyPodsObjective
    | RecoveredObjective,
    Field(discriminator="kind"),
]


@dataclass(frozen=True)
class Snapshot:
    """Objects listed from one cluster: kind → list of JSON objects as the API returned them."""

    objects: Mapping[str, list[dict[str, Any]]]
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects.get(kind, []))


@dataclass(frozen=True)
class EvalContext:
    """What an objective may need beyond the snapshot: when a drill on this task last ran."""

    drill_started_at: datetime | None = None


@dataclass(frozen=True)
class ObjectiveResult:
    id: str
    passed: bool
    reason: str  # empty when passed


def kinds_for(specs: Iterable[ObjectiveSpec]) -> set[str]:
    """The union of kinds a set of objectives reads: exactly what a snapshot must list."""
    out: set[str] = set()
    for spec in specs:
        out |= spec.kinds()
    return out
