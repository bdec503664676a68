"""The rendered quota admits the whole course at its peak, per exposure mode, and caps abuse."""

from __future__ import annotations

import copy
import functools
import math
from collections import Counter
from typing import Any

import pytest

from bot.content.course import load_course
from sandbox.apply import load_manifests
from sandbox.lifecycle import solution_manifests
from sandbox.provision import HostSettings, SandboxSpec, course_requirements, render
from tests.host_rules.quota import over, pod_usage, pvc_usage, service_usage
from tests.sandbox_lifecycle.chart_values import PINNED_VALUES

Obj = dict[str, Any]
HOST_NODES = 5  # vcluster's proxyKubelets.byIP makes one host Service per node with pods
BUSYBOX_PROBE = {"containers": [{"name": "probe", "image": "busybox:1.36"}]}


@functools.cache
def _course() -> Any:
    return load_course()


def _course_objects() -> list[Obj]:
    """Every chapter's solution, as catch-up applies it: later definitions replace earlier."""
    course = _course()
    latest: dict[tuple[str, str, str], Obj] = {}
    for doc in load_manifests(solution_manifests(course, len(course.chapters))):
        ns = doc["metadata"].get("namespace", "default")
        latest[(doc["kind"], ns, doc["metadata"]["name"])] = doc
    return list(latest.values())


def _rendered(exposure: str) -> list[Obj]:
    course = _course()
    settings = HostSettings(exposure=exposure, node_address="203.0.113.7")  # type: ignore[arg-type]
    spec = SandboxSpec("kepler-0123456789", course_requirements(course.chapters), settings,
                       PINNED_VALUES, "ada", "h")  # fmt: skip
    return render(spec)


def _peak_pods(objects: list[Obj]) -> list[Obj]:
    """Pod specs at the course's peak: HPAs at max, one rolling update surging, bare pods,
    and the two probe pods the chapters have learners run at once (load generator + check)."""
    hpa_max = {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"]
               for o in objects if o["kind"] == "HorizontalPodAutoscaler"}  # fmt: skip
    pods: list[Obj] = [o["spec"] for o in objects if o["kind"] == "Pod"]
    surge = 0
    surge_spec: Obj = {}
    for dep in (o for o in objects if o["kind"] == "Deployment"):
        replicas = hpa_max.get(dep["metadata"]["name"], dep["spec"].get("replicas", 1))
        strategy = (dep["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        max_surge = strategy.get("maxSurge", "25%")
        extra = (math.ceil(replicas * int(max_surge[:-1]) / 100)
                 if isinstance(max_surge, str) else int(max_surge))  # fmt: skip
        pods += [dep["spec"]["template"]["spec"]] * replicas
        surge = max(surge, extra)  # one rollout at a time
        if extra == surge:
            surge_spec = dep["spec"]["template"]["spec"]
    pods += [surge_spec] * surge
    return [*pods, BUSYBOX_PROBE, BUSYBOX_PROBE]


def usage(exposure: str, extra: list[Obj] = ()) -> tuple[dict[str, str], Counter]:  # type: ignore[assignment]
    host = _rendered(exposure)
    quota = next(o for o in host if o["kind"] == "ResourceQuota")["spec"]["hard"]
    limit_range = next(o for o in host if o["kind"] == "LimitRange")
    course = _course_objects() + list(extra)
    used: Counter = Counter()
    sts = next(o for o in host if o["kind"] == "StatefulSet")
    used += pod_usage(sts["spec"]["template"]["spec"], limit_range)  # the control plane
    for claim in sts["spec"]["volumeClaimTemplates"]:
        used += pvc_usage({"spec": claim["spec"]})
    coredns = PINNED_VALUES["controlPlane"]["coredns"]["deployment"]["resources"]
    used += pod_usage({"containers": [{"name": "coredns", "resources": coredns}]}, limit_range)
    for svc in (o for o in host if o["kind"] == "Service"):
        used += service_usage(svc)
    used += service_usage({"spec": {"type": "ClusterIP"}})  # vcluster's kube-dns, synced
    for _ in range(HOST_NODES):
        used += service_usage({"spec": {"type": "ClusterIP"}})  # kepler-node-<node>
    for spec in _peak_pods(course):
        used += pod_usage(spec, limit_range)
    for obj in course:
        if obj["kind"] == "Service":
            used += service_usage(obj)
        elif obj["kind"] == "PersistentVolumeClaim":
            used += pvc_usage(obj)
    return quota, used


@pytest.mark.parametrize("exposure", ["Ingress", "LoadBalancer", "NodePort"])
def test_the_course_fits_the_quota(exposure: str) -> None:
    quota, used = usage(exposure)
    assert used["services.loadbalancers"] >= 1 and used["services.nodeports"] >= 1  # ch. 6's LB
    assert not over(quota, used), over(quota, used)


def test_a_load_balancer_is_charged_node_ports() -> None:
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert service_usage(lb)["services.nodeports"] == 2
    no_ports = copy.deepcopy(lb)
    no_ports["spec"]["allocateLoadBalancerNodePorts"] = False
    assert service_usage(no_ports)["services.nodeports"] == 0
    assert service_usage({"spec": {"type": "NodePort", "ports": [{"port": 1}]}})[
        "services.nodeports"] == 1


def _lb(name: str, ports: int = 1, kind: str = "LoadBalancer") -> Obj:
    return {"kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": kind, "ports": [{"port": 80 + i} for i in range(ports)]}}


@pytest.mark.parametrize("exposure", ["Ingress", "LoadBalancer", "NodePort"])
def test_abuse_is_still_capped(exposure: str) -> None:
    quota, used = usage(exposure, [_lb("one-more")])
    assert not over(quota, used)  # one more learner LoadBalancer is fine
    assert "services.loadbalancers" in over(*usage(exposure, [_lb("a"), _lb("b")]))
    assert "services.nodeports" in over(*usage(exposure, [_lb("np", 6, "NodePort")]))
    quota, used = usage(exposure)
    many = [{"kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "default"},
             "spec": BUSYBOX_PROBE} for i in range(int(quota["pods"]) - int(used["pods"]) + 1)]
    assert "pods" in over(*usage(exposure, many))
    hog = {"kind": "Pod", "metadata": {"name": "hog", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "resources": {"limits": {
               "ephemeral-storage": "2Gi"}}}] * 12}}
    assert "limits.ephemeral-storage" in over(*usage(exposure, [hog]))


def test_every_container_gets_an_ephemeral_storage_limit() -> None:
    host = _rendered("Ingress")
    limit_range = next(o for o in host if o["kind"] == "LimitRange")
    from tests.host_rules.quota import with_limit_range

    bare = with_limit_range({"name": "c"}, limit_range)
    assert bare["limits"]["ephemeral-storage"] and bare["requests"]["ephemeral-storage"]
