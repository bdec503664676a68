"""A small network-policy evaluator for a host namespace that holds a vcluster's pods.

It implements the documented rules, nothing of any CNI:

* AdminNetworkPolicy (network-policy-api v1alpha1): policies whose subject selects the pod
  are taken in priority order (lower first), their rules in order; the first rule whose peers
  and ports match decides: Allow or Deny (final) or Pass (skip the remaining admin policies
  and let NetworkPolicy decide). Ingress peers are pods only (``namespaces``, ``pods``);
  egress peers may also be ``networks``.
* NetworkPolicy: a pod is isolated for a direction iff some policy in its namespace selects
  it and lists that policy type (``policyTypes`` defaulting to Ingress, plus Egress when it
  has egress rules); an isolated pod's traffic is allowed iff any selecting policy allows
  it (union); a connection needs the source's egress and the destination's ingress.
  Ports are the destination pod's (after the Service's translation), names resolved against
  its container ports.
* Nothing decided and not isolated: allowed (no BaselineAdminNetworkPolicy).

Learner policies are translated as vcluster v0.26.5 syncs them
(pkg/controllers/resources/networkpolicies/translate.go, pkg/util/translate): the pod selector
gains ``vcluster.loft.sh/namespace`` and the marker label; a peer's namespace selector turns
into a pod selector on the namespace labels vcluster copies onto each pod
(``vcluster.loft.sh/ns-label-<vcluster>-x-<sha256(key)[:10]>``), the peer's namespace label is
added when it had no namespace selector, ipBlocks are copied.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
NAMESPACE_LABEL = "vcluster.loft.sh/namespace"
MARKER_LABEL = "vcluster.loft.sh/managed-by"
VCLUSTER = "kepler"
TRANSLATED_POD_LABELS = {"release", NAMESPACE_LABEL, MARKER_LABEL, "vcluster.loft.sh/controlled-by"}


def _hashed(prefix: str, key: str) -> str:
    return f"{prefix}-{VCLUSTER}-x-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def host_label(key: str) -> str:
    return _hashed("vcluster.loft.sh/label", key) if key in TRANSLATED_POD_LABELS else key


def host_namespace_label(key: str) -> str:
    return _hashed("vcluster.loft.sh/ns-label", key)


def _translate_selector(sel: Obj | None, fn: Any) -> Obj | None:
    if sel is None:
        return None
    out: Obj = {}
    if sel.get("matchLabels") is not None:
        out["matchLabels"] = {fn(k): v for k, v in sel["matchLabels"].items()}
    if sel.get("matchExpressions"):
        out["matchExpressions"] = [{**e, "key": fn(e["key"])} for e in sel["matchExpressions"]]
    return out


def _merge(*sels: Obj | None) -> Obj:
    out: Obj = {}
    for sel in sels:
        if not sel:
            continue
        if sel.get("matchLabels"):
            out.setdefault("matchLabels", {}).update(sel["matchLabels"])
        if sel.get("matchExpressions"):
            out.setdefault("matchExpressions", []).extend(sel["matchExpressions"])
    return out


def _translate_peers(peers: list[Obj] | None, vns: str) -> list[Obj] | None:
    if peers is None:
        return None
    out = []
    for peer in peers:
        if peer.get("ipBlock"):
            out.append({"ipBlock": copy.deepcopy(peer["ipBlock"])})
            continue
        sel = _merge(_translate_selector(peer.get("podSelector"), host_label),
                     _translate_selector(peer.get("namespaceSelector"), host_namespace_label))
        sel.setdefault("matchLabels", {})
        if peer.get("namespaceSelector") is None:
            sel["matchLabels"][NAMESPACE_LABEL] = vns
        sel["matchLabels"][MARKER_LABEL] = VCLUSTER
        out.append({"podSelector": sel})
    return out


def translate_policy(policy: Obj, host_namespace: str) -> Obj:
    """A learner's NetworkPolicy as vcluster writes it into the host namespace."""
    vns = policy["metadata"].get("namespace", "default")
    spec = policy["spec"]
    out: Obj = {}
    if spec.get("egress") is not None:
        out["egress"] = [{"ports": r.get("ports"), "to": _translate_peers(r.get("to"), vns)}
                         for r in spec["egress"]]  # fmt: skip
    if spec.get("ingress") is not None:
        out["ingress"] = [{"ports": r.get("ports"), "from": _translate_peers(r.get("from"), vns)}
                          for r in spec["ingress"]]  # fmt: skip
    sel = _translate_selector(spec.get("podSelector") or {}, host_label) or {}
    sel.setdefault("matchLabels", {}).update({NAMESPACE_LABEL: vns, MARKER_LABEL: VCLUSTER})
    out["podSelector"] = sel
    if spec.get("policyTypes") is not None:
        out["policyTypes"] = spec["policyTypes"]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"{policy['metadata']['name']}-x-{vns}-x-{VCLUSTER}",
                         "namespace": host_namespace}, "spec": out}  # fmt: skip


@dataclass
class Pod:
    name: str
    namespace: str  # host namespace
    labels: dict[str, str]
    ip: str
    ports: dict[str, int] = field(default_factory=dict)  # container port names


def synced_pod(name: str, vns: str, labels: dict[str, str], ns_labels: dict[str, str],
               host_namespace: str, ip: str, ports: dict[str, int] | None = None) -> Pod:  # fmt: skip
    """A virtual pod as vcluster creates it on the host (pods/translate/translator.go)."""
    host = {host_label(k): v for k, v in labels.items()}
    host.update({host_namespace_label(k): v for k, v in ns_labels.items()})
    host.update({NAMESPACE_LABEL: vns, MARKER_LABEL: VCLUSTER})
    return Pod(f"{name}-x-{vns}-x-{VCLUSTER}", host_namespace, host, ip, dict(ports or {}))


def matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A LabelSelector against labels, from the API reference. Written again on purpose rather
    than imported from ``sandbox.objectives``: a test world that shares the product's code
    shares its mistakes."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod, or an address outside the pod network."""

    pod: Pod | None = None
    ip: str = ""

    @property
    def address(self) -> str:
        return self.pod.ip if self.pod else self.ip


class Network:
    def __init__(self, namespaces: dict[str, dict[str, str]], policies: list[Obj]):
        self.namespaces = namespaces  # host namespace -> labels
        self.anps = sorted((p for p in policies if p["kind"] == "AdminNetworkPolicy"),
                           key=lambda p: p["spec"]["priority"])  # fmt: skip
        self.nps = [p for p in policies if p["kind"] == "NetworkPolicy"]

    # -- admin network policy --

    def _anp_peer(self, peer: Obj, other: Endpoint) -> bool:
        if "networks" in peer:
            addr = ipaddress.ip_address(other.address)
            return any(addr in ipaddress.ip_network(n) for n in peer["networks"])
        if other.pod is None:
            return False
        ns_labels = self.namespaces[other.pod.namespace]
        if "namespaces" in peer:
            return matches(peer["namespaces"], ns_labels)
        if "pods" in peer:
            return (matches(peer["pods"]["namespaceSelector"], ns_labels)
                    and matches(peer["pods"]["podSelector"], other.pod.labels))  # fmt: skip
        return False

    @staticmethod
    def _anp_ports(rule: Obj, port: int, protocol: str) -> bool:
        if not rule.get("ports"):
            return True
        return any(p["portNumber"]["port"] == port and p["portNumber"].get("protocol", "TCP")
                   == protocol for p in rule["ports"] if "portNumber" in p)  # fmt: skip

    def _subject(self, anp: Obj, pod: Pod) -> bool:
        subject = anp["spec"]["subject"]
        ns_labels = self.namespaces[pod.namespace]
        if "namespaces" in subject:
            return matches(subject["namespaces"], ns_labels)
        return (matches(subject["pods"]["namespaceSelector"], ns_labels)
                and matches(subject["pods"]["podSelector"], pod.labels))  # fmt: skip

    def admin_verdict(self, pod: Pod, direction: str, other: Endpoint, port: int,
                      protocol: str) -> str | None:  # fmt: skip
        key, peers_key = ("egress", "to") if direction == "egress" else ("ingress", "from")
        for anp in self.anps:
            if not self._subject(anp, pod):
                continue
            for rule in anp["spec"].get(key) or []:
                if direction == "ingress" and any("networks" in p for p in rule[peers_key]):
                    raise AssertionError("networks is not an ingress peer in v1alpha1")
                if self._anp_ports(rule, port, protocol) and any(
                        self._anp_peer(p, other) for p in rule[peers_key]):
                    return rule["action"]
        return None

    # -- network policy --

    @staticmethod
    def _types(spec: Obj) -> list[str]:
        if spec.get("policyTypes"):
            return spec["policyTypes"]
        return ["Ingress", "Egress"] if spec.get("egress") is not None else ["Ingress"]

    def _np_peer(self, peer: Obj, policy_ns: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            addr = ipaddress.ip_address(other.address)
            block = peer["ipBlock"]
            return addr in ipaddress.ip_network(block["cidr"], strict=False) and not any(
                addr in ipaddress.ip_network(e, strict=False) for e in block.get("except") or [])
        if other.pod is None:
            return False
        if peer.get("namespaceSelector") is not None:
            if not matches(peer["namespaceSelector"], self.namespaces[other.pod.namespace]):
                return False
        elif other.pod.namespace != policy_ns:
            return False
        return peer.get("podSelector") is None or matches(peer["podSelector"], other.pod.labels)

    @staticmethod
    def _np_ports(ports: list[Obj] | None, dst: Endpoint, port: int, protocol: str) -> bool:
        if not ports:
            return True
        for p in ports:
            if p.get("protocol", "TCP") != protocol:
                continue
            want = p.get("port")
            if want is None:
                return True
            if isinstance(want, str):
                want = dst.pod.ports.get(want) if dst.pod else None
            if want is not None and (want == port or (p.get("endPort") and want <= port
                                                       <= p["endPort"])):  # fmt: skip
                return True
        return False

    def np_allows(self, pod: Pod, direction: str, other: Endpoint, dst: Endpoint, port: int,
                  protocol: str) -> bool:  # fmt: skip
        kind = "Egress" if direction == "egress" else "Ingress"
        selecting = [p for p in self.nps if p["metadata"]["namespace"] == pod.namespace
                     and matches(p["spec"]["podSelector"], pod.labels)
                     and kind in self._types(p["spec"])]  # fmt: skip
        if not selecting:
            return True
        rules_key, peers_key = ("egress", "to") if direction == "egress" else ("ingress", "from")
        for pol in selecting:
            for rule in pol["spec"].get(rules_key) or []:
                peers = rule.get(peers_key)
                if self._np_ports(rule.get("ports"), dst, port, protocol) and (
                        not peers or any(self._np_peer(p, pol["metadata"]["namespace"], other)
                                         for p in peers)):  # fmt: skip
                    return True
        return False

    # -- a connection --

    def _side(self, pod: Pod, direction: str, other: Endpoint, dst: Endpoint, port: int,
              protocol: str) -> bool:  # fmt: skip
        verdict = self.admin_verdict(pod, direction, other, port, protocol)
        if verdict in ("Allow", "Deny"):
            return verdict == "Allow"
        return self.np_allows(pod, direction, other, dst, port, protocol)

    def allowed(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        if src.pod and not self._side(src.pod, "egress", dst, dst, port, protocol):
            return False
        return not dst.pod or self._side(dst.pod, "ingress", src, dst, port, protocol)
