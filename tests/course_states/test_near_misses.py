"""Near misses: a cluster almost at the solution fails with the reason that names the gap.

Each case starts from the chapter's starting state, does the chapter's work with one mistake
(a manifest edited the way learners get it wrong, or the controllers not done yet), serves it
over HTTP and checks the failing objectives' reasons word for word.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from tests.course_states import states as S
from tests.course_states.conftest import judge
from tests.emulator import KubeEmulator

PODINFO = "ghcr.io/stefanprodan/podinfo"


def _apply_all(station: S.Station, number: int, *, skip: set[str] = frozenset(),
               edit: Callable[[dict], None] | None = None,
               rollout: dict[str, S.Rollout] | None = None) -> S.Station:
    """The chapter's solution, skipping files or docs by name, editing docs on the way."""
    station.clock = max(station.clock, S.START + timedelta(hours=number))
    for kind, ns, name in S.IMPERATIVE.get(number, []):
        station.delete(kind, ns, name)
    for doc in S.solution_docs(number):
        if doc["metadata"]["name"] in skip:
            continue
        if edit is not None:
            edit(doc)
        station.apply(doc, (rollout or {}).get(doc["metadata"]["name"]))
    return station


def _container(doc: dict) -> dict:
    spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]
    return spec["containers"][0]


# --- the cases -------------------------------------------------------------------------------


def no_ready_node() -> S.Station:
    return S.Station(S.requirements(1), nodes_ready=False)


def wrong_pod_label() -> S.Station:
    """The deployment has the right name, but its pods are labelled app=life-support."""
    def edit(doc: dict) -> None:
        if doc["kind"] == "Deployment":
            doc["spec"]["selector"]["matchLabels"] = {"app": "life-support"}
            doc["spec"]["template"]["metadata"]["labels"] = {"app": "life-support"}
    return _apply_all(S.before(2), 2, edit=edit)


def one_of_two_ready() -> S.Station:
    return _apply_all(S.before(2), 2, rollout={"life-support-system": S.Rollout(ready=1)})


def image_typo() -> S.Station:
    """The backup pod names a tag that does not exist: ImagePullBackOff."""
    def edit(doc: dict) -> None:
        if doc["kind"] == "Pod":
            _container(doc)["image"] = f"{PODINFO}:6.7.10"
    return _apply_all(S.before(2), 2, edit=edit,
                      rollout={"atmospheric-processor-backup": S.Rollout(
                          ready=0, waiting="ImagePullBackOff")})


def claim_pending() -> S.Station:
    """The claim is there, the recovery pod not yet: the class waits for a first consumer."""
    return _apply_all(S.before(3), 3, skip={"data-recovery-service"})


def claim_without_pod() -> S.Station:
    """Step 4 half done: the recovery pod deleted and not yet re-created."""
    station = S.after(3)
    station.delete("Pod", "default", "data-recovery-service")
    return station


def sandbox_without_storage() -> S.Station:
    """A sandbox provisioned without the storage class chapter 3 requires."""
    station = S.Station()
    for n in (1, 2):
        S.solve(station, n)
    return _apply_all(station, 3)


def namespaces_unlabelled() -> S.Station:
    """kubectl create namespace without the labels: right names, wrong (missing) label."""
    def edit(doc: dict) -> None:
        if doc["kind"] == "Namespace":
            doc["metadata"]["labels"] = {"name": doc["metadata"]["name"].replace("-", "_")}
    return _apply_all(S.before(4), 4, edit=edit)


def policies_in_default() -> S.Station:
    """Both policies applied into default (the namespace line dropped from the files)."""
    def edit(doc: dict) -> None:
        if doc["kind"] == "NetworkPolicy":
            doc["metadata"]["namespace"] = "default"
    return _apply_all(S.before(4), 4, edit=edit)


def policy_admits_all() -> S.Station:
    """The isolation policy's ingress rule lost its 'from': it admits every namespace."""
    def edit(doc: dict) -> None:
        if doc["metadata"]["name"] == "life-support-isolation":
            doc["spec"]["ingress"] = [{}]
    return _apply_all(S.before(4), 4, edit=edit)


def not_updated() -> S.Station:
    """The set image step not done: the processor still runs 6.7.0."""
    station = S.before(5)
    docs = S.solution_docs(5)[:-1]  # everything but signal-processor-update.yaml
    assert S.manifest(5, "signal-processor-update.yaml")["metadata"]["name"] == "signal-processor"
    for doc in docs:
        station.apply(doc)
    return station


def rollout_stuck() -> S.Station:
    """set image to a tag that does not exist: the surge pod cannot pull, the deadline passes,
    and with maxUnavailable 0 the two old pods keep serving on 6.7.0."""
    station = not_updated()
    doc = S.manifest(5, "signal-processor-update.yaml")
    _container(doc)["image"] = f"{PODINFO}:0.0.0"
    station.apply(doc, S.Rollout(ready=0, waiting="ImagePullBackOff", stuck=True))
    return station


def autoscaler_elsewhere() -> S.Station:
    def edit(doc: dict) -> None:
        if doc["kind"] == "HorizontalPodAutoscaler":
            doc["spec"]["scaleTargetRef"]["name"] = "atmospheric-analyzer"
    return _apply_all(S.before(6), 6, edit=edit)


def no_metrics_server() -> S.Station:
    station = S.before(6)
    station.delete("Deployment", "kube-system", "metrics-server")
    return _apply_all(station, 6)


def balancer_as_cluster_ip() -> S.Station:
    def edit(doc: dict) -> None:
        if doc["metadata"]["name"] == "research-analysis-lb":
            doc["spec"]["type"] = "ClusterIP"
    return _apply_all(S.before(6), 6, edit=edit)


def deployment_in_another_namespace() -> S.Station:
    """kubectl's current namespace pointed elsewhere: the work lands in staging."""
    def edit(doc: dict) -> None:
        if doc["kind"] == "Deployment":
            doc["metadata"]["namespace"] = "staging"
    return _apply_all(S.before(2), 2, edit=edit)


def limits_left_out() -> S.Station:
    """The deployment's containers ask for resources but set no ceiling."""
    def edit(doc: dict) -> None:
        if doc["kind"] == "Deployment":
            del _container(doc)["resources"]["limits"]
    return _apply_all(S.before(2), 2, edit=edit)


def pod_never_restarted() -> S.Station:
    """The vault is up, but the learner skipped step 4's proof."""
    return _apply_all(S.before(3), 3)


def target_port_nobody_listens() -> S.Station:
    """The Service sends to 8080, the seed's port; podinfo listens on 9898. A real cluster
    still fills the endpoints (a numeric targetPort is not checked against the pods)."""
    def edit(doc: dict) -> None:
        if doc["metadata"]["name"] == "signal-processor-service":
            doc["spec"]["ports"][0]["targetPort"] = 8080
    return _apply_all(S.before(5), 5, edit=edit)


def named_port_typo() -> S.Station:
    def edit(doc: dict) -> None:
        if doc["metadata"]["name"] == "guidance-calculator-service":
            doc["spec"]["ports"][0]["targetPort"] = "htpp"
    return _apply_all(S.before(5), 5, edit=edit)


def deny_all_deleted() -> S.Station:
    """Chapter 4's bulkhead removed to make the array talk: the opening must add, not replace."""
    station = _apply_all(S.before(5), 5)
    station.delete("NetworkPolicy", "communications", "default-deny-all")
    return station


def no_load_test() -> S.Station:
    """Everything applied, but no load ever drove the autoscaler."""
    return _apply_all(S.before(6), 6)


@dataclass(frozen=True)
class Miss:
    chapter: int
    build: Callable[[], S.Station]
    reasons: dict[str, str]  # objective id -> the specifics the reason must end with
    passing: tuple[str, ...] = ()  # objectives the mistake must not affect

    @property
    def id(self) -> str:
        return self.build.__name__


MISSES = [
    Miss(1, no_ready_node, {"nodes-ready": "0 of 1 nodes Ready and schedulable (not Ready: kepler-worker, "
                                           "kepler-worker2, kepler-worker3, kepler-worker4)"}),
    Miss(2, wrong_pod_label, {"life-support-pods": "no Pods with app=atmospheric-control"},
         ("life-support-rollout", "backup-pod-running")),
    Miss(2, deployment_in_another_namespace, {
        "life-support-rollout": "Deployment life-support-system is in namespace staging, not "
                                "default",
        "life-support-pods": "no Pods with app=atmospheric-control in namespace default (found "
                             "in namespace staging instead)",
        "resources-bounded": "(found in namespace staging instead)"}, ("backup-pod-running",)),
    Miss(2, limits_left_out, {
        "resources-bounded": "container atmospheric-processor sets no cpu limit"},
         ("life-support-rollout", "life-support-pods", "backup-resources-bounded")),
    Miss(3, pod_never_restarted, {
        "data-survives": "Pod data-recovery-service is the first of its name: it has not been "
                         "deleted and created again yet"},
         ("vault-claim-bound", "recovery-running")),
    Miss(5, target_port_nobody_listens, {
        "signal-service-endpoints": "Service signal-processor-service sends traffic to "
                                    "targetPort 8080, but Pod signal-processor-"},
         ("guidance-service-endpoints", "signal-processor-updated")),
    Miss(5, named_port_typo, {
        "guidance-service-endpoints": "has no container port named htpp (it declares 9898 "
                                      "(http))"},
         ("signal-service-endpoints",)),
    Miss(5, deny_all_deleted, {
        "comms-still-sealed": "no NetworkPolicy named default-deny-all in namespace "
                              "communications"},
         ("array-path-open", "life-support-still-isolated")),
    Miss(6, no_load_test, {
        "scaled-up": "HorizontalPodAutoscaler research-analysis-hpa has not scaled up under "
                     "load yet (3 replicas; no rescale above target)"},
         ("autoscaler-armed", "analysis-online", "analysis-resources-bounded")),
    Miss(2, one_of_two_ready, {
        "life-support-rollout": "Deployment life-support-system: 2 updated, 1 ready, "
                                "1 available of 2 replicas",
        "life-support-pods": "1 of 2 pods with app=atmospheric-control Ready in namespace "
                             "default; Pod {pod} is "
                             "Running but not Ready (containers with unready status: "
                             "[atmospheric-processor])"}, ("backup-pod-running",)),
    Miss(2, image_typo, {
        "backup-pod-running": "0 of 1 pod atmospheric-processor-backup Ready in namespace "
                              "default; Pod "
                              "atmospheric-processor-backup: container oxygen-recycler is "
                              f"waiting: ImagePullBackOff (image {PODINFO}:6.7.10)"},
         ("life-support-rollout", "life-support-pods")),
    Miss(3, claim_pending, {
        "vault-claim-bound": "PersistentVolumeClaim research-data-claim is Pending: "
                             "WaitForFirstConsumer: waiting for first consumer to be created "
                             "before binding",
        "recovery-running": "no Pod data-recovery-service in namespace default"}),
    Miss(3, claim_without_pod, {
        "vault-claim-bound": "PersistentVolumeClaim research-data-claim is Bound but no "
                             "Running pod mounts it"}),
    Miss(3, sandbox_without_storage, {
        "vault-claim-bound": "PersistentVolumeClaim research-data-claim is Pending: "
                             "FailedBinding: no persistent volumes available for this claim "
                             "and no storage class is set",
        "recovery-running": "0 of 1 pod data-recovery-service Ready in namespace default; Pod "
                            "data-recovery-service is Pending: 0/4 nodes are available: pod has "
                            "unbound immediate PersistentVolumeClaims."}),
    Miss(4, namespaces_unlabelled, {
        "sections-created": "namespace life-support lacks label name=life-support "
                            "(has name=life_support)",
        "life-support-isolated": "NetworkPolicy life-support-isolation does not admit ingress "
                                 "from namespace life-support (no matching namespaceSelector)"},
         ("life-support-relocated", "communications-sealed")),
    Miss(4, policies_in_default, {
        "life-support-isolated": "NetworkPolicy life-support-isolation is in namespace "
                                 "default, not life-support",
        "communications-sealed": "NetworkPolicy default-deny-all is in namespace default, "
                                 "not communications"}, ("sections-created", "research-vault")),
    Miss(4, policy_admits_all, {
        "life-support-isolated": "NetworkPolicy life-support-isolation has an ingress rule "
                                 "without 'from', which admits every namespace"},
         ("communications-sealed",)),
    Miss(5, not_updated, {
        "signal-processor-updated": "Deployment signal-processor: container signal-processor "
                                    f"runs image {PODINFO}:6.7.0, expected {PODINFO}:6.7.1"},
         ("signal-processor-ready", "signal-service-endpoints", "array-healthy")),
    Miss(5, rollout_stuck, {
        "signal-processor-ready": "Deployment signal-processor: rollout is stuck: "
                                  "ProgressDeadlineExceeded (ReplicaSet",
        "signal-processor-updated": "Deployment signal-processor: container signal-processor "
                                    f"runs image {PODINFO}:0.0.0, expected {PODINFO}:6.7.1",
        "array-healthy": "container signal-processor is waiting: ImagePullBackOff "
                         f"(image {PODINFO}:0.0.0)"},
         ("signal-service-endpoints", "guidance-calculator-ready")),
    Miss(6, autoscaler_elsewhere, {
        "autoscaler-armed": "HorizontalPodAutoscaler research-analysis-hpa targets Deployment "
                            "atmospheric-analyzer, not Deployment atmospheric-analysis"},
         ("analysis-online", "research-load-balancer")),
    Miss(6, no_metrics_server, {
        "autoscaler-armed": "HorizontalPodAutoscaler research-analysis-hpa: ScalingActive is "
                            "False (FailedGetResourceMetric: the HPA was unable to compute the "
                            "replica count: failed to get cpu utilization"},
         ("analysis-online",)),
    Miss(6, balancer_as_cluster_ip, {
        "research-load-balancer": "Service research-analysis-lb is type ClusterIP, "
                                  "expected LoadBalancer"}, ("life-support-balanced",)),
]


@pytest.mark.parametrize("miss", MISSES, ids=lambda m: f"ch{m.chapter}-{m.id}")
async def test_near_miss(emu: KubeEmulator, miss: Miss) -> None:
    task = S.task_of(miss.chapter)
    station = miss.build()
    results = await judge(emu, miss.id, station, task.objectives)
    spec_reason = {o.id: o.reason for o in task.objectives}
    for oid, detail in miss.reasons.items():
        r = results[oid]
        assert not r.passed, f"{oid} passed: {r.detail}"
        if "{pod}" in detail:
            laggard = next(p["metadata"]["name"] for p in station.of("Pod", "default")
                           if p["metadata"]["labels"].get("app") == "atmospheric-control"
                           and p["status"]["conditions"][2]["status"] == "False")
            detail = detail.format(pod=laggard)
        assert r.reason.startswith(f"{spec_reason[oid]} — "), r.reason
        assert detail in r.reason, r.reason
    for oid in miss.passing:
        assert results[oid].passed, f"{oid}: {results[oid].reason}"


def test_every_chapter_has_a_near_miss() -> None:
    assert {m.chapter for m in MISSES} == set(S.CHAPTERS)


def test_a_deaf_port_still_has_endpoints() -> None:
    """The case the check must catch: endpoints are there, so reading them is not enough."""
    station = target_port_nobody_listens()
    slices = [o for o in station.objects() if o["kind"] == "EndpointSlice"
              and o["metadata"]["labels"]["kubernetes.io/service-name"]
              == "signal-processor-service"]
    ready = [e for s in slices for e in s["endpoints"] if e["conditions"].get("ready", True)]
    assert len(ready) == 2
