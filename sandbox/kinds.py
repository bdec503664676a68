"""The one kind registry: every Kubernetes kind Kepler Station reads, applies or shows.

Reads (:mod:`sandbox.snapshot`), the apply path (:mod:`sandbox.apply`), the crew's read-only
tools (:mod:`bot.voice.tools`) and the test API emulator all take their kinds from here, so
a kind is added in one line. (Discovery would find them at run time, but a learner's check
must not cost a discovery round trip, and the emulator needs them before any server exists.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    kind: str
    group_version: str  # "v1" for core
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    scale: bool = False  # has a /scale subresource

    @property
    def group(self) -> str:
        return self.group_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.group_version.rpartition("/")[2]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def prefix(self) -> str:
        """``/api/v1`` for core kinds, ``/apis/<group>/<version>`` for the others."""
        return "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"

    @property
    def path(self) -> str:
        """The collection path across all namespaces (or cluster-wide)."""
        return f"{self.prefix}/{self.plural}"


def _k(kind: str, gv: str, plural: str, namespaced: bool = True, *short: str,
       scale: bool = False) -> Kind:  # fmt: skip
    return Kind(kind, gv, plural, namespaced, short, scale)


# Adding a kind is one line.
KINDS: tuple[Kind, ...] = (
    _k("Namespace", "v1", "namespaces", False, "ns"),
    _k("Node", "v1", "nodes", False, "no"),
    _k("Pod", "v1", "pods", True, "po"),
    _k("Service", "v1", "services", True, "svc"),
    _k("Endpoints", "v1", "endpoints", True, "ep"),
    _k("ConfigMap", "v1", "configmaps", True, "cm"),
    _k("Secret", "v1", "secrets", True),
    _k("ServiceAccount", "v1", "serviceaccounts", True, "sa"),
    _k("ResourceQuota", "v1", "resourcequotas", True, "quota"),
    _k("LimitRange", "v1", "limitranges", True, "limits"),
    _k("PersistentVolume", "v1", "persistentvolumes", False, "pv"),
    _k("PersistentVolumeClaim", "v1", "persistentvolumeclaims", True, "pvc"),
    _k("Event", "v1", "events", True, "ev"),
    _k("Deployment", "apps/v1", "deployments", True, "deploy", scale=True),
    _k("ReplicaSet", "apps/v1", "replicasets", True, "rs", scale=True),
    _k("StatefulSet", "apps/v1", "statefulsets", True, "sts", scale=True),
    _k("DaemonSet", "apps/v1", "daemonsets", True, "ds"),
    _k("Job", "batch/v1", "jobs", True),
    _k("CronJob", "batch/v1", "cronjobs", True, "cj"),
    _k("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True),
    _k("StorageClass", "storage.k8s.io/v1", "storageclasses", False, "sc"),
    _k("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", True, "netpol"),
    _k("Ingress", "networking.k8s.io/v1", "ingresses", True, "ing"),
    _k("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", True, "hpa"),
    _k("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", True, "pdb"),
    _k("Role", "rbac.authorization.k8s.io/v1", "roles", True),
    _k("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", True),
    _k("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", False),
    _k("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    _k("AdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1", "adminnetworkpolicies", False,
       "anp"),
)
BY_KIND: dict[str, Kind] = {k.kind: k for k in KINDS}


def lookup(name: str) -> Kind | None:
    """The kind a kubectl-style name means: kind, plural, singular or short name, any case."""
    return _BY_NAME.get(name.strip().lower())


_BY_NAME: dict[str, Kind] = {
    n.lower(): k for k in KINDS for n in (k.kind, k.plural, k.singular, *k.short_names)
}
