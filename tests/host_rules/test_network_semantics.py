"""NetworkPolicies behave as on a cluster of one's own; learners stay isolated.

Inputs: the rendered host objects of two sandboxes, the host-wide AdminNetworkPolicies
(deploy/host-network-policy.yaml), every chapter's own NetworkPolicies as vcluster syncs
them, the chapters' workloads and Services, and the exact probes the chapter texts tell
learners to run (``kubectl run … -- wget … http://…``). Expected: what the story promises —
chapter 4's probe from research times out, the one from life-support answers, chapter 5's
chain and chapter 6's load balancer answer. Evaluated with the standard rules
(tests/host_rules/netpol.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import pytest

from bot.content.course import load_course
from sandbox.apply import load_manifests
from sandbox.lifecycle import solution_manifests
from sandbox.provision import (
    HostSettings,
    SandboxSpec,
    cluster_admin_policies,
    course_requirements,
    render,
)
from tests.host_rules.netpol import Endpoint, Network, Pod, synced_pod, translate_policy
from tests.sandbox_lifecycle.chart_values import PINNED_VALUES

Obj = dict[str, Any]
A, B = "kepler-aaaaaaaaaa", "kepler-bbbbbbbbbb"
INTERNET, METADATA, NODE, HOST_API = "93.184.216.34", "169.254.169.254", "172.18.0.2", "10.0.0.1"
COREDNS_PORT = 1053  # vcluster's kube-dns Service: port 53 -> targetPort 1053 (template.go)


@functools.cache
def course() -> Any:
    return load_course()


def chapter_objects(upto: int) -> list[Obj]:
    """The solutions of chapters [0, upto], later definitions replacing earlier ones."""
    latest: dict[tuple[str, str, str], Obj] = {}
    for doc in load_manifests(solution_manifests(course(), upto + 1)):
        ns = doc["metadata"].get("namespace", "default")
        doc["metadata"]["namespace"] = ns
        latest[(doc["kind"], ns, doc["metadata"]["name"])] = doc
    return list(latest.values())


@dataclass
class Probe:
    chapter: int
    name: str
    namespace: str
    service: str
    service_namespace: str
    port: int
    answers: bool  # what the story promises
    line: str


PROBE_RE = re.compile(r"kubectl run (?P<name>\S+) .*?-n (?P<ns>\S+) .*?wget .*?"
                      r"http://(?P<host>[a-z0-9.-]+)(?::(?P<port>\d+))?")  # fmt: skip


def chapter_probes() -> list[Probe]:
    """Every ``kubectl run … wget http://…`` the chapter texts tell learners to run; a
    comment line above saying "time out" means the story promises it will."""
    probes = []
    for index in range(len(course().chapters)):
        text = (course().manifest_path(index, "x").parent.parent / "chapter.yaml").read_text()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            m = PROBE_RE.search(line)
            if not m:
                continue
            above = lines[i - 1].lower() if i else ""
            host = m["host"].split(".")
            probes.append(Probe(
                index, m["name"], m["ns"], host[0], host[1] if len(host) > 1 else m["ns"],
                int(m["port"] or 80), "time out" not in above, line.strip()))
    return probes


def _ns_labels(objects: list[Obj], vns: str) -> dict[str, str]:
    labels = {"kubernetes.io/metadata.name": vns}
    for o in objects:
        if o["kind"] == "Namespace" and o["metadata"]["name"] == vns:
            labels.update(o["metadata"].get("labels") or {})
    return labels


def _ports(pod_spec: Obj) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in pod_spec.get("containers") or []
            for p in c.get("ports") or [] if p.get("name")}  # fmt: skip


class World:
    """Two sandboxes on one host, sandbox A at the end of chapter ``upto``."""

    def __init__(self, upto: int, extra_learner_policies: list[Obj] = (),  # type: ignore[assignment]
                 host_policies: list[Obj] | None = None):
        settings = HostSettings()
        req = course_requirements(course().chapters)
        self.hosts = {ns: render(SandboxSpec(ns, req, settings, PINNED_VALUES, ns, ns))
                      for ns in (A, B)}  # fmt: skip
        namespaces = {ns: {**objs[0]["metadata"]["labels"], "kubernetes.io/metadata.name": ns}
                      for ns, objs in self.hosts.items()}  # fmt: skip
        for name in ("kepler-system", "ingress-nginx", "kube-system"):
            namespaces[name] = {"kubernetes.io/metadata.name": name}
        self.objects = chapter_objects(upto)
        learner = [o for o in self.objects if o["kind"] == "NetworkPolicy"]
        learner += list(extra_learner_policies)
        if host_policies is None:
            host_policies = [o for objs in self.hosts.values() for o in objs
                             if o["kind"] in ("NetworkPolicy", "AdminNetworkPolicy")]
            host_policies += cluster_admin_policies(settings)
        self.net = Network(namespaces, [*host_policies,
                                        *(translate_policy(p, A) for p in learner)])
        self.pods: list[Pod] = []
        self._ip = 10
        for ns in (A, B):
            self.pods.append(Pod(f"kepler-0-{ns}", ns, {"app": "vcluster", "release": "kepler",
                                                         "statefulset.kubernetes.io/pod-name":
                                                         "kepler-0"}, self._next_ip()))
            self.pods.append(synced_pod("coredns-abc", "kube-system",
                                        {"k8s-app": "vcluster-kube-dns"},
                                        {"kubernetes.io/metadata.name": "kube-system"}, ns,
                                        self._next_ip(), {"dns": COREDNS_PORT}))
        self.bot = Pod("kepler-station", "kepler-system", {"app": "kepler"}, "10.244.9.1")
        self.ingress = Pod("ingress-nginx-controller", "ingress-nginx", {"app": "ingress"},
                           "10.244.9.2")
        self.pods += [self.bot, self.ingress]
        for o in self.objects:  # learner A's workloads
            if o["kind"] == "Pod":
                self.add_learner_pod(A, o["metadata"]["name"], o["metadata"]["namespace"],
                                     o["metadata"].get("labels") or {}, _ports(o["spec"]))
            elif o["kind"] == "Deployment":
                tpl = o["spec"]["template"]
                for i in range(o["spec"].get("replicas", 1)):
                    self.add_learner_pod(A, f"{o['metadata']['name']}-{i}",
                                         o["metadata"]["namespace"], tpl["metadata"]["labels"],
                                         _ports(tpl["spec"]))
        # Learner B runs chapter 4's life support too (same names, another tenant).
        self.b_pod = self.add_learner_pod(B, "life-support-0", "life-support",
                                          {"app": "atmospheric-control"}, {"http": 9898})

    def _next_ip(self) -> str:
        self._ip += 1
        return f"10.244.0.{self._ip}"

    def add_learner_pod(self, host_ns: str, name: str, vns: str, labels: dict[str, str],
                        ports: dict[str, int]) -> Pod:  # fmt: skip
        pod = synced_pod(name, vns, labels, _ns_labels(self.objects, vns), host_ns,
                         self._next_ip(), ports)
        self.pods.append(pod)
        return pod

    def learner_pod(self, vns: str, name: str) -> Pod:
        return next(p for p in self.pods if p.namespace == A and p.name.startswith(name)
                    and p.labels["vcluster.loft.sh/namespace"] == vns)  # fmt: skip

    def coredns(self, host_ns: str = A) -> Pod:
        return next(p for p in self.pods if p.namespace == host_ns and "coredns" in p.name)

    def control_plane(self, host_ns: str = A) -> Pod:
        return next(p for p in self.pods if p.namespace == host_ns and p.name.startswith("kepler-0"))

    def endpoints(self, service: str, vns: str, port: int) -> list[tuple[Pod, int]]:
        svc = next(o for o in self.objects if o["kind"] == "Service"
                   and o["metadata"]["name"] == service and o["metadata"]["namespace"] == vns)
        sport = next(p for p in svc["spec"]["ports"] if p["port"] == port)
        target = sport.get("targetPort", port)
        out = []
        for pod in self.pods:
            if pod.namespace != A or pod.labels.get("vcluster.loft.sh/namespace") != vns:
                continue
            if all(pod.labels.get(k) == v for k, v in svc["spec"]["selector"].items()):
                out.append((pod, pod.ports[target] if isinstance(target, str) else target))
        assert out, f"service {vns}/{service} has no endpoints"
        return out

    def resolves(self, src: Pod) -> bool:
        return (self.net.allowed(Endpoint(src), Endpoint(self.coredns()), COREDNS_PORT, "UDP")
                and self.net.allowed(Endpoint(self.coredns()), Endpoint(ip="1.1.1.1"), 53, "UDP"))

    def connects(self, src: Endpoint, service: str, vns: str, port: int) -> bool:
        return any(self.net.allowed(src, Endpoint(pod), target)
                   for pod, target in self.endpoints(service, vns, port))  # fmt: skip

    def probe(self, probe: Probe) -> bool:
        pod = self.add_learner_pod(A, probe.name, probe.namespace, {"run": probe.name}, {})
        try:
            return self.resolves(pod) and self.connects(
                Endpoint(pod), probe.service, probe.service_namespace, probe.port)
        finally:
            self.pods.remove(pod)


def test_the_chapters_tell_learners_to_run_these_probes() -> None:
    found = {(p.chapter, p.namespace, p.service, p.answers) for p in chapter_probes()}
    assert any(not answers for (_c, ns, svc, answers) in found
               if ns == "research" and svc == "life-support-service"), found
    assert any(answers for (_c, ns, svc, answers) in found
               if ns == "life-support" and svc == "life-support-service"), found
    assert len(found) >= 4


@pytest.mark.parametrize("probe", chapter_probes(), ids=lambda p: f"ch{p.chapter}-{p.namespace}"
                         f"-{p.service}-{'answers' if p.answers else 'times-out'}")
def test_each_chapter_probe_has_the_promised_outcome(probe: Probe) -> None:
    world = World(probe.chapter)
    assert world.probe(probe) is probe.answers, probe.line


def test_the_old_host_policy_would_break_chapter_4() -> None:
    """Control: with a host policy letting the namespace's pods reach each other (the design
    before this one), the learner's isolation is outvoted and research reaches life support."""
    probe = next(p for p in chapter_probes() if not p.answers)
    old = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "kepler-sandbox", "namespace": A},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"from": [{"podSelector": {}}]}],
                     "egress": [{"to": [{"podSelector": {}}]}]}}]
    world = World(probe.chapter, host_policies=old)
    src = world.add_learner_pod(A, probe.name, probe.namespace, {"run": probe.name}, {})
    assert world.connects(Endpoint(src), probe.service, probe.service_namespace, probe.port)
    # ... and with today's host objects the same connection is refused.
    world = World(probe.chapter)
    src = world.add_learner_pod(A, probe.name, probe.namespace, {"run": probe.name}, {})
    assert not world.connects(Endpoint(src), probe.service, probe.service_namespace, probe.port)


def test_a_fresh_sandbox_is_open_inside_like_a_new_cluster() -> None:
    world = World(2)  # chapter 2: no policies yet
    pod = world.learner_pod("default", "life-support")
    other = world.add_learner_pod(A, "client", "default", {"run": "client"}, {})
    assert world.resolves(other)
    assert world.net.allowed(Endpoint(other), Endpoint(pod), 9898)
    assert world.net.allowed(Endpoint(other), Endpoint(ip=INTERNET), 443)


def test_learners_are_isolated_from_each_other_and_the_host() -> None:
    world = World(6)
    mine = world.learner_pod("life-support", "life-support")
    theirs = world.b_pod
    assert not world.net.allowed(Endpoint(mine), Endpoint(theirs), 9898)
    assert not world.net.allowed(Endpoint(theirs), Endpoint(mine), 9898)
    assert not world.net.allowed(Endpoint(theirs), Endpoint(world.coredns(A)), COREDNS_PORT, "UDP")
    assert not world.net.allowed(Endpoint(theirs), Endpoint(world.control_plane(A)), 8443)
    research = world.learner_pod("research", "atmospheric-analysis")
    for ip, port in ((METADATA, 80), (NODE, 10250), (HOST_API, 443), ("100.64.3.4", 80),
                     ("192.168.1.1", 22), ("fd00::1", 80)):
        assert not world.net.allowed(Endpoint(research), Endpoint(ip=ip), port), ip
    assert not world.net.allowed(Endpoint(research), Endpoint(world.bot), 8080)
    assert not world.net.allowed(Endpoint(world.bot), Endpoint(research), 9898)
    assert not world.net.allowed(Endpoint(world.ingress), Endpoint(research), 9898)


def test_a_synced_policy_cannot_open_private_ranges_or_other_tenants() -> None:
    """Even if the admission policy were bypassed, AdminNetworkPolicy holds."""
    wide = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "escape", "namespace": "research"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                     "egress": [{}, {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}}
    world = World(6, [wide])
    research = world.learner_pod("research", "atmospheric-analysis")
    assert not world.net.allowed(Endpoint(research), Endpoint(world.b_pod), 9898)
    assert not world.net.allowed(Endpoint(research), Endpoint(ip=METADATA), 80)
    assert world.net.allowed(Endpoint(research), Endpoint(ip=INTERNET), 443)


def test_the_api_is_reachable_by_whom_it_should_be() -> None:
    world = World(6)
    cp = Endpoint(world.control_plane(A))
    assert world.net.allowed(Endpoint(world.bot), cp, 8443)  # in-cluster bot
    assert world.net.allowed(Endpoint(world.ingress), cp, 8443)  # learners via the ingress
    assert world.net.allowed(Endpoint(world.coredns()), cp, 8443)  # CoreDNS watches the API
    assert world.net.allowed(cp, Endpoint(ip=HOST_API), 443)  # the syncer reaches the host
    assert world.net.allowed(cp, Endpoint(ip=NODE), 6443)
    assert not world.net.allowed(Endpoint(world.bot), cp, 22)


def test_chapter_6_load_balancer_is_reachable_from_outside() -> None:
    world = World(6)
    assert world.connects(Endpoint(ip="203.0.113.50"), "research-analysis-lb", "research", 80)


def test_external_dns_resolves_via_public_resolvers() -> None:
    world = World(6)
    assert world.net.allowed(Endpoint(world.coredns()), Endpoint(ip="1.1.1.1"), 53, "UDP")
    assert world.net.allowed(Endpoint(world.coredns()), Endpoint(ip="8.8.8.8"), 53, "TCP")
    # The node's resolver (GKE metadata server, a VPC resolver) is a private address.
    assert not world.net.allowed(Endpoint(world.coredns()), Endpoint(ip=METADATA), 53, "UDP")
    assert not world.net.allowed(Endpoint(world.coredns()), Endpoint(ip="10.0.0.2"), 53, "UDP")
