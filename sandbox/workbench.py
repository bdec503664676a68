"""The learner's workbench: a small pod beside their vcluster, where the browser terminal runs.

One StatefulSet ``workbench`` (pod ``workbench-0``, a stable name the bot can exec into) in the
sandbox's host namespace, rendered with the rest of the sandbox (:func:`objects`, called from
:func:`sandbox.provision.render`). It holds:

* the image from ``KEPLER_WORKBENCH_IMAGE``, which must be pinned by digest (``…@sha256:…``)
  and contain bash, bash-completion, kubectl, vim, nano and curl (docs/sandbox.md says how to
  choose and verify one);
* no host service-account token (``automountServiceAccountToken: false`` on the pod and on its
  own service account), non-root, no privilege escalation, all capabilities dropped, the
  runtime's default seccomp profile: within Pod Security ``baseline`` (and ``restricted``);
* requests 25m CPU / 64Mi (limits 500m / 256Mi): the quota grows by exactly that;
* the kubeconfig of the learner's own vcluster, mounted read-only from the Secret
  ``vc-workbench`` that vcluster writes (``exportKubeConfig.additionalSecrets``) with the
  in-namespace Service as its server; the rc file copies it into ``~/.kube/config`` so
  ``kubectl config set-context`` works;
* an rc file from a ConfigMap: kubectl completion, the ``k`` alias with completion, a prompt;
* ``/home/learner`` on a PersistentVolumeClaim from the StatefulSet's claim template: it
  survives pause (scaled to 0 with the control plane) and resume, and goes with a reset or
  delete (the namespace goes);
* a NetworkPolicy: egress only to its own vcluster's API (the control-plane pods, port 8443);
  no ingress at all. The bot reaches it only through the host API server's exec. The host's
  AdminNetworkPolicies deny every other namespace, the host's DNS included, so the workbench
  resolves nothing: the rc file points the kubeconfig at the Service's cluster IP (from the
  service-link variables ``KEPLER_SERVICE_HOST``/``_PORT_HTTPS``) and keeps the Service's DNS
  name as the TLS server name (it is in the certificate's SANs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

NAME = "workbench"
POD = f"{NAME}-0"
CONTAINER = "workbench"
KUBECONFIG_SECRET = "vc-workbench"
HOME = "/home/learner"
ETC = "/etc/kepler"
RC_FILE = f"{ETC}/workbench.bashrc"
MOUNTED_KUBECONFIG = f"{ETC}/kubeconfig/config"
UID = 1000
HOME_SIZE = "256Mi"
REQUESTS = {"cpu": "25m", "memory": "64Mi"}
LIMITS = {"cpu": "500m", "memory": "256Mi"}
COMMAND = ("bash", "--rcfile", RC_FILE, "-i")  # what the bot execs for each terminal
LABELS = {"app": "kepler-workbench", "app.kubernetes.io/managed-by": "kepler-station"}

# Sourced by every terminal's shell; the learner's own ~/.bashrc is read last.
BASHRC = f"""\
# Kepler Station workbench (rendered by sandbox/workbench.py)
[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc
cd "$HOME" 2>/dev/null || true
mkdir -p "$HOME/.kube"
if [ -r {MOUNTED_KUBECONFIG} ] && ! cmp -s {MOUNTED_KUBECONFIG} "$HOME/.kube/.kepler-mounted"; then
  cp {MOUNTED_KUBECONFIG} "$HOME/.kube/config" && cp {MOUNTED_KUBECONFIG} "$HOME/.kube/.kepler-mounted"
  chmod 600 "$HOME/.kube/config"
  if [ -n "${{KEPLER_SERVICE_HOST:-}}" ] && [ -n "${{WORKBENCH_API_NAME:-}}" ]; then
    kubectl --kubeconfig "$HOME/.kube/config" config set-cluster \
      "$(kubectl --kubeconfig "$HOME/.kube/config" config view -o jsonpath='{{.contexts[0].context.cluster}}')" \
      --server="https://${{KEPLER_SERVICE_HOST}}:${{KEPLER_SERVICE_PORT_HTTPS:-443}}" \
      --tls-server-name="$WORKBENCH_API_NAME" >/dev/null
  fi
fi
export KUBECONFIG="$HOME/.kube/config"
export EDITOR="${{EDITOR:-nano}}"
for f in /usr/share/bash-completion/bash_completion /etc/bash_completion; do
  [ -f "$f" ] && . "$f" && break
done
if command -v kubectl >/dev/null 2>&1; then
  . <(kubectl completion bash 2>/dev/null)
  alias k=kubectl
  complete -o default -F __start_kubectl k
fi
PS1='\\[\\e[36m\\]kepler\\[\\e[0m\\]:\\w\\$ '
[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"
"""


@dataclass(frozen=True)
class WorkbenchSettings:
    image: str  # pinned by digest; "" renders no workbench (the terminal is off)
    vcluster_service: str = "kepler"  # the vcluster's Service in the same namespace
    storage_class: str = ""


IMAGE_HELP = (
    "KEPLER_WORKBENCH_IMAGE must name a public image pinned by digest "
    "(registry/repository:tag@sha256:<64 hex>) that has bash, bash-completion, kubectl, vim, "
    "nano and curl; docs/sandbox.md explains the choice and how to verify it"
)


def image_is_pinned(image: str) -> bool:
    """``registry/repo[:tag]@sha256:<64 hex>``: a tag alone can move under us."""
    _, _, digest = image.partition("@sha256:")
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def kubeconfig_secret(namespace: str, service: str = "kepler",
                      service_account: Obj | None = None) -> Obj:  # fmt: skip
    """vcluster's ``exportKubeConfig.additionalSecrets`` entry for the workbench's kubeconfig:
    the in-namespace Service as server (it is in the certificate's SANs)."""
    out: Obj = {"name": KUBECONFIG_SECRET, "namespace": namespace,
                "server": f"https://{service}.{namespace}.svc:443", "context": "kepler-station"}
    if service_account:
        out["serviceAccount"] = dict(service_account)
    return out


# --- the hooks sandbox/provision.py calls when KEPLER_WORKBENCH_IMAGE is set ----------------


def reserve(hard: dict[str, str]) -> None:
    """Grow the namespace quota by the workbench's volume (its CPU and memory fit already)."""
    from kubernetes.utils import parse_quantity

    hard["persistentvolumeclaims"] = str(int(hard["persistentvolumeclaims"]) + 1)
    total = parse_quantity(hard["requests.storage"]) + parse_quantity(HOME_SIZE)
    hard["requests.storage"] = f"{int(total) // 2**20}Mi"


def selector() -> Obj:
    """The workbench pod and nothing else. Pods the vcluster syncs always carry
    ``vcluster.loft.sh/managed-by``, so no learner pod is selected by the workbench's policy
    (a host policy that selected it would outvote the learner's own policies)."""
    return {"matchLabels": {"app": LABELS["app"]}, "matchExpressions": [
        {"key": "vcluster.loft.sh/managed-by", "operator": "DoesNotExist"}]}


def objects(namespace: str, settings: WorkbenchSettings, *, paused: bool = False) -> list[Obj]:
    """Service account, rc ConfigMap, NetworkPolicy and StatefulSet (replicas 0 when paused)."""
    if not settings.image:
        return []
    if not image_is_pinned(settings.image):
        raise ValueError(IMAGE_HELP)

    def meta(name: str) -> Obj:
        return {"name": name, "namespace": namespace, "labels": dict(LABELS)}

    claim: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": HOME_SIZE}}}
    if settings.storage_class:
        claim["storageClassName"] = settings.storage_class
    pod_labels = {"app": LABELS["app"]}
    container: Obj = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sleep", "infinity"],  # terminals are exec sessions; the pod just waits
        "workingDir": HOME,
        "env": [{"name": "HOME", "value": HOME}, {"name": "KUBECONFIG", "value": f"{HOME}/.kube/config"},
                {"name": "TERM", "value": "xterm-256color"}, {"name": "EDITOR", "value": "nano"},
                {"name": "WORKBENCH_API_NAME", "value": f"{settings.vcluster_service}.{namespace}.svc"}],
        "resources": {"requests": dict(REQUESTS), "limits": dict(LIMITS)},
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": "home", "mountPath": HOME},
            {"name": "rc", "mountPath": RC_FILE, "subPath": "workbench.bashrc", "readOnly": True},
            {"name": "kubeconfig", "mountPath": f"{ETC}/kubeconfig", "readOnly": True},
        ],
    }  # fmt: skip
    sts: Obj = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta(NAME),
        "spec": {
            "serviceName": NAME, "replicas": 0 if paused else 1,
            "selector": {"matchLabels": pod_labels},
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain",
                                                     "whenDeleted": "Delete"},
            "volumeClaimTemplates": [{"metadata": {"name": "home"}, "spec": claim}],
            "template": {
                "metadata": {"labels": {**pod_labels, **LABELS}},
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": True,  # KEPLER_SERVICE_HOST: the API, no DNS
                    "terminationGracePeriodSeconds": 5,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID,
                                        "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [
                        {"name": "rc", "configMap": {"name": f"{NAME}-rc"}},
                        {"name": "kubeconfig", "secret": {"secretName": KUBECONFIG_SECRET,
                                                          "optional": True,
                                                          "items": [{"key": "config",
                                                                     "path": "config"}]}},
                    ],
                },
            },
        },
    }  # fmt: skip
    policy: Obj = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta(f"{NAME}-only-own-api"),
        "spec": {
            "podSelector": selector(),
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"app": "vcluster",
                                                         "release": settings.vcluster_service}}}],
                 "ports": [{"protocol": "TCP", "port": 8443}]},
            ],
        },
    }  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(NAME),
         "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{NAME}-rc"),
         "data": {"workbench.bashrc": BASHRC}},
        policy,
        sts,
    ]  # fmt: skip
