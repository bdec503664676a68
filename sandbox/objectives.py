"""Objective kinds: what a chapter asks the learner's cluster to show, and how it is judged.

An objective is data in a chapter file (``kind: ready_pods`` and its fields) and a pure
function here that judges it over a :class:`Snapshot` — plain JSON objects exactly as the
Kubernetes API returns them. Nothing in this module talks to a cluster.

Every spec names the resource kinds it reads (:meth:`ObjectiveBase.kinds`), so the sandbox
lists exactly those kinds, once each, per check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
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
        # Pods: an endpoint only carries traffic if its pod declares the port it is sent to.
        return {"Service", "EndpointSlice", "Pod"}


class PvcBoundObjective(ObjectiveBase):
    """A PersistentVolumeClaim that is Bound, and (optionally) mounted by a Running pod."""

    kind: Literal["pvc_bound"]
    name: str
    namespace: str | None = None
    mounted: bool = True
    storage_class: str | None = None

    def kinds(self) -> set[str]:
        # Events explain a Pending claim (no such class, waiting for a consumer...).
        base = {"PersistentVolumeClaim", "Event"}
        return base | {"Pod"} if self.mounted else base


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
        # Namespaces' labels tell which namespaces a namespaceSelector admits.
        return {"NetworkPolicy", "Namespace"} if self.allows_from_namespace else {"NetworkPolicy"}


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


class ResourcesObjective(ObjectiveBase):
    """Every container of the pods in scope sets CPU and memory requests and limits, with
    limits at least the requests, and none has been killed for exceeding its memory limit."""

    kind: Literal["resources_set"]
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    name: str | None = None
    resources: list[str] = Field(default_factory=lambda: ["cpu", "memory"])

    def kinds(self) -> set[str]:
        return {"Pod"}


class ReplacedPodObjective(ObjectiveBase):
    """A Ready pod ``name`` that replaced an earlier pod of the same name: the cluster's events
    still name the earlier pod's uid. With ``claim``, the new pod mounts that claim, so what it
    reads there was written by its predecessor (data that survived a pod restart)."""

    kind: Literal["pod_replaced"]
    name: str
    namespace: str | None = None
    claim: str | None = None

    def kinds(self) -> set[str]:
        return {"Pod", "Event"}


class ScaledUpObjective(ObjectiveBase):
    """The autoscaler on ``deployment`` has scaled it up because a metric was above target
    (the HPA controller's SuccessfulRescale event), i.e. the load test really drove it."""

    kind: Literal["scaled_up"]
    namespace: str | None = None
    deployment: str

    def kinds(self) -> set[str]:
        return {"HorizontalPodAutoscaler", "Event"}


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
    | RecoveredObjective
    | ResourcesObjective
    | ReplacedPodObjective
    | ScaledUpObjective,
    Field(discriminator="kind"),
]


@dataclass(frozen=True)
class Snapshot:
    """Objects listed from one cluster: kind → list of JSON objects as the API returned them."""

    objects: Mapping[str, list[dict[str, Any]]]
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # kind → the LIST's metadata.resourceVersion: where a watch for changes starts from
    versions: Mapping[str, str] = field(default_factory=dict)

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
    reason: str  # empty when passed: the spec's reason, then " — " and the specifics
    detail: str = ""  # the specifics alone (also set on a pass, e.g. "3 of 3 pods Ready")


CLUSTER_SCOPED_KINDS = frozenset({"Node", "Namespace", "PersistentVolume", "StorageClass"})


def unscoped(spec: ObjectiveSpec) -> bool:
    """True when ``spec`` judges namespaced objects without naming their namespace.

    The course's rule: an objective names the namespace the chapter tells the learner to use,
    so the same work in another namespace fails with a reason naming both.
    """
    target = getattr(spec, "target", None)
    if target is not None:
        return target.kind not in CLUSTER_SCOPED_KINDS and target.namespace is None
    return "namespace" in type(spec).model_fields and getattr(spec, "namespace", None) is None


def kinds_for(specs: Iterable[ObjectiveSpec]) -> set[str]:
    """The union of kinds a set of objectives reads: exactly what a snapshot must list."""
    out: set[str] = set()
    for spec in specs:
        out |= spec.kinds()
    return out


# --- evaluation ------------------------------------------------------------------------------
#
# Pure functions over plain API JSON. Each judge returns (passed, detail); ``evaluate`` adds
# the spec's own sentence. An empty scope always fails: nothing there is never "all good".

Obj = dict[str, Any]
Verdict = tuple[bool, str]

FAILING_WAIT_REASONS = frozenset({
    "ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError",
    "InvalidImageName", "CreateContainerError", "RunContainerError", "ErrImageNeverPull",
})


def evaluate(spec: ObjectiveSpec, snapshot: Snapshot, ctx: EvalContext | None = None
             ) -> ObjectiveResult:
    """Judge one objective over a snapshot."""
    judge = _JUDGES[type(spec)]
    passed, detail = judge(spec, snapshot, ctx or EvalContext())
    reason = "" if passed else (f"{spec.reason} — {detail}" if detail else spec.reason)
    return ObjectiveResult(spec.id, passed, reason, detail)


def evaluate_all(specs: Iterable[ObjectiveSpec], snapshot: Snapshot,
                 ctx: EvalContext | None = None) -> list[ObjectiveResult]:
    return [evaluate(s, snapshot, ctx) for s in specs]


# --- object helpers --------------------------------------------------------------------------


def _n(count: int, word: str) -> str:
    """'1 pod', '3 pods': counts read as English, never 'pod(s)'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _name(o: Obj) -> str:
    return str(_meta(o).get("name", ""))


def _ns(o: Obj) -> str:
    return str(_meta(o).get("namespace", ""))


def _labels(o: Obj) -> dict[str, str]:
    return _meta(o).get("labels") or {}


def _deleting(o: Obj) -> bool:
    return bool(_meta(o).get("deletionTimestamp"))


def _cond(o: Obj, type_: str) -> Obj | None:
    for c in (o.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def _cond_true(o: Obj, type_: str) -> bool:
    c = _cond(o, type_)
    return c is not None and c.get("status") == "True"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _sel(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _scope(kind: str, namespace: str | None = None, labels: Mapping[str, str] | None = None,
           name: str | None = None) -> str:
    """Human words for a scope: 'Pods with app=x in namespace y'."""
    out = f"{kind}s" if name is None else f"{kind} {name}"
    if labels:
        out += f" with {_sel(labels)}"
    if namespace:
        out += f" in namespace {namespace}"
    return out


def _select(objs: Iterable[Obj], namespace: str | None = None,
            labels: Mapping[str, str] | None = None, name: str | None = None) -> list[Obj]:
    out = []
    for o in objs:
        if namespace is not None and _ns(o) != namespace:
            continue
        if name is not None and _name(o) != name:
            continue
        ls = _labels(o)
        if labels and any(ls.get(k) != v for k, v in labels.items()):
            continue
        out.append(o)
    return out


def _find_named(snapshot: Snapshot, kind: str, name: str, namespace: str | None
                ) -> tuple[Obj | None, str]:
    """The object, or None and why: missing, or found only in another namespace."""
    objs = snapshot.of(kind)
    found = _select(objs, namespace, None, name)
    if found:
        return found[0], ""
    elsewhere = sorted({_ns(o) for o in _select(objs, None, None, name)})
    if elsewhere and namespace:
        return None, f"{kind} {name} is in namespace {', '.join(elsewhere)}, not {namespace}"
    where = f" in namespace {namespace}" if namespace else ""
    return None, f"no {kind} named {name}{where}"


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against labels; {} selects all."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --- partial matching --------------------------------------------------------------------------

def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ("500m", "250u", "1e3", "1Gi", 2) as a Decimal, or None.

    ``kubernetes.utils.parse_quantity`` does the parsing (every suffix and exponent the API
    accepts); it is imported on first use, because importing the client takes seconds and
    ``kepler lint`` never compares a quantity."""
    from kubernetes.utils.quantity import parse_quantity

    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(parse_quantity(str(value).strip()))
    except (ValueError, TypeError, ArithmeticError):
        return None


def _scalar_eq(expected: Any, actual: Any) -> bool:
    if expected == actual and type(expected) is type(actual):
        return True
    if isinstance(expected, bool) or isinstance(actual, bool) or actual is None:
        return expected == actual
    if str(expected) == str(actual):
        return True
    a, b = quantity(expected), quantity(actual)
    return a is not None and a == b


def mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where ``actual`` fails to contain the partial spec ``expected``; None when it does.

    Dicts match as subsets, lists when each expected element matches a distinct actual
    element, scalars when equal (numbers and quantities compared after normalising).
    """
    where = path or "object"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where} is {_show(actual)}, expected an object"
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual and value is not None:
                return f"{sub} is missing"
            if (why := mismatch(value, actual.get(key), sub)) is not None:
                return why
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{where} is {_show(actual)}, expected a list"
        if _assign(expected, actual, 0, set()):
            return None
        for item in expected:
            if not any(mismatch(item, a) is None for a in actual):
                if len(actual) == 1:
                    return mismatch(item, actual[0], f"{where}[0]")
                return f"{where} has no element matching {_show(item)}"
        return f"{where} has too few elements matching {_show(expected)}"
    if _scalar_eq(expected, actual):
        return None
    return f"{where} is {_show(actual)}, expected {_show(expected)}"


def _assign(expected: list[Any], actual: list[Any], i: int, used: set[int]) -> bool:
    """Backtracking: expected[i:] can each take a distinct unused actual element."""
    if i == len(expected):
        return True
    for j, a in enumerate(actual):
        if j not in used and mismatch(expected[i], a) is None:
            used.add(j)
            if _assign(expected, actual, i + 1, used):
                return True
            used.discard(j)
    return False


def _show(v: Any) -> str:
    if v is None:
        return "missing"
    s = json.dumps(v, separators=(", ", ": ")) if isinstance(v, dict | list) else repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


# --- pods ----------------------------------------------------------------------------------


def pod_ready(p: Obj) -> bool:
    """Running, Ready condition True, and not being deleted."""
    return ((p.get("status") or {}).get("phase") == "Running" and _cond_true(p, "Ready")
            and not _deleting(p))


def pod_problem(p: Obj) -> str | None:
    """Why a pod is stuck (a failing waiting reason on any container), or None."""
    status = p.get("status") or {}
    pspec = p.get("spec") or {}
    images = {c.get("name"): c.get("image") for c in
              [*(pspec.get("initContainers") or []), *(pspec.get("containers") or [])]}
    for key, label in (("initContainerStatuses", "init container"),
                       ("containerStatuses", "container")):
        for cs in status.get(key) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in FAILING_WAIT_REASONS:
                image = cs.get("image") or images.get(cs.get("name")) or "?"
                return (f"Pod {_name(p)}: {label} {cs.get('name')} is waiting: {reason} "
                        f"(image {image})")
    return None


def _not_ready_why(p: Obj) -> str:
    if _deleting(p):
        return f"Pod {_name(p)} is being deleted"
    if (problem := pod_problem(p)) is not None:
        return problem
    phase = (p.get("status") or {}).get("phase", "Unknown")
    if phase != "Running":
        sched = _cond(p, "PodScheduled")
        if sched and sched.get("status") == "False" and sched.get("message"):
            return f"Pod {_name(p)} is {phase}: {sched['message']}"
        return f"Pod {_name(p)} is {phase}"
    ready = _cond(p, "Ready") or {}
    msg = ready.get("message") or ready.get("reason") or "not Ready"
    return f"Pod {_name(p)} is Running but not Ready ({msg})"


def _ready_nodes(snapshot: Snapshot) -> list[Obj]:
    return [n for n in snapshot.of("Node") if _cond_true(n, "Ready")]


# --- judges ----------------------------------------------------------------------------------


def _judge_match(spec: MatchObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    t = spec.target
    scope = _select(snap.of(t.kind), t.namespace, t.labels, t.name)
    if not scope:
        if t.name:
            _, why = _find_named(snap, t.kind, t.name, t.namespace)
            if t.labels and _select(snap.of(t.kind), t.namespace, None, t.name):
                why = f"{t.kind} {t.name} does not carry {_sel(t.labels)}"
            return False, why
        return False, f"no {_scope(t.kind, t.namespace, t.labels)}"
    good = [o for o in scope if mismatch(spec.fields, o) is None]
    if len(good) < spec.min:
        bad = next(o for o in scope if o not in good)
        why = mismatch(spec.fields, bad) or ""
        head = (f"{len(good)} of {spec.min} required {t.kind}s match; "
                if spec.min > 1 or len(scope) > 1 else "")
        return False, f"{head}{t.kind} {_name(bad)}: {why}"
    if spec.max is not None and len(good) > spec.max:
        return False, f"{len(good)} {t.kind}s match, at most {spec.max} allowed"
    return True, f"{_n(len(good), t.kind)} match"


def _elsewhere(snap: Snapshot, kind: str, namespace: str | None,
               labels: Mapping[str, str] | None, name: str | None) -> str:
    """' (found in namespace x)' when the scope exists only in other namespaces."""
    if namespace is None:
        return ""
    others = sorted({_ns(o) for o in _select(snap.of(kind), None, labels, name)} - {namespace})
    return f" (found in namespace {', '.join(others)} instead)" if others else ""


def _judge_ready_pods(spec: ReadyPodsObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    pods = _select(snap.of("Pod"), spec.namespace, spec.labels, spec.name)
    what = _scope("Pod", spec.namespace, spec.labels, spec.name)
    if not pods:
        return False, f"no {what}" + _elsewhere(snap, "Pod", spec.namespace, spec.labels,
                                                spec.name)
    ready = [p for p in pods if pod_ready(p)]
    label = f"pods with {_sel(spec.labels)}" if spec.labels else (
        f"pod {spec.name}" if spec.name else "pods")
    if len(ready) < spec.min:
        detail = f"{len(ready)} of {spec.min} {label} Ready"
        if spec.namespace:
            detail += f" in namespace {spec.namespace}"
        laggard = next((p for p in pods if not pod_ready(p)), None)
        if laggard is not None:
            detail += f"; {_not_ready_why(laggard)}"
        return False, detail
    if spec.distinct_nodes:
        need = max(1, min(spec.min, len(_ready_nodes(snap))))
        nodes = {n for p in ready if (n := (p.get("spec") or {}).get("nodeName"))}
        if len(nodes) < need:
            return False, (f"the {len(ready)} Ready {label} run on {_n(len(nodes), 'node')} "
                           f"({', '.join(sorted(nodes))}); need {need} distinct nodes")
    return True, f"{len(ready)} {label} Ready"


def _judge_condition(spec: ConditionObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    t = spec.target
    scope = _select(snap.of(t.kind), t.namespace, t.labels, t.name)
    if not scope:
        if t.name:
            return False, _find_named(snap, t.kind, t.name, t.namespace)[1]
        return False, f"no {_scope(t.kind, t.namespace, t.labels)}"
    for o in scope:
        c = _cond(o, spec.type)
        if c is None:
            return False, f"{t.kind} {_name(o)} has no {spec.type} condition yet"
        if c.get("status") != spec.status:
            extra = ": ".join(x for x in (c.get("reason"), c.get("message")) if x)
            return False, (f"{t.kind} {_name(o)}: {spec.type} is {c.get('status')}"
                           + (f" ({extra})" if extra else ""))
    return True, f"{spec.type}={spec.status} on {_n(len(scope), t.kind)}"


def _judge_nodes_ready(spec: NodesReadyObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    nodes = snap.of("Node")
    if not nodes:
        return False, "the cluster reports no nodes"
    ready = _ready_nodes(snap)
    # A cordoned node is Ready but takes no new services: not operational for the story.
    cordoned = [n for n in ready if (n.get("spec") or {}).get("unschedulable")]
    usable = [n for n in ready if n not in cordoned]
    if len(usable) < spec.min:
        down = [_name(n) for n in nodes if n not in ready]
        extra = [f"not Ready: {', '.join(down)}"] if down else []
        if cordoned:
            extra.append("cordoned (SchedulingDisabled): "
                         + ", ".join(_name(n) for n in cordoned))
        return False, (f"{len(usable)} of {spec.min} nodes Ready and schedulable"
                       + (f" ({'; '.join(extra)})" if extra else ""))
    return True, f"{_n(len(usable), 'node')} Ready"


def _normalise_image(image: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if image.startswith(prefix):
            image = image[len(prefix):]
            break
    image = image.removeprefix("library/")
    last = image.rsplit("/", 1)[-1]
    return image if (":" in last or "@" in last) else image + ":latest"


def _judge_rollout(spec: RolloutObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    d, why = _find_named(snap, "Deployment", spec.name, spec.namespace)
    if d is None:
        return False, why
    dspec, status = d.get("spec") or {}, d.get("status") or {}
    name = f"Deployment {spec.name}"
    if spec.image:
        for c in ((dspec.get("template") or {}).get("spec") or {}).get("containers") or []:
            if _normalise_image(str(c.get("image", ""))) != _normalise_image(spec.image):
                return False, (f"{name}: container {c.get('name')} runs image {c.get('image')}, "
                               f"expected {spec.image}")
    prog = _cond(d, "Progressing")
    if prog and prog.get("reason") == "ProgressDeadlineExceeded":
        return False, (f"{name}: rollout is stuck: ProgressDeadlineExceeded"
                       + (f" ({prog['message']})" if prog.get("message") else ""))
    gen, observed = _meta(d).get("generation", 0), status.get("observedGeneration", 0)
    if observed < gen:
        return False, f"{name}: the controller has not yet seen generation {gen} (at {observed})"
    desired = dspec.get("replicas", 1)
    if desired < spec.min_replicas:
        return False, f"{name} wants {desired} replicas; at least {spec.min_replicas} needed"
    counts = {k: status.get(f"{k}Replicas", 0) for k in ("updated", "ready", "available")}
    total = status.get("replicas", 0)
    if any(v != desired for v in counts.values()) or total > desired:
        parts = ", ".join(f"{v} {k}" for k, v in counts.items())
        old = f"; {total - counts['updated']} old replicas still running" if (
            total > counts["updated"]) else ""
        return False, f"{name}: {parts} of {desired} replicas{old}"
    return True, f"{name}: {desired} of {desired} replicas updated and available"


def _declared_ports(pod: Obj) -> list[Obj]:
    """Every port a pod's containers declare (with protocol defaulted to TCP)."""
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for port in c.get("ports") or []:
            out.append({**port, "protocol": port.get("protocol", "TCP")})
    return out


def _port_problem(svc_port: Obj, pod: Obj) -> str | None:
    """Why traffic for ``svc_port`` reaches nothing in ``pod``: the target port (a number or a
    named port) is not one its containers declare. None when it is."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    protocol = svc_port.get("protocol", "TCP")
    declared = [p for p in _declared_ports(pod) if p["protocol"] == protocol]
    if isinstance(target, str) and not target.isdigit():
        if any(p.get("name") == target for p in declared):
            return None
        what = f"no container port named {target}"
    else:
        if any(str(p.get("containerPort")) == str(target) for p in declared):
            return None
        what = f"no container listening on port {target}"
    have = ", ".join(
        f"{p.get('containerPort')}" + (f" ({p['name']})" if p.get("name") else "")
        for p in declared) or "none"
    return f"Pod {_name(pod)} has {what} (it declares {have})"


def _judge_service(spec: ServiceEndpointsObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    svc, why = _find_named(snap, "Service", spec.name, spec.namespace)
    if svc is None:
        return False, why
    sspec = svc.get("spec") or {}
    name = f"Service {spec.name}"
    if spec.type and sspec.get("type", "ClusterIP") != spec.type:
        return False, f"{name} is type {sspec.get('type', 'ClusterIP')}, expected {spec.type}"
    slices = [s for s in snap.of("EndpointSlice") if _ns(s) == _ns(svc)
              and _labels(s).get("kubernetes.io/service-name") == spec.name]
    pods = [p for p in snap.of("Pod") if _ns(p) == _ns(svc)]
    by_uid = {_meta(p).get("uid"): p for p in pods if _meta(p).get("uid")}
    by_name = {_name(p): p for p in pods}
    selector = sspec.get("selector") or {}
    seen: set[str] = set()
    deaf: list[str] = []
    total = 0
    for s in slices:
        for ep in s.get("endpoints") or []:
            total += 1
            # a missing "ready" means ready (API contract)
            if (ep.get("conditions") or {}).get("ready", True) is False:
                continue
            ref = ep.get("targetRef") or {}
            key = ref.get("uid") or ",".join(ep.get("addresses") or [])
            pod = by_uid.get(ref.get("uid")) or by_name.get(ref.get("name", ""))
            if pod is not None:
                # A real cluster fills endpoints for a numeric targetPort whether or not
                # anything listens there: the container must declare the port.
                problems = [x for port in sspec.get("ports") or []
                            if (x := _port_problem(port, pod)) is not None]
                if problems:
                    deaf.append(problems[0])
                    continue
            seen.add(key)
    if len(seen) < spec.min_ready:
        if deaf:
            target = ", ".join(str(p.get("targetPort", p.get("port")))
                               for p in sspec.get("ports") or [])
            return False, (f"{name} sends traffic to targetPort {target}, but {deaf[0]}"
                           + (f" (and {_n(len(deaf) - 1, 'more pod')})" if len(deaf) > 1 else ""))
        if not selector and not total:
            return False, f"{name} has no selector, so it selects no pods"
        if not total:
            matching = [p for p in pods if selector_matches({"matchLabels": selector}, _labels(p))]
            if not matching:
                return False, f"{name} selects no pods (selector {_sel(selector)})"
            problems = [x for p in matching if pod_ready(p) for port in sspec.get("ports") or []
                        if (x := _port_problem(port, p)) is not None]
            if problems:
                return False, f"{name} cannot route to its pods: {problems[0]}"
            return False, (f"{name}: selector {_sel(selector)} matches {_n(len(matching), 'pod')}, "
                           "but none is a ready endpoint yet")
        return False, f"{name}: {len(seen)} of {spec.min_ready} endpoints ready ({total} in all)"
    return True, f"{name}: {len(seen)} ready endpoints"


def _judge_pvc(spec: PvcBoundObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    claim, why = _find_named(snap, "PersistentVolumeClaim", spec.name, spec.namespace)
    if claim is None:
        return False, why
    name = f"PersistentVolumeClaim {spec.name}"
    cls = (claim.get("spec") or {}).get("storageClassName")
    if spec.storage_class and cls != spec.storage_class:
        return False, f"{name} uses storage class {cls or '(none)'}, expected {spec.storage_class}"
    phase = (claim.get("status") or {}).get("phase", "Pending")
    if phase != "Bound":
        return False, f"{name} is {phase}" + _pvc_why(claim, snap)
    if spec.mounted:
        users = [p for p in snap.of("Pod") if _ns(p) == _ns(claim) and any(
            ((v.get("persistentVolumeClaim") or {}).get("claimName") == spec.name)
            for v in (p.get("spec") or {}).get("volumes") or [])]
        running = [p for p in users if (p.get("status") or {}).get("phase") == "Running"
                   and not _deleting(p)]
        if not running:
            if users:
                return False, f"{name} is Bound but its pod is not Running: " + _not_ready_why(
                    users[0])
            return False, f"{name} is Bound but no Running pod mounts it"
        return True, f"{name} is Bound and mounted by Pod {_name(running[0])}"
    return True, f"{name} is Bound"


def _pvc_why(claim: Obj, snap: Snapshot) -> str:
    for c in (claim.get("status") or {}).get("conditions") or []:
        if c.get("message"):
            return f": {c['message']}"
    uid = _meta(claim).get("uid")
    events = [e for e in snap.of("Event")
              if (e.get("involvedObject") or {}).get("kind") == "PersistentVolumeClaim"
              and ((e.get("involvedObject") or {}).get("uid") == uid
                   or ((e.get("involvedObject") or {}).get("name") == _name(claim)
                       and (e.get("involvedObject") or {}).get("namespace") == _ns(claim)))]
    if not events:
        return ""
    last = max(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return f": {last.get('reason', '')}: {last.get('message', '')}".rstrip(": ")


def _judge_namespaces(spec: NamespaceObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    by_name = {_name(n): n for n in snap.of("Namespace")}
    problems = []
    for name in spec.names:
        ns = by_name.get(name)
        if ns is None:
            problems.append(f"namespace {name} does not exist")
            continue
        phase = (ns.get("status") or {}).get("phase", "Active")
        if phase != "Active":
            problems.append(f"namespace {name} is {phase}")
        labels = _labels(ns)
        for k, v in spec.labels.items():
            want = name if v == "{name}" else v
            if labels.get(k) != want:
                have = f" (has {k}={labels[k]})" if k in labels else ""
                problems.append(f"namespace {name} lacks label {k}={want}{have}")
    if problems:
        return False, "; ".join(problems)
    return True, f"{_n(len(spec.names), 'namespace')} ready"


def _policy_types(p: Obj) -> set[str]:
    pspec = p.get("spec") or {}
    if pspec.get("policyTypes"):
        return set(pspec["policyTypes"])
    return {"Ingress"} | ({"Egress"} if pspec.get("egress") else set())


def _policy_problem(spec: NetworkPolicyObjective, p: Obj, snap: Snapshot) -> str | None:
    pspec = p.get("spec") or {}
    name = f"NetworkPolicy {_name(p)}"
    if spec.selects_all_pods:
        sel = pspec.get("podSelector")
        if sel is None or sel.get("matchLabels") or sel.get("matchExpressions"):
            return f"{name} selects only some pods (podSelector {_show(sel)}), not all"
    missing = [t for t in spec.policy_types if t not in _policy_types(p)]
    if missing:
        return f"{name} has policyTypes {sorted(_policy_types(p))}, missing {', '.join(missing)}"
    if spec.allows_from_namespace:
        return _ingress_problem(name, _ns(p), pspec, spec.allows_from_namespace, snap)
    return None


def _ingress_problem(name: str, own_ns: str, pspec: Obj, allowed: str, snap: Snapshot
                     ) -> str | None:
    """Ingress must admit ``allowed`` (by namespaceSelector) and no other namespace."""
    namespaces = {_name(n): _labels(n) for n in snap.of("Namespace")}
    if allowed not in namespaces:
        namespaces[allowed] = {"kubernetes.io/metadata.name": allowed}
    admits_allowed = False
    for rule in pspec.get("ingress") or []:
        peers = rule.get("from")
        if not peers:
            return f"{name} has an ingress rule without 'from', which admits every namespace"
        for peer in peers:
            if "ipBlock" in peer:
                return f"{name} admits an ipBlock, not only namespace {allowed}"
            ns_sel = peer.get("namespaceSelector")
            if ns_sel is None:
                admitted = {own_ns}
            else:
                admitted = {n for n, ls in namespaces.items() if selector_matches(ns_sel, ls)}
            if allowed in admitted:
                admits_allowed = True
            others = sorted(admitted - {allowed})
            if others:
                noun = "namespace" if len(others) == 1 else "namespaces"
                return f"{name} also admits {noun} {', '.join(others)}"
    if not admits_allowed:
        return f"{name} does not admit ingress from namespace {allowed} (no matching namespaceSelector)"
    return None


def _judge_network_policy(spec: NetworkPolicyObjective, snap: Snapshot, ctx: EvalContext
                          ) -> Verdict:
    if spec.name:
        p, why = _find_named(snap, "NetworkPolicy", spec.name, spec.namespace)
        if p is None:
            return False, why
        candidates = [p]
    else:
        candidates = _select(snap.of("NetworkPolicy"), spec.namespace)
        if not candidates:
            return False, f"no NetworkPolicy in namespace {spec.namespace}"
    problems = [_policy_problem(spec, p, snap) for p in candidates]
    for p, problem in zip(candidates, problems, strict=True):
        if problem is None:
            return True, f"NetworkPolicy {_name(p)} in namespace {spec.namespace}"
    return False, str(problems[0])


def _judge_autoscaler(spec: AutoscalerObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    hpas = _select(snap.of("HorizontalPodAutoscaler"), spec.namespace)
    where = f" in namespace {spec.namespace}" if spec.namespace else ""
    if not hpas:
        return False, (f"no HorizontalPodAutoscaler{where}"
                       + _elsewhere(snap, "HorizontalPodAutoscaler", spec.namespace, None, None))

    def target(h: Obj) -> Obj:
        return (h.get("spec") or {}).get("scaleTargetRef") or {}

    mine = [h for h in hpas if target(h).get("kind") == "Deployment"
            and target(h).get("name") == spec.deployment]
    if not mine:
        h = hpas[0]
        return False, (f"HorizontalPodAutoscaler {_name(h)} targets {target(h).get('kind')} "
                       f"{target(h).get('name')}, not Deployment {spec.deployment}")
    h = mine[0]
    name = f"HorizontalPodAutoscaler {_name(h)}"
    if not _select(snap.of("Deployment"), _ns(h), None, spec.deployment):
        return False, f"{name} targets Deployment {spec.deployment}, which does not exist"
    hspec = h.get("spec") or {}
    lo, hi = hspec.get("minReplicas", 1), hspec.get("maxReplicas")
    if spec.min_replicas is not None and lo != spec.min_replicas:
        return False, f"{name} has minReplicas {lo}, expected {spec.min_replicas}"
    if spec.max_replicas is not None and hi != spec.max_replicas:
        return False, f"{name} has maxReplicas {hi}, expected {spec.max_replicas}"
    have = {(m.get("resource") or m.get("containerResource") or {}).get("name")
            for m in hspec.get("metrics") or []}
    missing = [m for m in spec.metrics if m not in have]
    if missing:
        return False, f"{name} has no {', '.join(missing)} metric"
    if spec.able_to_scale:
        for ctype in ("AbleToScale", "ScalingActive"):
            c = _cond(h, ctype)
            if c is None:
                return False, f"{name}: no {ctype} condition yet (the controller has not run)"
            if c.get("status") != "True":
                extra = ": ".join(x for x in (c.get("reason"), c.get("message")) if x)
                return False, f"{name}: {ctype} is {c.get('status')} ({extra})"
    return True, f"{name} scales Deployment {spec.deployment} {lo}-{hi}"


def _judge_healthy(spec: HealthyPodsObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    pods = _select(snap.of("Pod"), spec.namespace, spec.labels)
    if not pods:
        return False, (f"no {_scope('Pod', spec.namespace, spec.labels)}"
                       + _elsewhere(snap, "Pod", spec.namespace, spec.labels, None))
    problems = [x for p in pods if (x := pod_problem(p)) is not None]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return False, problems[0] + more
    return True, f"{_n(len(pods), 'pod')}, none failing"


def _judge_recovered(spec: RecoveredObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    if ctx.drill_started_at is None:
        return False, "waiting for the drill"
    d, why = _find_named(snap, "Deployment", spec.deployment, spec.namespace)
    if d is None:
        return False, why
    name = f"Deployment {spec.deployment}"
    desired = (d.get("spec") or {}).get("replicas", 1)
    ready = (d.get("status") or {}).get("readyReplicas", 0)
    if ready < desired or desired == 0:
        return False, f"{name}: {ready} of {desired} replicas Ready"
    selector = (d.get("spec") or {}).get("selector") or {}
    pods = [p for p in snap.of("Pod") if _ns(p) == _ns(d)
            and selector_matches(selector, _labels(p))]
    # creationTimestamp has whole seconds; the drill's start has microseconds, and the
    # replacement usually comes within the same second: compare at the API's precision.
    since = ctx.drill_started_at.replace(microsecond=0)
    fresh = [p for p in pods if (t := _time(_meta(p).get("creationTimestamp"))) is not None
             and t >= since and pod_ready(p)]
    if not fresh:
        return False, f"{name}: no Ready pod created since the drill yet"
    return True, f"{name}: {ready} of {desired} Ready, {_n(len(fresh), 'pod')} replaced"


def _judge_resources(spec: ResourcesObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    pods = [p for p in _select(snap.of("Pod"), spec.namespace, spec.labels, spec.name)
            if not _deleting(p)]
    if not pods:
        return False, (f"no {_scope('Pod', spec.namespace, spec.labels, spec.name)}"
                       + _elsewhere(snap, "Pod", spec.namespace, spec.labels, spec.name))
    for p in pods:
        for c in (p.get("spec") or {}).get("containers") or []:
            res = c.get("resources") or {}
            requests, limits = res.get("requests") or {}, res.get("limits") or {}
            where = f"Pod {_name(p)}: container {c.get('name')}"
            for r in spec.resources:
                if r not in requests:
                    return False, f"{where} sets no {r} request"
                if r not in limits:
                    return False, f"{where} sets no {r} limit"
                lo, hi = quantity(requests[r]), quantity(limits[r])
                if lo is not None and hi is not None and hi < lo:
                    return False, (f"{where}: {r} limit {limits[r]} is below its request "
                                   f"{requests[r]}")
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            for state in ((cs.get("state") or {}).get("terminated"),
                          (cs.get("lastState") or {}).get("terminated")):
                if state and state.get("reason") == "OOMKilled":
                    return False, (f"Pod {_name(p)}: container {cs.get('name')} was OOMKilled: "
                                   "it used more memory than its limit")
    return True, (f"{_n(len(pods), 'pod')} set {' and '.join(spec.resources)} requests and limits, "
                  "limits at least the requests")


def _pod_events(snap: Snapshot, namespace: str, name: str) -> list[Obj]:
    return [e for e in snap.of("Event")
            if (e.get("involvedObject") or {}).get("kind") == "Pod"
            and (e.get("involvedObject") or {}).get("name") == name
            and ((e.get("involvedObject") or {}).get("namespace") or _ns(e)) == namespace]


def _judge_replaced(spec: ReplacedPodObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    pod, why = _find_named(snap, "Pod", spec.name, spec.namespace)
    if pod is None:
        return False, why
    if not pod_ready(pod):
        return False, _not_ready_why(pod)
    if spec.claim and not any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") == spec.claim
            for v in (pod.get("spec") or {}).get("volumes") or []):
        return False, f"Pod {spec.name} does not mount claim {spec.claim}"
    uid = _meta(pod).get("uid")
    earlier = {(e.get("involvedObject") or {}).get("uid")
               for e in _pod_events(snap, _ns(pod), spec.name)} - {uid, None, ""}
    if not earlier:
        return False, (f"Pod {spec.name} is the first of its name: it has not been deleted "
                       "and created again yet")
    return True, f"Pod {spec.name} replaced an earlier pod and is Ready"


def _judge_scaled_up(spec: ScaledUpObjective, snap: Snapshot, ctx: EvalContext) -> Verdict:
    hpas = [h for h in _select(snap.of("HorizontalPodAutoscaler"), spec.namespace)
            if ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == spec.deployment]
    where = f" in namespace {spec.namespace}" if spec.namespace else ""
    if not hpas:
        return False, (f"no HorizontalPodAutoscaler{where} targets Deployment {spec.deployment}"
                       + _elsewhere(snap, "HorizontalPodAutoscaler", spec.namespace, None, None))
    names = {(_ns(h), _name(h)) for h in hpas}
    ups = [e for e in snap.of("Event")
           if (e.get("involvedObject") or {}).get("kind") == "HorizontalPodAutoscaler"
           and ((e.get("involvedObject") or {}).get("namespace") or _ns(e),
                (e.get("involvedObject") or {}).get("name")) in names
           and e.get("reason") == "SuccessfulRescale"
           and "above target" in str(e.get("message", ""))]
    if not ups:
        h = hpas[0]
        current = (h.get("status") or {}).get("currentReplicas", 0)
        return False, (f"HorizontalPodAutoscaler {_name(h)} has not scaled up under load yet "
                       f"({current} replicas; no rescale above target)")
    last = max(ups, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return True, f"scaled up under load: {last.get('message', '')}"


_JUDGES: dict[type, Any] = {
    MatchObjective: _judge_match,
    ReadyPodsObjective: _judge_ready_pods,
    ConditionObjective: _judge_condition,
    NodesReadyObjective: _judge_nodes_ready,
    RolloutObjective: _judge_rollout,
    ServiceEndpointsObjective: _judge_service,
    PvcBoundObjective: _judge_pvc,
    NamespaceObjective: _judge_namespaces,
    NetworkPolicyObjective: _judge_network_policy,
    AutoscalerObjective: _judge_autoscaler,
    HealthyPodsObjective: _judge_healthy,
    RecoveredObjective: _judge_recovered,
    ResourcesObjective: _judge_resources,
    ReplacedPodObjective: _judge_replaced,
    ScaledUpObjective: _judge_scaled_up,
}
