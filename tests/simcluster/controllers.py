"""The control loops of a one-node kind cluster, as Kubernetes documents them, over one emulated
cluster's store: garbage collector, Deployment and ReplicaSet controllers, scheduler, kubelet,
EndpointSlice and Endpoints controllers, PersistentVolume binder with the local-path
provisioner (``WaitForFirstConsumer``), load balancer (cloud-provider-kind style), and the
HPA over simulated metrics. Each writes an object only when it changes, and records Events.

Time is compressed: a pod moves one stage (scheduled, image pulled, started, probed) per
``step`` seconds, so watchers see every intermediate state, and a whole rollout settles in
well under a second. The kubelet stops after the first crash-loop back-off or image pull
back-off (a real one keeps retrying; nothing a learner can see changes).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.emulator.server import BY_KIND, Cluster
from tests.simcluster import images
from tests.simcluster.admission import pod_defaults

Obj = dict[str, Any]
_ALNUM = "bcdfghjklmnpqrstvwxz2456789"
GENERATOR_MILLICORES = 300  # CPU a wget loop drives through the pods behind a Service


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _safe_hash(data: Any, n: int = 10) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
    return "".join(_ALNUM[b % len(_ALNUM)] for b in digest[:n])


def _suffix() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(5))


def _meta(o: Obj) -> Obj:
    return o.setdefault("metadata", {})


def _uid(o: Obj) -> str:
    return str(_meta(o).get("uid", ""))


def _ns(o: Obj) -> str:
    return str(_meta(o).get("namespace", ""))


def _owner(o: Obj) -> Obj | None:
    return next((r for r in _meta(o).get("ownerReferences") or [] if r.get("controller")), None)


def _owner_ref(o: Obj) -> Obj:
    return {"apiVersion": o["apiVersion"], "kind": o["kind"], "name": _meta(o)["name"],
            "uid": _uid(o), "controller": True, "blockOwnerDeletion": True}


def selector_matches(sel: Obj | None, labels: dict[str, str]) -> bool:
    if not sel:
        return False
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if (op == "In" and labels.get(key) not in vals) or (op == "NotIn" and labels.get(key) in vals) \
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _cond(type_: str, status: bool, reason: str = "", message: str = "",
          old: list[Obj] | None = None, probe: bool = False, update: bool = False) -> Obj:
    prev = next((c for c in old or [] if c.get("type") == type_), None)
    value = "True" if status else "False"
    c: Obj = {"type": type_, "status": value}
    if probe:
        c["lastProbeTime"] = None
    stamp = prev["lastTransitionTime"] if prev and prev.get("status") == value and \
        prev.get("lastTransitionTime") else now_iso()
    if update:
        c["lastUpdateTime"] = prev.get("lastUpdateTime", stamp) if prev and \
            prev.get("reason") == reason else now_iso()
    c["lastTransitionTime"] = stamp
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def quantity(value: Any) -> float:
    """A Kubernetes quantity as a number (CPU in cores, memory in bytes)."""
    s = str(value)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024, "Mi": 1024**2,
             "Gi": 1024**3, "Ti": 1024**4}
    for u in sorted(units, key=len, reverse=True):
        if s.endswith(u):
            return float(s[: -len(u)]) * units[u]
    return float(s)


def _resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def pod_ready(p: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in p.get("status", {}).get("conditions") or [])


@dataclass
class _PodTrack:
    due: float = 0.0  # when the next stage may run


@dataclass
class Controllers:
    """One reconcile pass at a time over ``cluster``; :meth:`reconcile` says if it wrote."""

    cluster: Cluster
    node: str = "kepler-control-plane"
    step: float = 0.05
    loads: dict[tuple[str, str], int] = field(default_factory=dict)  # (ns, service) -> m CPU
    _pods: dict[str, _PodTrack] = field(default_factory=dict)
    _ips: itertools.count = field(default_factory=lambda: itertools.count(10))
    _lb_ips: itertools.count = field(default_factory=lambda: itertools.count(200))
    _hpa_recs: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    _wrote: bool = False
    _events_seen: set[str] = field(default_factory=set)

    # -- plumbing --

    def _list(self, kind: str, ns: str | None = None) -> list[Obj]:
        return self.cluster.list(kind, ns)

    def _save(self, new: Obj, old: Obj | None) -> Obj:
        if old is not None:
            a = {**old, "metadata": {k: v for k, v in old["metadata"].items()
                                     if k != "resourceVersion"}}
            b = {**new, "metadata": {k: v for k, v in new["metadata"].items()
                                     if k != "resourceVersion"}}
            if a == b:
                return old
        self._wrote = True
        return self.cluster._store_obj(copy.deepcopy(new), keep_status=False)

    def _delete(self, kind: str, o: Obj) -> None:
        self._wrote = True
        self.cluster.remove(kind, _meta(o)["name"], _ns(o) if BY_KIND[kind].namespaced else "")

    def event(self, obj: Obj, reason: str, message: str, type_: str = "Normal",
              source: str = "kubelet", once_key: str | None = None) -> None:
        """Record an Event about ``obj`` (the same reason and message again bumps its count)."""
        key = once_key or f"{_uid(obj)}/{reason}/{message}"
        if key in self._events_seen:
            return
        self._events_seen.add(key)
        ns = _ns(obj) or "default"
        name = f"{_meta(obj)['name']}.{_safe_hash([key, time.time()], 16)}"
        stamp = now_iso()
        self._save({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                               "name": _meta(obj)["name"], "namespace": _ns(obj) or None,
                               "uid": _uid(obj),
                               "resourceVersion": _meta(obj).get("resourceVersion")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "eventTime": None,
            "source": {"component": source, **({"host": self.node} if source == "kubelet"
                                               else {})},
            "reportingComponent": source, "reportingInstance": self.node
            if source == "kubelet" else ""}, None)

    # -- the pass --

    def reconcile(self) -> bool:
        self._wrote = False
        with self.cluster.lock:
            self.garbage_collect()
            for d in self._list("Deployment"):
                self.deployment(d)
            for rs in self._list("ReplicaSet"):
                self.replica_set(rs)
            for claim in self._list("PersistentVolumeClaim"):
                self.claim(claim)
            for p in self._list("Pod"):
                self.pod(p)
            for svc in self._list("Service"):
                self.service(svc)
            for h in self._list("HorizontalPodAutoscaler"):
                self.autoscaler(h)
        return self._wrote

    def next_due(self) -> float | None:
        live = {_uid(p) for p in self._list("Pod")}
        dues = [t.due for uid, t in self._pods.items() if uid in live and t.due]
        return min(dues) if dues else None

    # -- garbage collector --

    def garbage_collect(self) -> None:
        uids = {_uid(o) for kind in ("Deployment", "ReplicaSet", "Service", "Pod", "StatefulSet",
                                     "Node")
                for o in self._list(kind)}
        for kind in ("ReplicaSet", "Pod", "EndpointSlice"):
            for o in self._list(kind):
                ref = _owner(o)
                if ref is not None and ref.get("uid") not in uids:
                    self._delete(kind, o)
        for claim_less in self._list("PersistentVolume"):
            ref = claim_less.get("spec", {}).get("claimRef")
            if ref and self.cluster.get("PersistentVolumeClaim", ref["name"],
                                        ref.get("namespace", "")) is None:
                if claim_less["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                    self._delete("PersistentVolume", claim_less)
                elif claim_less.get("status", {}).get("phase") != "Released":
                    pv = copy.deepcopy(claim_less)
                    pv["status"] = {"phase": "Released", "lastPhaseTransitionTime": now_iso()}
                    self._save(pv, claim_less)
        for ep in self._list("Endpoints"):
            if self.cluster.get("Service", _meta(ep)["name"], _ns(ep)) is None:
                self._delete("Endpoints", ep)

    # -- deployments --

    def _owned(self, kind: str, owner: Obj) -> list[Obj]:
        return [o for o in self._list(kind, _ns(owner))
                if (_owner(o) or {}).get("uid") == _uid(owner)]

    @staticmethod
    def _template_key(template: Obj) -> Any:
        t = copy.deepcopy(template)
        labels = t.get("metadata", {}).get("labels") or {}
        labels.pop("pod-template-hash", None)
        return json.dumps(t, sort_keys=True)

    def deployment(self, d: Obj) -> None:
        spec = d.get("spec", {})
        want = int(spec.get("replicas", 1))
        sets = self._owned("ReplicaSet", d)
        key = self._template_key(spec.get("template", {}))
        new = next((rs for rs in sets if self._template_key(rs["spec"]["template"]) == key), None)
        revs = [int(_meta(rs).get("annotations", {}).get("deployment.kubernetes.io/revision", 0))
                for rs in sets]
        top = max(revs, default=0)
        strategy = spec.get("strategy", {})
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        ru = strategy.get("rollingUpdate") or {}
        surge = _resolve_int_or_percent(ru.get("maxSurge", "25%"), want, True) if rolling else 0
        unavail = _resolve_int_or_percent(ru.get("maxUnavailable", "25%"), want, False) \
            if rolling else want
        if rolling and surge == 0 and unavail == 0:
            unavail = 1
        d_ann = _meta(d).get("annotations") or {}
        if new is None:
            h = _safe_hash([key, len(sets)])
            template = copy.deepcopy(spec.get("template", {}))
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            sel = copy.deepcopy(spec.get("selector", {}))
            sel.setdefault("matchLabels", {})["pod-template-hash"] = h
            ann = {"deployment.kubernetes.io/desired-replicas": str(want),
                   "deployment.kubernetes.io/max-replicas": str(want + surge),
                   "deployment.kubernetes.io/revision": str(top + 1)}
            if "kubernetes.io/change-cause" in d_ann:
                ann["kubernetes.io/change-cause"] = d_ann["kubernetes.io/change-cause"]
            start = 0
            total = sum(int(rs["spec"].get("replicas", 0)) for rs in sets)
            if not sets or not rolling:
                start = want if not sets else 0
            else:
                start = max(0, min(want, want + surge - total))
            new = self._save({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{_meta(d)['name']}-{h}", "namespace": _ns(d),
                             "labels": dict(template["metadata"]["labels"]),
                             "annotations": ann, "ownerReferences": [_owner_ref(d)],
                             "generation": 1},
                "spec": {"replicas": start, "selector": sel, "template": template,
                         "minReadySeconds": spec.get("minReadySeconds", 0)},
                "status": {"replicas": 0, "observedGeneration": 0}}, None)
            self.event(d, "ScalingReplicaSet",
                       f"Scaled up replica set {_meta(new)['name']} from 0 to {start}",
                       source="deployment-controller")
            sets.append(new)
        else:
            rev = int(_meta(new).get("annotations", {}).get("deployment.kubernetes.io/revision", 0))
            if rev < top:  # a rollback: the old template becomes the newest revision
                upd = copy.deepcopy(new)
                upd["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = str(top + 1)
                new = self._save(upd, new)
                sets = [new if _uid(rs) == _uid(new) else rs for rs in sets]
        olds = [rs for rs in sets if _uid(rs) != _uid(new)]
        olds.sort(key=lambda rs: int(_meta(rs).get("annotations", {}).get(
            "deployment.kubernetes.io/revision", 0)))
        if rolling:
            self._roll(d, new, olds, want, surge, unavail)
        else:
            alive = sum(int(rs.get("status", {}).get("replicas", 0)) for rs in olds)
            for rs in olds:
                self._scale(d, rs, 0)
            if alive == 0:
                self._scale(d, new, want)
        self._history_limit(d, new, olds)
        self._deployment_status(d, new, want, unavail)

    def _scale(self, d: Obj, rs: Obj, n: int) -> Obj:
        cur = int(rs["spec"].get("replicas", 0))
        if cur == n:
            return rs
        upd = copy.deepcopy(rs)
        upd["spec"]["replicas"] = n
        ann = upd["metadata"].setdefault("annotations", {})
        want = int(d["spec"].get("replicas", 1))
        ann["deployment.kubernetes.io/desired-replicas"] = str(want)
        word = "up" if n > cur else "down"
        self.event(d, "ScalingReplicaSet",
                   f"Scaled {word} replica set {_meta(rs)['name']} from {cur} to {n}",
                   source="deployment-controller", once_key=f"{_uid(rs)}/{cur}->{n}/{time.time()}")
        return self._save(upd, rs)

    def _roll(self, d: Obj, new: Obj, olds: list[Obj], want: int, surge: int,
              unavail: int) -> None:
        total = int(new["spec"].get("replicas", 0)) + sum(int(rs["spec"].get("replicas", 0))
                                                          for rs in olds)
        # scale up the new replica set within maxSurge
        new_n = int(new["spec"].get("replicas", 0))
        if new_n > want:
            new = self._scale(d, new, want)
        elif new_n < want:
            room = want + surge - total
            if room > 0:
                new = self._scale(d, new, min(want, new_n + room))
        # scale down old replica sets within maxUnavailable
        olds_total = sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
        if olds_total == 0:
            return
        min_available = want - unavail
        new_avail = int(new.get("status", {}).get("availableReplicas", 0))
        # unhealthy old replicas can go at once: they serve nothing
        removable_unhealthy = {(_uid(rs)): int(rs["spec"].get("replicas", 0)) -
                               int(rs.get("status", {}).get("availableReplicas", 0))
                               for rs in olds}
        all_avail = new_avail + sum(int(rs.get("status", {}).get("availableReplicas", 0))
                                    for rs in olds)
        new_unavailable = int(new["spec"].get("replicas", 0)) - new_avail
        budget = (total - min_available) - new_unavailable
        budget_unhealthy = max(0, budget)
        for i, rs in enumerate(olds):
            cut = min(removable_unhealthy[_uid(rs)], budget_unhealthy)
            if cut > 0:
                olds[i] = self._scale(d, rs, int(rs["spec"]["replicas"]) - cut)
                budget_unhealthy -= cut
        can_remove = all_avail - min_available
        for i in range(len(olds)):
            if can_remove <= 0:
                break
            cur = int(olds[i]["spec"].get("replicas", 0))
            cut = min(cur, can_remove)
            if cut > 0:
                olds[i] = self._scale(d, olds[i], cur - cut)
                can_remove -= cut

    def _history_limit(self, d: Obj, new: Obj, olds: list[Obj]) -> None:
        limit = int(d["spec"].get("revisionHistoryLimit", 10))
        idle = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) == 0
                and int(rs.get("status", {}).get("replicas", 0)) == 0]
        for rs in idle[: max(0, len(idle) - limit)]:
            self._delete("ReplicaSet", rs)

    def _deployment_status(self, d: Obj, new: Obj, want: int, unavail: int) -> None:
        sets = self._owned("ReplicaSet", d)
        new = next((rs for rs in sets if _uid(rs) == _uid(new)), new)
        st = lambda rs, k: int(rs.get("status", {}).get(k, 0))  # noqa: E731
        replicas = sum(st(rs, "replicas") for rs in sets)
        ready = sum(st(rs, "readyReplicas") for rs in sets)
        available = sum(st(rs, "availableReplicas") for rs in sets)
        updated = st(new, "replicas")
        old_conds = d.get("status", {}).get("conditions") or []
        complete = (updated == want and replicas == want and available >= want
                    and st(new, "availableReplicas") >= want)
        avail_ok = available >= want - unavail
        conds = [
            _cond("Available", avail_ok, "MinimumReplicasAvailable" if avail_ok else
                  "MinimumReplicasUnavailable", "Deployment has minimum availability." if avail_ok
                  else "Deployment does not have minimum availability.", old_conds, update=True),
            _cond("Progressing", True, "NewReplicaSetAvailable" if complete else
                  "ReplicaSetUpdated", f'ReplicaSet "{_meta(new)["name"]}" has successfully '
                  "progressed." if complete else f'ReplicaSet "{_meta(new)["name"]}" is progressing.',
                  old_conds, update=True),
        ]
        status: Obj = {"observedGeneration": _meta(d).get("generation", 1),
                       "replicas": replicas, "updatedReplicas": updated,
                       "readyReplicas": ready, "availableReplicas": available,
                       "conditions": conds}
        if want - available > 0:
            status["unavailableReplicas"] = want - available
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            if not status[k]:
                del status[k]
        upd = copy.deepcopy(d)
        upd["status"] = status
        rev = _meta(new).get("annotations", {}).get("deployment.kubernetes.io/revision")
        if rev:
            upd["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = rev
        self._save(upd, d)

    # -- replica sets --

    def replica_set(self, rs: Obj) -> None:
        sel = rs["spec"].get("selector")
        pods = [p for p in self._owned("Pod", rs)
                if not _meta(p).get("deletionTimestamp")]
        want = int(rs["spec"].get("replicas", 0))
        if len(pods) < want:
            for _ in range(want - len(pods)):
                pods.append(self._create_pod(rs))
        elif len(pods) > want:
            # not ready first, then the newest
            pods.sort(key=lambda p: (pod_ready(p), _meta(p).get("creationTimestamp", "")),
                      reverse=False)
            doomed, pods = pods[: len(pods) - want], pods[len(pods) - want:]
            for p in doomed:
                self._delete("Pod", p)
                self.event(rs, "SuccessfulDelete", f"Deleted pod: {_meta(p)['name']}",
                           source="replicaset-controller")
        ready = sum(1 for p in pods if pod_ready(p))
        labelled = sum(1 for p in pods if selector_matches(sel, _meta(p).get("labels") or {}))
        status = {"replicas": len(pods), "fullyLabeledReplicas": labelled,
                  "readyReplicas": ready, "availableReplicas": ready,
                  "observedGeneration": _meta(rs).get("generation", 1)}
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        upd = copy.deepcopy(rs)
        upd["status"] = status
        self._save(upd, rs)

    def _create_pod(self, rs: Obj) -> Obj:
        tmpl = copy.deepcopy(rs["spec"]["template"])
        meta = tmpl.get("metadata") or {}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {**meta, "name": f"{_meta(rs)['name']}-{_suffix()}",
                            "generateName": f"{_meta(rs)['name']}-", "namespace": _ns(rs),
                            "ownerReferences": [_owner_ref(rs)]},
               "spec": tmpl.get("spec", {})}
        pod_defaults(pod)
        saved = self._save(pod, None)
        self.event(rs, "SuccessfulCreate", f"Created pod: {_meta(saved)['name']}",
                   source="replicaset-controller")
        return saved

    # -- scheduler and kubelet --

    def _node(self) -> Obj | None:
        return self.cluster.get("Node", self.node)

    def _requests(self, pod: Obj) -> tuple[float, float]:
        cpu = mem = 0.0
        for c in pod.get("spec", {}).get("containers") or []:
            req = (c.get("resources") or {}).get("requests") or {}
            cpu += quantity(req.get("cpu", 0))
            mem += quantity(req.get("memory", 0))
        return cpu, mem

    def _schedule(self, pod: Obj) -> Obj | None:
        """Bind the pod to the node, or say why not (FailedScheduling)."""
        node = self._node()
        why = None
        if node is None or not pod_ready_node(node):
            why = "0/1 nodes are available: 1 node(s) had untolerated taint " \
                  "{node.kubernetes.io/not-ready: }."
        else:
            labels = _meta(node).get("labels") or {}
            ns_sel = pod["spec"].get("nodeSelector") or {}
            if any(labels.get(k) != v for k, v in ns_sel.items()):
                why = "0/1 nodes are available: 1 node(s) didn't match Pod's node " \
                      "affinity/selector."
            else:
                alloc = node["status"]["allocatable"]
                used_cpu = used_mem = 0.0
                for p in self._list("Pod"):
                    if p["spec"].get("nodeName") == self.node and \
                            p.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                        c, m = self._requests(p)
                        used_cpu += c
                        used_mem += m
                cpu, mem = self._requests(pod)
                short = [n for n, need, have in (("cpu", used_cpu + cpu, quantity(alloc["cpu"])),
                                                  ("memory", used_mem + mem,
                                                   quantity(alloc["memory"])))
                         if need > have]
                if short:
                    why = "0/1 nodes are available: " + ", ".join(
                        f"1 Insufficient {s}" for s in short) + "."
        if why is None:
            why = self._volumes_block(pod)
        if why is not None:
            if pod.get("status", {}).get("conditions") is None or not any(
                    c.get("reason") == "Unschedulable" and c.get("message") == why
                    for c in pod["status"].get("conditions") or []):
                upd = copy.deepcopy(pod)
                upd.setdefault("status", {})["phase"] = "Pending"
                upd["status"]["conditions"] = [{
                    "type": "PodScheduled", "status": "False", "lastProbeTime": None,
                    "lastTransitionTime": now_iso(), "reason": "Unschedulable",
                    "message": why}]
                self._save(upd, pod)
                self.event(pod, "FailedScheduling", why, "Warning", source="default-scheduler")
            return None
        upd = copy.deepcopy(pod)
        upd["spec"]["nodeName"] = self.node
        upd.setdefault("status", {})["phase"] = "Pending"
        upd["status"]["conditions"] = [_cond("PodScheduled", True, probe=True)]
        saved = self._save(upd, pod)
        self.event(pod, "Scheduled",
                   f"Successfully assigned {_ns(pod)}/{_meta(pod)['name']} to {self.node}",
                   source="default-scheduler")
        return saved

    def _volumes_block(self, pod: Obj) -> str | None:
        """Why the pod's claims keep it from a node (the scheduler's VolumeBinding plugin)."""
        for v in pod["spec"].get("volumes") or []:
            ref = v.get("persistentVolumeClaim")
            if not ref:
                continue
            name = ref.get("claimName")
            claim = self.cluster.get("PersistentVolumeClaim", name, _ns(pod))
            if claim is None:
                return f'0/1 nodes are available: persistentvolumeclaim "{name}" not found. ' \
                       "preemption: 0/1 nodes are available: 1 Preemption is not helpful for " \
                       "scheduling."
            if claim.get("status", {}).get("phase") == "Bound":
                continue
            cls = self._class(claim)
            if cls is not None and cls.get("volumeBindingMode") == "WaitForFirstConsumer" and \
                    cls.get("provisioner") != "kubernetes.io/no-provisioner":
                ann = _meta(claim).get("annotations") or {}
                if ann.get("volume.kubernetes.io/selected-node") != self.node:
                    upd = copy.deepcopy(claim)
                    upd["metadata"].setdefault("annotations", {})[
                        "volume.kubernetes.io/selected-node"] = self.node
                    self._save(upd, claim)
                return "0/1 nodes are available: waiting for the volume to be provisioned"
            return "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. " \
                   "preemption: 0/1 nodes are available: 1 Preemption is not helpful for " \
                   "scheduling."
        return None

    def _track(self, pod: Obj) -> _PodTrack:
        return self._pods.setdefault(_uid(pod), _PodTrack())

    def pod(self, pod: Obj) -> None:
        if _meta(pod).get("deletionTimestamp"):
            return
        phase = pod.get("status", {}).get("phase", "Pending")
        if phase in ("Succeeded", "Failed"):
            return
        track = self._track(pod)
        now = time.monotonic()
        if not pod["spec"].get("nodeName"):
            if now < track.due:
                return
            bound = self._schedule(pod)
            track.due = now + self.step if bound is not None else 0.0
            return
        if track.due and now < track.due:
            return
        track.due = 0.0
        advanced = self._kubelet(pod)
        if advanced:
            track.due = now + self.step

    def _kubelet(self, pod: Obj) -> bool:
        """Move the pod one stage on; True if there is a further stage to come."""
        upd = copy.deepcopy(pod)
        spec, status = upd["spec"], upd.setdefault("status", {})
        containers = spec.get("containers") or []
        statuses: list[Obj] = status.get("containerStatuses") or []
        conds = status.get("conditions") or []
        if not statuses:  # stage 1: sandbox and image pulls start
            status.update({
                "phase": "Pending", "hostIP": self._node_ip(), "hostIPs": [{"ip": self._node_ip()}],
                "podIP": f"10.244.0.{next(self._ips) % 250 + 2}", "startTime": now_iso(),
                "qosClass": status.get("qosClass", "BestEffort")})
            status["podIPs"] = [{"ip": status["podIP"]}]
            status["containerStatuses"] = [{
                "name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                "restartCount": 0, "started": False,
                "state": {"waiting": {"reason": "ContainerCreating"}}} for c in containers]
            status["conditions"] = self._pod_conditions(conds, scheduled=True, started=False,
                                                        ready=False, names=[])
            self._save(upd, pod)
            for c in containers:
                self.event(pod, "Pulling", f'Pulling image "{c.get("image")}"')
            return True
        more = False
        not_ready: list[str] = []
        for c, cs in zip(containers, statuses, strict=False):
            state = cs.get("state") or {}
            waiting = (state.get("waiting") or {}).get("reason")
            if waiting in ("ImagePullBackOff", "CrashLoopBackOff"):
                not_ready.append(c["name"])
                continue
            image = images.lookup(str(c.get("image", "")))
            if image is None:
                if waiting == "ErrImagePull":
                    cs["state"] = {"waiting": {"reason": "ImagePullBackOff",
                                               "message": f'Back-off pulling image "{c["image"]}"'}}
                    self.event(pod, "BackOff", f'Back-off pulling image "{c["image"]}"', "Warning")
                    self.event(pod, "Failed", "Error: ImagePullBackOff", "Warning")
                else:
                    msg = images.pull_error(str(c.get("image")))
                    cs["state"] = {"waiting": {"reason": "ErrImagePull", "message": msg}}
                    self.event(pod, "Failed", f'Failed to pull image "{c["image"]}": {msg}',
                               "Warning")
                    self.event(pod, "Failed", "Error: ErrImagePull", "Warning")
                    more = True
                not_ready.append(c["name"])
                continue
            behaviour = images.behaviour(c)
            cid = f"containerd://{_safe_hash([_uid(pod), c['name'], cs['restartCount']], 32)}"
            repo, tag = images.normalise(str(c["image"]))
            if waiting == "ContainerCreating":
                self.event(pod, "Pulled", f'Successfully pulled image "{c["image"]}" in 1.2s '
                           "(1.2s including waiting). Image size: 11325624 bytes.")
                self.event(pod, "Created", f"Created container {c['name']}")
                self.event(pod, "Started", f"Started container {c['name']}")
                cs.update({"image": f"{repo}:{tag}".removeprefix("docker.io/library/"),
                           "imageID": f"{repo}@sha256:{_safe_hash(repo + tag, 64)}",
                           "containerID": cid, "started": True,
                           "state": {"running": {"startedAt": now_iso()}}})
                more = True
                not_ready.append(c["name"])
                continue
            if not behaviour.runs:  # it exited
                if spec.get("restartPolicy", "Always") == "Never" or (
                        spec.get("restartPolicy") == "OnFailure" and behaviour.exit_code == 0):
                    cs["state"] = {"terminated": {
                        "exitCode": behaviour.exit_code, "containerID": cid,
                        "reason": "Completed" if behaviour.exit_code == 0 else "Error",
                        "startedAt": now_iso(), "finishedAt": now_iso()}}
                    cs["started"] = False
                else:
                    self._crash(pod, c, cs, behaviour.exit_code, cid, "Completed"
                                if behaviour.exit_code == 0 else "Error")
                not_ready.append(c["name"])
                continue
            live = c.get("livenessProbe")
            if live and not self._probe_ok(c, live, behaviour.listens):
                self.event(pod, "Unhealthy", self._probe_failure("Liveness", c, live), "Warning")
                self.event(pod, "Killing", f"Container {c['name']} failed liveness probe, will "
                           "be restarted")
                self._crash(pod, c, cs, 137, cid, "Error")
                not_ready.append(c["name"])
                continue
            ready_probe = c.get("readinessProbe")
            ok = ready_probe is None or self._probe_ok(c, ready_probe, behaviour.listens)
            if not ok:
                self.event(pod, "Unhealthy", self._probe_failure("Readiness", c, ready_probe),
                           "Warning")
            cs["ready"] = ok
            if not ok:
                not_ready.append(c["name"])
        all_running = all("running" in (cs.get("state") or {}) for cs in statuses)
        any_running = any("running" in (cs.get("state") or {}) for cs in statuses)
        terminated = [cs for cs in statuses if "terminated" in (cs.get("state") or {})]
        if terminated and len(terminated) == len(statuses):
            status["phase"] = "Succeeded" if all(
                t["state"]["terminated"]["exitCode"] == 0 for t in terminated) else "Failed"
        elif any_running or any(cs.get("restartCount") for cs in statuses):
            status["phase"] = "Running"
        else:
            status["phase"] = "Pending"
        ready = all_running and not not_ready
        status["conditions"] = self._pod_conditions(conds, scheduled=True, started=any_running or
                                                    status["phase"] != "Pending", ready=ready,
                                                    names=not_ready)
        self._save(upd, pod)
        return more

    def _crash(self, pod: Obj, c: Obj, cs: Obj, code: int, cid: str, reason: str) -> None:
        cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
        cs["lastState"] = {"terminated": {"exitCode": code, "reason": reason,
                                          "startedAt": now_iso(), "finishedAt": now_iso(),
                                          "containerID": cid}}
        cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                   f"back-off 10s restarting failed container={c['name']} "
                                   f"pod={_meta(pod)['name']}_{_ns(pod)}({_uid(pod)})"}}
        cs["ready"] = False
        cs["started"] = False
        self.event(pod, "BackOff", "Back-off restarting failed container "
                   f"{c['name']} in pod {_meta(pod)['name']}_{_ns(pod)}({_uid(pod)})", "Warning")

    @staticmethod
    def _probe_port(c: Obj, probe: Obj) -> int | None:
        handler = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")
        if handler is None:
            return None  # exec: runs in the container, succeeds
        port = handler.get("port")
        if isinstance(port, str) and not port.isdigit():
            return next((p.get("containerPort") for p in c.get("ports") or []
                         if p.get("name") == port), -1)
        return int(port)

    def _probe_ok(self, c: Obj, probe: Obj, listens: frozenset[int]) -> bool:
        port = self._probe_port(c, probe)
        return port is None or port in listens

    def _probe_failure(self, what: str, c: Obj, probe: Obj) -> str:
        port = self._probe_port(c, probe)
        handler = probe.get("httpGet")
        if handler is not None:
            return (f"{what} probe failed: Get \"http://{{pod-ip}}:{port}{handler.get('path', '/')}\": "
                    "dial tcp: connect: connection refused")
        return f"{what} probe failed: dial tcp :{port}: connect: connection refused"

    def _pod_conditions(self, old: list[Obj], scheduled: bool, started: bool, ready: bool,
                        names: list[str]) -> list[Obj]:
        why = f"containers with unready status: [{' '.join(names)}]" if names else ""
        return [
            _cond("PodReadyToStartContainers", started, old=old, probe=True),
            _cond("Initialized", True, old=old, probe=True),
            _cond("Ready", ready, "" if ready else "ContainersNotReady", why, old, probe=True),
            _cond("ContainersReady", ready, "" if ready else "ContainersNotReady", why, old,
                  probe=True),
            _cond("PodScheduled", scheduled, old=old, probe=True),
        ]

    def _node_ip(self) -> str:
        node = self._node() or {}
        return next((a["address"] for a in node.get("status", {}).get("addresses") or []
                     if a["type"] == "InternalIP"), "172.18.0.2")

    # -- storage --

    def _class(self, claim: Obj) -> Obj | None:
        name = claim.get("spec", {}).get("storageClassName")
        return self.cluster.get("StorageClass", name) if name else None

    def claim(self, claim: Obj) -> None:
        if claim.get("status", {}).get("phase") == "Bound":
            return
        spec = claim.get("spec", {})
        cls_name = spec.get("storageClassName")
        want = quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage", 0))
        modes = set(spec.get("accessModes") or [])
        for pv in self._list("PersistentVolume"):  # static binding first
            pspec = pv.get("spec", {})
            ref = pspec.get("claimRef")
            if ref and (ref.get("name") != _meta(claim)["name"] or
                        ref.get("namespace") != _ns(claim)):
                continue
            if pv.get("status", {}).get("phase") not in ("Available", "Pending", None) and not ref:
                continue
            if (pspec.get("storageClassName") or "") != (cls_name or ""):
                continue
            if not modes <= set(pspec.get("accessModes") or []):
                continue
            if quantity((pspec.get("capacity") or {}).get("storage", 0)) < want:
                continue
            if spec.get("volumeName") and spec["volumeName"] != _meta(pv)["name"]:
                continue
            self._bind(claim, pv, by_controller=True)
            return
        cls = self._class(claim) if cls_name else None
        if not cls_name:
            self.event(claim, "FailedBinding", "no persistent volumes available for this claim "
                       "and no storage class is set", "Normal",
                       source="persistentvolume-controller")
            return
        if cls is None:
            self.event(claim, "ProvisioningFailed",
                       f'storageclass.storage.k8s.io "{cls_name}" not found', "Warning",
                       source="persistentvolume-controller")
            return
        if cls.get("provisioner") == "kubernetes.io/no-provisioner":
            self.event(claim, "FailedBinding", "no persistent volumes available for this claim "
                       f'and no storage class is set" {cls_name}"', source="persistentvolume-controller")
            return
        ann = _meta(claim).get("annotations") or {}
        if cls.get("volumeBindingMode") == "WaitForFirstConsumer" and \
                "volume.kubernetes.io/selected-node" not in ann:
            self.event(claim, "WaitForFirstConsumer", "waiting for first consumer to be created "
                       "before binding", source="persistentvolume-controller")
            return
        prov = cls.get("provisioner", "")
        if "volume.kubernetes.io/storage-provisioner" not in ann:
            upd = copy.deepcopy(claim)
            upd["metadata"].setdefault("annotations", {}).update({
                "volume.kubernetes.io/storage-provisioner": prov,
                "volume.beta.kubernetes.io/storage-provisioner": prov})
            claim = self._save(upd, claim)
            self.event(claim, "ExternalProvisioning", "Waiting for a volume to be created either "
                       f'by the external provisioner "{prov}" or manually by the system '
                       "administrator. If volume creation is delayed, please verify that the "
                       "provisioner is running and correctly registered.",
                       source="persistentvolume-controller")
        name = f"pvc-{_uid(claim)}"
        self.event(claim, "Provisioning", f'External provisioner is provisioning volume for '
                   f'claim "{_ns(claim)}/{_meta(claim)["name"]}"', source=prov)
        pv = self._save({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {
                "local.path.provisioner/selected-node": self.node,
                "pv.kubernetes.io/provisioned-by": prov},
                "finalizers": ["kubernetes.io/pv-protection"]},
            "spec": {"accessModes": sorted(modes), "capacity": {"storage": str(
                ((spec.get("resources") or {}).get("requests") or {}).get("storage"))},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "name": _meta(claim)["name"], "namespace": _ns(claim),
                             "uid": _uid(claim),
                             "resourceVersion": _meta(claim).get("resourceVersion")},
                "hostPath": {"path": f"/var/local-path-provisioner/{name}_{_ns(claim)}_"
                             f"{_meta(claim)['name']}", "type": "DirectoryOrCreate"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In",
                     "values": [self.node]}]}]}},
                "persistentVolumeReclaimPolicy": cls.get("reclaimPolicy", "Delete"),
                "storageClassName": cls_name, "volumeMode": spec.get("volumeMode",
                                                                     "Filesystem")},
            "status": {"phase": "Pending"}}, None)
        self.event(claim, "ProvisioningSucceeded",
                   f"Successfully provisioned volume {name}", source=prov)
        self._bind(claim, pv, by_controller=False)

    def _bind(self, claim: Obj, pv: Obj, by_controller: bool) -> None:
        pv_upd = copy.deepcopy(pv)
        pv_upd["spec"]["claimRef"] = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": _meta(claim)["name"],
            "namespace": _ns(claim), "uid": _uid(claim),
            "resourceVersion": _meta(claim).get("resourceVersion")}
        pv_upd["status"] = {"phase": "Bound", "lastPhaseTransitionTime": now_iso()}
        if by_controller:
            pv_upd["metadata"].setdefault("annotations", {})[
                "pv.kubernetes.io/bound-by-controller"] = "yes"
        self._save(pv_upd, pv)
        upd = copy.deepcopy(claim)
        upd["spec"]["volumeName"] = _meta(pv)["name"]
        ann = upd["metadata"].setdefault("annotations", {})
        ann["pv.kubernetes.io/bind-completed"] = "yes"
        if by_controller:
            ann["pv.kubernetes.io/bound-by-controller"] = "yes"
        upd["status"] = {"phase": "Bound", "accessModes": pv["spec"].get("accessModes"),
                         "capacity": dict(pv["spec"].get("capacity") or {})}
        self._save(upd, claim)

    # -- services --

    def service(self, svc: Obj) -> None:
        spec = svc.get("spec", {})
        if spec.get("type") == "LoadBalancer" and not svc.get("status", {}).get(
                "loadBalancer", {}).get("ingress"):
            upd = copy.deepcopy(svc)
            upd["status"] = {"loadBalancer": {"ingress": [
                {"ip": f"172.18.255.{next(self._lb_ips) % 50 + 200}", "ipMode": "VIP"}]}}
            svc = self._save(upd, svc)
            self.event(svc, "EnsuredLoadBalancer", "Ensured load balancer",
                       source="service-controller")
        selector = spec.get("selector")
        if not selector:
            return  # no selector: endpoints are the user's to manage
        pods = [p for p in self._list("Pod", _ns(svc))
                if all((_meta(p).get("labels") or {}).get(k) == v for k, v in selector.items())
                and p.get("status", {}).get("podIP")
                and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        groups: dict[str, tuple[list[Obj], list[Obj]]] = {}
        for p in pods:
            ports = []
            for sp in spec.get("ports") or []:
                tp = sp.get("targetPort", sp.get("port"))
                if isinstance(tp, str) and not tp.isdigit():
                    num = next((cp.get("containerPort") for c in p["spec"].get("containers") or []
                                for cp in c.get("ports") or [] if cp.get("name") == tp), None)
                    if num is None:
                        continue
                else:
                    num = int(tp)
                ports.append({"name": sp.get("name", ""), "port": num,
                              "protocol": sp.get("protocol", "TCP")})
            key = json.dumps(ports, sort_keys=True)
            groups.setdefault(key, (ports, []))[1].append(p)
        self._slices(svc, groups)
        self._endpoints(svc, groups)

    def _slices(self, svc: Obj, groups: dict[str, tuple[list[Obj], list[Obj]]]) -> None:
        mine = [s for s in self._list("EndpointSlice", _ns(svc))
                if (_meta(s).get("labels") or {}).get("kubernetes.io/service-name")
                == _meta(svc)["name"]]
        if not groups:
            groups = {"[]": ([], [])}
        wanted = []
        for ports, pods in groups.values():
            eps = [{"addresses": [p["status"]["podIP"]],
                    "conditions": {"ready": pod_ready(p), "serving": pod_ready(p),
                                   "terminating": False},
                    "nodeName": p["spec"].get("nodeName"),
                    "targetRef": {"kind": "Pod", "name": _meta(p)["name"],
                                  "namespace": _ns(svc), "uid": _uid(p)}}
                   for p in sorted(pods, key=lambda p: _meta(p)["name"])]
            wanted.append((ports or None, eps))
        for i, (ports, eps) in enumerate(wanted):
            old = mine[i] if i < len(mine) else None
            body: Obj = {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {
                    "name": _meta(old)["name"] if old else f"{_meta(svc)['name']}-{_suffix()}",
                    "generateName": f"{_meta(svc)['name']}-", "namespace": _ns(svc),
                    "labels": {"endpointslice.kubernetes.io/managed-by":
                               "endpointslice-controller.k8s.io",
                               "kubernetes.io/service-name": _meta(svc)["name"],
                               **(_meta(svc).get("labels") or {})},
                    "annotations": (_meta(old).get("annotations") if old else None) or {
                        "endpoints.kubernetes.io/last-change-trigger-time": now_iso()},
                    "ownerReferences": [{**_owner_ref(svc), "blockOwnerDeletion": True}],
                    "generation": _meta(old).get("generation", 1) if old else 1},
                "addressType": "IPv4", "endpoints": eps or None, "ports": ports}
            if old is not None:
                for k in ("uid", "creationTimestamp", "resourceVersion"):
                    body["metadata"][k] = _meta(old).get(k)
                if old.get("endpoints") == body["endpoints"] and old.get("ports") == body["ports"]:
                    continue
                body["metadata"]["annotations"] = {
                    "endpoints.kubernetes.io/last-change-trigger-time": now_iso()}
            if body["endpoints"] is None:
                del body["endpoints"]
            self._save(body, old)
        for extra in mine[len(wanted):]:
            self._delete("EndpointSlice", extra)

    def _endpoints(self, svc: Obj, groups: dict[str, tuple[list[Obj], list[Obj]]]) -> None:
        subsets = []
        for ports, pods in groups.values():
            if not ports or not pods:
                continue

            def addr(p: Obj) -> Obj:
                return {"ip": p["status"]["podIP"], "nodeName": p["spec"].get("nodeName"),
                        "targetRef": {"kind": "Pod", "name": _meta(p)["name"],
                                      "namespace": _ns(svc), "uid": _uid(p)}}

            ready = [addr(p) for p in pods if pod_ready(p)]
            not_ready = [addr(p) for p in pods if not pod_ready(p)]
            s: Obj = {"ports": [{k: v for k, v in pt.items() if v != ""} for pt in ports]}
            if ready:
                s["addresses"] = ready
            if not_ready:
                s["notReadyAddresses"] = not_ready
            subsets.append(s)
        old = self.cluster.get("Endpoints", _meta(svc)["name"], _ns(svc))
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": _meta(svc)["name"], "namespace": _ns(svc),
                                  "labels": dict(_meta(svc).get("labels") or {})}}
        if subsets:
            body["subsets"] = subsets
        if old is not None:
            for k in ("uid", "creationTimestamp", "resourceVersion", "annotations"):
                if k in _meta(old):
                    body["metadata"][k] = _meta(old)[k]
            if old.get("subsets") == body.get("subsets"):
                return
            body["metadata"]["annotations"] = {
                "endpoints.kubernetes.io/last-change-trigger-time": now_iso()}
        self._save(body, old)

    # -- autoscaling --

    def usage(self, pod: Obj) -> tuple[float, float]:
        """Simulated CPU (cores) and memory (bytes) of a running pod: its images' idle use
        plus its share of any load sent to a Service that routes to it."""
        cpu = mem = 0.0
        for c in pod["spec"].get("containers") or []:
            if images.lookup(str(c.get("image", ""))) is None:
                continue
            b = images.behaviour(c)
            cpu += b.cpu_m / 1000
            mem += b.memory_mi * 1024**2
        for (ns, svc_name), milli in self._all_loads().items():
            svc = self.cluster.get("Service", svc_name, ns)
            if svc is None or ns != _ns(pod):
                continue
            sel = svc.get("spec", {}).get("selector") or {}
            if sel and all((_meta(pod).get("labels") or {}).get(k) == v for k, v in sel.items()):
                targets = [p for p in self._list("Pod", ns) if pod_ready(p) and all(
                    (_meta(p).get("labels") or {}).get(k) == v for k, v in sel.items())]
                cpu += milli / 1000 / max(1, len(targets))
        return cpu, mem

    def _all_loads(self) -> dict[tuple[str, str], int]:
        """Load set by the test, plus every running load generator: a container looping
        ``wget`` at a Service's address keeps one CPU-bound stream of requests going."""
        loads = dict(self.loads)
        for p in self._list("Pod"):
            if p.get("status", {}).get("phase") != "Running":
                continue
            for c in p["spec"].get("containers") or []:
                cmd = " ".join(str(x) for x in (c.get("command") or []) + (c.get("args") or []))
                if "wget" not in cmd or not re.search(r"while\s+true", cmd):
                    continue
                for host in re.findall(r"https?://([\w.-]+)", cmd):
                    parts = host.split(".")
                    key = (parts[1] if len(parts) > 1 and parts[1] != "svc" else _ns(p), parts[0])
                    loads[key] = loads.get(key, 0) + GENERATOR_MILLICORES
        return loads

    def autoscaler(self, h: Obj) -> None:
        spec = h.get("spec", {})
        ref = spec.get("scaleTargetRef") or {}
        old_conds = h.get("status", {}).get("conditions") or []
        target = self.cluster.get(ref.get("kind", ""), ref.get("name", ""), _ns(h)) \
            if ref.get("kind") in ("Deployment", "ReplicaSet", "StatefulSet") else None
        status: Obj = {"currentReplicas": 0, "desiredReplicas": 0}
        if target is None:
            status["conditions"] = [_cond(
                "AbleToScale", False, "FailedGetScale",
                f'the HPA controller was unable to get the target\'s current scale: '
                f'{(ref.get("kind") or "").lower()}s.apps "{ref.get("name")}" not found',
                old_conds)]
            self.event(h, "FailedGetScale", status["conditions"][0]["message"], "Warning",
                       source="horizontal-pod-autoscaler")
            return self._save_hpa(h, status)
        current = int(target["spec"].get("replicas", 1))
        status["currentReplicas"] = current
        pods = [p for p in self._list("Pod", _ns(h))
                if selector_matches(target["spec"].get("selector"), _meta(p).get("labels") or {})
                and p.get("status", {}).get("phase") == "Running"]
        metrics_out, proposals, failure = [], [], None
        for m in spec.get("metrics") or []:
            if m.get("type") != "Resource":
                failure = failure or (f"FailedGet{m.get('type')}Metric",
                                      f"unable to get {m.get('type')} metric: not available")
                continue
            res = m["resource"]["name"]
            tgt = m["resource"].get("target") or {}
            missing = next(((c["name"], _meta(p)["name"]) for p in pods
                            for c in p["spec"].get("containers") or []
                            if res not in ((c.get("resources") or {}).get("requests") or {})),
                           None)
            if tgt.get("type") == "Utilization" and missing:
                failure = failure or ("FailedGetResourceMetric",
                                      f"the HPA was unable to compute the replica count: failed to "
                                      f"get {res} utilization: missing request for {res} in "
                                      f"container {missing[0]} of Pod {missing[1]}")
                continue
            ready = [p for p in pods if pod_ready(p)]
            if not ready:
                failure = failure or ("FailedGetResourceMetric",
                                      f"the HPA was unable to compute the replica count: failed to "
                                      f"get {res} utilization: unable to get metrics for resource "
                                      f"{res}: no metrics returned from resource metrics API")
                continue
            idx = 0 if res == "cpu" else 1
            use = [self.usage(p)[idx] for p in ready]
            req = [sum(quantity(((c.get("resources") or {}).get("requests") or {}).get(res, 0))
                       for c in p["spec"].get("containers") or []) for p in ready]
            avg = sum(use) / len(use)
            value = f"{round(avg * 1000)}m" if res == "cpu" else f"{round(avg)}"
            if tgt.get("type") == "Utilization":
                util = round(100 * sum(use) / sum(req)) if sum(req) else 0
                metrics_out.append({"type": "Resource", "resource": {
                    "name": res, "current": {"averageUtilization": util, "averageValue": value}}})
                ratio = util / int(tgt.get("averageUtilization", 80))
            else:
                metrics_out.append({"type": "Resource", "resource": {
                    "name": res, "current": {"averageValue": value}}})
                ratio = avg / quantity(tgt.get("averageValue", 1))
            proposals.append(current if abs(ratio - 1) <= 0.1 else math.ceil(len(ready) * ratio))
        lo, hi = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        if failure is not None and not proposals:
            status["desiredReplicas"] = current
            status["conditions"] = [
                _cond("AbleToScale", True, "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale", old_conds),
                _cond("ScalingActive", False, failure[0], failure[1], old_conds)]
            self.event(h, failure[0], failure[1], "Warning", source="horizontal-pod-autoscaler")
            return self._save_hpa(h, status)
        wanted = max(proposals) if proposals else current
        now = time.monotonic()
        # a new autoscaler starts from the current size, so it scales down only after the
        # five-minute stabilisation window, like the HPA controller
        seen = self._hpa_recs.get(_uid(h)) or [(now, current)]
        recs = [r for r in seen if now - r[0] < 300] + [(now, wanted)]
        self._hpa_recs[_uid(h)] = recs
        if wanted < current:  # scale-down stabilisation: the highest of the last five minutes
            wanted = min(current, max(r[1] for r in recs))
        desired = min(hi, max(lo, wanted))
        limited = desired != wanted
        status["desiredReplicas"] = desired
        status["currentMetrics"] = metrics_out
        status["conditions"] = [
            _cond("AbleToScale", True, "ReadyForNewScale", "recommended size matches current size"
                  if desired == current else "the last scale time was sufficiently old as to "
                  "warrant a new scale", old_conds),
            _cond("ScalingActive", True, "ValidMetricFound", "the HPA was able to successfully "
                  "calculate a replica count from cpu resource utilization (percentage of "
                  "request)", old_conds),
            _cond("ScalingLimited", limited, "TooFewReplicas" if limited and desired == lo else
                  "TooManyReplicas" if limited else "DesiredWithinRange",
                  "the desired replica count is less than the minimum replica count"
                  if limited and desired == lo else "the desired replica count is more than "
                  "the maximum replica count" if limited else
                  "the desired count is within the acceptable range", old_conds)]
        if desired != current:
            upd = copy.deepcopy(target)
            upd["spec"]["replicas"] = desired
            self._save(upd, target)
            status["lastScaleTime"] = now_iso()
            self.event(h, "SuccessfulRescale", f"New size: {desired}; reason: cpu resource "
                       "utilization (percentage of request) " +
                       ("above" if desired > current else "below") + " target",
                       source="horizontal-pod-autoscaler",
                       once_key=f"{_uid(h)}/{current}->{desired}/{time.time()}")
        elif h.get("status", {}).get("lastScaleTime"):
            status["lastScaleTime"] = h["status"]["lastScaleTime"]
        return self._save_hpa(h, status)

    def _save_hpa(self, h: Obj, status: Obj) -> None:
        upd = copy.deepcopy(h)
        status["observedGeneration"] = _meta(h).get("generation", 1)
        upd["status"] = status
        self._save(upd, h)


def pod_ready_node(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions") or [])
