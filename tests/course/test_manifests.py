"""Every manifest is valid Kubernetes, runs on public pinned images, and the solution files of
chapters 1..N, applied in order to a fresh cluster, provide what those chapters' objectives
look for (checked statically, object by object)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bot.content.course import DEFAULT_CHAPTERS, load_course
from sandbox.objectives import (
    AutoscalerObjective,
    NamespaceObjective,
    NetworkPolicyObjective,
    PvcBoundObjective,
    ReadyPodsObjective,
    RecoveredObjective,
    RolloutObjective,
    ServiceEndpointsObjective,
)

VERSIONS = ["1.30", kubernetes_validate.latest_version()]
CLUSTER_SCOPED = {"Namespace", "StorageClass", "PersistentVolume"}
COURSE = load_course()


@dataclass(frozen=True)
class Doc:
    file: Path
    index: int
    body: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.file.parent.parent.name}/{self.file.name}#{self.index}"


def _docs(path: Path) -> list[Doc]:
    docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [Doc(path, i, d) for i, d in enumerate(docs) if d]


ALL_FILES = sorted(DEFAULT_CHAPTERS.glob("*/manifests/*.yaml"))
ALL_DOCS = [d for f in ALL_FILES for d in _docs(f)]


def test_there_are_manifests():
    assert len(ALL_FILES) >= 15


def test_every_manifest_file_is_used_by_a_task():
    used = {
        COURSE.manifest_path(c, m.file).resolve()
        for c in range(len(COURSE.chapters))
        for t in COURSE.tasks(c)
        for m in t.manifests
    }
    assert {f.resolve() for f in ALL_FILES} == used


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("doc", ALL_DOCS, ids=lambda d: d.label)
def test_manifest_validates(doc, version):
    kubernetes_validate.validate(doc.body, version, strict=True)


def test_validation_is_strict():
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "imagePort": 1}]}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)


def _pod_spec(body: dict[str, Any]) -> dict[str, Any] | None:
    if body["kind"] == "Pod":
        return body["spec"]
    if body["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return body["spec"]["template"]["spec"]
    return None


@pytest.mark.parametrize("doc", ALL_DOCS, ids=lambda d: d.label)
def test_containers_use_pinned_public_images_and_real_ports(doc):
    spec = _pod_spec(doc.body)
    if spec is None:
        return
    assert not any("hostPath" in v for v in spec.get("volumes", [])), "no host paths, ever"
    for c in spec["containers"]:
        image = c["image"]
        assert "kepler-station/" not in image
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"unpinned image {image}"
        ports = {p["containerPort"] for p in c.get("ports", [])}
        ports |= {p["name"] for p in c.get("ports", []) if "name" in p}
        if "podinfo" in image:
            assert 9898 in ports, "podinfo serves on 9898"
        res = c.get("resources", {})
        assert res.get("requests") and res.get("limits"), f"{c['name']}: size it for the sandbox"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            http = c.get(probe, {}).get("httpGet")
            if http:
                assert http["port"] in ports, f"{probe} port {http['port']} not declared"
                if "podinfo" in image:
                    assert http["path"] in ("/healthz", "/readyz")


# --- the solution, applied chapter by chapter ----------------------------------------------


def _key(body: dict[str, Any]) -> tuple[str, str, str]:
    ns = "" if body["kind"] in CLUSTER_SCOPED else body["metadata"].get("namespace", "default")
    return body["kind"], ns, body["metadata"]["name"]


def _applied_after_each_chapter() -> list[tuple[int, dict[tuple[str, str, str], dict]]]:
    state: dict[tuple[str, str, str], dict] = {}
    out = []
    for c in range(len(COURSE.chapters)):
        for task in COURSE.tasks(c):
            for m in task.manifests:
                if m.solution:
                    for doc in _docs(COURSE.manifest_path(c, m.file)):
                        state[_key(doc.body)] = doc.body
        if COURSE.tasks(c):
            out.append((c, dict(state)))
    return out


def _objects(state, kind, namespace=None, name=None):
    return [
        b for (k, ns, n), b in state.items()
        if k == kind and (namespace is None or ns == namespace) and (name is None or n == name)
    ]  # fmt: skip


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _workloads(state, namespace):
    """(labels, replicas, pod spec, namespace) of every Pod and Deployment."""
    out = []
    for (kind, ns, _), body in state.items():
        if namespace is not None and ns != namespace:
            continue
        if kind == "Pod":
            out.append((body["metadata"].get("labels", {}), 1, body["spec"], ns))
        elif kind == "Deployment":
            t = body["spec"]["template"]
            out.append((t["metadata"]["labels"], body["spec"].get("replicas", 1), t["spec"], ns))
    return out


def _problems(objective, state) -> list[str]:
    o = objective
    if isinstance(o, RolloutObjective | RecoveredObjective):
        name = o.name if isinstance(o, RolloutObjective) else o.deployment
        deps = _objects(state, "Deployment", o.namespace, name)
        if not deps:
            return [f"no Deployment {name}"]
        if isinstance(o, RolloutObjective):
            d = deps[0]
            if d["spec"].get("replicas", 1) < o.min_replicas:
                return [f"{name} has fewer than {o.min_replicas} replicas"]
            images = {c["image"] for c in d["spec"]["template"]["spec"]["containers"]}
            if o.image and images != {o.image}:
                return [f"{name} runs {images}, objective wants {o.image}"]
        return []
    if isinstance(o, ReadyPodsObjective):
        if o.name:
            return [] if _objects(state, "Pod", o.namespace, o.name) else [f"no Pod {o.name}"]
        total = sum(
            r for labels, r, _, _ in _workloads(state, o.namespace) if _selects(o.labels, labels)
        )
        return [] if total >= o.min else [f"only {total} pods labelled {o.labels}"]
    if isinstance(o, ServiceEndpointsObjective):
        svcs = _objects(state, "Service", o.namespace, o.name)
        if not svcs:
            return [f"no Service {o.name}"]
        svc = svcs[0]
        if o.type and svc["spec"].get("type", "ClusterIP") != o.type:
            return [f"{o.name} is not {o.type}"]
        ns = svc["metadata"].get("namespace", "default")
        backends = [
            (r, spec) for labels, r, spec, _ in _workloads(state, ns)
            if _selects(svc["spec"]["selector"], labels)
        ]  # fmt: skip
        if sum(r for r, _ in backends) < o.min_ready:
            return [f"{o.name} selects fewer than {o.min_ready} pods"]
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for _, spec in backends:
                declared = {p.get("name") for c in spec["containers"] for p in c.get("ports", [])}
                declared |= {
                    p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])
                }
                if target not in declared:
                    return [f"{o.name} targets port {target} that its pods do not declare"]
        return []
    if isinstance(o, PvcBoundObjective):
        if not _objects(state, "PersistentVolumeClaim", o.namespace, o.name):
            return [f"no claim {o.name}"]
        mounts = [
            spec for _, _, spec, _ in _workloads(state, o.namespace)
            if any(v.get("persistentVolumeClaim", {}).get("claimName") == o.name
                   for v in spec.get("volumes", []))
        ]  # fmt: skip
        return [] if mounts or not o.mounted else [f"nothing mounts {o.name}"]
    if isinstance(o, NamespaceObjective):
        out = []
        for name in o.names:
            ns = _objects(state, "Namespace", None, name)
            want = {k: v.replace("{name}", name) for k, v in o.labels.items()}
            labels = ns[0]["metadata"].get("labels", {}) if ns else {}
            if not ns or (want and not _selects(want, labels)):
                out.append(f"namespace {name} missing or unlabelled")
        return out
    if isinstance(o, NetworkPolicyObjective):
        pols = _objects(state, "NetworkPolicy", o.namespace, o.name)
        if not pols:
            return [f"no NetworkPolicy {o.name} in {o.namespace}"]
        spec = pols[0]["spec"]
        if not set(o.policy_types) <= set(spec.get("policyTypes", [])):
            return [f"{o.name} lacks policy types {o.policy_types}"]
        if o.selects_all_pods and spec.get("podSelector") != {}:
            return [f"{o.name} does not select all pods"]
        if o.allows_from_namespace:
            target = _objects(state, "Namespace", None, o.allows_from_namespace)
            labels = target[0]["metadata"].get("labels", {}) if target else {}
            labels = {**labels, "kubernetes.io/metadata.name": o.allows_from_namespace}
            peers = [p for rule in spec.get("ingress", []) for p in rule.get("from", [])]
            if not peers or not all(
                _selects(p.get("namespaceSelector", {}).get("matchLabels", {}), labels)
                for p in peers
            ):
                return [f"{o.name} does not admit exactly namespace {o.allows_from_namespace}"]
        return []
    if isinstance(o, AutoscalerObjective):
        for hpa in _objects(state, "HorizontalPodAutoscaler", o.namespace):
            spec = hpa["spec"]
            metrics = {
                m["resource"]["name"] for m in spec.get("metrics", []) if m["type"] == "Resource"
            }
            if (
                spec["scaleTargetRef"]["name"] == o.deployment
                and (o.min_replicas is None or spec.get("minReplicas") == o.min_replicas)
                and (o.max_replicas is None or spec["maxReplicas"] == o.max_replicas)
                and set(o.metrics) <= metrics
            ):
                target = _objects(state, "Deployment", hpa["metadata"]["namespace"], o.deployment)
                if not target:
                    return [f"autoscaler targets missing deployment {o.deployment}"]
                containers = target[0]["spec"]["template"]["spec"]["containers"]
                if not all(c.get("resources", {}).get("requests", {}).get(m) for c in containers
                           for m in o.metrics):  # fmt: skip
                    return ["the autoscaled containers need requests for its metrics"]
                return []
        return [f"no autoscaler for {o.deployment}"]
    return []  # judged only on a live cluster: nodes_ready, no_failing_pods, ...


STAGES = _applied_after_each_chapter()


@pytest.mark.parametrize(
    ("chapter", "state"), STAGES, ids=lambda s: str(s) if isinstance(s, int) else ""
)
def test_solution_satisfies_objectives(chapter, state):
    problems = [
        f"{o.id}: {p}"
        for task in COURSE.tasks(chapter)
        for o in task.objectives
        for p in _problems(o, state)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("chapter", "state"), STAGES, ids=lambda s: str(s) if isinstance(s, int) else ""
)
def test_solution_namespaces_exist(chapter, state):
    namespaces = {n for (k, _, n) in state if k == "Namespace"} | {"default"}
    used = {ns for (_, ns, _) in state if ns}
    assert used <= namespaces, (
        f"chapter {chapter} uses namespaces it never creates: {used - namespaces}"
    )
