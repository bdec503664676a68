"""ResourceQuota usage of a sandbox namespace, counted the way Kubernetes' evaluators count.

Follows pkg/quota/v1/evaluator/core (pods.go, services.go, persistent_volume_claims.go):

* a Pod that is not Succeeded/Failed counts 1 ``pods`` and its requests/limits; a pod's
  request for a resource is max(sum over containers, max over init containers);
* a Service counts 1 ``services``; ``type: LoadBalancer`` also 1 ``services.loadbalancers``
  and one ``services.nodeports`` per port, unless ``allocateLoadBalancerNodePorts`` is false
  (then only ports with an explicit nodePort); ``type: NodePort`` one node port per port;
* a PVC counts 1 ``persistentvolumeclaims`` and its ``requests.storage``.

Containers get what the API server gives them before quota sees them: requests default to
limits when only limits are set, then the namespace's LimitRange ``defaultRequest`` and
``default`` fill in what is still missing.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from typing import Any

Obj = dict[str, Any]
COMPUTE = ("cpu", "memory", "ephemeral-storage")
_SUFFIX = {"": 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}  # fmt: skip


def quantity(value: Any) -> Fraction:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match, value
    return Fraction(match.group(1)) * _SUFFIX[match.group(2)]


def with_limit_range(container: Obj, limit_range: Obj) -> Obj:
    """The container's resources after API defaulting and the LimitRange admission plugin."""
    rules = next(r for r in limit_range["spec"]["limits"] if r["type"] == "Container")
    res = container.get("resources") or {}
    limits = dict(res.get("limits") or {})
    requests = dict(res.get("requests") or {})
    for name, value in limits.items():
        requests.setdefault(name, value)
    for name, value in (rules.get("default") or {}).items():
        limits.setdefault(name, value)
    for name, value in (rules.get("defaultRequest") or {}).items():
        requests.setdefault(name, value)
    for name, maximum in (rules.get("max") or {}).items():
        assert quantity(limits[name]) <= quantity(maximum), (container.get("name"), name)
    return {"requests": requests, "limits": limits}


def pod_usage(spec: Obj, limit_range: Obj) -> Counter[str]:
    out: Counter[str] = Counter({"pods": Fraction(1)})
    containers = [with_limit_range(c, limit_range) for c in spec.get("containers") or []]
    inits = [with_limit_range(c, limit_range) for c in spec.get("initContainers") or []]
    for kind in ("requests", "limits"):
        for name in COMPUTE:
            total = sum((quantity(c[kind].get(name, 0)) for c in containers), Fraction(0))
            peak_init = max((quantity(c[kind].get(name, 0)) for c in inits), default=Fraction(0))
            out[f"{kind}.{name}"] += max(total, peak_init)
    return out


def service_usage(svc: Obj) -> Counter[str]:
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    out: Counter[str] = Counter({"services": Fraction(1)})
    kind = spec.get("type", "ClusterIP")
    if kind == "NodePort":
        out["services.nodeports"] += len(ports)
    elif kind == "LoadBalancer":
        out["services.loadbalancers"] += 1
        if spec.get("allocateLoadBalancerNodePorts") is False:
            out["services.nodeports"] += sum(1 for p in ports if p.get("nodePort"))
        else:
            out["services.nodeports"] += len(ports)
    return out


def pvc_usage(pvc: Obj) -> Counter[str]:
    storage = pvc["spec"]["resources"]["requests"]["storage"]
    return Counter({"persistentvolumeclaims": Fraction(1), "requests.storage": quantity(storage)})


def over(hard: dict[str, str], used: Counter[str]) -> dict[str, tuple[Fraction, Fraction]]:
    """Resources where usage exceeds the quota: name -> (used, hard)."""
    return {name: (used[name], quantity(limit)) for name, limit in hard.items()
            if used[name] > quantity(limit)}  # fmt: skip
