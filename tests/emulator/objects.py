"""Builders for Kubernetes objects shaped as a real API server returns them (JSON dicts).

Every builder returns full metadata (uid, resourceVersion, creationTimestamp, generation where
the server sets one), a status as the controllers leave it, and conditions with
``lastTransitionTime``. ``tests/emulator/test_emulator.py`` proves the shapes by
deserialising each through the official client's typed models, which reject missing required
fields (e.g. ``nodeInfo.kernelVersion``).

Times are ISO 8601 UTC strings with a ``Z``; pass ``created=`` as a ``datetime`` or string.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

Obj = dict[str, Any]

_rv = itertools.count(1000)
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def ts(when: datetime | str | None = None) -> str:
    if isinstance(when, str):
        return when
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata(name: str, namespace: str | None = None, labels: dict[str, str] | None = None,
             created: datetime | str | None = None, generation: int | None = None,
             owner: Obj | None = None, annotations: dict[str, str] | None = None,
             deleting: bool = False) -> Obj:
    """ObjectMeta as the server fills it; ``owner`` is an object to reference as controller."""
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["uid"] = str(uuid.uuid4())
    meta["resourceVersion"] = str(next(_rv))
    if generation is not None:
        meta["generation"] = generation
    meta["creationTimestamp"] = ts(created or T0)
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    if deleting:
        meta["deletionTimestamp"] = ts()
        meta["deletionGracePeriodSeconds"] = 30
    return meta


def owner_reference(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def condition(type_: str, status: bool | str = True, reason: str | None = None,
              message: str | None = None, when: datetime | str | None = None,
              probe: bool = False, update: bool = False) -> Obj:
    """A condition; ``probe`` adds lastProbeTime (pods), ``update`` lastUpdateTime (apps)."""
    c: Obj = {"type": type_,
              "status": status if isinstance(status, str) else ("True" if status else "False")}
    if probe:
        c["lastProbeTime"] = None
    if update:
        c["lastUpdateTime"] = ts(when or T0)
    c["lastTransitionTime"] = ts(when or T0)
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]


# --- cluster-scoped ------------------------------------------------------------------------


def namespace(name: str, labels: dict[str, str] | None = None, phase: str = "Active") -> Obj:
    labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(name, labels=labels),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": phase}}


def node(name: str, ready: bool = True, labels: dict[str, str] | None = None,
         cpu: str = "4", memory: str = "8141452Ki", ip: str | None = None,
         control_plane: bool = False, kubelet: str = "v1.32.0") -> Obj:
    ip = ip or f"172.18.0.{int(_hash(name), 16) % 200 + 2}"
    lab = {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
           "kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
           "beta.kubernetes.io/os": "linux", **(labels or {})}
    if control_plane:
        lab["node-role.kubernetes.io/control-plane"] = ""
    alloc = {"cpu": cpu, "ephemeral-storage": "102626232Ki", "hugepages-2Mi": "0",
             "memory": memory, "pods": "110"}
    ready_cond = (condition("Ready", True, "KubeletReady", "kubelet is posting ready status")
                  if ready else condition("Ready", "Unknown", "NodeStatusUnknown",
                                          "Kubelet stopped posting node status."))
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": metadata(name, labels=lab, annotations={
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true"}),
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"],
                 "providerID": f"kind://docker/kepler/{name}",
                 **({} if ready else {"taints": [
                     {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                      "timeAdded": ts()}]})},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "allocatable": alloc, "capacity": dict(alloc),
            "conditions": [
                condition("MemoryPressure", False, "KubeletHasSufficientMemory",
                          "kubelet has sufficient memory available", update=False),
                condition("DiskPressure", False, "KubeletHasNoDiskPressure",
                          "kubelet has no disk pressure"),
                condition("PIDPressure", False, "KubeletHasSufficientPID",
                          "kubelet has sufficient PID available"),
                ready_cond,
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368}],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name + "-boot")),
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": "6.8.0-51-generic",
                "kubeProxyVersion": kubelet,
                "kubeletVersion": kubelet,
                "machineID": _hash(name, "machine") * 3 + "ab",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
            },
        },
    }


def storage_class(name: str = "standard", provisioner: str = "rancher.io/local-path",
                  default: bool = True, binding_mode: str = "WaitForFirstConsumer") -> Obj:
    ann = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": metadata(name, annotations=ann), "provisioner": provisioner,
            "reclaimPolicy": "Delete", "volumeBindingMode": binding_mode}


def persistent_volume(name: str, size: str = "1Gi", storage_class_name: str = "standard",
                      claim: Obj | None = None, phase: str | None = None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": size},
                 "hostPath": {"path": f"/var/local-path-provisioner/{name}", "type":
                              "DirectoryOrCreate"},
                 "persistentVolumeReclaimPolicy": "Delete",
                 "storageClassName": storage_class_name, "volumeMode": "Filesystem"}
    if claim is not None:
        spec["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "name": claim["metadata"]["name"],
                            "namespace": claim["metadata"]["namespace"],
                            "uid": claim["metadata"]["uid"],
                            "resourceVersion": claim["metadata"]["resourceVersion"]}
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": metadata(name, annotations={
                "pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}),
            "spec": spec,
            "status": {"phase": phase or ("Bound" if claim else "Available"),
                       "lastPhaseTransitionTime": ts(T0)}}


def cluster_role(name: str, rules: list[Obj] | None = None) -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": metadata(name), "rules": rules or [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}


# --- workloads -----------------------------------------------------------------------------


def container_status(name: str, image: str, state: str = "running", ready: bool | None = None,
                     restarts: int = 0, reason: str | None = None, message: str | None = None,
                     started: datetime | str | None = None) -> Obj:
    """``state`` is running, waiting or terminated; ``reason`` e.g. ImagePullBackOff."""
    ready = (state == "running") if ready is None else ready
    if state == "running":
        st: Obj = {"running": {"startedAt": ts(started or T0)}}
    elif state == "waiting":
        st = {"waiting": {"reason": reason or "ContainerCreating",
                          **({"message": message} if message else {})}}
    else:
        st = {"terminated": {"exitCode": 1, "reason": reason or "Error",
                             "startedAt": ts(T0), "finishedAt": ts(T0),
                             "containerID": f"containerd://{_hash(name, 'old') * 6}"}}
    out: Obj = {"name": name, "state": st, "ready": ready, "restartCount": restarts,
                "image": image, "imageID": "", "started": state == "running"}
    if state == "running" or restarts:
        out["imageID"] = f"docker.io/{image.split(':')[0]}@sha256:{_hash(image) * 6}abcd"
        out["containerID"] = f"containerd://{_hash(name, image) * 6}abcd"
    if restarts and state != "terminated":
        out["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                           "startedAt": ts(T0), "finishedAt": ts(T0),
                                           "containerID": f"containerd://{_hash(name) * 6}"}}
    return out


def pod(name: str, namespace: str = "default", labels: dict[str, str] | None = None,
        image: str = "nginx:1.27", containers: list[tuple[str, str]] | None = None,
        node_name: str | None = "kepler-worker", phase: str = "Running",
        ready: bool | None = None, waiting: str | None = None, waiting_message: str | None = None,
        restarts: int = 0, owner: Obj | None = None, created: datetime | str | None = None,
        init_containers: list[tuple[str, str]] | None = None, init_waiting: str | None = None,
        volumes: list[Obj] | None = None, deleting: bool = False, pod_ip: str | None = None,
        requests: dict[str, str] | None = None) -> Obj:
    """A pod as the kubelet reports it.

    ``containers`` is ``[(name, image)]`` (default one container named after the pod's first
    label value or ``app``). ``waiting`` puts every container in that waiting reason (e.g.
    ``ImagePullBackOff``, ``CrashLoopBackOff``); ``ready`` defaults to running and not waiting.
    """
    containers = containers or [((labels or {}).get("app", "app"), image)]
    if waiting and phase == "Running" and waiting != "CrashLoopBackOff":
        phase = "Pending"
    ready = (phase == "Running" and not waiting and not init_waiting) if ready is None else ready
    created = created or T0
    crash = waiting == "CrashLoopBackOff"
    statuses = [container_status(c, img, "waiting" if waiting else
                                 ("running" if phase == "Running" else "waiting"),
                                 ready=ready, restarts=restarts or (5 if crash else 0),
                                 reason=waiting or ("ContainerCreating" if phase != "Running"
                                                    else None),
                                 message=waiting_message or _waiting_message(waiting, img),
                                 started=created)
                for c, img in containers]
    res = {"requests": requests} if requests else {}
    spec: Obj = {
        "containers": [{"name": c, "image": img, "imagePullPolicy": "IfNotPresent",
                        "resources": res, "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": True,
                                          "mountPath":
                                          "/var/run/secrets/kubernetes.io/serviceaccount"}]}
                       for c, img in containers],
        "dnsPolicy": "ClusterFirst", "enableServiceLinks": True, "preemptionPolicy":
        "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
        "schedulerName": "default-scheduler", "securityContext": {},
        "serviceAccount": "default", "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300}],
        "volumes": [*(volumes or []), {"name": "kube-api-access-x7k2p", "projected": {
            "defaultMode": 420, "sources": [{"serviceAccountToken": {
                "expirationSeconds": 3607, "path": "token"}}]}}],
    }
    if node_name:
        spec["nodeName"] = node_name
    if init_containers:
        spec["initContainers"] = [{"name": c, "image": img, "resources": {}}
                                  for c, img in init_containers]
    scheduled = node_name is not None
    conds = [
        condition("PodReadyToStartContainers", scheduled and phase == "Running", probe=True,
                  when=created),
        condition("Initialized", not init_waiting, None if not init_waiting else
                  "ContainersNotInitialized", probe=True, when=created),
        condition("Ready", ready, None if ready else "ContainersNotReady",
                  None if ready else "containers with unready status: [" +
                  " ".join(c for c, _ in containers) + "]", probe=True, when=created),
        condition("ContainersReady", ready, None if ready else "ContainersNotReady", probe=True,
                  when=created),
        condition("PodScheduled", scheduled, None if scheduled else "Unschedulable",
                  None if scheduled else "0/1 nodes are available", probe=True, when=created),
    ]
    status: Obj = {"phase": phase, "conditions": conds, "qosClass":
                   "Burstable" if requests else "BestEffort"}
    if scheduled:
        ip = pod_ip or f"10.244.0.{int(_hash(namespace, name), 16) % 250 + 2}"
        status |= {"hostIP": "172.18.0.2", "hostIPs": [{"ip": "172.18.0.2"}], "podIP": ip,
                   "podIPs": [{"ip": ip}], "startTime": ts(created),
                   "containerStatuses": statuses}
        if init_containers:
            status["initContainerStatuses"] = [
                container_status(c, img, "waiting" if init_waiting else "terminated",
                                 ready=False, reason=init_waiting or "Completed",
                                 message=_waiting_message(init_waiting, img))
                for c, img in init_containers]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": metadata(name, namespace, labels, created, generation=1, owner=owner,
                                 deleting=deleting),
            "spec": spec, "status": status}


def _waiting_message(reason: str | None, image: str) -> str | None:
    if reason in ("ImagePullBackOff", "ErrImagePull"):
        return f'Back-off pulling image "{image}"'
    if reason == "CrashLoopBackOff":
        return "back-off 5m0s restarting failed container"
    return None


def deployment(name: str, namespace: str = "default", replicas: int = 1,
               image: str = "nginx:1.27", labels: dict[str, str] | None = None,
               ready: int | None = None, updated: int | None = None,
               available: int | None = None, generation: int = 1,
               observed_generation: int | None = None, stuck: bool = False,
               containers: list[tuple[str, str]] | None = None,
               created: datetime | str | None = None) -> Obj:
    """A Deployment and its status; counts default to a finished rollout of ``replicas``."""
    labels = labels or {"app": name}
    containers = containers or [(name, image)]
    ready = replicas if ready is None else ready
    updated = replicas if updated is None else updated
    available = ready if available is None else available
    observed = generation if observed_generation is None else observed_generation
    rs_name = f"{name}-{_hash(name, *[i for _, i in containers])[:10]}"
    if stuck:
        progressing = condition("Progressing", False, "ProgressDeadlineExceeded",
                                f'ReplicaSet "{rs_name}" has timed out progressing.', update=True)
    elif updated == replicas and observed >= generation:
        progressing = condition("Progressing", True, "NewReplicaSetAvailable",
                                f'ReplicaSet "{rs_name}" has successfully progressed.',
                                update=True)
    else:
        progressing = condition("Progressing", True, "ReplicaSetUpdated",
                                f'ReplicaSet "{rs_name}" is progressing.', update=True)
    avail_ok = available >= replicas
    status: Obj = {
        "observedGeneration": observed, "replicas": max(replicas, updated),
        "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
        "conditions": [
            condition("Available", avail_ok,
                      "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
                      "Deployment has minimum availability." if avail_ok else
                      "Deployment does not have minimum availability.", update=True),
            progressing,
        ],
    }
    if replicas - available > 0:
        status["unavailableReplicas"] = replicas - available
    for key in ("readyReplicas", "availableReplicas", "updatedReplicas"):
        if status[key] == 0:
            del status[key]  # the server omits zero counts
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata(name, namespace, labels, created, generation=generation,
                             annotations={"deployment.kubernetes.io/revision": "1"}),
        "spec": {
            "progressDeadlineSeconds": 600, "replicas": replicas, "revisionHistoryLimit": 10,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {
                "containers": [{"name": c, "image": img, "imagePullPolicy": "IfNotPresent",
                                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                "terminationMessagePolicy": "File"} for c, img in containers],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                "schedulerName": "default-scheduler", "securityContext": {},
                "terminationGracePeriodSeconds": 30}},
        },
        "status": status,
    }


def replica_set(deploy: Obj, ready: int | None = None) -> Obj:
    """The ReplicaSet a Deployment owns (controller: true), pod-template-hash labelled."""
    spec = deploy["spec"]
    h = _hash(deploy["metadata"]["name"], str(spec["template"]))[:10]
    labels = {**spec["selector"]["matchLabels"], "pod-template-hash": h}
    n = spec["replicas"]
    ready = n if ready is None else ready
    template = {**spec["template"], "metadata": {"labels": dict(labels)}}
    status: Obj = {"replicas": n, "fullyLabeledReplicas": n, "readyReplicas": ready,
                   "availableReplicas": ready, "observedGeneration": 1}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": metadata(f"{deploy['metadata']['name']}-{h}",
                                 deploy["metadata"]["namespace"], labels, generation=1,
                                 owner=deploy, annotations={
                                     "deployment.kubernetes.io/desired-replicas": str(n),
                                     "deployment.kubernetes.io/max-replicas": str(n + 1),
                                     "deployment.kubernetes.io/revision": "1"}),
            "spec": {"replicas": n, "selector": {"matchLabels": labels}, "template": template},
            "status": status}


def deployment_pods(deploy: Obj, rs: Obj | None = None, ready: int | None = None,
                    waiting: str | None = None, nodes: list[str] | None = None,
                    created: datetime | str | None = None) -> list[Obj]:
    """Pods of a Deployment's ReplicaSet: the first ``ready`` Ready, the rest not (or waiting)."""
    rs = rs or replica_set(deploy)
    n = deploy["spec"]["replicas"]
    ready = n if ready is None else ready
    labels = rs["spec"]["selector"]["matchLabels"]
    nodes = nodes or ["kepler-worker"]
    containers = [(c["name"], c["image"]) for c in deploy["spec"]["template"]["spec"]["containers"]]
    out = []
    for i in range(n):
        ok = i < ready
        out.append(pod(f"{rs['metadata']['name']}-{_hash(rs['metadata']['name'], str(i))[:5]}",
                       deploy["metadata"]["namespace"], labels, containers=containers,
                       node_name=nodes[i % len(nodes)], owner=rs, created=created,
                       ready=ok if not waiting else None,
                       waiting=None if ok else waiting))
    return out


def stateful_set(name: str, namespace: str = "default", replicas: int = 1,
                 image: str = "postgres:16", ready: int | None = None) -> Obj:
    labels = {"app": name}
    ready = replicas if ready is None else ready
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": metadata(name, namespace, labels, generation=1),
            "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy":
                     "OrderedReady", "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": name, "image": image}]}},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"partition": 0}}},
            "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": ready,
                       "currentReplicas": replicas, "updatedReplicas": replicas,
                       "availableReplicas": ready, "currentRevision": f"{name}-7d9f8c",
                       "updateRevision": f"{name}-7d9f8c", "collisionCount": 0}}


# --- networking ----------------------------------------------------------------------------


def service(name: str, namespace: str = "default", selector: dict[str, str] | None = None,
            port: int = 80, target_port: int | str = 80, type_: str = "ClusterIP",
            labels: dict[str, str] | None = None) -> Obj:
    ip = f"10.96.{int(_hash(namespace, name), 16) % 250}.{int(_hash(name), 16) % 250 + 1}"
    spec: Obj = {"clusterIP": ip, "clusterIPs": [ip], "internalTrafficPolicy": "Cluster",
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "ports": [{"name": "http", "port": port, "protocol": "TCP",
                            "targetPort": target_port}],
                 "sessionAffinity": "None", "type": type_}
    if selector is not None:
        spec["selector"] = dict(selector)
    status: Obj = {"loadBalancer": {}}
    if type_ in ("NodePort", "LoadBalancer"):
        spec["ports"][0]["nodePort"] = 30000 + int(_hash(name), 16) % 2767
        spec["externalTrafficPolicy"] = "Cluster"
    if type_ == "LoadBalancer":
        spec["allocateLoadBalancerNodePorts"] = True
        status = {"loadBalancer": {"ingress": [{"ip": "172.18.255.200", "ipMode": "VIP"}]}}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": metadata(name, namespace, labels), "spec": spec, "status": status}


def endpoint_slice(svc: Obj, pods: list[Obj], ready: list[bool] | None = None) -> Obj:
    """The EndpointSlice the endpoint controller writes for ``svc`` over ``pods``."""
    ns = svc["metadata"]["namespace"]
    name = svc["metadata"]["name"]
    ready = ready if ready is not None else [_pod_ready(p) for p in pods]
    port = svc["spec"]["ports"][0]
    eps = [{"addresses": [p["status"].get("podIP", "10.244.0.9")],
            "conditions": {"ready": r, "serving": r, "terminating": False},
            "nodeName": p["spec"].get("nodeName"),
            "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns,
                          "uid": p["metadata"]["uid"]}}
           for p, r in zip(pods, ready, strict=True)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": metadata(f"{name}-{_hash(name)[:5]}", ns, {
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": name}, generation=1, owner=svc,
                annotations={"endpoints.kubernetes.io/last-change-trigger-time": ts(T0)}),
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": port.get("name", ""), "port": port["targetPort"]
                       if isinstance(port["targetPort"], int) else port["port"],
                       "protocol": "TCP"}]}


def _pod_ready(p: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in p.get("status", {}).get("conditions", []))


def endpoints(svc: Obj, pods: list[Obj]) -> Obj:
    ns = svc["metadata"]["namespace"]
    addrs = [{"ip": p["status"].get("podIP"), "nodeName": p["spec"].get("nodeName"),
              "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns,
                            "uid": p["metadata"]["uid"]}} for p in pods if _pod_ready(p)]
    subset: Obj = {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if addrs:
        subset["addresses"] = addrs
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": metadata(svc["metadata"]["name"], ns, svc["metadata"].get("labels")),
            "subsets": [subset] if addrs else []}


def network_policy(name: str, namespace: str, pod_selector: dict[str, str] | None = None,
                   policy_types: list[str] | None = None,
                   from_namespace_labels: dict[str, str] | None = None,
                   ingress: list[Obj] | None = None) -> Obj:
    """A NetworkPolicy; ``pod_selector`` None or {} selects all pods."""
    spec: Obj = {"podSelector": {"matchLabels": pod_selector} if pod_selector else {},
                 "policyTypes": policy_types or ["Ingress"]}
    if ingress is not None:
        spec["ingress"] = ingress
    elif from_namespace_labels is not None:
        spec["ingress"] = [{"from": [{"namespaceSelector": {
            "matchLabels": from_namespace_labels}}]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": metadata(name, namespace, generation=1), "spec": spec}


def ingress(name: str, namespace: str, host: str, service_name: str, port: int = 80) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": metadata(name, namespace, generation=1),
            "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {
                    "name": service_name, "port": {"number": port}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.201"}]}}}


# --- storage -------------------------------------------------------------------------------


def pvc(name: str, namespace: str = "default", phase: str = "Bound",
        storage_class_name: str | None = "standard", size: str = "1Gi",
        volume_name: str | None = None) -> Obj:
    """A claim; Bound ones carry ``volumeName`` and the bind annotations."""
    bound = phase == "Bound"
    ann = {"volume.kubernetes.io/storage-provisioner": "rancher.io/local-path",
           "volume.beta.kubernetes.io/storage-provisioner": "rancher.io/local-path"}
    if bound:
        ann |= {"pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes"}
    meta = metadata(name, namespace, annotations=ann)
    meta["finalizers"] = ["kubernetes.io/pvc-protection"]
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                 "volumeMode": "Filesystem"}
    if storage_class_name is not None:
        spec["storageClassName"] = storage_class_name
    status: Obj = {"phase": phase}
    if bound:
        spec["volumeName"] = volume_name or f"pvc-{meta['uid']}"
        status |= {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
            "spec": spec, "status": status}


def pvc_volume(claim: str, volume: str = "data") -> Obj:
    """A pod volume mounting the claim (for ``pod(volumes=[...])``)."""
    return {"name": volume, "persistentVolumeClaim": {"claimName": claim}}


# --- autoscaling ---------------------------------------------------------------------------


def hpa(name: str, namespace: str = "default", target: str | None = None,
        target_kind: str = "Deployment", min_replicas: int = 1, max_replicas: int = 5,
        cpu_utilization: int = 50, current: int = 2, desired: int = 2,
        able_to_scale: bool = True, metrics_available: bool = True) -> Obj:
    """An autoscaling/v2 HPA on CPU utilization with the status the controller writes."""
    target = target or name
    conds = [
        condition("AbleToScale", able_to_scale, "ReadyForNewScale" if able_to_scale else
                  "FailedGetScale", "recommended size matches current size" if able_to_scale
                  else "the HPA controller was unable to get the target's current scale"),
        condition("ScalingActive", metrics_available, "ValidMetricFound" if metrics_available
                  else "FailedGetResourceMetric",
                  "the HPA was able to successfully calculate a replica count from cpu "
                  "resource utilization (percentage of request)" if metrics_available else
                  "the HPA was unable to compute the replica count: failed to get cpu "
                  "utilization: unable to get metrics for resource cpu"),
        condition("ScalingLimited", False, "DesiredWithinRange",
                  "the desired count is within the acceptable range"),
    ]
    status: Obj = {"currentReplicas": current, "desiredReplicas": desired, "conditions": conds}
    if metrics_available:
        status["currentMetrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization": 12, "averageValue": "6m"}}}]
        status["lastScaleTime"] = ts(T0)
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(name, namespace),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind,
                                        "name": target},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": cpu_utilization}}}]},
            "status": status}


# --- events --------------------------------------------------------------------------------


def event(involved: Obj, reason: str, message: str, type_: str = "Warning",
          count: int = 1, when: datetime | str | None = None) -> Obj:
    """A core/v1 Event about ``involved`` (e.g. ProvisioningFailed on a PVC)."""
    meta = involved["metadata"]
    ns = meta.get("namespace", "default")
    when_s = ts(when or T0)
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": metadata(f"{meta['name']}.{_hash(reason, message)[:16]}", ns,
                                 created=when_s),
            "involvedObject": {"apiVersion": involved["apiVersion"], "kind": involved["kind"],
                               "name": meta["name"], "namespace": ns, "uid": meta["uid"],
                               "resourceVersion": meta["resourceVersion"]},
            "reason": reason, "message": message, "type": type_, "count": count,
            "firstTimestamp": when_s, "lastTimestamp": when_s,
            "source": {"component": "persistentvolume-controller"
                       if involved["kind"] == "PersistentVolumeClaim" else "kubelet"},
            "reportingComponent": "", "reportingInstance": ""}


def config_map(name: str, namespace: str = "default", data: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(name, namespace),
            "data": data or {}}


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
