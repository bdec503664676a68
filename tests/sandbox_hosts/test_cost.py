"""Cost per learner from the rendered objects: control plane, CoreDNS, chapters' workloads."""

from __future__ import annotations

import copy
from functools import cache

from bot.content.course import load_course as _load_course
from sandbox.cost import (
    Defaults,
    Resources,
    chapter_costs,
    control_plane,
    coredns,
    pod,
    report,
    sandbox_footprint,
    states,
    workloads,
)
from sandbox.placement import cpu_millis, memory_bytes
from sandbox.provision import HostSettings, SandboxSpec, course_requirements, render
from tests.sandbox_lifecycle.conftest import CHART_DEFAULTS

MI = 2**20
load_course = cache(_load_course)  # one parse for the module: it is the slow part
D = Defaults(request_cpu_m=50, request_memory=64 * MI, limit_cpu_m=250, limit_memory=256 * MI)


@cache
def _objects(embedded_dns: bool) -> tuple[dict, ...]:
    dns = {"enabled": True, "embedded": embedded_dns,
           "deployment": {"replicas": 1, "resources": {
               "requests": {"cpu": "20m", "memory": "64Mi"},
               "limits": {"cpu": "1000m", "memory": "170Mi"}}}}  # fmt: skip
    defaults = copy.deepcopy(CHART_DEFAULTS)
    defaults["controlPlane"]["coredns"] = dns
    course = load_course()
    spec = SandboxSpec(namespace="kepler-cost", requirements=course_requirements(course.chapters),
                       host=HostSettings(), chart_defaults=defaults, learner_id="cost",
                       learner_hash="cost")  # fmt: skip
    return tuple(render(spec))


def objects(embedded_dns: bool = False) -> list[dict]:
    """One learner's rendered host objects (test chart defaults plus a CoreDNS section)."""
    return list(_objects(embedded_dns))


def test_control_plane_comes_from_the_rendered_statefulset() -> None:
    objs = objects()
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    [syncer] = sts["spec"]["template"]["spec"]["containers"]
    req, lim = syncer["resources"]["requests"], syncer["resources"]["limits"]
    cp = control_plane(objs)
    assert (cp.cpu_m, cp.memory) == (cpu_millis(req["cpu"]), memory_bytes(req["memory"]))
    assert (cp.limit_cpu_m, cp.limit_memory) == (cpu_millis(lim["cpu"]), memory_bytes(lim["memory"]))
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert cp.storage == memory_bytes(claim) > 0  # the control plane's volume claim
    assert control_plane(objs, replicas=0) == Resources(storage=cp.storage)  # paused
    [rule] = next(o for o in objs if o["kind"] == "LimitRange")["spec"]["limits"]
    assert Defaults.from_objects(objs) == Defaults(  # the rendered LimitRange
        cpu_millis(rule["defaultRequest"]["cpu"]), memory_bytes(rule["defaultRequest"]["memory"]),
        cpu_millis(rule["default"]["cpu"]), memory_bytes(rule["default"]["memory"]))


def test_coredns_comes_from_the_rendered_vcluster_config() -> None:
    assert coredns(objects()) == Resources(20, 64 * MI, 1000, 170 * MI)
    assert coredns(objects(embedded_dns=True)) == Resources()


def test_containers_get_limit_range_defaults_as_the_api_server_gives_them() -> None:
    spec = {"containers": [{"name": "bare"},
                           {"name": "limits-only", "resources": {"limits": {"cpu": "300m",
                                                                            "memory": "100Mi"}}},
                           {"name": "explicit", "resources": {"requests": {"cpu": "10m",
                                                                           "memory": "16Mi"}}}],
            "initContainers": [{"name": "big", "resources": {"requests": {"cpu": "1",
                                                                          "memory": "8Mi"}}}]}  # fmt: skip
    got = pod(spec, D)
    assert got.cpu_m == 1000  # the init container is larger than 50 + 300 + 10
    assert got.memory == (64 + 100 + 16) * MI
    assert got.limit_cpu_m == 250 + 300 + 250


def test_an_autoscaled_deployment_counts_at_max_replicas() -> None:
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "r"},
              "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c"}]}}}}
    hpa = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h", "namespace": "r"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 10}}
    assert workloads([deploy], D).cpu_m == 100
    assert workloads([deploy, hpa], D).cpu_m == 500
    claim = {"kind": "PersistentVolumeClaim", "metadata": {"name": "d"},
             "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
    assert workloads([claim, claim], D).storage == 2**30  # the same object once


def test_chapters_cost_what_they_and_earlier_solutions_run() -> None:
    objs = objects()
    chapters = chapter_costs(load_course(), objs)
    by_number = {c.number: c for c in chapters}
    assert by_number[0].workloads == Resources() and by_number[1].workloads == Resources()
    assert by_number[2].workloads.cpu_m == 150  # life-support pod + deployment of 2, 50m each
    assert by_number[6].workloads.cpu_m > by_number[5].workloads.cpu_m > by_number[2].workloads.cpu_m
    base = control_plane(objs) + coredns(objs)
    assert all(c.active == base + c.workloads for c in chapters)
    s = states(objs, chapters)
    assert s["paused"].cpu_m == 0 and s["paused"].memory == 0 and s["paused"].storage > 0
    assert s["active, peak chapter"] == by_number[6].active
    assert sandbox_footprint(objs, load_course()).cpu_m == by_number[6].active.cpu_m


def test_report_lists_parts_states_and_chapters() -> None:
    text = report(objects(), load_course())
    assert "control plane (vcluster StatefulSet)" in text and "CoreDNS (synced pod)" in text
    assert "paused" in text and "Full System Orchestration" in text
