"""Plausible mistakes must not unlock the story, and the open objective's reason must name the
problem. Each mistake is the chapter's own path with one change a learner could make (a
typo, a wrong namespace, a skipped step), typed with real kubectl against the simulated
cluster while the live loop watches; what the cluster then shows follows Kubernetes' rules,
never the objectives'.

A mistake the course still accepts is marked ``xfail(strict=True)`` naming the objective, so
the mark must go when the objective is fixed. Reproduce: ``uv run pytest tests/playthrough``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from bot.content.course import Course
from bot.content.schema import TaskBeat
from sandbox.objectives import ObjectiveSpec, Snapshot, evaluate
from tests.emulator import objects as k8s
from tests.playthrough.conftest import Campaign
from tests.playthrough.player import Player
from tests.playthrough.script import LearnerPath, Step
from tests.simcluster import NODE, SimCluster

PODINFO = "ghcr.io/stefanprodan/podinfo"
RESOURCES = """          resources:
            requests:
              memory: "64Mi"
              cpu: "50m"
            limits:
              memory: "128Mi"
              cpu: "200m"
"""


@dataclass(frozen=True)
class Mistake:
    chapter: int
    id: str
    change: Callable[[LearnerPath], LearnerPath]
    objective: str  # the objective that should catch it (documentation; any may)
    names: str  # regex: what an open objective's reason must mention (case-insensitive)
    accepted: str = ""  # why the course still accepts it (xfail), naming the objective
    while_: Callable[[Course], bool] = lambda course: True  # ... as long as this holds
    then: Callable[[SimCluster], None] | None = None  # something that happens to the cluster

    def __str__(self) -> str:
        return f"ch{self.chapter}-{self.id}"


def _task(course: Course, chapter: int) -> TaskBeat:
    [task] = [b for b in course.chapters[course.find_chapter(chapter)].beats
              if isinstance(b, TaskBeat)]
    return task


def _lacks_kind(chapter: int, kind: str) -> Callable[[Course], bool]:
    return lambda course: all(o.kind != kind for o in _task(course, chapter).objectives)


def _lacks_policy(chapter: int, name: str) -> Callable[[Course], bool]:
    return lambda course: not any(o.kind == "network_policy" and o.name == name
                                  for o in _task(course, chapter).objectives)


def _unscoped(chapter: int, objective: str) -> Callable[[Course], bool]:
    return lambda course: any(o.id == objective and getattr(o, "namespace", None) is None
                              for o in _task(course, chapter).objectives)


def _endpoints_ignore_ports(course: Course) -> bool:
    """Does a service_endpoints objective pass a Service whose targetPort no pod declares?"""
    pod = k8s.pod("probe-0", "probe", {"app": "probe"})
    svc = k8s.service("probe", "probe", {"app": "probe"}, port=80, target_port=8080)
    snap = Snapshot({"Pod": [pod], "Service": [svc],
                     "EndpointSlice": [k8s.endpoint_slice(svc, [pod])],
                     "Endpoints": [k8s.endpoints(svc, [pod])]})
    spec = TypeAdapter(ObjectiveSpec).validate_python({
        "id": "probe", "kind": "service_endpoints", "title": "probe", "name": "probe",
        "namespace": "probe", "reason": "probe", "hints": ["a", "b", "c"]})
    return evaluate(spec, snap).passed


def _same(p: LearnerPath) -> LearnerPath:
    return p


def _nth_dropped(text: str, n: int) -> Callable[[LearnerPath], LearnerPath]:
    """Drop the ``n``-th step (from 0) whose line contains ``text``."""
    def change(p: LearnerPath) -> LearnerPath:
        hits = [i for i, s in enumerate(p.steps) if text in s.line]
        drop = hits[n]
        return p.drop_steps(lambda s: s is not p.steps[drop])
    return change


def _before(text: str, *lines: str) -> Callable[[LearnerPath], LearnerPath]:
    """Insert ``lines`` before the first step containing ``text``."""
    def change(p: LearnerPath) -> LearnerPath:
        i = next(i for i, s in enumerate(p.steps) if text in s.line)
        extra = [Step(tuple(line.split()[1:]), line) for line in lines]
        return LearnerPath(p.chapter, [*p.steps[:i], *extra, *p.steps[i:]], p.files, p.shown,
                           p.skipped)
    return change


MISTAKES: list[Mistake] = [
    # --- chapter 1: the survey -------------------------------------------------------------
    Mistake(1, "kubelet-stopped", _same, "nodes-ready", r"Ready",
            then=lambda sim: sim.set_node_ready(False)),
    Mistake(1, "node-deleted", lambda p: p.add_steps(f"kubectl delete node {NODE}"),
            "nodes-ready", r"Ready node"),
    Mistake(1, "node-cordoned", lambda p: p.add_steps(f"kubectl cordon {NODE}"),
            "nodes-ready", r"cordon|unschedulable|SchedulingDisabled"),
    # --- chapter 2: life support -----------------------------------------------------------
    Mistake(2, "deployment-in-another-namespace",
            lambda p: _before("create -f life-support-deployment.yaml",
                              "kubectl create namespace research")(
                p.edit_steps("create -f life-support-deployment.yaml",
                             "create -f life-support-deployment.yaml -n research")),
            "life-support-rollout", r"namespace|default",
            accepted="objectives ch02 life-support-rollout and life-support-pods name no "
                     "namespace, so a Deployment in research passes",
            while_=_unscoped(2, "life-support-rollout")),
    Mistake(2, "typo-in-image",
            lambda p: p.edit_file("life-support-deployment.yaml", "podinfo:6.7.1",
                                  "podinfo:6.7.11"),
            "life-support-rollout", r"image|pull|6\.7\.11"),
    Mistake(2, "label-mismatch",
            lambda p: p.edit_file("life-support-deployment.yaml", "app: atmospheric-control",
                                  "app: atmospheric-controls", count=3),
            "life-support-pods", r"app=atmospheric-control|label"),
    Mistake(2, "no-requests-or-limits",
            lambda p: p.edit_file("life-support-deployment.yaml", RESOURCES, ""),
            "life-support-rollout", r"request|limit|resource",
            accepted="no ch02 objective judges the seed's 'resource allocation within "
                     "specified limits': a Deployment without requests or limits passes",
            while_=_lacks_kind(2, "resources_set")),
    # --- chapter 3: the vault --------------------------------------------------------------
    Mistake(3, "claim-without-a-class",
            lambda p: p.edit_file("research-data-pvc.yaml", "spec:\n",
                                  'spec:\n  storageClassName: ""\n'),
            "vault-claim-bound", r"class|Pending|not Bound"),
    Mistake(3, "typo-in-claim-name",
            lambda p: p.edit_file("data-recovery-pod.yaml", "claimName: research-data-claim",
                                  "claimName: research-data"),
            "recovery-running", r"research-data|claim|Pending|not found"),
    Mistake(3, "claim-in-another-namespace",
            lambda p: _before("create -f research-data-pvc.yaml",
                              "kubectl create namespace research")(
                p.edit_steps("create -f research-data-pvc.yaml",
                             "create -f research-data-pvc.yaml -n research")),
            "vault-claim-bound", r"namespace|default|not found|missing"),
    Mistake(3, "proof-skipped",
            lambda p: _nth_dropped("create -f data-recovery-pod.yaml", 1)(
                _nth_dropped("delete pod data-recovery-service", 0)(p)),
            "vault-claim-bound", r"recreat|restart|outlive|surviv|again|delete",
            accepted="no ch03 objective asks for step 4 (delete the recovery pod and create "
                     "it again): the chapter unlocks before the proof that data survives",
            while_=_lacks_kind(3, "pod_replaced")),
    # --- chapter 4: bulkheads --------------------------------------------------------------
    Mistake(4, "deny-policy-in-the-wrong-namespace",
            lambda p: p.edit_file("default-deny-policy.yaml", "namespace: communications",
                                  "namespace: default"),
            "communications-sealed", r"communications|missing"),
    Mistake(4, "sections-not-labelled",
            lambda p: p.drop_steps(lambda s: s.argv[:2] != ("label", "namespace")),
            "sections-created", r"label"),
    Mistake(4, "service-selector-mismatch",
            lambda p: p.edit_file("life-support-service.yaml", "app: atmospheric-control",
                                  "app: life-support"),
            "life-support-address", r"endpoint|select|match|pod"),
    Mistake(4, "life-support-left-in-default",
            lambda p: p.drop_steps("delete deployment life-support-system").edit_file(
                "life-support-deployment.yaml", "namespace: life-support", "namespace: default"),
            "life-support-relocated", r"life-support"),
    # --- chapter 5: the array --------------------------------------------------------------
    Mistake(5, "target-port-nothing-listens-on",
            lambda p: p.edit_file("communication-services.yaml", "targetPort: http",
                                  "targetPort: 8080"),
            "signal-service-endpoints", r"port|8080|listen",
            accepted="objective ch05 signal-service-endpoints (service_endpoints) reads ready "
                     "endpoints only; Kubernetes fills them for a targetPort (8080) that no "
                     "container listens on",
            while_=_endpoints_ignore_ports),
    Mistake(5, "typo-in-the-new-image",
            lambda p: p.edit_steps("podinfo:6.7.1", "podinfo:6.7.2").drop_steps(
                lambda s: s.argv[:2] != ("rollout", "status")),
            "signal-processor-updated", r"image|pull|6\.7\.1|6\.7\.2|roll"),
    Mistake(5, "update-forgotten", lambda p: p.drop_steps("set image"),
            "signal-processor-updated", r"6\.7\.1|image|roll"),
    Mistake(5, "internal-policy-in-the-wrong-namespace",
            lambda p: p.edit_file("communications-internal-policy.yaml",
                                  "namespace: communications", "namespace: default"),
            "array-path-open", r"communications|missing"),
    Mistake(5, "bulkhead-removed",
            lambda p: p.add_steps("kubectl delete networkpolicy default-deny-all "
                                  "-n communications"),
            "array-path-open", r"default-deny-all|seal|deny",
            accepted="no ch05 objective watches chapter 4's default-deny-all: deleting it "
                     "leaves communications open and chapter 5 still unlocks",
            while_=_lacks_policy(5, "default-deny-all")),
    # --- chapter 6: orchestration ----------------------------------------------------------
    Mistake(6, "autoscaler-targets-a-typo",
            lambda p: p.edit_file("research-autoscaler.yaml", "name: atmospheric-analysis",
                                  "name: atmospheric-analyzer"),
            "autoscaler-armed", r"atmospheric-analy|target|scale"),
    Mistake(6, "no-cpu-requests",
            lambda p: p.edit_file("atmospheric-analysis-deployment.yaml",
                                  RESOURCES.replace('"200m"', '"250m"'), ""),
            "autoscaler-armed", r"request|cpu|metric"),
    Mistake(6, "load-balancer-as-cluster-ip",
            lambda p: p.edit_file("station-load-balancers.yaml", "type: LoadBalancer",
                                  "type: ClusterIP"),
            "research-load-balancer", r"LoadBalancer|type"),
    Mistake(6, "life-support-lb-in-research",
            lambda p: p.edit_file("station-load-balancers.yaml",
                                  "name: life-support-lb\n  namespace: life-support",
                                  "name: life-support-lb\n  namespace: research"),
            "life-support-balanced", r"life-support|namespace|endpoint|missing"),
]


def _params() -> list[object]:
    """Each mistake; one the course still accepts is xfail(strict), for as long as the
    objective it names has not changed (so the mark cannot outlive the fix)."""
    from bot.config import Settings
    from bot.content.course import load_course

    settings = Settings.from_env()
    course = load_course(settings.chapters_dir, settings.personas_dir)
    out = []
    for m in MISTAKES:
        marks = ([pytest.mark.xfail(strict=True, reason=m.accepted)]
                 if m.accepted and m.while_(course) else [])
        out.append(pytest.param(m, id=str(m), marks=marks))
    return out


def test_at_least_three_mistakes_per_chapter() -> None:
    for chapter in range(1, 7):
        assert sum(m.chapter == chapter for m in MISTAKES) >= 3, chapter


@pytest.mark.parametrize("mistake", _params())
async def test_a_mistake_does_not_unlock(course: Course, campaign: Campaign, mistake: Mistake,
                                         tmp_path: Path) -> None:
    from tests.playthrough.script import learner_path

    sim = campaign.before(mistake.chapter, tmp_path)
    path = mistake.change(learner_path(course, mistake.chapter))
    async with Player(course, sim, tmp_path) as player:
        await player.open_task(mistake.chapter)
        await player.type(path, reads=False)
        if mistake.then is not None:
            mistake.then(sim)
        await player.judged_after_settle(patience=0.5)
        failing = await player.failing()
        assert player.unlocked_at is None, f"{mistake}: the story unlocked"
        assert failing, f"{mistake}: every objective holds"
        assert await player.verify() == 1, f"{mistake}: kepler verify disagrees with the check"
        # the learner reads every open objective's reason: one of them must name the problem
        assert any(re.search(mistake.names, r, re.I) for r in failing.values()), (
            f"{mistake}: no reason names the problem ({mistake.names!r}): {failing}")
