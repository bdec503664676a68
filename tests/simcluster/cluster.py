"""A simulated one-node kind cluster on the API emulator, driven by real kubectl.

>>> with KubeEmulator() as emu:
...     sim = SimCluster(emu, "alice").start()
...     sim.kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2")
...     sim.settle()          # the controllers have nothing left to do
...     sim.kubectl("rollout", "status", "deployment/web")

:meth:`SimCluster.settle` is the test's settle point: it returns when the controllers are idle
and no stage is due, with the monotonic time of the cluster's last write, so a test measures
how long something after it (the story unlocking) took from the moment the state settled.
"""

from __future__ import annotations

import copy
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.emulator import objects as k8s
from tests.emulator.server import (
    ApiError,
    Cluster,
    Extension,
    KindInfo,
    KubeEmulator,
    parse_label_selector,
)
from tests.simcluster import admission, images, openapi, patch, protobuf, tables
from tests.simcluster.controllers import Controllers, now_iso

Obj = dict[str, Any]
KUBECTL = os.environ.get("KUBECTL", "kubectl")
NODE = "kepler-control-plane"


class SimExtension(Extension):
    """The API server side of the simulation: OpenAPI, admission, patches, Tables, logs."""

    def __init__(self, sim: SimCluster):
        self.sim = sim
        self._applied: dict[tuple[str, str, str, str], Obj] = {}

    def route(self, method: str, path: str, query: dict[str, str],
              headers: Any) -> tuple[int, Any, str] | None:
        if method == "GET" and path == "/openapi/v3":
            return 200, openapi.root(), "application/json"
        if method == "GET" and path.startswith("/openapi/v3/"):
            gv = path.removeprefix("/openapi/v3/")
            if gv not in openapi.root()["paths"]:
                return None
            return 200, openapi.gv_document(gv).body, "application/json"
        if method == "GET" and path.startswith("/apis/metrics.k8s.io"):
            return self._metrics(path, query)
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] \
                and parts[4] == "pods" and parts[6] == "log":
            return self._log(parts[3], parts[5], query)
        return None

    def groups(self) -> dict[str, list[str]]:
        return {"metrics.k8s.io": ["v1beta1"]}

    def _metrics(self, path: str, query: dict[str, str]) -> tuple[int, Any, str]:
        """metrics-server's API (``kubectl top``): usage from the simulated workloads."""
        gv = "metrics.k8s.io/v1beta1"
        parts = path.strip("/").split("/")[3:]  # after apis/metrics.k8s.io/v1beta1
        if not parts:
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                         "resources": [
                             {"name": "nodes", "singularName": "", "namespaced": False,
                              "kind": "NodeMetrics", "verbs": ["get", "list"]},
                             {"name": "pods", "singularName": "", "namespaced": True,
                              "kind": "PodMetrics", "verbs": ["get", "list"]}]}, "application/json"
        ns = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            ns, parts = parts[1], parts[2:]
        stamp = now_iso()
        window = "10.062s"
        ctl = self.sim.controllers
        with self.sim.cluster.lock:
            wanted = parse_label_selector(query.get("labelSelector", ""))
            pods = [p for p in self.sim.cluster.list("Pod", ns)
                    if p.get("status", {}).get("phase") == "Running"
                    and wanted(p["metadata"].get("labels") or {})]
            usage = {p["metadata"]["uid"]: ctl.usage(p) for p in pods}
        if parts[0] == "nodes":
            cpu = 0.1 + sum(u[0] for u in usage.values())  # the control plane's own share
            mem = 600 * 1024**2 + sum(u[1] for u in usage.values())
            items = [{"metadata": {"name": NODE, "creationTimestamp": stamp,
                                   "labels": (self.sim.get("Node", NODE) or {}).get(
                                       "metadata", {}).get("labels", {})},
                      "timestamp": stamp, "window": window,
                      "usage": {"cpu": f"{round(cpu * 1e9)}n", "memory": f"{round(mem / 1024)}Ki"}}]
            kind = "NodeMetrics"
        elif parts[0] == "pods":
            items = [{"metadata": {"name": p["metadata"]["name"],
                                   "namespace": p["metadata"]["namespace"],
                                   "creationTimestamp": stamp,
                                   "labels": p["metadata"].get("labels", {})},
                      "timestamp": stamp, "window": window,
                      "containers": [{"name": c["name"], "usage": {
                          "cpu": f"{round(usage[p['metadata']['uid']][0] * 1e9 / len(p['spec']['containers']))}n",
                          "memory": f"{round(usage[p['metadata']['uid']][1] / 1024 / len(p['spec']['containers']))}Ki"}}
                          for c in p["spec"]["containers"]]} for p in pods]
            kind = "PodMetrics"
        else:
            return 404, ApiError(404, "not found").status, "application/json"
        if len(parts) > 1:
            one = next((i for i in items if i["metadata"]["name"] == parts[1]), None)
            if one is None:
                err = ApiError(404, f'{parts[0]}.metrics.k8s.io "{parts[1]}" not found')
                return 404, err.status, "application/json"
            return 200, {"kind": kind, "apiVersion": gv, **one}, "application/json"
        return 200, {"kind": f"{kind}List", "apiVersion": gv, "metadata": {},
                     "items": items}, "application/json"

    def _log(self, ns: str, name: str, query: dict[str, str]) -> tuple[int, Any, str]:
        pod = self.sim.cluster.get("Pod", name, ns)
        if pod is None:
            err = ApiError(404, f'pods "{name}" not found', "NotFound")
            return 404, err.status, "application/json"
        containers = pod["spec"].get("containers") or []
        cname = query.get("container") or (containers[0]["name"] if len(containers) == 1 else "")
        c = next((c for c in containers if c["name"] == cname), None)
        if c is None:
            msg = (f"a container name must be specified for pod {name}, choose one of: "
                   f"[{' '.join(x['name'] for x in containers)}]") if not cname else \
                f"container {cname} is not valid for pod {name}"
            return 400, ApiError(400, msg).status, "application/json"
        cs = next((s for s in pod.get("status", {}).get("containerStatuses") or []
                   if s["name"] == cname), {})
        state = cs.get("state") or {}
        if "waiting" in state and not cs.get("restartCount"):
            msg = (f'container "{cname}" in pod "{name}" is waiting to start: '
                   f'{state["waiting"].get("reason", "ContainerCreating")}')
            return 400, ApiError(400, msg).status, "application/json"
        text = images.behaviour(c).log if images.lookup(str(c.get("image"))) else ""
        return 200, (text + "\n" if text else "").encode(), "text/plain"

    def decode(self, body: bytes, content_type: str) -> Obj | None:
        try:
            return protobuf.decode(body, "", "")
        except (ValueError, KeyError, IndexError) as exc:
            raise ApiError(400, f"unable to decode protobuf body: {exc}") from None

    def admit(self, info: KindInfo, obj: Obj, old: Obj | None, query: dict[str, str],
              subresource: str = "") -> Obj:
        return admission.admit(self.sim.cluster, info, obj, old, query, subresource)

    def patch(self, info: KindInfo, base: Obj, body: Any, content_type: str,
              query: dict[str, str]) -> Obj | None:
        schema = openapi.kind_schema(info)
        if content_type == "application/strategic-merge-patch+json":
            return patch.strategic_merge(base, body, schema)
        if content_type == "application/apply-patch+yaml":
            meta = body.get("metadata") or {}
            key = (info.kind, str(meta.get("namespace") or base.get("metadata", {}).get(
                "namespace", "")), str(meta.get("name") or base.get("metadata", {}).get("name")),
                query.get("fieldManager", ""))
            merged = patch.apply_merge(base, body, schema)
            previous = self._applied.get(key)
            if previous is not None:
                merged = patch.remove_unapplied(merged, previous, body, schema)
            self._applied[key] = copy.deepcopy(body)
            return merged
        return None

    def render(self, accept: str, query: dict[str, str], body: Obj) -> Obj:
        if tables.wants_table(accept) and body.get("kind") not in ("Status", "Scale", None) \
                and "metadata" in body:
            return tables.table(body, query.get("includeObject", "Metadata"))
        return body


class SimCluster:
    """One simulated cluster (a logical cluster of ``emu``) with its controllers running."""

    def __init__(self, emu: KubeEmulator, name: str, workdir: Path | None = None,
                 step: float = 0.03):
        self.emu = emu
        self.name = name
        self.cluster: Cluster = emu.add_cluster(name)
        self.controllers = Controllers(self.cluster, NODE, step)
        self.workdir = workdir or Path(os.environ.get("TMPDIR", "/tmp"))
        self.kubeconfig = self.workdir / f"{name}.kubeconfig"
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_rv = -1
        self.last_write = time.monotonic()

    # -- lifecycle --

    def seed(self) -> None:
        """What a fresh ``kind create cluster`` has: one Ready control-plane node (untainted),
        the system namespaces, and the local-path provisioner's default StorageClass."""
        objs = [k8s.node(NODE, control_plane=True, ip="172.18.0.2"),
                *(k8s.namespace(ns) for ns in ("default", "kube-system", "kube-public",
                                               "kube-node-lease", "local-path-storage")),
                k8s.storage_class("standard", "rancher.io/local-path", default=True,
                                  binding_mode="WaitForFirstConsumer")]
        created = now_iso()
        for o in objs:
            o["metadata"]["creationTimestamp"] = created
        self.cluster.put(*objs)

    def start(self, seed: bool = True) -> SimCluster:
        if seed:
            self.seed()
        self.cluster.extension = SimExtension(self)
        self.emu.write_kubeconfig(self.kubeconfig, self.name)
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self.cluster.lock:
            self.cluster.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def clone(self, name: str) -> SimCluster:
        """A new simulated cluster with a copy of this one's objects (a saved game)."""
        self.settle()
        other = SimCluster(self.emu, name, self.workdir, self.controllers.step)
        with self.cluster.lock:
            objs = [o for kind in self.cluster._store for o in self.cluster.list(kind)]
        other.cluster.put(*objs)
        other.controllers._events_seen = set(self.controllers._events_seen)
        other.controllers.loads = dict(self.controllers.loads)
        return other.start(seed=False)

    def _run(self) -> None:
        c = self.cluster
        while not self._stop.is_set():
            try:
                wrote = self.controllers.reconcile()
            except Exception:  # a controller bug must fail tests loudly, not hang them
                import traceback

                traceback.print_exc()
                wrote = False
            with c.lock:
                rv = c.resource_version
                if wrote or rv != self._seen_rv:
                    self._seen_rv = rv
                    self.last_write = time.monotonic()
                    self._idle.clear()
                    continue
                due = self.controllers.next_due()
                if due is None:
                    self._idle.set()
                    c.changed.wait(0.5)
                else:
                    self._idle.clear()
                    c.changed.wait(max(0.0, min(0.5, due - time.monotonic())))

    def settle(self, timeout: float = 30.0) -> float:
        """Wait until the controllers are idle; return the monotonic time of the last write.

        Raises ``TimeoutError`` if the cluster keeps changing (a controller loop that never
        converges is a simulator bug)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cluster.lock:
                rv = self.cluster.resource_version
                self.cluster.changed.notify_all()
            self._idle.clear()
            if self._idle.wait(max(0.0, deadline - time.monotonic())):
                with self.cluster.lock:
                    if self.cluster.resource_version == rv == self._seen_rv:
                        return self.last_write
        raise TimeoutError(f"simulated cluster {self.name} did not settle in {timeout}s")

    def set_node_ready(self, ready: bool) -> None:
        """The node's kubelet stops (or resumes) posting status: NotReady and tainted, as
        the node lifecycle controller leaves it."""
        with self.cluster.lock:
            node = self.cluster.get("Node", NODE)
            assert node is not None
            for c in node["status"]["conditions"]:
                if c["type"] == "Ready":
                    c.update({"status": "True", "reason": "KubeletReady",
                              "message": "kubelet is posting ready status"} if ready else
                             {"status": "Unknown", "reason": "NodeStatusUnknown",
                              "message": "Kubelet stopped posting node status."})
                    c["lastTransitionTime"] = now_iso()
            node["spec"]["taints"] = [] if ready else [
                {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                 "timeAdded": now_iso()}]
            if ready:
                del node["spec"]["taints"]
            self.cluster.put(node)

    def set_load(self, namespace: str, service: str, millicores: int) -> None:
        """Send ``millicores`` of CPU work through ``service`` (spread over its ready pods)."""
        with self.cluster.lock:
            self.controllers.loads[(namespace, service)] = millicores
            self.cluster.changed.notify_all()

    # -- kubectl --

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["KUBECACHEDIR"] = str(self.workdir / "kube-cache")
        env["HOME"] = str(self.workdir)
        return env

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([KUBECTL, *args], capture_output=True, text=True, input=stdin,
                              env=self.env(), cwd=cwd or self.workdir, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def get(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        return self.cluster.get(kind, name, namespace)

    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return self.cluster.list(kind, namespace)

