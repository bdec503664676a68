"""Recorded cluster states for every task of the course.

A :class:`Station` is one learner's sandbox as the API server lists it. It starts fresh
(three Ready nodes and one the storm took down, kube-system's DNS, the default namespaces,
the sandbox's StorageClass and metrics-server when a chapter needs them) and changes the way a
real cluster does when the learner applies the chapters' solution files: the emulator has no
controllers, so :meth:`Station.apply` plays them — a Deployment gets its ReplicaSet and Running,
Ready pods spread over the Ready nodes; a rolled-out template gets a new ReplicaSet and the
old one is scaled to zero; a claim binds to a provisioned volume when its first pod arrives
(the class waits for the first consumer); Services get EndpointSlices; autoscalers get the
status the HPA controller writes.

Everything is read from ``chapters/*/manifests`` with yaml, so a change to a manifest changes
the recorded state. :func:`before` is the cluster a learner starts a chapter with (the earlier
chapters solved); :func:`after` adds the chapter's own solution (and, for a task with a drill,
the drill and the recovery the controllers perform).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.content.course import load_course
from bot.content.schema import TaskBeat
from sandbox.objectives import EvalContext, selector_matches
from tests.emulator import objects as ob

Obj = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace ("" for cluster-scoped), name

COURSE = load_course()
READY_NODES = ("kepler-worker", "kepler-worker2", "kepler-worker3")
DOWN_NODE = "kepler-worker4"  # "three operational nodes out of seven": one damaged one shows
STORAGE_CLASS = "standard"
CLUSTER_SCOPED = {"Namespace", "Node", "PersistentVolume", "StorageClass"}
# The sandbox was created a day ago; chapter N's work happens N hours later.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

# What the instructions do besides applying solution files (kubectl delete before re-creating
# in the new namespaces, chapter 4 step 2).
IMPERATIVE: dict[int, list[tuple[str, str, str]]] = {
    4: [("Deployment", "default", "life-support-system"),
        ("Pod", "default", "data-recovery-service"),
        ("PersistentVolumeClaim", "default", "research-data-claim")],
}


def chapter_index(number: int) -> int:
    return COURSE.find_chapter(number)


def task_of(number: int) -> TaskBeat:
    tasks = COURSE.tasks(chapter_index(number))
    assert len(tasks) == 1, f"chapter {number} has {len(tasks)} tasks"
    return tasks[0]


def solution_docs(number: int, task: TaskBeat | None = None) -> list[Obj]:
    """The solution manifests' documents, in the order the task lists the files."""
    task = task or task_of(number)
    out: list[Obj] = []
    for m in task.manifests:
        if not m.solution:
            continue
        path = COURSE.manifest_path(chapter_index(number), m.file)
        out += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return out


def manifest(number: int, file: str, name: str | None = None) -> Obj:
    """One document of a chapter's manifest file (the first, or the one called ``name``)."""
    path = COURSE.manifest_path(chapter_index(number), file)
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return copy.deepcopy(next(d for d in docs if name is None or d["metadata"]["name"] == name))


def requirements(upto: int) -> set[str]:
    out: set[str] = set()
    for ch in COURSE.chapters:
        if 1 <= ch.number <= upto:
            out |= set(ch.requires)
    return out


# --- the station -----------------------------------------------------------------------------


@dataclass
class Rollout:
    """How far the controllers got with a Deployment: ``ready`` pods of the new ReplicaSet
    (None: all), the rest ``waiting`` (e.g. ImagePullBackOff); ``stuck`` past the deadline."""

    ready: int | None = None
    waiting: str | None = None
    stuck: bool = False


class Station:
    """One learner's cluster, changed as kubectl plus the controllers would change it."""

    def __init__(self, requires: Iterable[str] = (), *, nodes_ready: bool = True):
        self.objs: dict[Key, Obj] = {}
        self.clock = START
        self.drill_started_at: datetime | None = None
        self._placement = itertools.cycle(READY_NODES)
        self._volumes = itertools.count(1)
        requires = set(requires)
        self.add(*(ob.node(n, ready=nodes_ready) for n in READY_NODES),
                 ob.node(DOWN_NODE, ready=False))
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.add(ob.namespace(ns))
        dns = ob.deployment("coredns", "kube-system", replicas=2, labels={"k8s-app": "kube-dns"},
                            containers=[("coredns", "registry.k8s.io/coredns/coredns:v1.11.3")],
                            created=START)
        self._controlled(dns, Rollout())
        self.add(ob.service("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, 53, 53,
                            labels={"k8s-app": "kube-dns"}))
        if "storage-class" in requires:
            self.add(ob.storage_class(STORAGE_CLASS))
        if "metrics-server" in requires:
            ms = ob.deployment("metrics-server", "kube-system", labels={"k8s-app": "metrics-server"},
                               containers=[("metrics-server",
                                            "registry.k8s.io/metrics-server/metrics-server:v0.7.2")],
                               created=START)
            self._controlled(ms, Rollout())

    # -- store --

    @staticmethod
    def key(o: Obj) -> Key:
        meta = o["metadata"]
        ns = "" if o["kind"] in CLUSTER_SCOPED else meta.get("namespace", "default")
        return o["kind"], ns, meta["name"]

    def add(self, *objs: Obj) -> None:
        for o in objs:
            self.objs[self.key(o)] = o

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objs.get((kind, "" if kind in CLUSTER_SCOPED else namespace, name))

    def of(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return [o for (k, ns, _), o in self.objs.items()
                if k == kind and (namespace is None or ns == namespace)]

    def owned_by(self, owner: Obj, kind: str) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [o for o in self.of(kind)
                if any(r["uid"] == uid for r in o["metadata"].get("ownerReferences", []))]

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """``kubectl delete`` and what garbage collection and reclaim then remove."""
        o = self.objs.pop((kind, "" if kind in CLUSTER_SCOPED else namespace, name), None)
        if o is None:
            return
        for child_kind in ("ReplicaSet", "Pod", "EndpointSlice"):
            for child in self.owned_by(o, child_kind):
                self.delete(child_kind, child["metadata"]["namespace"], child["metadata"]["name"])
        if kind == "PersistentVolumeClaim" and o["spec"].get("volumeName"):
            self.objs.pop(("PersistentVolume", "", o["spec"]["volumeName"]), None)  # Delete policy

    def tick(self, seconds: float = 60) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def objects(self) -> list[Obj]:
        """Everything the API server lists, derived objects included (EndpointSlices,
        autoscaler status), as fresh copies."""
        derived = [*self._endpoint_slices(), *self._autoscalers()]
        return [copy.deepcopy(o) for o in [*self.objs.values(), *derived]]

    def context(self) -> EvalContext:
        return EvalContext(drill_started_at=self.drill_started_at)

    # -- kubectl apply ---------------------------------------------------------------------

    def apply(self, doc: Obj, rollout: Rollout | None = None) -> None:
        doc = copy.deepcopy(doc)
        doc.setdefault("metadata", {})
        if doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"].setdefault("namespace", "default")
        self.tick(20)
        handler = getattr(self, f"_apply_{doc['kind']}", None)
        if handler is None:
            raise NotImplementedError(f"no controller emulation for {doc['kind']}")
        handler(doc, rollout or Rollout())

    def _meta(self, doc: Obj, generation: int | None = None) -> Obj:
        m = doc["metadata"]
        meta = ob.metadata(m["name"], m.get("namespace"), m.get("labels"), self.clock,
                           generation=generation, annotations=m.get("annotations"))
        old = self.get(doc["kind"], m.get("namespace", ""), m["name"])
        if old is not None:  # an update keeps identity
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        return meta

    def _apply_Namespace(self, doc: Obj, _: Rollout) -> None:
        ns = ob.namespace(doc["metadata"]["name"], doc["metadata"].get("labels"))
        ns["metadata"]["creationTimestamp"] = ob.ts(self.clock)
        self.add(ns)

    def _apply_NetworkPolicy(self, doc: Obj, _: Rollout) -> None:
        old = self.get("NetworkPolicy", doc["metadata"]["namespace"], doc["metadata"]["name"])
        gen = 1 if old is None else old["metadata"]["generation"] + (
            old["spec"] != doc["spec"])
        self.add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": self._meta(doc, gen), "spec": copy.deepcopy(doc["spec"])})

    def _apply_Service(self, doc: Obj, _: Rollout) -> None:
        m, spec = doc["metadata"], doc["spec"]
        port = spec["ports"][0]
        svc = ob.service(m["name"], m["namespace"], spec.get("selector"), port["port"],
                         port.get("targetPort", port["port"]), spec.get("type", "ClusterIP"),
                         m.get("labels"))
        svc["metadata"] = self._meta(doc)
        built = svc["spec"]["ports"][0]
        svc["spec"]["ports"] = [{**built, "name": p.get("name", ""), "port": p["port"],
                                 "protocol": p.get("protocol", "TCP"),
                                 "targetPort": p.get("targetPort", p["port"])}
                                for p in spec["ports"]]
        svc["spec"]["sessionAffinity"] = spec.get("sessionAffinity", "None")
        if spec.get("sessionAffinity") == "ClientIP":
            svc["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
        self.add(svc)

    def _apply_PersistentVolumeClaim(self, doc: Obj, _: Rollout) -> None:
        m, spec = doc["metadata"], doc["spec"]
        if self.get("PersistentVolumeClaim", m["namespace"], m["name"]) is not None:
            return  # a claim's spec is immutable once bound; re-applying changes nothing
        cls = spec.get("storageClassName", self._default_class())
        claim = ob.pvc(m["name"], m["namespace"], "Pending", cls,
                       spec["resources"]["requests"]["storage"])
        claim["metadata"]["creationTimestamp"] = ob.ts(self.clock)
        claim["spec"]["accessModes"] = list(spec["accessModes"])
        self.add(claim)
        if cls is None or self.get("StorageClass", "", cls) is None:
            self.add(ob.event(claim, "FailedBinding", "no persistent volumes available for this "
                              "claim and no storage class is set", when=self.clock))
            return
        self.add(ob.event(claim, "WaitForFirstConsumer", "waiting for first consumer to be "
                          "created before binding", "Normal", when=self.clock))
        if any(self._mounts(p, m["name"]) for p in self.of("Pod", m["namespace"])):
            self._bind(claim)

    def _default_class(self) -> str | None:
        for sc in self.of("StorageClass"):
            ann = sc["metadata"].get("annotations") or {}
            if ann.get("storageclass.kubernetes.io/is-default-class") == "true":
                return str(sc["metadata"]["name"])
        return None

    @staticmethod
    def _mounts(pod: Obj, claim: str) -> bool:
        return any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim
                   for v in pod["spec"].get("volumes") or [])

    def _bind(self, claim: Obj) -> None:
        """The provisioner builds a volume for the claim's first consumer; the claim binds."""
        m = claim["metadata"]
        size = claim["spec"]["resources"]["requests"]["storage"]
        bound = ob.pvc(m["name"], m["namespace"], "Bound", claim["spec"].get("storageClassName"),
                       size, volume_name=f"pvc-{m['uid']}")
        bound["metadata"].update(uid=m["uid"], creationTimestamp=m["creationTimestamp"])
        bound["spec"]["accessModes"] = claim["spec"]["accessModes"]
        self.add(bound)
        self.add(ob.persistent_volume(bound["spec"]["volumeName"], size,
                                      bound["spec"]["storageClassName"], claim=bound))
        self.add(ob.event(bound, "ProvisioningSucceeded",
                          f"Successfully provisioned volume {bound['spec']['volumeName']}",
                          "Normal", when=self.clock))

    def _apply_Pod(self, doc: Obj, rollout: Rollout) -> None:
        m = doc["metadata"]
        if self.get("Pod", m["namespace"], m["name"]) is not None:
            return  # pods are immutable; kubectl create would refuse, apply changes nothing
        unbound = ""
        for v in doc["spec"].get("volumes") or []:
            claim_name = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim_name:
                continue
            claim = self.get("PersistentVolumeClaim", m["namespace"], claim_name)
            if claim is None:
                unbound = f'persistentvolumeclaim "{claim_name}" not found'
            elif claim["status"]["phase"] == "Pending":
                if self.get("StorageClass", "", claim["spec"].get("storageClassName", "")):
                    self._bind(claim)
                else:  # nothing can provision it: the scheduler keeps the pod Pending
                    unbound = (f"0/{len(self.of('Node'))} nodes are available: pod has unbound "
                               "immediate PersistentVolumeClaims.")
        pod = self._pod(m["name"], m["namespace"], m.get("labels"), doc["spec"], rollout,
                        ready=rollout.ready is None or rollout.ready > 0, unschedulable=unbound)
        self.add(pod)

    def _pod(self, name: str, namespace: str, labels: dict[str, str] | None, spec: Obj,
             rollout: Rollout, owner: Obj | None = None, ready: bool = True,
             created: datetime | None = None, unschedulable: str = "") -> Obj:
        containers = spec["containers"]
        requests = containers[0].get("resources", {}).get("requests")
        pod = ob.pod(name, namespace, labels, containers=[(c["name"], c["image"]) for c in containers],
                     node_name=None if unschedulable else next(self._placement),
                     phase="Pending" if unschedulable else "Running",
                     owner=owner, created=created or self.clock,
                     volumes=copy.deepcopy(spec.get("volumes")) or None, requests=requests,
                     ready=None if rollout.waiting else ready,
                     waiting=None if ready else rollout.waiting)
        # the manifest's container fields over the server's defaults
        pod["spec"]["containers"] = [{**built, **copy.deepcopy(c),
                                      "volumeMounts": [*c.get("volumeMounts", []),
                                                       *built["volumeMounts"]]}
                                     for built, c in zip(pod["spec"]["containers"], containers,
                                                         strict=True)]
        if unschedulable:
            sched = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
            sched["message"] = unschedulable
        else:  # the scheduler's event names this pod by uid, and outlives the pod
            ev = ob.event(pod, "Scheduled", f"Successfully assigned {namespace}/{name} to "
                          f"{pod['spec']['nodeName']}", "Normal", when=created or self.clock)
            ev["metadata"]["name"] = f"{name}.{pod['metadata']['uid'][:12]}"
            ev["source"] = {"component": "default-scheduler"}
            self.add(ev)
        for key in ("restartPolicy",):
            if key in spec:
                pod["spec"][key] = spec[key]
        return pod

    def _apply_Deployment(self, doc: Obj, rollout: Rollout) -> None:
        m, spec = doc["metadata"], doc["spec"]
        old = self.get("Deployment", m["namespace"], m["name"])
        template = copy.deepcopy(spec["template"])
        if (old is not None and old["spec"]["template"] == _template(template, old)
                and old["spec"]["replicas"] == spec.get("replicas", 1)):
            return  # unchanged: apply is a no-op
        self._controlled(self._deployment(doc, old), rollout, old)

    def _deployment(self, doc: Obj, old: Obj | None) -> Obj:
        m, spec = doc["metadata"], doc["spec"]
        replicas = spec.get("replicas", 1)
        containers = spec["template"]["spec"]["containers"]
        gen = 1
        if old is not None:
            gen = old["metadata"]["generation"] + 1
        d = ob.deployment(m["name"], m["namespace"], replicas,
                          labels=spec["selector"]["matchLabels"],
                          containers=[(c["name"], c["image"]) for c in containers],
                          generation=gen, created=self.clock)
        d["metadata"] = self._meta(doc, gen)
        d["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": str(
            1 if old is None else int(old["metadata"]["annotations"][
                "deployment.kubernetes.io/revision"]) + 1)}
        d["spec"]["selector"] = copy.deepcopy(spec["selector"])
        d["spec"]["template"] = _template(copy.deepcopy(spec["template"]), d)
        if "strategy" in spec:
            d["spec"]["strategy"] = copy.deepcopy(spec["strategy"])
        return d

    def _controlled(self, d: Obj, rollout: Rollout, old: Obj | None = None) -> None:
        """What the deployment and replica set controllers leave: a ReplicaSet for the
        template with its pods; once those are ready the old ReplicaSet is scaled to zero.
        A ``stuck`` update has started one surge pod and kept the old pods serving."""
        ns, n = d["metadata"]["namespace"], d["spec"]["replicas"]
        ready = n if rollout.ready is None else min(rollout.ready, n)
        rs = ob.replica_set(d, ready=ready)
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = (
            d["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        rs["metadata"]["creationTimestamp"] = ob.ts(self.clock)
        old_sets = [r for r in (self.owned_by(old, "ReplicaSet") if old is not None else [])]
        for r in old_sets:
            if r["metadata"]["name"] == rs["metadata"]["name"]:  # same template: reused
                rs["metadata"]["uid"] = r["metadata"]["uid"]
                for p in self.owned_by(r, "Pod"):
                    self.delete("Pod", ns, p["metadata"]["name"])
        old_sets = [r for r in old_sets if r["metadata"]["name"] != rs["metadata"]["name"]]
        new_pods = 1 if rollout.stuck and old_sets else n
        old_pods: list[Obj] = []
        for r in old_sets:
            r["metadata"]["ownerReferences"] = [ob.owner_reference(d)]
            if rollout.stuck:
                old_pods += self.owned_by(r, "Pod")
                continue
            for p in self.owned_by(r, "Pod"):
                self.delete("Pod", ns, p["metadata"]["name"])
            r["spec"]["replicas"] = 0
            r["status"] = {"replicas": 0, "observedGeneration": r["metadata"]["generation"]}
        ready = min(ready, new_pods)
        rs["spec"]["replicas"] = new_pods
        rs["status"].update(replicas=new_pods, fullyLabeledReplicas=new_pods,
                            readyReplicas=ready, availableReplicas=ready)
        if not ready:
            del rs["status"]["readyReplicas"], rs["status"]["availableReplicas"]
        self.add(d, rs)
        template = d["spec"]["template"]
        labels = rs["spec"]["selector"]["matchLabels"]
        for i in range(new_pods):
            name = f"{rs['metadata']['name']}-{ob._hash(rs['metadata']['name'], str(i))[:5]}"
            self.add(self._pod(name, ns, {**template["metadata"].get("labels", {}), **labels},
                               template["spec"], rollout, owner=rs, ready=i < ready))
        old_ready = sum(1 for p in old_pods if ob._pod_ready(p))
        status = ob.deployment(
            d["metadata"]["name"], ns, n, ready=ready + old_ready, updated=new_pods,
            available=ready + old_ready, generation=d["metadata"]["generation"],
            stuck=rollout.stuck,
            containers=[(c["name"], c["image"]) for c in template["spec"]["containers"]],
        )["status"]
        status["replicas"] = new_pods + len(old_pods)
        d["status"] = status

    def _apply_HorizontalPodAutoscaler(self, doc: Obj, _: Rollout) -> None:
        m, spec = doc["metadata"], doc["spec"]
        h = ob.hpa(m["name"], m["namespace"], spec["scaleTargetRef"]["name"],
                   spec["scaleTargetRef"]["kind"], spec.get("minReplicas", 1),
                   spec["maxReplicas"])
        h["metadata"] = self._meta(doc)
        h["spec"] = copy.deepcopy(spec)
        self.add(h)

    # -- derived by controllers at read time -----------------------------------------------

    def _endpoint_slices(self) -> Iterator[Obj]:
        for svc in self.of("Service"):
            sel = svc["spec"].get("selector")
            if not sel:
                continue
            ns = svc["metadata"]["namespace"]
            pods = [p for p in self.of("Pod", ns) if selector_matches({"matchLabels": sel},
                                                                       p["metadata"].get("labels", {}))
                    and p["spec"].get("nodeName")]
            es = ob.endpoint_slice(svc, pods)
            target = svc["spec"]["ports"][0]["targetPort"]
            if isinstance(target, str):  # a named port resolves to the container's number
                numbers = [cp["containerPort"] for p in pods for c in p["spec"]["containers"]
                           for cp in c.get("ports", []) if cp.get("name") == target]
                es["ports"][0]["port"] = numbers[0] if numbers else None
            yield es

    def _autoscalers(self) -> Iterator[Obj]:
        """Autoscalers are stored without status; this is what the HPA controller writes."""
        for h in self.of("HorizontalPodAutoscaler"):
            ref = h["spec"]["scaleTargetRef"]
            target = self.get(ref["kind"], h["metadata"]["namespace"], ref["name"])
            metrics = "metrics-server" in {d["metadata"]["name"]
                                           for d in self.of("Deployment", "kube-system")}
            n = target["spec"]["replicas"] if target else 0
            built = ob.hpa(h["metadata"]["name"], h["metadata"]["namespace"], ref["name"],
                           ref["kind"], h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"],
                           current=n, desired=n, able_to_scale=target is not None,
                           metrics_available=metrics and target is not None)
            if target is not None and metrics:
                built["status"]["currentMetrics"] = [
                    {"type": "Resource", "resource": {"name": m["resource"]["name"], "current": {
                        "averageUtilization": 12 if m["resource"]["name"] == "cpu" else 31,
                        "averageValue": "6m" if m["resource"]["name"] == "cpu" else "20Mi"}}}
                    for m in h["spec"].get("metrics", []) if m.get("type") == "Resource"]
            elif target is None:
                built["status"]["conditions"][0]["message"] = (
                    f"the HPA controller was unable to get the target's current scale: "
                    f"deployments/scale.apps \"{ref['name']}\" not found")
            yield {**h, "status": built["status"]}

    # -- the story's drill ------------------------------------------------------------------

    def drill(self, namespace: str, labels: dict[str, str], count: int = 1,
              recover: bool = True) -> list[str]:
        """Delete ``count`` matching pods as the drill does; with ``recover`` the replica set
        controller replaces them with Ready pods (created two seconds later)."""
        self.drill_started_at = self.tick(600)
        victims = sorted((p for p in self.of("Pod", namespace)
                          if all(p["metadata"].get("labels", {}).get(k) == v
                                 for k, v in labels.items())),
                         key=lambda p: p["metadata"]["name"])[:count]
        for p in victims:
            self.delete("Pod", namespace, p["metadata"]["name"])
            if recover:
                self.replace_pod(p, created=self.drill_started_at + timedelta(seconds=2))
        return [p["metadata"]["name"] for p in victims]

    def replace_pod(self, gone: Obj, created: datetime, ready: bool = True) -> Obj:
        rs_ref = gone["metadata"]["ownerReferences"][0]
        ns = gone["metadata"]["namespace"]
        rs = self.get("ReplicaSet", ns, rs_ref["name"])
        assert rs is not None
        name = f"{rs['metadata']['name']}-{ob._hash(str(created), gone['metadata']['name'])[:5]}"
        pod = self._pod(name, ns, gone["metadata"]["labels"], gone["spec"], Rollout(), owner=rs,
                        ready=ready, created=created)
        self.add(pod)
        return pod


def _template(template: Obj, d: Obj) -> Obj:
    """A pod template as the server stores it (container defaults filled in)."""
    spec = template.setdefault("spec", {})
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for c in spec.get("containers", []):
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        for p in c.get("ports", []):
            p.setdefault("protocol", "TCP")
    return template


# --- chapters --------------------------------------------------------------------------------


def solve(station: Station, number: int, with_drill: bool = True) -> Station:
    """Do chapter ``number`` as its instructions say, with its solution files."""
    station.clock = max(station.clock, START + timedelta(hours=number))
    for kind, ns, name in IMPERATIVE.get(number, []):
        station.tick(10)
        station.delete(kind, ns, name)
    task = task_of(number)
    for doc in solution_docs(number, task):
        station.apply(doc)
    for step in AFTER_FILES.get(number, []):
        step(station)
    if task.drill is not None and with_drill:
        station.drill(task.drill.namespace, task.drill.labels, task.drill.count)
    return station


def restart_recovery_pod(station: Station) -> None:
    """Chapter 3, step 4: delete the recovery pod and create it again from its file."""
    station.tick(30)
    station.delete("Pod", "default", "data-recovery-service")
    station.apply(manifest(3, "data-recovery-pod.yaml"))


def load_test(station: Station) -> None:
    """Chapter 6, step 4: load drives CPU above target; the autoscaler adds a replica."""
    station.tick(90)
    hpa = station.get("HorizontalPodAutoscaler", "research", "research-analysis-hpa")
    assert hpa is not None
    deployment = manifest(6, "atmospheric-analysis-deployment.yaml")
    new_size = deployment["spec"]["replicas"] + 1
    deployment["spec"]["replicas"] = new_size
    station.apply(deployment)
    ev = ob.event(hpa, "SuccessfulRescale", f"New size: {new_size}; reason: cpu resource "
                  "utilization (percentage of request) above target", "Normal", when=station.clock)
    ev["source"] = {"component": "horizontal-pod-autoscaler"}
    station.add(ev)


# What the instructions do after applying the solution files, before the story moves on.
AFTER_FILES = {3: [restart_recovery_pod], 6: [load_test]}


def before(number: int) -> Station:
    """The cluster a learner starts chapter ``number`` with: earlier chapters solved."""
    station = Station(requirements(number))
    for n in range(1, number):
        solve(station, n)
    return station


def after(number: int, with_drill: bool = True) -> Station:
    """Chapter ``number`` solved (and its drill run and recovered from, if it has one)."""
    return solve(before(number), number, with_drill)


CHAPTERS = [c.number for c in COURSE.chapters if 1 <= c.number <= 6]


def manifests_dir(number: int) -> Path:
    return COURSE.chapter_dirs[chapter_index(number)] / "manifests"
