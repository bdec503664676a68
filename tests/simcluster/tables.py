"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for
(``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``), with the columns the v1.32 API
server prints for each kind (priority 1 columns show with ``-o wide``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority


def age(obj: Obj) -> str:
    raw = obj.get("metadata", {}).get("creationTimestamp")
    if not raw:
        return "<unknown>"
    then = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human(max(0, int((datetime.now(UTC) - then).total_seconds())))


def human(s: int) -> str:
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 48:
        return f"{h}h"
    return f"{h // 24}d"


def pod_status(p: Obj) -> str:
    """The STATUS column: the reason a user most needs (waiting reason, Terminating, ...)."""
    meta, status = p.get("metadata", {}), p.get("status", {})
    reason = status.get("reason") or status.get("phase") or "Pending"
    for cs in status.get("initContainerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
    for cs in reversed(status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            t = state["terminated"]
            reason = t.get("reason") or f"ExitCode:{t.get('exitCode')}"
    if meta.get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _ready(p: Obj) -> str:
    cs = p.get("status", {}).get("containerStatuses") or []
    total = len(p.get("spec", {}).get("containers") or [])
    return f"{sum(1 for c in cs if c.get('ready'))}/{total}"


def _restarts(p: Obj) -> int:
    return sum(int(c.get("restartCount", 0)) for c in p.get("status", {}).get("containerStatuses") or [])


def _selector(sel: Obj | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        parts.append(f"{e['key']} {e['operator'].lower()} ({','.join(e.get('values') or [])})")
    return ",".join(parts) or "<none>"


def _map(m: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (m or {}).items()) or "<none>"


def _template(o: Obj) -> tuple[str, str]:
    cs = o.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _ports(svc: Obj) -> str:
    out = []
    for p in svc.get("spec", {}).get("ports") or []:
        s = f"{p.get('port')}"
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external(svc: Obj) -> str:
    spec = svc.get("spec", {})
    if spec.get("type") == "LoadBalancer":
        ing = svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        return ",".join(i.get("ip") or i.get("hostname", "") for i in ing) or "<pending>"
    if spec.get("externalIPs"):
        return ",".join(spec["externalIPs"])
    return "<none>"


def _node_status(n: Obj) -> str:
    ready = next((c for c in n.get("status", {}).get("conditions") or [] if c["type"] == "Ready"),
                 None)
    s = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if n.get("spec", {}).get("unschedulable"):
        s += ",SchedulingDisabled"
    return s


def _roles(n: Obj) -> str:
    roles = [k.split("/", 1)[1] for k in (n["metadata"].get("labels") or {})
             if k.startswith("node-role.kubernetes.io/")]
    return ",".join(sorted(roles)) or "<none>"


def _addr(n: Obj, kind: str) -> str:
    return next((a["address"] for a in n.get("status", {}).get("addresses") or []
                 if a["type"] == kind), "<none>")


def _hpa_targets(h: Obj) -> str:
    out = []
    current = {m.get("resource", {}).get("name"): m.get("resource", {}).get("current", {})
               for m in h.get("status", {}).get("currentMetrics") or []}
    for m in h.get("spec", {}).get("metrics") or []:
        r = m.get("resource") or {}
        target = r.get("target") or {}
        cur = current.get(r.get("name"))
        if target.get("type") == "Utilization":
            have = f"{cur['averageUtilization']}%" if cur and "averageUtilization" in cur \
                else "<unknown>"
            out.append(f"{r.get('name')}: {have}/{target.get('averageUtilization')}%")
        else:
            have = cur.get("averageValue", "<unknown>") if cur else "<unknown>"
            out.append(f"{r.get('name')}: {have}/{target.get('averageValue')}")
    return ", ".join(out) or "<none>"


def _sc_name(sc: Obj) -> str:
    ann = sc["metadata"].get("annotations") or {}
    default = ann.get("storageclass.kubernetes.io/is-default-class") == "true"
    return sc["metadata"]["name"] + (" (default)" if default else "")


def _slice_eps(s: Obj) -> str:
    addrs = [a for e in s.get("endpoints") or [] for a in e.get("addresses") or []]
    return (",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")) \
        if addrs else "<unset>"


def _endpoints(e: Obj) -> str:
    out = [f"{a['ip']}:{p['port']}" for s in e.get("subsets") or []
           for p in s.get("ports") or [] for a in s.get("addresses") or []]
    return (",".join(out[:3]) + (f" + {len(out) - 3} more..." if len(out) > 3 else "")) \
        if out else "<none>"


def _claim(pv: Obj) -> str:
    ref = pv.get("spec", {}).get("claimRef")
    return f"{ref['namespace']}/{ref['name']}" if ref else ""


_S, _I = "string", "integer"
N: Column = ("Name", _S, 0)
AGE: Column = ("Age", _S, 0)
PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "Pod": ([N, ("Ready", _S, 0), ("Status", _S, 0), ("Restarts", _S, 0), AGE,
             ("IP", _S, 1), ("Node", _S, 1), ("Nominated Node", _S, 1),
             ("Readiness Gates", _S, 1)],
            lambda p: [p["metadata"]["name"], _ready(p), pod_status(p), str(_restarts(p)), age(p),
                       p.get("status", {}).get("podIP") or "<none>",
                       p.get("spec", {}).get("nodeName") or "<none>", "<none>", "<none>"]),
    "Deployment": ([N, ("Ready", _S, 0), ("Up-to-date", _I, 0), ("Available", _I, 0), AGE,
                    ("Containers", _S, 1), ("Images", _S, 1), ("Selector", _S, 1)],
                   lambda d: [d["metadata"]["name"],
                              f"{d.get('status', {}).get('readyReplicas', 0)}/"
                              f"{d.get('spec', {}).get('replicas', 1)}",
                              d.get("status", {}).get("updatedReplicas", 0),
                              d.get("status", {}).get("availableReplicas", 0), age(d),
                              *_template(d), _selector(d.get("spec", {}).get("selector"))]),
    "ReplicaSet": ([N, ("Desired", _I, 0), ("Current", _I, 0), ("Ready", _I, 0), AGE,
                    ("Containers", _S, 1), ("Images", _S, 1), ("Selector", _S, 1)],
                   lambda r: [r["metadata"]["name"], r.get("spec", {}).get("replicas", 0),
                              r.get("status", {}).get("replicas", 0),
                              r.get("status", {}).get("readyReplicas", 0), age(r), *_template(r),
                              _selector(r.get("spec", {}).get("selector"))]),
    "Service": ([N, ("Type", _S, 0), ("Cluster-IP", _S, 0), ("External-IP", _S, 0),
                 ("Port(s)", _S, 0), AGE, ("Selector", _S, 1)],
                lambda s: [s["metadata"]["name"], s.get("spec", {}).get("type", "ClusterIP"),
                           s.get("spec", {}).get("clusterIP") or "<none>", _external(s),
                           _ports(s), age(s), _map(s.get("spec", {}).get("selector"))]),
    "Node": ([N, ("Status", _S, 0), ("Roles", _S, 0), AGE, ("Version", _S, 0),
              ("Internal-IP", _S, 1), ("External-IP", _S, 1), ("OS-Image", _S, 1),
              ("Kernel-Version", _S, 1), ("Container-Runtime", _S, 1)],
             lambda n: [n["metadata"]["name"], _node_status(n), _roles(n), age(n),
                        n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
                        _addr(n, "InternalIP"), _addr(n, "ExternalIP"),
                        n.get("status", {}).get("nodeInfo", {}).get("osImage", ""),
                        n.get("status", {}).get("nodeInfo", {}).get("kernelVersion", ""),
                        n.get("status", {}).get("nodeInfo", {}).get("containerRuntimeVersion",
                                                                     "")]),
    "Namespace": ([N, ("Status", _S, 0), AGE],
                  lambda n: [n["metadata"]["name"], n.get("status", {}).get("phase", "Active"),
                             age(n)]),
    "PersistentVolumeClaim": (
        [N, ("Status", _S, 0), ("Volume", _S, 0), ("Capacity", _S, 0), ("Access Modes", _S, 0),
         ("StorageClass", _S, 0), ("VolumeAttributesClass", _S, 0), AGE,
         ("VolumeMode", _S, 1)],
        lambda c: [c["metadata"]["name"], c.get("status", {}).get("phase", "Pending"),
                   c.get("spec", {}).get("volumeName", ""),
                   c.get("status", {}).get("capacity", {}).get("storage", ""),
                   _modes(c.get("status", {}).get("accessModes")),
                   c.get("spec", {}).get("storageClassName") or "<unset>", "<unset>", age(c),
                   c.get("spec", {}).get("volumeMode", "Filesystem")]),
    "PersistentVolume": (
        [N, ("Capacity", _S, 0), ("Access Modes", _S, 0), ("Reclaim Policy", _S, 0),
         ("Status", _S, 0), ("Claim", _S, 0), ("StorageClass", _S, 0),
         ("VolumeAttributesClass", _S, 0), ("Reason", _S, 0), AGE, ("VolumeMode", _S, 1)],
        lambda v: [v["metadata"]["name"], v.get("spec", {}).get("capacity", {}).get("storage", ""),
                   _modes(v.get("spec", {}).get("accessModes")),
                   v.get("spec", {}).get("persistentVolumeReclaimPolicy", ""),
                   v.get("status", {}).get("phase", ""), _claim(v),
                   v.get("spec", {}).get("storageClassName", ""), "<unset>",
                   v.get("status", {}).get("reason", ""), age(v),
                   v.get("spec", {}).get("volumeMode", "Filesystem")]),
    "StorageClass": ([N, ("Provisioner", _S, 0), ("ReclaimPolicy", _S, 0),
                      ("VolumeBindingMode", _S, 0), ("AllowVolumeExpansion", _S, 0), AGE],
                     lambda s: [_sc_name(s), s.get("provisioner", ""), s.get("reclaimPolicy", ""),
                                s.get("volumeBindingMode", ""),
                                str(bool(s.get("allowVolumeExpansion"))).lower(), age(s)]),
    "NetworkPolicy": ([N, ("Pod-Selector", _S, 0), AGE],
                      lambda n: [n["metadata"]["name"],
                                 _selector(n.get("spec", {}).get("podSelector"))
                                 .replace("<none>", "<none>"), age(n)]),
    "HorizontalPodAutoscaler": (
        [N, ("Reference", _S, 0), ("Targets", _S, 0), ("MinPods", _S, 0), ("MaxPods", _I, 0),
         ("Replicas", _I, 0), AGE],
        lambda h: [h["metadata"]["name"],
                   f"{h['spec']['scaleTargetRef']['kind']}/{h['spec']['scaleTargetRef']['name']}",
                   _hpa_targets(h), str(h["spec"].get("minReplicas", 1)),
                   h["spec"].get("maxReplicas"), h.get("status", {}).get("currentReplicas", 0),
                   age(h)]),
    "EndpointSlice": ([N, ("AddressType", _S, 0), ("Ports", _S, 0), ("Endpoints", _S, 0), AGE],
                      lambda s: [s["metadata"]["name"], s.get("addressType", ""),
                                 ",".join(str(p.get("port")) for p in s.get("ports") or [])
                                 or "<unset>", _slice_eps(s), age(s)]),
    "Endpoints": ([N, ("Endpoints", _S, 0), AGE],
                  lambda e: [e["metadata"]["name"], _endpoints(e), age(e)]),
    "Event": ([("Last Seen", _S, 0), ("Type", _S, 0), ("Reason", _S, 0), ("Object", _S, 0),
               ("Message", _S, 0)],
              lambda e: [human(max(0, int((datetime.now(UTC) - datetime.strptime(
                  e.get("lastTimestamp") or e["metadata"]["creationTimestamp"],
                  "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)).total_seconds()))),
                  e.get("type", ""), e.get("reason", ""),
                  f"{e['involvedObject'].get('kind', '').lower()}/{e['involvedObject'].get('name')}",
                  e.get("message", "")]),
}


def _modes(modes: list[str] | None) -> str:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
             "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or [])


def _partial(o: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata", {})}


def table(body: Obj, include: str) -> Obj:
    """A Table for a list or single object, ``include`` being the ``includeObject`` mode."""
    single = not body.get("kind", "").endswith("List")
    objs = [body] if single else body.get("items", [])
    kind = body["kind"] if single else body["kind"][: -len("List")]
    columns, cells = PRINTERS.get(kind, ([N, AGE], lambda o: [o["metadata"]["name"], age(o)]))
    rows = []
    for o in objs:
        row: Obj = {"cells": cells(o)}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = _partial(o)
        rows.append(row)
    meta = {k: v for k, v in (body.get("metadata") or {}).items()
            if k in ("resourceVersion", "continue", "remainingItemCount")} if not single else {
        "resourceVersion": body.get("metadata", {}).get("resourceVersion", "")}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "Name" else "",
                                   "description": n, "priority": p} for n, t, p in columns],
            "rows": rows}


def wants_table(accept: str) -> bool:
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))
