"""Render the host objects of one learner's sandbox: a namespace with guard rails and a vcluster.

Pure functions: :func:`render` turns a :class:`SandboxSpec` into plain JSON objects, which
:class:`sandbox.backends.vcluster.VClusterBackend` server-side applies. No helm binary: the
objects mirror what the pinned vcluster chart (``chart/templates`` at :data:`VCLUSTER_VERSION`)
renders for the values in :func:`vcluster_values`, and the config Secret carries the chart's
default values merged with ours, exactly as helm would hand them to vcluster.

The chart's ``values.yaml`` is not vendored: :func:`load_chart_defaults` reads it from
``KEPLER_VCLUSTER_VALUES`` or downloads the pinned tag's file once and checks its SHA-256.

What differs from the chart, on purpose:

* the syncer's namespace rights come from a RoleBinding to the shared ClusterRole
  ``kepler-vcluster-syncer`` (deploy/host-rbac.yaml), and its cluster rights, when the
  chapters need any, from a ClusterRoleBinding to ``kepler-vcluster-syncer-cluster``. The bot
  then needs only ``bind`` on those two roles instead of every right it would grant;
* ResourceQuota, LimitRange and NetworkPolicies are ours (sized for the course; isolation
  from other learners and the host's private ranges), not the chart's ``policies``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sandbox import workbench

Obj = dict[str, Any]
Requirement = Literal["storage-class", "network-policy-sync", "metrics-server", "load-balancer"]

# --- the pinned release ----------------------------------------------------------------------

VCLUSTER_VERSION = "0.26.5"
VCLUSTER_IMAGE_REGISTRY = "ghcr.io"
VCLUSTER_IMAGE_REPOSITORY = "loft-sh/vcluster-oss"  # the Apache-2.0 build, no pro modules
VALUES_URL = f"https://raw.githubusercontent.com/loft-sh/vcluster/v{VCLUSTER_VERSION}/chart/values.yaml"
VALUES_SHA256 = "348c20ef91c87b9df1759a03d8ba0167e0a509b87ac0ba8bf45ee8df955dad5d"
CHART = f"vcluster-{VCLUSTER_VERSION}"

RELEASE = "kepler"  # the vcluster's name inside each sandbox namespace
NAMESPACE_PREFIX = "kepler-"
SYNCER_ROLE = "kepler-vcluster-syncer"
SYNCER_CLUSTER_ROLE = "kepler-vcluster-syncer-cluster"
LEARNER_SA = "kepler-learner"  # service account inside the vcluster behind the kubeconfig

# Labels and annotations the bot puts on what it owns.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kepler-station"
L_SANDBOX = "kepler.station/sandbox"  # "true" on the namespace; the namespace on cluster objects
L_LEARNER = "kepler.station/learner-hash"
L_SPARE = "kepler.station/spare"
A_LEARNER = "kepler.station/learner"
A_CLAIMED = "kepler.station/claimed-at"
A_REQUIRES = "kepler.station/requires"
PAUSED = "loft.sh/paused"  # what ``vcluster pause`` writes, so its CLI agrees with us
PAUSED_REPLICAS = "loft.sh/paused-replicas"
PAUSED_DATE = "loft.sh/paused-date"

# Addresses a learner's pod must never reach (the host's networks, nodes, cloud metadata,
# other tenants): RFC 1918, CGNAT (100.64/10, GKE/EKS pod ranges), loopback, link-local,
# "this network" and, for IPv6, unique-local, link-local, loopback, IPv4-mapped and NAT64
# (both carry IPv4 private addresses inside).
PRIVATE_RANGES_V4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                     "172.16.0.0/12", "192.168.0.0/16")  # fmt: skip
PRIVATE_RANGES_V6 = ("::1/128", "::ffff:0:0/96", "64:ff9b::/96", "fc00::/7", "fe80::/10")
PRIVATE_RANGES = PRIVATE_RANGES_V4 + PRIVATE_RANGES_V6
# Public resolvers vcluster's CoreDNS forwards to, instead of the node's resolvers (which sit
# in private ranges on GKE, EKS and most on-prem hosts, and which the isolation blocks).
DNS_UPSTREAMS = ("1.1.1.1", "8.8.8.8")
# Tolerations a synced pod may carry: the ones Kubernetes' DefaultTolerationSeconds admission
# adds to every pod (in the virtual cluster, then copied to the host).
ALLOWED_TOLERATION_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
# AdminNetworkPolicy (sigs.k8s.io/network-policy-api): the host feature tenant isolation needs.
ANP_API = "policy.networking.k8s.io/v1alpha1"
ANP_DNS_PRIORITY = 20  # every sandbox pod may ask its own vcluster CoreDNS (port 1053)
ANP_SANDBOX_PRIORITY = 30  # per sandbox: Pass own namespace to the learner's NetworkPolicies
ANP_CONTROL_PLANE_PRIORITY = 40  # control planes: Pass the bot, ingress and the host API
ANP_ISOLATION_PRIORITY = 50  # every sandbox: Deny other namespaces, nodes, private ranges

Exposure = Literal["LoadBalancer", "NodePort", "Ingress"]


CONTROL_PLANE_LIMITS = {"cpu": "1", "memory": "1Gi"}  # its requests may not exceed these


@dataclass(frozen=True)
class Sizing:
    """Quota and defaults for one sandbox (control plane + CoreDNS + the whole course)."""

    requests_cpu: str = "2"
    requests_memory: str = "3Gi"
    limits_cpu: str = "8"
    limits_memory: str = "6Gi"
    pods: int = 40
    services: int = 20
    load_balancers: int = 2  # learner LoadBalancer services, when a chapter requires them
    pvcs: int = 5
    requests_storage: str = "6Gi"
    control_plane_storage: str = "2Gi"
    # The control plane's requests (KEPLER_SANDBOX_CONTROL_PLANE_CPU/_MEMORY): the pinned
    # chart's default until ``kepler sandbox usage`` measured a host (docs/operating.md).
    control_plane_cpu: str = "200m"
    control_plane_memory: str = "256Mi"
    # Node ports: Kubernetes charges a LoadBalancer Service one per port (unless
    # allocateLoadBalancerNodePorts is false) and a NodePort Service one per port.
    learner_node_ports: int = 4
    # Ephemeral storage (container writable layers, emptyDir, logs): one pod can't fill a node.
    requests_ephemeral_storage: str = "4Gi"
    limits_ephemeral_storage: str = "24Gi"
    default_request_ephemeral_storage: str = "64Mi"
    default_limit_ephemeral_storage: str = "512Mi"
    max_container_ephemeral_storage: str = "2Gi"
    default_request_cpu: str = "50m"
    default_request_memory: str = "64Mi"
    default_limit_cpu: str = "250m"
    default_limit_memory: str = "256Mi"
    max_container_cpu: str = "2"
    max_container_memory: str = "2Gi"


@dataclass(frozen=True)
class HostSettings:
    """How sandboxes are exposed and sized on one host cluster (operator configuration)."""

    exposure: Exposure = "Ingress"
    host_template: str = "{namespace}.sandbox.example.com"  # Ingress; optional DNS name for LB
    node_address: str = ""  # NodePort: the node IP or name learners connect to
    ingress_class: str = "nginx"
    ingress_namespace: str = "ingress-nginx"  # where the ingress controller runs
    bot_namespace: str = "kepler-system"  # where the bot runs when in-cluster
    storage_class: str = ""  # for the control plane's PVC; "" = host default
    dns_upstreams: tuple[str, ...] = DNS_UPSTREAMS
    in_cluster: bool = True  # the bot dials kepler.<ns>.svc from bot_namespace
    workbench_image: str = ""  # the browser terminal's pod (sandbox/workbench.py); "": none
    sizing: Sizing = field(default_factory=Sizing)


@dataclass(frozen=True)
class SandboxSpec:
    """Everything that decides one sandbox's host objects."""

    namespace: str
    requirements: frozenset[str]
    host: HostSettings
    chart_defaults: Mapping[str, Any]
    learner_id: str | None = None  # None for a spare
    learner_hash: str | None = None
    paused: bool = False

    @property
    def hostname(self) -> str:
        return self.host.host_template.format(namespace=self.namespace, release=RELEASE)


# --- requirements --------------------------------------------------------------------------


def render_namespace(learner_id: str) -> str:
    """A stable namespace name for ``kepler sandbox render`` (provisioning picks a random one)."""
    return NAMESPACE_PREFIX + hashlib.sha256(learner_id.encode()).hexdigest()[:10]


def course_requirements(chapters: Iterable[Any]) -> frozenset[str]:
    """The union of ``requires`` over the chapters (a sandbox serves the whole course)."""
    return frozenset(r for ch in chapters for r in getattr(ch, "requires", ()))


# --- chart defaults ------------------------------------------------------------------------


def load_chart_defaults(path: str | Path | None = None, cache_dir: Path | None = None) -> Obj:
    """The pinned chart's ``values.yaml`` as a dict, checked against :data:`VALUES_SHA256`.

    From ``path`` (``KEPLER_VCLUSTER_VALUES``, via bot.config) if given, else from the cache, else downloaded
    from :data:`VALUES_URL` into the cache (``~/.cache/kepler``).
    """
    if path:
        raw = Path(path).read_bytes()
    else:
        cache = (cache_dir or Path.home() / ".cache" / "kepler") / f"vcluster-{VCLUSTER_VERSION}-values.yaml"
        if cache.exists():
            raw = cache.read_bytes()
        else:
            with urllib.request.urlopen(VALUES_URL, timeout=30) as resp:
                raw = resp.read()
            _check_digest(raw)
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(raw)
    _check_digest(raw)
    return yaml.safe_load(raw)


def _check_digest(raw: bytes) -> None:
    digest = hashlib.sha256(raw).hexdigest()
    if digest != VALUES_SHA256:
        raise ValueError(
            f"vcluster values.yaml has SHA-256 {digest}, expected {VALUES_SHA256} "
            f"(chart {CHART}); fetch it from {VALUES_URL}"
        )


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Obj:
    """Helm's value merge: maps merge recursively, anything else replaces; None deletes."""
    out: Obj = copy.deepcopy(dict(base))
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- vcluster values -----------------------------------------------------------------------


def service_sans(namespace: str) -> list[str]:
    """The in-cluster names of the control plane Service. vcluster (pkg/server/cert/cert.go)
    adds ``kepler`` and ``kepler.<ns>`` itself, not the ``.svc`` forms the bot dials."""
    return [f"{RELEASE}.{namespace}.svc", f"{RELEASE}.{namespace}.svc.cluster.local"]


def extra_sans(spec: SandboxSpec) -> list[str]:
    """``controlPlane.proxy.extraSANs``: every address the bot or a learner dials that vcluster
    would not add on its own (it adds the ingress host, the LB status and the pod's node IP)."""
    host = spec.host
    sans = service_sans(spec.namespace)
    if host.exposure == "NodePort" and host.node_address:
        sans.append(host.node_address)
    elif host.exposure != "NodePort" and host.host_template:
        sans.append(spec.hostname)  # Ingress always; LoadBalancer when a DNS name points at it
    return sans


def corefile(upstreams: Iterable[str]) -> str:
    """vcluster's default Corefile (pkg/coredns/template.go, k8s distro, not embedded, byHostname
    kubelets) with one change: forward to public resolvers, not the node's /etc/resolv.conf."""
    return "\n".join([
        ".:1053 {",
        "    errors",
        "    health",
        "    ready",
        r"    rewrite name regex .*\.nodes\.vcluster\.com kubernetes.default.svc.cluster.local",
        "    kubernetes cluster.local in-addr.arpa ip6.arpa {",
        "        pods insecure",
        "        fallthrough in-addr.arpa ip6.arpa",
        "    }",
        "    hosts /etc/coredns/NodeHosts {",
        "        ttl 60",
        "        reload 15s",
        "        fallthrough",
        "    }",
        "    prometheus :9153",
        f"    forward . {' '.join(upstreams)} {{",
        "        policy sequential",
        "    }",
        "    cache 30",
        "    loop",
        "    loadbalance",
        "}",
        "",
        "import /etc/coredns/custom/*.server",
    ])  # fmt: skip


def vcluster_values(spec: SandboxSpec) -> Obj:
    """Our values on top of the chart's defaults; chapter requirements become vcluster config."""
    req = spec.requirements
    host = spec.host
    server = external_server(spec)
    sans = extra_sans(spec)
    values: Obj = {
        "controlPlane": {
            "distro": {"k8s": {"enabled": True}},
            "backingStore": {"database": {"embedded": {"enabled": True}}},
            "statefulSet": {
                "image": {"registry": VCLUSTER_IMAGE_REGISTRY,
                          "repository": VCLUSTER_IMAGE_REPOSITORY, "tag": VCLUSTER_VERSION},
                "resources": {
                    "requests": {"cpu": host.sizing.control_plane_cpu,
                                 "memory": host.sizing.control_plane_memory,
                                 "ephemeral-storage": "256Mi"},
                    "limits": {**CONTROL_PLANE_LIMITS, "ephemeral-storage": "2Gi"},
                },
                "persistence": {"volumeClaim": {"size": host.sizing.control_plane_storage,
                                                "storageClass": host.storage_class}},
                "annotations": {A_REQUIRES: ",".join(sorted(req))},
            },
            "service": {"spec": {"type": "ClusterIP" if host.exposure == "Ingress"
                                 else host.exposure}},
            "ingress": {"enabled": host.exposure == "Ingress", "host": spec.hostname,
                        "spec": {"ingressClassName": host.ingress_class}},
            "proxy": {"extraSANs": sans},
            "coredns": {"overwriteConfig": corefile(host.dns_upstreams)},
            "advanced": {"serviceAccount": {"enabled": True}},
        },
        "rbac": {"role": {"enabled": False}, "clusterRole": {"enabled": False}},
        "sync": {
            "toHost": {"networkPolicies": {"enabled": "network-policy-sync" in req},
                       # endpoints sync stays on (the chart default); the syncer role has the verbs
                       "endpoints": {"enabled": True},
                       "pods": {"enforceTolerations": []}},
            "fromHost": {"storageClasses": {"enabled": "storage-class" in req}},
        },
        "integrations": {"metricsServer": {"enabled": "metrics-server" in req,
                                           "nodes": True, "pods": True}},
        "exportKubeConfig": {
            "server": server,
            "serviceAccount": {"name": LEARNER_SA, "namespace": "kube-system",
                               "clusterRole": "cluster-admin"},
        },
        "policies": {"networkPolicy": {"enabled": False}, "resourceQuota": {"enabled": False},
                     "limitRange": {"enabled": False}},
        "telemetry": {"enabled": False},
    }
    if host.workbench_image:
        values["exportKubeConfig"]["additionalSecrets"] = [workbench.kubeconfig_secret(
            spec.namespace, RELEASE, values["exportKubeConfig"]["serviceAccount"])]
    return values


def external_server(spec: SandboxSpec, node_port: int | None = None,
                    lb_address: str | None = None) -> str:
    """The API address in the learner's kubeconfig (it is in the certificate's SANs)."""
    host = spec.host
    if host.exposure == "Ingress":
        return f"https://{spec.hostname}"
    if host.exposure == "NodePort":
        return f"https://{host.node_address}:{node_port}" if node_port else ""
    if lb_address:
        return f"https://{lb_address}"
    return f"https://{spec.hostname}" if host.host_template else ""


def needs_cluster_role(requirements: Iterable[str]) -> bool:
    """Cluster-scoped reads: host storage classes, or node metrics (chart's createClusterRole)."""
    req = set(requirements)
    return "storage-class" in req or "metrics-server" in req


# --- rendering -----------------------------------------------------------------------------


def _labels(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    out = {"app": "vcluster", "chart": CHART, "release": RELEASE, "heritage": "Helm",
           MANAGED_BY: MANAGER}
    out.update(extra or {})
    return out


def _meta(name: str, namespace: str | None, labels: Mapping[str, str] | None = None,
          annotations: Mapping[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "labels": dict(labels or {})}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def namespace_object(spec: SandboxSpec) -> Obj:
    labels = {
        MANAGED_BY: MANAGER, L_SANDBOX: "true",
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "baseline",
        "pod-security.kubernetes.io/audit": "baseline",
    }  # fmt: skip
    annotations: dict[str, str] = {A_REQUIRES: ",".join(sorted(spec.requirements))}
    if spec.learner_id is None:
        labels[L_SPARE] = "true"
    else:
        labels[L_LEARNER] = spec.learner_hash or ""
        annotations[A_LEARNER] = spec.learner_id
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(spec.namespace, None, labels, annotations)}


def guard_rails(spec: SandboxSpec) -> list[Obj]:
    """ResourceQuota, LimitRange and the NetworkPolicies that isolate the namespace."""
    ns, s = spec.namespace, spec.host.sizing
    own = {MANAGED_BY: MANAGER}
    learner_lbs = "load-balancer" in spec.requirements
    lbs = (s.load_balancers if learner_lbs else 0) + (
        1 if spec.host.exposure == "LoadBalancer" else 0)
    node_ports = (s.learner_node_ports if learner_lbs else 0) + (
        len(control_plane_ports(spec)) if spec.host.exposure != "Ingress" else 0)
    hard = {
        "requests.cpu": s.requests_cpu, "requests.memory": s.requests_memory,
        "limits.cpu": s.limits_cpu, "limits.memory": s.limits_memory,
        "requests.ephemeral-storage": s.requests_ephemeral_storage,
        "limits.ephemeral-storage": s.limits_ephemeral_storage,
        "pods": str(s.pods), "services": str(s.services),
        "services.loadbalancers": str(lbs),
        "services.nodeports": str(node_ports),
        "persistentvolumeclaims": str(s.pvcs if "storage-class" in spec.requirements else 1),
        "requests.storage": s.requests_storage if "storage-class" in spec.requirements
        else s.control_plane_storage,
    }  # fmt: skip
    if spec.host.workbench_image:
        workbench.reserve(hard)
    quota = {"apiVersion": "v1", "kind": "ResourceQuota",
             "metadata": _meta("kepler-quota", ns, own), "spec": {"hard": hard}}
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta("kepler-limits", ns, own),
              "spec": {"limits": [{
                  "type": "Container",
                  "default": {"cpu": s.default_limit_cpu, "memory": s.default_limit_memory,
                              "ephemeral-storage": s.default_limit_ephemeral_storage},
                  "defaultRequest": {"cpu": s.default_request_cpu,
                                     "memory": s.default_request_memory,
                                     "ephemeral-storage": s.default_request_ephemeral_storage},
                  "max": {"cpu": s.max_container_cpu, "memory": s.max_container_memory,
                          "ephemeral-storage": s.max_container_ephemeral_storage},
              }]}}  # fmt: skip
    return [quota, limits, *network_policies(spec)]


def network_policies(spec: SandboxSpec) -> list[Obj]:
    """The host NetworkPolicy of the sandbox namespace: it selects the control plane only.

    NetworkPolicies are allow-lists whose union applies, so any host policy that selected the
    learner's pods and allowed traffic among them would outvote the learner's own policies
    (chapter 4's "this should now time out" would still answer). Learner pods are therefore
    selected by no host NetworkPolicy: the policies vcluster syncs from the learner decide
    their traffic, as on a cluster of their own. Isolation from other tenants, nodes and
    private ranges is AdminNetworkPolicy's job (:func:`sandbox_admin_policy`,
    :func:`cluster_admin_policies`), which NetworkPolicies cannot widen.
    """
    ns = spec.namespace
    own = {MANAGED_BY: MANAGER}
    api_from: list[Obj] = [
        {"podSelector": {}},  # the sandbox's own pods: CoreDNS, in-cluster kubectl, HPA readers
    ]
    if spec.host.in_cluster:
        api_from.append({"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": spec.host.bot_namespace}}})
    if spec.host.exposure == "Ingress":
        api_from.append({"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": spec.host.ingress_namespace}}})
    else:  # LoadBalancer / NodePort: clients arrive from anywhere (or via node IPs)
        api_from.append({"ipBlock": {"cidr": "0.0.0.0/0"}})
        api_from.append({"ipBlock": {"cidr": "::/0"}})
    control_plane = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta("kepler-control-plane", ns, own),
        "spec": {
            # Learner pods can't carry these labels on the host: the syncer rewrites "release".
            "podSelector": {"matchLabels": CONTROL_PLANE_LABELS},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": api_from, "ports": [{"protocol": "TCP", "port": 8443}]}],
            # The host API server (often on a private address) for syncing and metrics.
            "egress": [{"ports": [{"protocol": "TCP", "port": 443},
                                  {"protocol": "TCP", "port": 6443}]}],
        },
    }  # fmt: skip
    return [control_plane]


CONTROL_PLANE_LABELS = {"app": "vcluster", "release": RELEASE}
# vcluster's CoreDNS pod on the host (pkg/coredns/template.go: label k8s-app, port 1053; the
# syncer adds the virtual namespace label).
VCLUSTER_DNS_LABELS = {"k8s-app": "vcluster-kube-dns", "vcluster.loft.sh/namespace": "kube-system"}
VCLUSTER_DNS_PORT = 1053


def _ns_selector(name: str) -> Obj:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def admin_policy_name(namespace: str) -> str:
    return namespace  # already "kepler-<hex>", unique and cluster-scoped like the namespace


def sandbox_admin_policy(spec: SandboxSpec) -> Obj:
    """Per sandbox: traffic among the sandbox's own pods is Passed to NetworkPolicy (the
    learner's), ahead of :func:`cluster_admin_policies`' Deny of every other namespace."""
    own = _ns_selector(spec.namespace)
    return {
        "apiVersion": ANP_API, "kind": "AdminNetworkPolicy",
        "metadata": _meta(admin_policy_name(spec.namespace), None,
                          {MANAGED_BY: MANAGER, L_SANDBOX: spec.namespace}),
        "spec": {
            "priority": ANP_SANDBOX_PRIORITY,
            "subject": {"namespaces": own},
            "ingress": [{"name": "own-pods-decide", "action": "Pass",
                         "from": [{"namespaces": own}]}],
            "egress": [{"name": "own-pods-decide", "action": "Pass",
                        "to": [{"namespaces": own}]}],
        },
    }  # fmt: skip


def cluster_admin_policies(settings: HostSettings | None = None) -> list[Obj]:
    """Tenant isolation for every sandbox namespace, applied once per host (deploy/).

    * DNS (priority 20): every sandbox pod may reach vcluster CoreDNS pods on 1053. vcluster
      runs CoreDNS unprivileged on 1053 behind its kube-dns Service (port 53), so the usual
      learner rule "egress to kube-system on 53" can't match on the host, where policies see
      the pod's port; without this, chapter 4's life-support probe could not resolve names.
      Another sandbox's CoreDNS stays unreachable: its ingress is denied at priority 50;
    * control planes (priority 40): the bot's and the ingress controller's namespaces may
      connect, and the control plane may reach the host API (443/6443, on any address) —
      Passed to the ``kepler-control-plane`` NetworkPolicy, which narrows to port 8443;
    * every sandbox pod (priority 50): Deny from and to every other namespace (pods) and to
      :data:`PRIVATE_RANGES` (nodes, cloud metadata, the host's networks). Only the standard
      channel of network-policy-api v0.1.x is used (no ``nodes`` peers). Traffic from outside the cluster (a learner's
      LoadBalancer, node ports) is not pod traffic and is left to NetworkPolicy.
    """
    host = settings or HostSettings()
    lab = {MANAGED_BY: MANAGER}
    sandboxes = {"matchLabels": {L_SANDBOX: "true"}}
    control_planes = {"pods": {"namespaceSelector": sandboxes,
                               "podSelector": {"matchLabels": CONTROL_PLANE_LABELS}}}
    callers = [{"namespaces": _ns_selector(host.bot_namespace)}] if host.in_cluster else []
    if host.exposure == "Ingress":
        callers.append({"namespaces": _ns_selector(host.ingress_namespace)})
    api_ports = [{"portNumber": {"protocol": "TCP", "port": 443}},
                 {"portNumber": {"protocol": "TCP", "port": 6443}}]
    dns_ports = [{"portNumber": {"protocol": "UDP", "port": VCLUSTER_DNS_PORT}},
                 {"portNumber": {"protocol": "TCP", "port": VCLUSTER_DNS_PORT}}]
    return [
        {"apiVersion": ANP_API, "kind": "AdminNetworkPolicy",
         "metadata": {"name": "kepler-sandbox-dns", "labels": lab},
         "spec": {
             "priority": ANP_DNS_PRIORITY,
             "subject": {"namespaces": sandboxes},
             "egress": [{"name": "vcluster-coredns", "action": "Allow", "ports": dns_ports,
                         "to": [{"pods": {"namespaceSelector": sandboxes,
                                          "podSelector": {"matchLabels": VCLUSTER_DNS_LABELS}}}]}],
         }},
        {"apiVersion": ANP_API, "kind": "AdminNetworkPolicy",
         "metadata": {"name": "kepler-control-planes", "labels": lab},
         "spec": {
             "priority": ANP_CONTROL_PLANE_PRIORITY,
             "subject": control_planes,
             "ingress": [{"name": "bot-and-ingress", "action": "Pass", "from": callers,
                          "ports": [{"portNumber": {"protocol": "TCP", "port": 8443}}]}]
             if callers else [],
             "egress": [{"name": "host-api", "action": "Pass", "ports": api_ports,
                         "to": [{"networks": ["0.0.0.0/0", "::/0"]}]}],
         }},
        {"apiVersion": ANP_API, "kind": "AdminNetworkPolicy",
         "metadata": {"name": "kepler-sandbox-isolation", "labels": lab},
         "spec": {
             "priority": ANP_ISOLATION_PRIORITY,
             "subject": {"namespaces": sandboxes},
             "ingress": [{"name": "other-namespaces", "action": "Deny",
                          "from": [{"namespaces": {}}]}],
             "egress": [
                 {"name": "other-namespaces", "action": "Deny", "to": [{"namespaces": {}}]},
                 {"name": "private-ranges", "action": "Deny",
                  "to": [{"networks": list(PRIVATE_RANGES)}]},
             ],
         }},
    ]  # fmt: skip


def control_plane_ports(spec: SandboxSpec, values: Mapping[str, Any] | None = None) -> list[Obj]:
    """The Service ports as chart/templates/service.yaml renders them: https, and ``kubelet``
    (10250 → 8443) when ``proxyKubelets.byHostname`` is on and the type is not LoadBalancer."""
    svc_type = "ClusterIP" if spec.host.exposure == "Ingress" else spec.host.exposure
    by_hostname = True
    if values is not None:
        by_hostname = bool(values["networking"]["advanced"]["proxyKubelets"]["byHostname"])
    ports: list[Obj] = [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]
    if by_hostname and svc_type != "LoadBalancer":
        ports.append({"name": "kubelet", "port": 10250, "targetPort": 8443, "protocol": "TCP"})
    return ports


def vcluster_objects(spec: SandboxSpec) -> list[Obj]:
    """ServiceAccount, bindings, config Secret, Services, Ingress and the StatefulSet."""
    ns = spec.namespace
    values = deep_merge(spec.chart_defaults, vcluster_values(spec))
    config_yaml = yaml.safe_dump(values, sort_keys=True)
    config_hash = hashlib.sha256(base64.b64encode(config_yaml.encode())).hexdigest()
    sa_name = f"vc-{RELEASE}"
    out: list[Obj] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa_name, ns, _labels())},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(f"vc-{RELEASE}", ns, _labels()),
         "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": ns}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": SYNCER_ROLE}},
    ]  # fmt: skip
    if needs_cluster_role(spec.requirements):
        out.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": _meta(cluster_binding_name(ns), None, _labels({L_SANDBOX: ns})),
            "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": ns}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": SYNCER_CLUSTER_ROLE},
        })  # fmt: skip
    out.append({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": _meta(f"vc-config-{RELEASE}", ns, _labels()),
        "data": {"config.yaml": base64.b64encode(config_yaml.encode()).decode()},
    })  # fmt: skip
    svc_type = values["controlPlane"]["service"]["spec"].get("type", "ClusterIP")
    out.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(RELEASE, ns, _labels({"vcluster.loft.sh/service": "true"})),
        "spec": {"type": svc_type, "ports": control_plane_ports(spec, values),
                 "selector": {"app": "vcluster", "release": RELEASE}},
    })  # fmt: skip
    out.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(f"{RELEASE}-headless", ns, _labels()),
        "spec": {"publishNotReadyAddresses": True, "clusterIP": "None",
                 "ports": [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}],
                 "selector": {"app": "vcluster", "release": RELEASE}},
    })  # fmt: skip
    if spec.host.exposure == "Ingress":
        ing = values["controlPlane"]["ingress"]
        out.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": _meta(RELEASE, ns, _labels(), ing.get("annotations") or {
                "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
                "nginx.ingress.kubernetes.io/ssl-passthrough": "true",
                "nginx.ingress.kubernetes.io/ssl-redirect": "true"}),
            "spec": {"ingressClassName": spec.host.ingress_class, "rules": [{
                "host": spec.hostname,
                "http": {"paths": [{"path": "/", "pathType": ing.get("pathType",
                                                                      "ImplementationSpecific"),
                                    "backend": {"service": {"name": RELEASE,
                                                            "port": {"name": "https"}}}}]}}]},
        })  # fmt: skip
    out.append(statefulset(spec, values, config_hash))
    return out


def cluster_binding_name(namespace: str) -> str:
    return f"vc-{RELEASE}-v-{namespace}"[:63].rstrip("-")


def statefulset(spec: SandboxSpec, values: Mapping[str, Any], config_hash: str) -> Obj:
    """The control plane, as chart/templates/statefulset.yaml renders it for the k8s distro."""
    ns = spec.namespace
    cp = values["controlPlane"]
    sts = cp["statefulSet"]
    k8s = cp["distro"]["k8s"]
    img = sts["image"]
    image = f"{img['registry']}/{img['repository']}:{img.get('tag') or VCLUSTER_VERSION}"
    kimg = k8s["image"]
    k8s_image = f"{kimg['registry']}/{kimg['repository']}:{kimg['tag']}" if kimg.get(
        "registry") else f"{kimg['repository']}:{kimg['tag']}"
    probes = sts["probes"]
    vc = sts["persistence"]["volumeClaim"]
    claim: Obj = {"accessModes": vc.get("accessModes", ["ReadWriteOnce"]),
                  "resources": {"requests": {"storage": vc["size"]}}}
    if vc.get("storageClass"):
        claim["storageClassName"] = vc["storageClass"]

    def probe(path: str, p: Mapping[str, Any], initial: bool = False) -> Obj:
        out: Obj = {"httpGet": {"path": path, "port": 8443, "scheme": "HTTPS"},
                    "periodSeconds": p["periodSeconds"], "timeoutSeconds": p["timeoutSeconds"],
                    "failureThreshold": p["failureThreshold"]}
        if initial:
            out["initialDelaySeconds"] = p["initialDelaySeconds"]
        return out

    def field_env(name: str, path: str) -> Obj:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    annotations = {A_REQUIRES: ",".join(sorted(spec.requirements))}
    if spec.paused:
        annotations.update({PAUSED: "true", PAUSED_REPLICAS: "1"})
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": _meta(RELEASE, ns, _labels(), annotations),
        "spec": {
            "selector": {"matchLabels": {"app": "vcluster", "release": RELEASE}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": vc.get("retentionPolicy",
                                                                           "Retain")},
            "serviceName": f"{RELEASE}-headless",
            "podManagementPolicy": sts["scheduling"]["podManagementPolicy"],
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim}],
            "replicas": 0 if spec.paused else sts["highAvailability"]["replicas"],
            "template": {
                "metadata": {"annotations": {"vClusterConfigHash": config_hash},
                             "labels": {"app": "vcluster", "release": RELEASE}},
                "spec": {
                    "terminationGracePeriodSeconds": 15,
                    "serviceAccountName": f"vc-{RELEASE}",
                    "volumes": [
                        {"name": "helm-cache", "emptyDir": {}},
                        *copy.deepcopy(sts["persistence"]["binariesVolume"]),
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "certs", "emptyDir": {}},
                        {"name": "vcluster-config",
                         "secret": {"secretName": f"vc-config-{RELEASE}"}},
                    ],
                    "initContainers": [{
                        "name": "kubernetes", "image": k8s_image,
                        "volumeMounts": [{"mountPath": "/binaries", "name": "binaries"}],
                        "command": ["cp"], "args": ["-r", "/kubernetes/.", "/binaries/"],
                        "securityContext": copy.deepcopy(k8s.get("securityContext") or {}),
                        "resources": copy.deepcopy(k8s.get("resources") or {}),
                    }],
                    "enableServiceLinks": sts.get("enableServiceLinks", True),
                    "containers": [{
                        "name": "syncer", "image": image,
                        "livenessProbe": probe("/healthz", probes["livenessProbe"], True),
                        "readinessProbe": probe("/readyz", probes["readinessProbe"]),
                        "startupProbe": probe("/readyz", probes["startupProbe"]),
                        "securityContext": copy.deepcopy(sts["security"]["containerSecurityContext"]),
                        "resources": copy.deepcopy(sts["resources"]),
                        "env": [
                            {"name": "VCLUSTER_NAME", "value": RELEASE},
                            *([{"name": "LOFT_LOG_ENCODING",
                                "value": values["logging"].get("encoding") or "console"}]
                              if values.get("logging") else []),
                            field_env("POD_NAME", "metadata.name"),
                            field_env("POD_IP", "status.podIP"),
                            field_env("NODE_NAME", "spec.nodeName"),
                            field_env("NODE_IP", "status.hostIP"),
                        ],
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/data"},
                            {"name": "binaries", "mountPath": "/binaries"},
                            {"name": "certs", "mountPath": "/pki"},
                            {"name": "helm-cache", "mountPath": "/.cache/helm"},
                            {"name": "vcluster-config", "mountPath": "/var/lib/vcluster"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                },
            },
        },
    }  # fmt: skip


def render(spec: SandboxSpec) -> list[Obj]:
    """Every host object of the sandbox, in apply order (the namespace first)."""
    bench = workbench.WorkbenchSettings(spec.host.workbench_image, RELEASE, spec.host.storage_class)
    return [namespace_object(spec), sandbox_admin_policy(spec), *guard_rails(spec),
            *vcluster_objects(spec), *workbench.objects(spec.namespace, bench, paused=spec.paused)]


# --- the bot's host RBAC (deploy/host-rbac.yaml is generated from this) ----------------------

_CRUD = ["create", "delete", "patch", "update", "get", "list", "watch"]


def syncer_cluster_roles() -> list[Obj]:
    """The vcluster syncer's rights, shared by all sandboxes (chart's role.yaml/clusterrole.yaml
    for our values: network policy sync, metrics proxy, host storage classes)."""
    ns_rules = [
        {"apiGroups": [""], "resources": ["configmaps", "secrets", "services", "pods", "pods/attach",
                                          "pods/portforward", "pods/exec", "persistentvolumeclaims"],
         "verbs": _CRUD},
        {"apiGroups": [""], "resources": ["pods/status", "pods/ephemeralcontainers"],
         "verbs": ["patch", "update"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets", "replicasets", "deployments"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["endpoints", "events", "pods/log"],
         "verbs": ["get", "list", "watch"]},
        # the chart adds this when sync.toHost.endpoints is on (its default, and ours)
        {"apiGroups": [""], "resources": ["endpoints"],
         "verbs": ["create", "delete", "patch", "update"]},
        {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": _CRUD},
    ]  # fmt: skip
    cluster_rules = [
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
         "verbs": ["get", "watch", "list"]},
        {"apiGroups": ["metrics.k8s.io"], "resources": ["nodes"], "verbs": ["get", "list"]},
    ]  # fmt: skip
    lab = {MANAGED_BY: MANAGER}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": SYNCER_ROLE, "labels": lab}, "rules": ns_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": SYNCER_CLUSTER_ROLE, "labels": lab}, "rules": cluster_rules},
    ]


def bot_cluster_role() -> Obj:
    """Only what :class:`VClusterBackend` does on the host."""
    w = ["get", "list", "watch", "create", "patch", "update", "delete"]
    rules = [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": w},
        {"apiGroups": [""], "resources": ["resourcequotas", "limitranges", "serviceaccounts",
                                          "services", "secrets", "configmaps"], "verbs": w},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
        # The browser terminal (sandbox/workbench.py): exec into workbench-0 only, and the
        # admission policy keeps it inside sandbox namespaces. A WebSocket exec is a GET,
        # authorized as create too on newer API servers.
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"],
         "resourceNames": [workbench.POD]},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": w},
        {"apiGroups": ["apps"], "resources": ["statefulsets/scale"],
         "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies", "ingresses"],
         "verbs": w},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings",
                                                                  "clusterrolebindings"],
         "verbs": w},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
         "verbs": ["bind"], "resourceNames": [SYNCER_ROLE, SYNCER_CLUSTER_ROLE]},
        {"apiGroups": ["policy.networking.k8s.io"], "resources": ["adminnetworkpolicies"],
         "verbs": w},
        # ``kepler sandbox usage`` (sandbox/usage.py): sandboxes' measured use, read only.
        {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["get", "list"]},
    ]  # fmt: skip
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "kepler-station-sandboxes", "labels": {MANAGED_BY: MANAGER}},
            "rules": rules}


def host_rbac(bot_namespace: str = "kepler-system", bot_sa: str = "kepler-station") -> list[Obj]:
    lab = {MANAGED_BY: MANAGER}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": bot_namespace,
                                                               "labels": lab}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": bot_sa, "namespace": bot_namespace, "labels": lab}},
        bot_cluster_role(),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "kepler-station-sandboxes", "labels": lab},
         "subjects": [{"kind": "ServiceAccount", "name": bot_sa, "namespace": bot_namespace}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "kepler-station-sandboxes"}},
        *syncer_cluster_roles(),
    ]  # fmt: skip


# --- learner policies that would widen isolation ----------------------------------------------


def widening_rules(policy: Mapping[str, Any]) -> list[str]:
    """Why a (host, synced) NetworkPolicy would let pods reach past the sandbox; [] if it can't.

    The Python twin of deploy/host-admission.yaml's CEL (both are tested against the same
    cases): every egress rule names its destinations (``to``; DNS included), and no
    ``ipBlock`` overlaps a private range (:data:`PRIVATE_RANGES`, IPv4 and IPv6) unless it
    lists that whole range under ``except``.
    """
    import ipaddress

    private = [ipaddress.ip_network(c) for c in PRIVATE_RANGES]
    problems = []
    for i, rule in enumerate((policy.get("spec") or {}).get("egress") or []):
        peers = rule.get("to") or []
        if not peers:
            problems.append(f"egress[{i}] allows every destination")
        for peer in peers:
            block = peer.get("ipBlock")
            if not block:
                continue
            try:
                net = ipaddress.ip_network(block["cidr"], strict=False)
                excepted = [ipaddress.ip_network(e, strict=False)
                            for e in block.get("except") or []]  # fmt: skip
            except ValueError:
                problems.append(f"egress[{i}] ipBlock is not a CIDR")
                continue
            for p in private:
                if net.version != p.version or not net.overlaps(p):
                    continue
                if not any(p.subnet_of(e) for e in excepted if e.version == p.version):  # type: ignore[arg-type]
                    problems.append(f"egress[{i}] ipBlock {block['cidr']} reaches {p}")
    return problems


_NS_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def valid_namespace(name: str) -> bool:
    return len(name) <= 63 and bool(_NS_RE.match(name))
