"""metrics-server's Metrics API (``metrics.k8s.io/v1beta1``) on one emulated cluster.

Set as the cluster's :class:`~tests.emulator.server.Extension`; a cluster without it answers
404 under ``/apis/metrics.k8s.io``, as an API server does when no APIService is registered.
Tests set each pod's (or node's) usage with the time it was measured; the answers are shaped
as metrics-server's (``pkg/api/pod.go``, ``node.go``): a ``PodMetricsList`` over the pods that
exist and match the label selector, sorted by namespace and name, carrying the pod's labels,
``timestamp``, ``window`` and per container ``usage`` (CPU in nanocores, memory working set
in Ki); a pod with no figure yet is left out of a list and is 404 on its own.
``available = False`` plays a registered APIService whose metrics-server is down (503).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from tests.emulator.server import (
    Cluster,
    Extension,
    now_iso,
    parse_label_selector,
    status_object,
)

Obj = dict[str, Any]
GROUP, VERSION = "metrics.k8s.io", "v1beta1"
BASE = f"/apis/{GROUP}/{VERSION}"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage(cpu_m: float, memory_mi: float) -> dict[str, str]:
    """A usage map as metrics-server writes it: ``"3521873n"``, ``"51236Ki"``."""
    return {"cpu": f"{round(cpu_m * 1_000_000)}n", "memory": f"{round(memory_mi * 1024)}Ki"}


class MetricsServer(Extension):
    """PodMetrics and NodeMetrics from figures the test sets."""

    def __init__(self, cluster: Cluster, window: str = "15s"):
        self.cluster = cluster
        self.window = window
        self.available = True
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], tuple[float, dict[str, dict[str, str]]]] = {}
        self._nodes: dict[str, tuple[float, dict[str, str]]] = {}

    @classmethod
    def install(cls, cluster: Cluster, **kw: Any) -> MetricsServer:
        ext = cls(cluster, **kw)
        cluster.extension = ext
        return ext

    # -- test side --

    def set_pod(self, namespace: str, name: str, containers: dict[str, dict[str, str]],
                at: float) -> None:
        """The pod's per-container usage, as measured at ``at`` (epoch seconds)."""
        with self._lock:
            self._pods[(namespace, name)] = (at, containers)

    def set_node(self, name: str, node_usage: dict[str, str], at: float) -> None:
        with self._lock:
            self._nodes[name] = (at, node_usage)

    # -- the API --

    def groups(self) -> dict[str, list[str]]:
        return {GROUP: [VERSION]}

    def route(self, method: str, path: str, query: dict[str, str],
              headers: Any) -> tuple[int, Any, str] | None:
        if path != BASE and not path.startswith(BASE + "/"):
            return None
        if not self.available:
            return 503, status_object(503, "the server is currently unable to handle the "
                                      "request"), "application/json"  # fmt: skip
        if method != "GET":
            return 405, status_object(405, f"method {method} not allowed"), "application/json"
        parts = path[len(BASE):].strip("/").split("/") if path != BASE else []
        namespace = None
        if parts[:1] == ["namespaces"] and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        if not parts:
            return 200, self._resources(), "application/json"
        if parts[0] == "pods" and len(parts) <= 2:
            return self._pod_metrics(namespace, parts[1] if len(parts) == 2 else None, query)
        if parts[0] == "nodes" and len(parts) <= 2 and namespace is None:
            return self._node_metrics(parts[1] if len(parts) == 2 else None, query)
        return 404, status_object(404, f"the server could not find the requested resource "
                                  f"({path})"), "application/json"  # fmt: skip

    def _resources(self) -> Obj:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
                "resources": [
                    {"name": "nodes", "singularName": "", "namespaced": False,
                     "kind": "NodeMetrics", "verbs": ["get", "list"]},
                    {"name": "pods", "singularName": "", "namespaced": True,
                     "kind": "PodMetrics", "verbs": ["get", "list"]}]}  # fmt: skip

    def _pod(self, pod: Obj) -> Obj | None:
        meta = pod["metadata"]
        with self._lock:
            found = self._pods.get((meta.get("namespace", ""), meta["name"]))
        if found is None:
            return None
        at, containers = found
        return {"metadata": {"name": meta["name"], "namespace": meta.get("namespace", ""),
                             "creationTimestamp": now_iso(), "labels": meta.get("labels") or {}},
                "timestamp": _iso(at), "window": self.window,
                "containers": [{"name": n, "usage": u} for n, u in containers.items()]}  # fmt: skip

    def _pod_metrics(self, namespace: str | None, name: str | None,
                     query: dict[str, str]) -> tuple[int, Obj, str]:
        keep = parse_label_selector(query.get("labelSelector", ""))
        pods = [p for p in self.cluster.list("Pod", namespace)
                if keep((p.get("metadata") or {}).get("labels") or {})]  # fmt: skip
        pods.sort(key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]))
        if name is not None:
            item = next((self._pod(p) for p in pods if p["metadata"]["name"] == name), None)
            if item is None:
                return 404, status_object(404, f'podmetrics.metrics.k8s.io "{namespace}/{name}" '
                                          "not found"), "application/json"  # fmt: skip
            return 200, {"kind": "PodMetrics", "apiVersion": f"{GROUP}/{VERSION}", **item}, \
                "application/json"
        items = [m for p in pods if (m := self._pod(p)) is not None]
        return 200, {"kind": "PodMetricsList", "apiVersion": f"{GROUP}/{VERSION}",
                     "metadata": {}, "items": items}, "application/json"  # fmt: skip

    def _node_metrics(self, name: str | None, query: dict[str, str]) -> tuple[int, Obj, str]:
        keep = parse_label_selector(query.get("labelSelector", ""))
        with self._lock:
            nodes = sorted(self._nodes.items())
        items = []
        for n, (at, u) in nodes:
            labels = ((self.cluster.get("Node", n) or {}).get("metadata") or {}).get("labels") or {}
            if (name is None or n == name) and keep(labels):
                items.append({"metadata": {"name": n, "creationTimestamp": now_iso(),
                                           "labels": labels},
                              "timestamp": _iso(at), "window": self.window, "usage": u})  # fmt: skip
        if name is not None:
            if not items:
                return 404, status_object(404, f'nodemetrics.metrics.k8s.io "{name}" not '
                                          "found"), "application/json"  # fmt: skip
            return 200, {"kind": "NodeMetrics", "apiVersion": f"{GROUP}/{VERSION}", **items[0]}, \
                "application/json"
        return 200, {"kind": "NodeMetricsList", "apiVersion": f"{GROUP}/{VERSION}",
                     "metadata": {}, "items": items}, "application/json"  # fmt: skip
