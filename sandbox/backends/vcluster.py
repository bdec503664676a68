"""A vcluster per learner, each in its own namespace of a host cluster.

Provisioning server-side applies what :func:`sandbox.provision.render` produces (namespace,
quota, limits, network policies, the vcluster's objects), then waits for the control plane
StatefulSet to be ready, for vcluster to write its kubeconfig Secret ``vc-kepler`` and for the
virtual API server to answer. Everything is found again by labels, so a restarted bot (or
:meth:`SandboxManager.reconcile`) adopts what exists.

Before provisioning, the host is checked for AdminNetworkPolicy (tenant isolation needs it:
see :func:`sandbox.provision.cluster_admin_policies`); without it provisioning fails with
what to install.

Pause keeps the learner's work. The virtual cluster's store (on the control plane's PVC)
keeps every object, but on resume vcluster's syncer deletes the bare Pods whose host pods
are gone (chapters 2–4's standalone pods). So pause first saves the learner's bare Pods,
read from the virtual API while it still answers, in the host Secret ``kepler-paused-pods``;
then does what ``vcluster pause`` does (``loft.sh/paused`` annotations, scale to 0); then
**waits until the control plane is at zero** (a live syncer would recreate what we delete)
and only then deletes the synced pods. Resume scales back up, waits for the API, and
re-creates every saved Pod the syncer removed (deleting a stale copy first), then reports
what it restored, or exactly what it could not.

The kubeconfig is read from the host Secret when needed, kept in memory only (a few minutes),
and never logged. The learner's copy points at the external address; the bot's own client
uses the in-cluster Service (``access="service"``), the external address, or the server in
the Secret as is (``access="secret"``, for tests and ``exportKubeConfig.server`` setups).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import copy
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from kubernetes import client
from kubernetes.config.kube_config import KubeConfigLoader

from sandbox import workbench
from sandbox.apply import DEFAULT_RETRY, Kube, Retry
from sandbox.backends.base import (
    ProgressEvent,
    SandboxBackend,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxUnavailable,
    learner_hash,
)
from sandbox.provision import (
    A_CLAIMED,
    A_LEARNER,
    ANP_API,
    L_LEARNER,
    L_SANDBOX,
    L_SPARE,
    MANAGED_BY,
    MANAGER,
    NAMESPACE_PREFIX,
    PAUSED,
    PAUSED_DATE,
    PAUSED_REPLICAS,
    RELEASE,
    HostSettings,
    SandboxSpec,
    admin_policy_name,
    cluster_binding_name,
    external_server,
    render,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Access = Literal["service", "external", "secret"]
NS_SELECTOR = f"{MANAGED_BY}={MANAGER},{L_SANDBOX}=true"
STS_SELECTOR = f"app=vcluster,release={RELEASE},{MANAGED_BY}={MANAGER}"
KUBECONFIG_SECRET = f"vc-{RELEASE}"
PAUSED_PODS_SECRET = "kepler-paused-pods"
CONTROL_PLANE_SELECTOR = f"app=vcluster,release={RELEASE}"
SYNCED_SELECTOR = f"vcluster.loft.sh/managed-by={RELEASE}"
CACHE_SECONDS = 300.0
MAX_SAVED_BYTES = 900_000  # a Secret holds at most 1 MiB


def in_cluster_server(namespace: str) -> str:
    """Where the bot dials a sandbox's API from inside the host (in its certificate: see
    :func:`sandbox.provision.service_sans`)."""
    return f"https://{RELEASE}.{namespace}.svc:443"


class HostMissingFeature(SandboxError):
    """The host cluster lacks something sandboxes need (said in the message)."""


def restorable(pod: Obj) -> Obj:
    """A saved bare Pod as the learner would re-create it: no status, no node, no server-set
    identity, no injected service-account token volume (admission adds a fresh one)."""
    meta = pod.get("metadata") or {}
    spec = copy.deepcopy(pod.get("spec") or {})
    token_volumes = {v.get("name") for v in spec.get("volumes") or []
                     if str(v.get("name", "")).startswith("kube-api-access-")}  # fmt: skip
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") not in token_volumes]
    if not spec["volumes"]:
        spec.pop("volumes")
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            mounts = [m for m in c.get("volumeMounts") or [] if m.get("name") not in token_volumes]
            if mounts:
                c["volumeMounts"] = mounts
            else:
                c.pop("volumeMounts", None)
    # Set by the server or by admission (Priority, RuntimeClass), which refuses a pod that
    # brings its own values: let them be computed again.
    for key in ("nodeName", "serviceAccount", "priority", "preemptionPolicy", "overhead"):
        spec.pop(key, None)
    out_meta: Obj = {"name": meta["name"], "namespace": meta.get("namespace", "default")}
    for key in ("labels", "annotations"):
        if meta.get(key):
            out_meta[key] = dict(meta[key])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": out_meta, "spec": spec}


def _ts(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class VClusterBackend(SandboxBackend):
    name = "vcluster"
    supports_spares = True

    def __init__(
        self,
        host: client.ApiClient,
        *,
        settings: HostSettings,
        requirements: frozenset[str],
        chart_defaults: Mapping[str, Any],
        access: Access = "service",
        poll: float = 2.0,
        ready_timeout: float = 600.0,
        retry: Retry = DEFAULT_RETRY,
        timeout: tuple[float, float] = (5.0, 30.0),
        clock: Callable[[], float] = time.time,
    ):
        self.kube = Kube(host, retry=retry, timeout=timeout)
        self.settings = settings
        self.requirements = frozenset(requirements)
        self.chart_defaults = chart_defaults
        self.access = access
        self.poll = poll
        self.ready_timeout = ready_timeout
        self.retry = retry
        self.timeout = timeout
        self.clock = clock
        self._kubeconfigs: dict[str, tuple[float, Obj]] = {}  # namespace -> (read at, config)
        self._host_checked = False

    # --- the host ----------------------------------------------------------------------------

    def check_host(self) -> None:
        """Refuse to provision where tenant isolation can't hold: AdminNetworkPolicy must be
        served (its CRD installed; a CNI enforcing it is the operator's part, docs/sandbox.md)."""
        if self._host_checked:
            return
        try:
            found = self.kube.call("discover AdminNetworkPolicy", "GET", f"/apis/{ANP_API}")
        except SandboxNotFound:
            found = {}
        if not any(r.get("name") == "adminnetworkpolicies" for r in found.get("resources", [])):
            raise HostMissingFeature(
                f"the host cluster does not serve AdminNetworkPolicy ({ANP_API}): install the "
                "network-policy-api CRDs and a CNI that enforces them, then apply "
                "deploy/host-network-policy.yaml (see docs/sandbox.md)")
        self._host_checked = True

    # --- finding ---------------------------------------------------------------------------

    def _namespaces(self, selector: str = "") -> list[Obj]:
        sel = NS_SELECTOR + ("," + selector if selector else "")
        items = self.kube.list("v1", "Namespace", selector=sel)
        return [n for n in items if not (n.get("metadata") or {}).get("deletionTimestamp")
                and (n.get("status") or {}).get("phase") != "Terminating"]  # fmt: skip

    def _namespace_of(self, learner_id: str) -> str | None:
        found = self._namespaces(f"{L_LEARNER}={learner_hash(learner_id)}")
        found = [n for n in found if n["metadata"].get("annotations", {}).get(A_LEARNER)
                 == learner_id]  # fmt: skip
        if not found:
            return None
        found.sort(key=lambda n: n["metadata"].get("creationTimestamp", ""), reverse=True)
        return found[0]["metadata"]["name"]

    def _require(self, learner_id: str) -> str:
        ns = self._namespace_of(learner_id)
        if ns is None:
            raise SandboxNotFound(f"no sandbox for learner {learner_hash(learner_id)}")
        return ns

    def spec(self, namespace: str, learner_id: str | None, paused: bool = False) -> SandboxSpec:
        return SandboxSpec(
            namespace=namespace, requirements=self.requirements, host=self.settings,
            chart_defaults=self.chart_defaults, learner_id=learner_id,
            learner_hash=learner_hash(learner_id) if learner_id else None, paused=paused,
        )  # fmt: skip

    # --- provisioning ----------------------------------------------------------------------

    def provision(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        return self._provision(learner_id)

    def provision_spare(self) -> AsyncIterator[ProgressEvent]:
        return self._provision(None)

    async def _provision(self, learner_id: str | None,
                         namespace: str | None = None) -> AsyncIterator[ProgressEvent]:
        who = learner_id or ""
        try:
            await asyncio.to_thread(self.check_host)
            if namespace is None and learner_id is not None:
                namespace = await asyncio.to_thread(self._namespace_of, learner_id)
            sts = await asyncio.to_thread(self._sts, namespace) if namespace else None
            namespace = namespace or f"{NAMESPACE_PREFIX}{secrets.token_hex(5)}"
            paused = ((sts or {}).get("metadata") or {}).get("annotations", {}).get(PAUSED) == "true"
            spec = self.spec(namespace, learner_id, paused=paused)  # never unpause by re-applying
            objects = render(spec)
            await asyncio.to_thread(self._apply, objects[:1])
            await self._wait(lambda: self._namespace_active(namespace), "namespace")
            yield ProgressEvent(who, "namespace", f"namespace {namespace} ready")
            await asyncio.to_thread(self._apply, objects[1:])
            yield ProgressEvent(who, "control-plane", "control plane starting")
            await self._wait(lambda: self._sts_ready(namespace), "control plane")
            await self._wait(lambda: self._api_ready(namespace), "virtual API server")
            yield ProgressEvent(who, "api", "API server reachable")
            yield ProgressEvent(who, "ready", "sandbox ready", done=True)
        except SandboxError as exc:
            log.warning("sandbox provisioning failed for %s: %s", namespace, exc)
            yield ProgressEvent(who, "failed", str(exc), done=True)

    def _apply(self, objects: list[Obj]) -> None:
        for obj in objects:
            self.kube.apply(copy.deepcopy(obj))

    async def _wait(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last: SandboxError | None = None
        while True:
            try:
                if await asyncio.to_thread(check):
                    return
                last = None
            except SandboxUnavailable as exc:  # keep waiting through blips
                last = exc
            if time.monotonic() >= deadline:
                detail = f": {last}" if last else ""
                raise SandboxUnavailable(f"{what} not ready after {self.ready_timeout:g}s{detail}")
            await asyncio.sleep(self.poll)

    def _namespace_active(self, namespace: str) -> bool:
        ns = self.kube.get("v1", "Namespace", namespace)
        return ns is not None and (ns.get("status") or {}).get("phase", "Active") == "Active"

    def _sts(self, namespace: str) -> Obj | None:
        return self.kube.get("apps/v1", "StatefulSet", RELEASE, namespace)

    def _sts_ready(self, namespace: str) -> bool:
        sts = self._sts(namespace)
        if not sts:
            return False
        want = (sts.get("spec") or {}).get("replicas", 1)
        return want > 0 and (sts.get("status") or {}).get("readyReplicas", 0) >= want

    def _api_ready(self, namespace: str) -> bool:
        self._kubeconfigs.pop(namespace, None)
        if self._read_kubeconfig(namespace, required=False) is None:
            return False
        api = self._client(namespace)
        try:
            Kube(api, retry=Retry(attempts=1), timeout=(3.0, 5.0)).version()
        finally:
            api.close()
        return True

    # --- access ----------------------------------------------------------------------------

    def _read_kubeconfig(self, namespace: str, required: bool = True) -> Obj | None:
        cached = self._kubeconfigs.get(namespace)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        secret = self.kube.get("v1", "Secret", KUBECONFIG_SECRET, namespace)
        raw = ((secret or {}).get("data") or {}).get("config")
        if not raw:
            if required:
                raise SandboxUnavailable("the sandbox has not published its kubeconfig yet")
            return None
        config = yaml.safe_load(base64.b64decode(raw))
        self._kubeconfigs[namespace] = (time.monotonic(), config)
        return config

    def _external(self, namespace: str) -> str:
        spec = self.spec(namespace, None)
        if self.settings.exposure == "Ingress":
            return external_server(spec)
        svc = self.kube.get("v1", "Service", RELEASE, namespace) or {}
        if self.settings.exposure == "NodePort":
            ports = (svc.get("spec") or {}).get("ports") or [{}]
            return external_server(spec, node_port=ports[0].get("nodePort"))
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
        return external_server(spec, lb_address=ingress[0].get("hostname") or ingress[0].get("ip"))

    def _with_server(self, config: Obj, server: str) -> Obj:
        out = copy.deepcopy(config)
        if server:
            for c in out.get("clusters") or []:
                c.setdefault("cluster", {})["server"] = server
        return out

    def _client(self, namespace: str) -> client.ApiClient:
        config = self._read_kubeconfig(namespace)
        assert config is not None
        if self.access == "service":
            config = self._with_server(config, in_cluster_server(namespace))
        elif self.access == "external":
            config = self._with_server(config, self._external(namespace))
        cfg = client.Configuration()
        KubeConfigLoader(config_dict=config).load_and_set(cfg)
        cfg.retries = False
        return client.ApiClient(cfg)

    async def client_for(self, learner_id: str) -> client.ApiClient:
        def run() -> client.ApiClient:
            return self._client(self._require(learner_id))

        return await asyncio.to_thread(run)

    async def kubeconfig_for(self, learner_id: str) -> str:
        def run() -> str:
            ns = self._require(learner_id)
            config = self._read_kubeconfig(ns)
            assert config is not None
            server = self._external(ns)
            if not server:
                raise SandboxUnavailable("the sandbox has no external address yet")
            out = self._with_server(config, server)
            for key in ("clusters", "users", "contexts"):
                for item in out.get(key) or []:
                    item["name"] = "kepler-station"
            for item in out.get("contexts") or []:
                item.setdefault("context", {}).update(cluster="kepler-station",
                                                      user="kepler-station")  # fmt: skip
            out["current-context"] = "kepler-station"
            return yaml.safe_dump(out, sort_keys=False)

        return await asyncio.to_thread(run)

    # --- pause / resume --------------------------------------------------------------------

    async def pause(self, learner_id: str) -> None:
        ns = await asyncio.to_thread(self._require, learner_id)
        if not await asyncio.to_thread(self._begin_pause, ns):
            return
        await asyncio.to_thread(self._scale_workbench, ns, 0)
        await self._wait(lambda: self._at_zero(ns), "control plane scale-down")
        await asyncio.to_thread(self._delete_synced_pods, ns)

    def _begin_pause(self, ns: str) -> bool:
        """Save the bare Pods, annotate and scale to 0; False if already paused and at zero."""
        sts = self._sts(ns)
        if sts is None:
            raise SandboxNotFound("the sandbox has no control plane")
        ann = (sts.get("metadata") or {}).get("annotations") or {}
        if ann.get(PAUSED) == "true":
            return True  # finish a pause that stopped halfway: wait for zero, delete pods
        self._save_bare_pods(ns)
        replicas = (sts.get("spec") or {}).get("replicas") or 1
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self.kube.patch("apps/v1", "StatefulSet", RELEASE, {"metadata": {"annotations": {
            PAUSED: "true", PAUSED_REPLICAS: str(replicas), PAUSED_DATE: stamp}}}, ns)
        self.kube.patch("apps/v1", "StatefulSet", RELEASE, {"spec": {"replicas": 0}}, ns,
                        sub="scale")  # fmt: skip
        return True

    def _save_bare_pods(self, ns: str) -> None:
        """The learner's Pods that no controller owns, from the virtual API, into a host Secret."""
        if self._read_kubeconfig(ns, required=False) is None:
            return
        try:
            api = self._client(ns)
            try:
                pods = Kube(api, retry=self.retry, timeout=self.timeout).list("v1", "Pod")
            finally:
                api.close()
        except SandboxError as exc:  # pause anyway (it frees the host); say what was lost
            log.warning("pausing %s without saving its pods: %s", ns, exc)
            self._write_saved(ns, [], ["every standalone pod (the virtual API did not answer "
                                       "at pause)"])
            return
        bare = [restorable(p) for p in pods
                if not (p.get("metadata") or {}).get("ownerReferences")
                and (p.get("metadata") or {}).get("namespace") != "kube-system"
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]  # fmt: skip
        saved: list[Obj] = []
        size = 2
        for pod in bare:
            size += len(json.dumps(pod)) + 1
            if size > MAX_SAVED_BYTES:
                break
            saved.append(pod)
        self._write_saved(ns, saved, [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                                      for p in bare[len(saved):]])

    def _write_saved(self, ns: str, saved: list[Obj], lost: list[str]) -> None:
        data = {"pods": json.dumps(saved), "lost": json.dumps(lost)}
        self.kube.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                         "metadata": {"name": PAUSED_PODS_SECRET, "namespace": ns,
                                      "labels": {MANAGED_BY: MANAGER}},
                         "data": {k: base64.b64encode(v.encode()).decode()
                                  for k, v in data.items()}})  # fmt: skip

    def _at_zero(self, ns: str) -> bool:
        sts = self._sts(ns)
        if sts is None:
            return True
        status = sts.get("status") or {}
        if (sts.get("spec") or {}).get("replicas", 1) != 0 or status.get("replicas", 0) != 0:
            return False
        return not self.kube.list("v1", "Pod", ns, CONTROL_PLANE_SELECTOR)

    def _delete_synced_pods(self, ns: str) -> None:
        for pod in self.kube.list("v1", "Pod", ns, SYNCED_SELECTOR):
            self.kube.delete("v1", "Pod", pod["metadata"]["name"], ns)

    def _scale_workbench(self, namespace: str, replicas: int) -> None:
        """The browser terminal's pod sleeps and wakes with the control plane; its home
        volume stays (sandbox/workbench.py)."""
        if self.kube.get("apps/v1", "StatefulSet", workbench.NAME, namespace):
            self.kube.patch("apps/v1", "StatefulSet", workbench.NAME,
                            {"spec": {"replicas": replicas}}, namespace, sub="scale")

    def resume(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        return self._resume(learner_id)

    async def _resume(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        def run() -> str:
            ns = self._require(learner_id)
            sts = self._sts(ns)
            if sts is None:
                raise SandboxNotFound("the sandbox has no control plane")
            ann = (sts.get("metadata") or {}).get("annotations") or {}
            replicas = int(ann.get(PAUSED_REPLICAS) or 1)
            if ann.get(PAUSED) == "true" or (sts.get("spec") or {}).get("replicas") == 0:
                self.kube.patch("apps/v1", "StatefulSet", RELEASE, {"spec": {"replicas": replicas}},
                                ns, sub="scale")  # fmt: skip
                self.kube.patch("apps/v1", "StatefulSet", RELEASE, {"metadata": {"annotations": {
                    PAUSED: None, PAUSED_REPLICAS: None, PAUSED_DATE: None}}}, ns)
            self._scale_workbench(ns, 1)
            return ns

        try:
            ns = await asyncio.to_thread(run)
            yield ProgressEvent(learner_id, "control-plane", "control plane waking up")
            await self._wait(lambda: self._sts_ready(ns), "control plane")
            await self._wait(lambda: self._api_ready(ns), "virtual API server")
            yield ProgressEvent(learner_id, "api", "API server reachable")
            restored, lost = await asyncio.to_thread(self._restore_bare_pods, ns)
            ready = "sandbox ready"
            if restored or lost:  # said in the last event too: transports keep the last line
                text = f"restored {len(restored)} standalone pod(s)"
                text += f": {', '.join(restored)}" if restored else ""
                text += f"; could not restore: {', '.join(lost)}" if lost else ""
                yield ProgressEvent(learner_id, "api", text)
                ready += f" ({text})"
            yield ProgressEvent(learner_id, "ready", ready, done=True)
        except SandboxError as exc:
            yield ProgressEvent(learner_id, "failed", str(exc), done=True)

    def _restore_bare_pods(self, ns: str) -> tuple[list[str], list[str]]:
        """Re-create the Pods saved at pause that are gone (or stale) in the virtual cluster."""
        secret = self.kube.get("v1", "Secret", PAUSED_PODS_SECRET, ns)
        if not secret:
            return [], []
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        saved: list[Obj] = json.loads(data.get("pods") or "[]")
        lost: list[str] = json.loads(data.get("lost") or "[]")
        restored: list[str] = []
        api = self._client(ns)
        try:
            vkube = Kube(api, retry=self.retry, timeout=self.timeout)
            for pod in saved:
                name, pns = pod["metadata"]["name"], pod["metadata"]["namespace"]
                ref = f"{pns}/{name}"
                try:
                    self._restore_one(vkube, pod)
                    restored.append(ref)
                except SandboxError as exc:
                    log.warning("could not restore pod %s in %s: %s", ref, ns, exc)
                    lost.append(ref)
        finally:
            api.close()
        self.kube.delete("v1", "Secret", PAUSED_PODS_SECRET, ns)
        return restored, lost

    def _restore_one(self, vkube: Kube, pod: Obj) -> None:
        name, pns = pod["metadata"]["name"], pod["metadata"]["namespace"]
        deadline = time.monotonic() + self.ready_timeout
        while True:
            current = vkube.get("v1", "Pod", name, pns)
            if current is None:
                vkube.apply(copy.deepcopy(pod))
                return
            phase = (current.get("status") or {}).get("phase")
            gone_on_host = (current.get("spec") or {}).get("nodeName") and phase != "Pending"
            if not (current.get("metadata") or {}).get("deletionTimestamp") and not gone_on_host:
                return  # the syncer kept it (or the learner made it anew): nothing to restore
            if not (current.get("metadata") or {}).get("deletionTimestamp"):
                vkube.delete("v1", "Pod", name, pns)  # a stale copy the syncer will remove
            if time.monotonic() >= deadline:
                raise SandboxUnavailable(f"pod {pns}/{name} still terminating")
            time.sleep(self.poll)

    # --- reset / delete --------------------------------------------------------------------

    def reset(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        return self._reset(learner_id)

    async def _reset(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        """A fresh namespace and vcluster; the old one is retired (unlabelled) and deleted."""
        try:
            old = await asyncio.to_thread(self._namespace_of, learner_id)
            if old:
                await asyncio.to_thread(self._retire, old)
        except SandboxError as exc:
            yield ProgressEvent(learner_id, "failed", str(exc), done=True)
            return
        ok = False
        async for event in self._provision(learner_id, None):
            ok = ok or event.step == "ready"
            yield event
        if old and ok:
            await self.delete_named(old)

    def _retire(self, namespace: str) -> None:
        self.kube.patch("v1", "Namespace", namespace, {"metadata": {
            "labels": {L_LEARNER: None, "kepler.station/retired": "true"}}})

    async def delete(self, learner_id: str) -> None:
        ns = await asyncio.to_thread(self._namespace_of, learner_id)
        if ns:
            await self.delete_named(ns)

    async def delete_named(self, name: str) -> None:
        def run() -> None:
            self.kube.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding",
                             cluster_binding_name(name))  # fmt: skip
            self.kube.delete(ANP_API, "AdminNetworkPolicy", admin_policy_name(name))
            self.kube.delete("v1", "Namespace", name)
            self._kubeconfigs.pop(name, None)

        await asyncio.to_thread(run)

    # --- listing and the warm pool ---------------------------------------------------------

    async def list(self) -> list[SandboxInfo]:
        return await asyncio.to_thread(self._list_sync)

    @staticmethod
    def _info(ns: Obj, sts: Obj | None) -> SandboxInfo:
        meta = ns.get("metadata") or {}
        labels = meta.get("labels") or {}
        ann = meta.get("annotations") or {}
        learner = ann.get(A_LEARNER) if labels.get(L_LEARNER) else None
        phase: str
        if meta.get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating":
            phase = "deleting"
        elif sts is None:
            phase = "provisioning"
        elif ((sts.get("metadata") or {}).get("annotations") or {}).get(PAUSED) == "true":
            phase = "paused"
        elif (sts.get("status") or {}).get("readyReplicas", 0) >= max(
                1, (sts.get("spec") or {}).get("replicas", 1)):
            phase = "spare" if labels.get(L_SPARE) == "true" and not learner else "ready"
        else:
            phase = "provisioning"
        return SandboxInfo(learner_id=learner, name=meta.get("name", ""), phase=phase,  # type: ignore[arg-type]
                           created=_ts(meta.get("creationTimestamp")), labels=dict(labels))

    async def claim_spare(self, learner_id: str) -> SandboxInfo | None:
        def run() -> SandboxInfo | None:
            spares = [i for i in self._list_sync() if i.phase == "spare"]
            spares.sort(key=lambda i: i.created)
            for info in spares:
                ns = self.kube.get("v1", "Namespace", info.name)
                if not ns:
                    continue
                patch = {"metadata": {
                    "resourceVersion": ns["metadata"]["resourceVersion"],  # lose a race cleanly
                    "labels": {L_SPARE: None, L_LEARNER: learner_hash(learner_id)},
                    "annotations": {A_LEARNER: learner_id,
                                    A_CLAIMED: datetime.now(UTC).isoformat(timespec="seconds")},
                }}  # fmt: skip
                try:
                    Kube(self.kube.api, retry=Retry(attempts=1), timeout=self.timeout).patch(
                        "v1", "Namespace", info.name, patch)
                except SandboxUnavailable:
                    continue  # 409: someone else claimed it first
                return replace(info, learner_id=learner_id, phase="ready")
            return None

        return await asyncio.to_thread(run)

    def _list_sync(self) -> builtins.list[SandboxInfo]:
        namespaces = self.kube.list("v1", "Namespace", selector=NS_SELECTOR)
        sets = {s["metadata"]["namespace"]: s
                for s in self.kube.list("apps/v1", "StatefulSet", selector=STS_SELECTOR)}
        return [self._info(n, sets.get(n["metadata"]["name"])) for n in namespaces]

    async def close(self) -> None:
        self.kube.api.close()
