"""What the pinned chart's values.yaml (vcluster v0.26.5) says, for the keys the renderer reads.

The real file may not be committed here (the workplace rule: nothing fetched from upstream is
vendored), and CI has no route to GitHub. So these are the upstream values at exactly the
paths :mod:`sandbox.provision` reads, transcribed from ``chart/values.yaml`` at tag v0.26.5
(SHA-256 :data:`sandbox.provision.VALUES_SHA256`). ``test_chart_values.py`` checks every leaf
against the real file whenever one is at hand (``KEPLER_VCLUSTER_VALUES`` or the download
cache), and ``kepler sandbox render`` itself only ever renders with the real, SHA-checked file.
"""

from __future__ import annotations

from typing import Any

PINNED_VALUES: dict[str, Any] = {
    "controlPlane": {
        "distro": {
            "k8s": {"enabled": False,
                    "image": {"registry": "ghcr.io", "repository": "loft-sh/kubernetes",
                              "tag": "v1.32.8"},
                    "securityContext": {},
                    "resources": {"limits": {"cpu": "100m", "memory": "256Mi"},
                                  "requests": {"cpu": "40m", "memory": "64Mi"}}},
            "k3s": {"enabled": False},
        },
        "backingStore": {"database": {"embedded": {"enabled": False}}},
        "statefulSet": {
            "image": {"registry": "ghcr.io", "repository": "loft-sh/vcluster-pro", "tag": ""},
            "resources": {"limits": {"ephemeral-storage": "8Gi", "memory": "2Gi"},
                          "requests": {"ephemeral-storage": "1Gi", "cpu": "200m",
                                       "memory": "256Mi"}},
            "persistence": {"volumeClaim": {"enabled": "auto", "retentionPolicy": "Retain",
                                            "size": "5Gi", "storageClass": "",
                                            "accessModes": ["ReadWriteOnce"]},
                            "binariesVolume": [{"name": "binaries", "emptyDir": {}}]},
            "scheduling": {"podManagementPolicy": "Parallel"},
            "highAvailability": {"replicas": 1},
            "security": {"containerSecurityContext": {"allowPrivilegeEscalation": False,
                                                      "runAsUser": 0, "runAsGroup": 0}},
            "enableServiceLinks": True,
            "probes": {
                "livenessProbe": {"enabled": True, "failureThreshold": 60,
                                  "initialDelaySeconds": 60, "timeoutSeconds": 3,
                                  "periodSeconds": 2},
                "readinessProbe": {"enabled": True, "failureThreshold": 60, "timeoutSeconds": 3,
                                   "periodSeconds": 2},
                "startupProbe": {"enabled": True, "failureThreshold": 300, "timeoutSeconds": 3,
                                 "periodSeconds": 6},
            },
        },
        "service": {"enabled": True, "labels": {}, "annotations": {}, "kubeletNodePort": 0,
                    "httpsNodePort": 0, "spec": {"type": "ClusterIP"}},
        "ingress": {"enabled": False, "host": "my-host.com", "pathType": "ImplementationSpecific",
                    "labels": {},
                    "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
                                    "nginx.ingress.kubernetes.io/ssl-passthrough": "true",
                                    "nginx.ingress.kubernetes.io/ssl-redirect": "true"},
                    "spec": {"tls": []}},
        "proxy": {"bindAddress": "0.0.0.0", "port": 8443, "extraSANs": []},
        "coredns": {"enabled": True, "embedded": False, "overwriteConfig": "",
                    "deployment": {"resources": {"limits": {"cpu": "1000m", "memory": "170Mi"},
                                                 "requests": {"cpu": "20m", "memory": "64Mi"}}}},
    },
    "networking": {"advanced": {"clusterDomain": "cluster.local", "fallbackHostCluster": False,
                                "proxyKubelets": {"byHostname": True, "byIP": True}}},
    "sync": {
        "toHost": {"services": {"enabled": True}, "endpoints": {"enabled": True},
                   "networkPolicies": {"enabled": False},
                   "pods": {"enabled": True, "enforceTolerations": []}},
        "fromHost": {"storageClasses": {"enabled": "auto"}},
    },
    "integrations": {"metricsServer": {"enabled": False, "nodes": True, "pods": True}},
    "telemetry": {"enabled": True},
    "policies": {"networkPolicy": {"enabled": False}},
    "logging": {"encoding": "console"},
}  # fmt: skip


def leaves(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every (path, value) whose value is not a non-empty mapping."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.extend(leaves(value, (*prefix, key)))
        else:
            out.append(((*prefix, key), value))
    return out
