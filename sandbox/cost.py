"""What one learner's sandbox asks of the host: requests and limits, from the rendered objects.

Nothing here is estimated by hand. The control plane's figures come from the StatefulSet that
:func:`sandbox.provision.render` produces (containers summed, init containers as the larger
of themselves and the rest, as the scheduler counts them); CoreDNS, which vcluster runs inside
the virtual cluster and syncs into the sandbox namespace as a pod, from the vcluster config
the same render writes into its Secret; the course's workloads from each chapter's manifests
under the rendered LimitRange's defaults (a container without requests gets
``defaultRequest``, one with only limits gets its limits, as the API server does).

A chapter's *active* cost is the control plane, CoreDNS, what earlier chapters' solutions left
running (catch-up applies them too) and everything the chapter itself applies, a
HorizontalPodAutoscaler's target counted at ``maxReplicas``: the most the scheduler must find
room for while the learner works. *Paused* is zero CPU and memory (the StatefulSet is scaled
to 0 and the synced pods, CoreDNS included, deleted); only volumes remain.

These are requests, what the host reserves, not measured use: there is no real host here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.placement import Footprint, cpu_millis, memory_bytes

Obj = dict[str, Any]
_SCALED = ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController")


@dataclass(frozen=True)
class Resources:
    """Requests and limits (CPU in millicores, memory and storage in bytes)."""

    cpu_m: int = 0
    memory: int = 0
    limit_cpu_m: int = 0
    limit_memory: int = 0
    storage: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_m + other.cpu_m, self.memory + other.memory,
                         self.limit_cpu_m + other.limit_cpu_m,
                         self.limit_memory + other.limit_memory, self.storage + other.storage)  # fmt: skip

    def times(self, n: int) -> Resources:
        return Resources(self.cpu_m * n, self.memory * n, self.limit_cpu_m * n,
                         self.limit_memory * n, self.storage * n)  # fmt: skip

    def at_least(self, other: Resources) -> Resources:
        """Per dimension the larger (an init container against the app containers)."""
        return Resources(max(self.cpu_m, other.cpu_m), max(self.memory, other.memory),
                         max(self.limit_cpu_m, other.limit_cpu_m),
                         max(self.limit_memory, other.limit_memory),
                         max(self.storage, other.storage))  # fmt: skip

    @property
    def footprint(self) -> Footprint:
        return Footprint(cpu_m=self.cpu_m, memory=self.memory)


@dataclass(frozen=True)
class Defaults:
    """A namespace LimitRange's container defaults (what a container without resources gets)."""

    request_cpu_m: int = 0
    request_memory: int = 0
    limit_cpu_m: int = 0
    limit_memory: int = 0

    @classmethod
    def from_objects(cls, objects: Iterable[Obj]) -> Defaults:
        for obj in objects:
            if obj.get("kind") != "LimitRange":
                continue
            for item in (obj.get("spec") or {}).get("limits") or []:
                if item.get("type") == "Container":
                    req = item.get("defaultRequest") or {}
                    lim = item.get("default") or {}
                    return cls(cpu_millis(req.get("cpu", 0)), memory_bytes(req.get("memory", 0)),
                               cpu_millis(lim.get("cpu", 0)), memory_bytes(lim.get("memory", 0)))  # fmt: skip
        return cls()


def container(c: Mapping[str, Any], d: Defaults) -> Resources:
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    lim_cpu = cpu_millis(lim["cpu"]) if "cpu" in lim else d.limit_cpu_m
    lim_mem = memory_bytes(lim["memory"]) if "memory" in lim else d.limit_memory
    cpu = (cpu_millis(req["cpu"]) if "cpu" in req else
           cpu_millis(lim["cpu"]) if "cpu" in lim else d.request_cpu_m)  # fmt: skip
    mem = (memory_bytes(req["memory"]) if "memory" in req else
           memory_bytes(lim["memory"]) if "memory" in lim else d.request_memory)  # fmt: skip
    return Resources(cpu, mem, lim_cpu, lim_mem)


def pod(spec: Mapping[str, Any], d: Defaults) -> Resources:
    """A pod as the scheduler counts it: app containers summed, at least each init container."""
    total = sum((container(c, d) for c in spec.get("containers") or []), Resources())
    for init in spec.get("initContainers") or []:
        total = total.at_least(container(init, d))
    return total


def _claims(templates: Iterable[Mapping[str, Any]]) -> int:
    return sum(memory_bytes(((t.get("spec") or {}).get("resources") or {}).get("requests", {})
                            .get("storage", 0)) for t in templates)  # fmt: skip


def control_plane(objects: Sequence[Obj], replicas: int | None = None) -> Resources:
    """The vcluster StatefulSet's pods and volume claims (``replicas`` overrides the spec)."""
    d = Defaults.from_objects(objects)
    for obj in objects:
        if obj.get("kind") == "StatefulSet":
            spec = obj["spec"]
            n = spec.get("replicas", 1) if replicas is None else replicas
            template = spec["template"]["spec"]
            claims = _claims(spec.get("volumeClaimTemplates") or [])
            return pod(template, d).times(n) + Resources(storage=claims * max(n, 1))
    raise ValueError("no StatefulSet among the rendered objects")


def vcluster_config(objects: Sequence[Obj]) -> Obj:
    """The vcluster config the render put in its Secret (chart defaults merged with ours)."""
    for obj in objects:
        if obj.get("kind") == "Secret" and "config.yaml" in (obj.get("data") or {}):
            return yaml.safe_load(base64.b64decode(obj["data"]["config.yaml"]))
    raise ValueError("no vcluster config Secret among the rendered objects")


def coredns(objects: Sequence[Obj]) -> Resources:
    """CoreDNS as a separate Deployment (vcluster's default; embedded CoreDNS is Pro-only)."""
    dns = ((vcluster_config(objects).get("controlPlane") or {}).get("coredns") or {})
    if not dns.get("enabled", True) or dns.get("embedded"):
        return Resources()
    deployment = dns.get("deployment") or {}
    one = container({"resources": deployment.get("resources") or {}}, Defaults.from_objects(objects))
    return one.times(int(deployment.get("replicas", 1)))


def workloads(docs: Iterable[Obj], d: Defaults) -> Resources:
    """Requests of what these manifests run (HPA targets at their ``maxReplicas``)."""
    objs = {(o.get("kind"), (o.get("metadata") or {}).get("namespace", "default"),
             (o.get("metadata") or {}).get("name")): o for o in docs if o}  # fmt: skip
    peak = {(t.get("kind"), ns, t.get("name")): o["spec"].get("maxReplicas", 1)
            for (kind, ns, _), o in objs.items() if kind == "HorizontalPodAutoscaler"
            for t in [o["spec"].get("scaleTargetRef") or {}]}  # fmt: skip
    total = Resources()
    for (kind, ns, name), o in objs.items():
        spec = o.get("spec") or {}
        if kind == "Pod":
            total += pod(spec, d)
        elif kind in _SCALED:
            n = max(int(spec.get("replicas", 1)), int(peak.get((kind, ns, name), 0)))
            total += pod(spec["template"]["spec"], d).times(n)
            total += Resources(storage=_claims(spec.get("volumeClaimTemplates") or []) * n)
        elif kind == "Job":
            total += pod(spec["template"]["spec"], d).times(int(spec.get("parallelism", 1)))
        elif kind == "DaemonSet":  # one node in a sandbox's virtual cluster
            total += pod(spec["template"]["spec"], d)
        elif kind == "PersistentVolumeClaim":
            total += Resources(storage=_claims([o]))
    return total


def load_docs(paths: Iterable[Path]) -> list[Obj]:
    return [doc for p in paths for doc in yaml.safe_load_all(p.read_text()) if doc]


@dataclass(frozen=True)
class ChapterCost:
    number: int
    title: str
    workloads: Resources  # the course's own pods and volumes while this chapter is worked on
    active: Resources  # the whole sandbox while this chapter is worked on


def chapter_costs(course: Any, objects: Sequence[Obj]) -> list[ChapterCost]:
    """Per chapter: earlier chapters' solutions plus everything this chapter applies."""
    d = Defaults.from_objects(objects)
    base = control_plane(objects) + coredns(objects)
    out: list[ChapterCost] = []
    kept: list[Path] = []
    for i, chapter in enumerate(course.chapters):
        mine = [course.manifest_path(i, m.file) for t in course.tasks(i) for m in t.manifests]
        own = workloads(load_docs(kept + mine), d)
        out.append(ChapterCost(chapter.number, chapter.title, own, base + own))
        kept += [course.manifest_path(i, m.file) for t in course.tasks(i) for m in t.manifests
                 if m.solution]  # fmt: skip
    return out


def states(objects: Sequence[Obj], chapters: Sequence[ChapterCost]) -> dict[str, Resources]:
    """The sandbox's cost in each state the lifecycle knows."""
    cp, dns = control_plane(objects), coredns(objects)
    peak = max(chapters, key=lambda c: (c.active.cpu_m, c.active.memory)).active if chapters \
        else cp + dns
    return {
        "paused": Resources(storage=cp.storage + max((c.workloads.storage for c in chapters),
                                                     default=0)),
        "ready, nothing applied (or a warm spare)": cp + dns,
        "active, mean over chapters": _mean([c.active for c in chapters]) if chapters else cp + dns,
        "active, peak chapter": peak,
    }


def _mean(items: Sequence[Resources]) -> Resources:
    n = len(items)
    total = sum(items, Resources())
    return Resources(total.cpu_m // n, total.memory // n, total.limit_cpu_m // n,
                     total.limit_memory // n, total.storage // n)  # fmt: skip


def _fmt(r: Resources) -> str:
    mi = 2**20
    return (f"{r.cpu_m:>6}m {r.memory // mi:>6}Mi {r.limit_cpu_m:>7}m {r.limit_memory // mi:>7}Mi "
            f"{r.storage / 2**30:>6.2f}Gi")


def report(objects: Sequence[Obj], course: Any) -> str:
    """The table ``kepler sandbox cost`` prints."""
    chapters = chapter_costs(course, objects)
    head = f"{'':<44} {'CPU req':>7} {'mem req':>8} {'CPU lim':>8} {'mem lim':>9} {'storage':>8}"
    lines = ["Parts of a running sandbox", head,
             f"{'control plane (vcluster StatefulSet)':<44} {_fmt(control_plane(objects))}",
             f"{'CoreDNS (synced pod)':<44} {_fmt(coredns(objects))}", "",
             "Whole sandbox by state", head]  # fmt: skip
    lines += [f"{name:<44} {_fmt(r)}" for name, r in states(objects, chapters).items()]
    lines += ["", "Active, per chapter (whole sandbox; course workloads in brackets)", head]
    for c in chapters:
        label = f"{c.number:>2} {c.title}"[:30]
        lines.append(f"{label:<30} [{c.workloads.cpu_m:>4}m {c.workloads.memory // 2**20:>4}Mi] "
                     f"{_fmt(c.active)}")  # fmt: skip
    return "\n".join(lines)


def sandbox_footprint(objects: Sequence[Obj], course: Any) -> Footprint:
    """What placement reserves per active sandbox: the peak chapter's requests."""
    return states(objects, chapter_costs(course, objects))["active, peak chapter"].footprint
