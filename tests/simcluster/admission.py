"""What the API server does to a write before storing it: strict field validation, the
defaults the v1.32 API types declare, the validation rules learners meet most (selector must
match template labels, immutable fields, required fields), ClusterIP allocation and the
DefaultStorageClass admission plugin."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from tests.emulator.server import ApiError, Cluster, KindInfo
from tests.simcluster import openapi

Obj = dict[str, Any]
_ips = itertools.count(10)
_node_ports = itertools.count(30080)


def _res(info: KindInfo) -> str:
    return f"{info.kind}.{info.group}" if info.group else info.kind


def _invalid(info: KindInfo, name: str, causes: list[tuple[str, str]]) -> ApiError:
    text = "; ".join(f"{field}: {msg}" for field, msg in causes)
    return ApiError(422, f'{_res(info)} "{name}" is invalid: {text}', "Invalid", {
        "name": name, "group": info.group, "kind": info.kind,
        "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": field}
                   for field, msg in causes]})


def validate_fields(info: KindInfo, obj: Obj, query: dict[str, str]) -> list[str]:
    """``fieldValidation``: Strict refuses unknown or duplicate fields, Warn (the default of
    clients that send nothing) only warns; returns the warnings."""
    mode = query.get("fieldValidation", "Warn")
    unknown = [f'unknown field "{p}"' for p in openapi.unknown_fields(info, obj)]
    typed = openapi.type_errors(info, obj)
    if typed:
        raise ApiError(400, f'{info.kind} in version "{info.version}" cannot be handled as a '
                       f"{info.kind}: json: cannot unmarshal {typed[0]}", "BadRequest")
    if unknown and mode == "Strict":
        raise ApiError(400, f'{info.kind} in version "{info.version}" cannot be handled as a '
                       f"{info.kind}: strict decoding error: " + ", ".join(unknown), "BadRequest")
    return unknown if mode == "Warn" else []


# --- defaults ---------------------------------------------------------------------------------


def container_defaults(c: Obj) -> None:
    image = str(c.get("image", ""))
    tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
    c.setdefault("imagePullPolicy", "Always" if tagless or image.endswith(":latest")
                 else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), dict):
            pr = c[probe]
            for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                         ("failureThreshold", 3)):
                pr.setdefault(k, v)
            if isinstance(pr.get("httpGet"), dict):
                pr["httpGet"].setdefault("path", "/")
                pr["httpGet"].setdefault("scheme", "HTTP")


def pod_spec_defaults(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        container_defaults(c)
    for v in spec.get("volumes") or []:
        if "configMap" in v or "secret" in v:
            (v.get("configMap") or v.get("secret")).setdefault("defaultMode", 420)


def _qos(spec: Obj) -> str:
    cs = spec.get("containers") or []
    res = [c.get("resources") or {} for c in cs]
    if all(not r.get("requests") and not r.get("limits") for r in res):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) and
        (r.get("requests") or {}).get(k, (r.get("limits") or {}).get(k)) == r["limits"][k]
        for r in res for k in ("cpu", "memory"))
    return "Guaranteed" if guaranteed else "Burstable"


def pod_defaults(pod: Obj) -> Obj:
    spec = pod.setdefault("spec", {})
    pod_spec_defaults(spec)
    for c in spec.get("containers") or []:  # limits without requests: requests = limits
        r = c.setdefault("resources", {})
        for k, v in (r.get("limits") or {}).items():
            r.setdefault("requests", {}).setdefault(k, v)
    spec.setdefault("tolerations", [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}])
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    pod.setdefault("status", {"phase": "Pending", "qosClass": _qos(spec)})
    return pod


def _template_defaults(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    tmpl = spec.setdefault("template", {})
    tmpl.setdefault("metadata", {})
    pod_spec_defaults(tmpl.setdefault("spec", {}))


def deployment_defaults(d: Obj) -> None:
    spec = d.setdefault("spec", {})
    _template_defaults(spec)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxSurge", "25%")
        ru.setdefault("maxUnavailable", "25%")


def service_defaults(svc: Obj, old: Obj | None) -> None:
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 10800}})
    if spec["type"] != "ExternalName":
        old_spec = (old or {}).get("spec") or {}
        if old_spec.get("clusterIP"):
            spec.setdefault("clusterIP", old_spec["clusterIP"])
        if not spec.get("clusterIP"):
            spec["clusterIP"] = f"10.96.{next(_ips) // 250}.{next(_ips) % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer"):
            p.setdefault("nodePort", next(_node_ports))
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    svc.setdefault("status", {"loadBalancer": {}})


def _default_class(cluster: Cluster) -> str | None:
    for sc in cluster.list("StorageClass"):
        ann = sc["metadata"].get("annotations") or {}
        if ann.get("storageclass.kubernetes.io/is-default-class") == "true":
            return str(sc["metadata"]["name"])
    return None


# --- validation -------------------------------------------------------------------------------


def _selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """A LabelSelector against labels, from the API reference; kept apart from
    ``sandbox.objectives`` on purpose (the simulator's rules never come from the objectives)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _go_map(m: dict[str, str]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(m.items())) + "}"


def _containers(info: KindInfo, name: str, spec: Obj, where: str) -> None:
    causes = []
    cs = spec.get("containers")
    if not cs:
        causes.append((f"{where}.containers", "Required value"))
    for i, c in enumerate(cs or []):
        if not c.get("name"):
            causes.append((f"{where}.containers[{i}].name", "Required value"))
        if not c.get("image"):
            causes.append((f"{where}.containers[{i}].image", "Required value"))
    if causes:
        raise _invalid(info, name, causes)


def _workload(info: KindInfo, obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if not selector:
        raise _invalid(info, name, [("spec.selector", "Required value")])
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not _selector_matches(selector, labels):
        raise _invalid(info, name, [(
            "spec.template.metadata.labels",
            f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`")])
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        raise _invalid(info, name, [(
            "spec.selector", f"Invalid value: v1.LabelSelector{{MatchLabels:{_go_map(selector.get('matchLabels') or {})}}}: field is immutable")])
    _containers(info, name, spec.get("template", {}).get("spec") or {}, "spec.template.spec")


def _pod_update(info: KindInfo, obj: Obj, old: Obj) -> None:
    def mutable_view(spec: Obj) -> Obj:
        spec = copy.deepcopy(spec)
        for c in spec.get("containers") or []:
            c.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        spec.pop("nodeName", None)
        return spec

    if mutable_view(obj.get("spec") or {}) != mutable_view(old.get("spec") or {}):
        raise _invalid(info, obj["metadata"]["name"], [(
            "spec", "Forbidden: pod updates may not change fields other than "
            "`spec.containers[*].image`,`spec.initContainers[*].image`,"
            "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
            "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
            "was previously negative)")])


def drop_nulls(value: Any) -> Any:
    """What decoding into Go types does to explicit nulls (``creationTimestamp: null`` that
    kubectl sends in templates): they become zero values, which are omitted."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def admit(cluster: Cluster, info: KindInfo, obj: Obj, old: Obj | None, query: dict[str, str],
          subresource: str = "") -> Obj:
    if subresource:
        return obj
    status = obj.get("status")
    obj = drop_nulls({k: v for k, v in obj.items() if k != "status"})
    if status is not None:
        obj["status"] = status
    check = {k: v for k, v in obj.items() if k != "status"}
    meta = check.get("metadata") or {}
    check["metadata"] = {k: v for k, v in meta.items()
                         if k not in ("uid", "resourceVersion", "creationTimestamp",
                                      "generation", "managedFields")}
    validate_fields(info, check, query)
    name = obj["metadata"]["name"]
    kind = info.kind
    if kind == "Pod":
        if old is not None:
            pod_defaults(obj)
            _pod_update(info, obj, old)
            obj["status"] = old.get("status", {})
        else:
            _containers(info, name, obj.get("spec") or {}, "spec")
            pod_defaults(obj)
    elif kind == "Deployment":
        deployment_defaults(obj)
        _workload(info, obj, old)
    elif kind == "ReplicaSet":
        _template_defaults(obj.setdefault("spec", {}))
        _workload(info, obj, old)
    elif kind == "Service":
        if not (obj.get("spec") or {}).get("ports") and \
                (obj.get("spec") or {}).get("type") != "ExternalName":
            raise _invalid(info, name, [("spec.ports", "Required value")])
        service_defaults(obj, old)
    elif kind == "PersistentVolumeClaim":
        spec = obj.setdefault("spec", {})
        causes = []
        if not spec.get("accessModes"):
            causes.append(("spec.accessModes", "Required value: at least 1 access mode is required"))
        if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
            causes.append(("spec.resources[storage]", "Required value"))
        if causes:
            raise _invalid(info, name, causes)
        if old is None and "storageClassName" not in spec:
            default = _default_class(cluster)
            if default:
                spec["storageClassName"] = default
        if old is not None and (old.get("spec") or {}).get("storageClassName") != \
                spec.get("storageClassName") and (old.get("spec") or {}).get("volumeName"):
            raise _invalid(info, name, [("spec", "Forbidden: spec is immutable after creation "
                                         "except resources.requests and "
                                         "volumeAttributesClassName for bound claims")])
        spec.setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {"phase": "Pending"})
        obj["metadata"].setdefault("finalizers", ["kubernetes.io/pvc-protection"])
    elif kind == "PersistentVolume":
        obj.setdefault("spec", {}).setdefault("persistentVolumeReclaimPolicy", "Retain")
        obj["spec"].setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {"phase": "Pending"})
    elif kind == "NetworkPolicy":
        spec = obj.setdefault("spec", {})
        if "podSelector" not in spec:
            raise _invalid(info, name, [("spec.podSelector", "Required value")])
        if not spec.get("policyTypes"):
            spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    elif kind == "HorizontalPodAutoscaler":
        spec = obj.setdefault("spec", {})
        spec.setdefault("minReplicas", 1)
        if not spec.get("maxReplicas"):
            raise _invalid(info, name, [("spec.maxReplicas", "Required value")])
        if spec["minReplicas"] > spec["maxReplicas"]:
            raise _invalid(info, name, [("spec.maxReplicas", f"Invalid value: {spec['maxReplicas']}: must be greater than or equal to `minReplicas`")])
        if old is not None:
            obj["status"] = old.get("status", {})
    elif kind == "StorageClass":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    return obj


def last_applied(obj: Obj) -> Obj | None:
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(
        "kubectl.kubernetes.io/last-applied-configuration")
    return json.loads(raw) if raw else None
