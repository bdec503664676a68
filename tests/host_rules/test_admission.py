"""deploy/host-admission.yaml, rule by rule, by evaluating its CEL (not by reading its text)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.provision import (
    PRIVATE_RANGES,
    PRIVATE_RANGES_V4,
    PRIVATE_RANGES_V6,
    HostSettings,
    SandboxSpec,
    cluster_admin_policies,
    sandbox_admin_policy,
    widening_rules,
)
from tests.host_rules.admission import Request, evaluate, load_policies
from tests.sandbox_lifecycle.chart_values import PINNED_VALUES

POLICIES = load_policies()
SYNCER = "system:serviceaccount:kepler-abc:vc-kepler"
SANDBOX_NS = {"metadata": {"name": "kepler-abc", "labels": {
    "kubernetes.io/metadata.name": "kepler-abc", "kepler.station/sandbox": "true"}}}
KUBE_SYSTEM = {"metadata": {"name": "kube-system", "labels": {
    "kubernetes.io/metadata.name": "kube-system"}}}


def _np(egress: list[Any], username: str = SYNCER, op: str = "CREATE") -> Request:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "p", "namespace": "kepler-abc"},
           "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress}}
    return Request(op, "networkpolicies", group="networking.k8s.io", namespace="kepler-abc",
                   name="p", username=username, object=obj,
                   old_object=obj if op == "UPDATE" else None)  # fmt: skip


PUBLIC_V4 = {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES_V4)}
PUBLIC_V6 = {"cidr": "::/0", "except": list(PRIVATE_RANGES_V6)}
DNS_TO_VCLUSTER_COREDNS = {"to": [{"podSelector": {"matchLabels": {
    "vcluster.loft.sh/namespace": "kube-system"}}}], "ports": [{"protocol": "UDP", "port": 53}]}

NETWORK_POLICY_CASES = [
    # (egress, allowed)
    ([{"to": [{"podSelector": {}}]}], True),
    ([DNS_TO_VCLUSTER_COREDNS], True),
    ([{"to": [{"ipBlock": PUBLIC_V4}]}], True),
    ([{"to": [{"ipBlock": PUBLIC_V6}]}], True),
    ([{"to": [{"ipBlock": {"cidr": "8.8.8.8/32"}}]}], True),
    ([{"to": [{"ipBlock": {"cidr": "2606:4700::/32"}}]}], True),
    ([], True),
    ([{}], False),  # any destination
    ([{"ports": [{"protocol": "UDP", "port": 53}]}], False),  # DNS to anywhere: needs a to
    ([{"ports": [{"port": 443}]}], False),
    ([{"to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}]}], False),
    ([{"to": [{"ipBlock": {"cidr": "100.64.0.0/10"}}]}], False),  # CGNAT: GKE/EKS pod ranges
    ([{"to": [{"ipBlock": {"cidr": "100.100.1.1/32"}}]}], False),
    ([{"to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}]}], False),
    ([{"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}]}], False),  # cloud metadata
    ([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}], False),
    ([{"to": [{"ipBlock": {"cidr": "::/0"}}]}], False),  # all of IPv6
    ([{"to": [{"ipBlock": {"cidr": "fd00::/8"}}]}], False),
    ([{"to": [{"ipBlock": {"cidr": "fe80::1/128"}}]}], False),
    ([{"to": [{"ipBlock": {"cidr": "::ffff:10.0.0.1/128"}}]}], False),  # IPv4-mapped 10/8
    ([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [
        r for r in PRIVATE_RANGES_V4 if r != "100.64.0.0/10"]}}]}], False),
    ([{"to": [{"ipBlock": PUBLIC_V4}]}, {"to": [{"ipBlock": {"cidr": "192.168.1.0/24"}}]}], False),
    ([{"to": [{"podSelector": {}}, {"ipBlock": {"cidr": "172.20.0.0/16"}}]}], False),
]


@pytest.mark.parametrize(("egress", "allowed"), NETWORK_POLICY_CASES)
def test_synced_network_policies(egress: list[Any], allowed: bool) -> None:
    failed = evaluate(POLICIES["kepler-sandbox-network-policies"], _np(egress))
    assert failed is not None and (failed == []) is allowed, failed
    failed_update = evaluate(POLICIES["kepler-sandbox-network-policies"], _np(egress, op="UPDATE"))
    assert (failed_update == []) is allowed
    # The Python twin agrees with the CEL.
    assert (widening_rules({"spec": {"egress": egress}}) == []) is allowed


def test_network_policy_rule_applies_to_the_sandbox_itself_only() -> None:
    # The bot and cluster admins are not the syncer: their writes are not this policy's business.
    assert evaluate(POLICIES["kepler-sandbox-network-policies"], _np([{}], "admin")) is None
    other = "system:serviceaccount:kepler-other:vc-kepler"  # another sandbox's syncer
    assert evaluate(POLICIES["kepler-sandbox-network-policies"], _np([{}], other)) is None


def test_private_ranges_cover_the_issue_list() -> None:
    for cidr in ("100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8",
                 "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10", "::1/128"):
        assert cidr in PRIVATE_RANGES


def _service(spec: dict[str, Any]) -> Request:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}], **spec}}
    return Request("CREATE", "services", namespace="kepler-abc", name="s", username=SYNCER,
                   object=obj)


@pytest.mark.parametrize(("spec", "allowed"), [
    ({}, True),
    ({"type": "LoadBalancer"}, True),
    ({"externalIPs": []}, True),
    ({"externalIPs": ["203.0.113.9"]}, False),  # CVE-2020-8554
    ({"type": "LoadBalancer", "externalIPs": ["10.0.0.1"]}, False),
])  # fmt: skip
def test_services_may_not_set_external_ips(spec: dict[str, Any], allowed: bool) -> None:
    failed = evaluate(POLICIES["kepler-sandbox-workloads"], _service(spec))
    assert failed is not None and (failed == []) is allowed


DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
]  # fmt: skip


@pytest.mark.parametrize(("tolerations", "allowed"), [
    (None, True),
    (DEFAULT_TOLERATIONS, True),
    ([*DEFAULT_TOLERATIONS, {"key": "dedicated", "operator": "Equal", "value": "gpu",
                             "effect": "NoSchedule"}], False),
    ([{"operator": "Exists"}], False),  # tolerates every taint
    ([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
       "effect": "NoSchedule"}], False),
    ([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}], False),  # every effect
])  # fmt: skip
def test_pod_tolerations(tolerations: list[Any] | None, allowed: bool) -> None:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    req = Request("CREATE", "pods", namespace="kepler-abc", name="p", username=SYNCER,
                  object={"metadata": {"name": "p"}, "spec": spec})
    failed = evaluate(POLICIES["kepler-sandbox-workloads"], req)
    assert failed is not None and (failed == []) is allowed


def _ns(name: str, sandbox: bool) -> dict[str, Any]:
    labels = {"kubernetes.io/metadata.name": name}
    if sandbox:
        labels["kepler.station/sandbox"] = "true"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


SCOPE = POLICIES["kepler-station-scope"]


@pytest.mark.parametrize(("req", "allowed"), [
    (Request("CREATE", "namespaces", name="kepler-abc", object=_ns("kepler-abc", True)), True),
    (Request("CREATE", "namespaces", name="evil", object=_ns("evil", False)), False),
    # A leaked bot token may not turn kube-system into a "sandbox" and then write there.
    (Request("UPDATE", "namespaces", name="kube-system", object=_ns("kube-system", True),
             old_object=_ns("kube-system", False)), False),
    (Request("UPDATE", "namespaces", name="kepler-abc", object=_ns("kepler-abc", False),
             old_object=_ns("kepler-abc", True)), False),
    (Request("UPDATE", "namespaces", name="kepler-abc", object=_ns("kepler-abc", True),
             old_object=_ns("kepler-abc", True)), True),
    (Request("DELETE", "namespaces", name="kepler-abc", old_object=_ns("kepler-abc", True)), True),
    (Request("DELETE", "namespaces", name="kube-system", old_object=_ns("kube-system", False)),
     False),
    # Subresources are in scope: statefulsets/scale was not covered by resources: ["*"].
    (Request("UPDATE", "statefulsets", group="apps", subresource="scale",
             namespace="kube-system", name="x", object={"metadata": {"name": "x"}},
             old_object={"metadata": {"name": "x"}}, namespace_object=KUBE_SYSTEM), False),
    (Request("UPDATE", "statefulsets", group="apps", subresource="scale",
             namespace="kepler-abc", name="kepler", object={"metadata": {"name": "kepler"}},
             old_object={"metadata": {"name": "kepler"}}, namespace_object=SANDBOX_NS), True),
    (Request("CREATE", "pods", subresource="exec", namespace="kube-system", name="x",
             object={}, namespace_object=KUBE_SYSTEM), False),
    # The browser terminal: exec (a CONNECT) into the workbench of a sandbox, nothing else.
    (Request("CONNECT", "pods", subresource="exec", namespace="kepler-abc", name="workbench-0",
             object={}, namespace_object=SANDBOX_NS), True),
    (Request("CONNECT", "pods", subresource="exec", namespace="kepler-abc", name="kepler-0",
             object={}, namespace_object=SANDBOX_NS), False),
    (Request("CONNECT", "pods", subresource="exec", namespace="kube-system",
             name="workbench-0", object={}, namespace_object=KUBE_SYSTEM), False),
    (Request("CONNECT", "pods", subresource="portforward", namespace="kepler-abc",
             name="workbench-0", object={}, namespace_object=SANDBOX_NS), False),
    (Request("CREATE", "secrets", namespace="kepler-abc", name="s",
             object={"metadata": {"name": "s"}}, namespace_object=SANDBOX_NS), True),
    (Request("CREATE", "clusterrolebindings", group="rbac.authorization.k8s.io",
             name="vc-kepler-v-kepler-abc", object={"metadata": {}}), True),
    (Request("CREATE", "clusterrolebindings", group="rbac.authorization.k8s.io",
             name="admin-for-me", object={"metadata": {}}), False),
])  # fmt: skip
def test_bot_scope(req: Request, allowed: bool) -> None:
    failed = evaluate(SCOPE, req)
    assert failed is not None and (failed == []) is allowed, failed


def test_scope_ignores_everyone_but_the_bot() -> None:
    req = Request("UPDATE", "namespaces", name="kube-system", username="kubernetes-admin",
                  object=_ns("kube-system", True), old_object=_ns("kube-system", False))
    assert evaluate(SCOPE, req) is None


def _anp_request(obj: dict[str, Any] | None, name: str, op: str = "CREATE") -> Request:
    return Request(op, "adminnetworkpolicies", group="policy.networking.k8s.io", name=name,
                   object=obj, old_object=obj if op != "CREATE" else None)


def test_bot_may_write_exactly_its_per_sandbox_admin_network_policy() -> None:
    spec = SandboxSpec("kepler-abc", frozenset(), HostSettings(), PINNED_VALUES, "ada", "h")
    own = sandbox_admin_policy(spec)
    assert evaluate(SCOPE, _anp_request(own, "kepler-abc")) == []
    assert evaluate(SCOPE, _anp_request(own, "kepler-abc", "UPDATE")) == []
    assert evaluate(SCOPE, _anp_request(None, "kepler-abc", "DELETE")) == []
    refused = []
    allow = {**own, "spec": {**own["spec"], "egress": [{**own["spec"]["egress"][0],
                                                        "action": "Allow"}]}}  # fmt: skip
    refused.append(("Allow instead of Pass", allow, "kepler-abc"))
    wide = {**own, "spec": {**own["spec"], "egress": [{"name": "x", "action": "Pass",
                                                       "to": [{"namespaces": {}}]}]}}  # fmt: skip
    refused.append(("Pass to every namespace", wide, "kepler-abc"))
    nets = {**own, "spec": {**own["spec"], "egress": [{"name": "x", "action": "Pass",
                                                       "to": [{"networks": ["0.0.0.0/0"]}]}]}}  # fmt: skip
    refused.append(("Pass to networks", nets, "kepler-abc"))
    other = {**own, "spec": {**own["spec"], "subject": {"namespaces": {"matchLabels": {
        "kubernetes.io/metadata.name": "kepler-other"}}}}}
    refused.append(("someone else's namespace", other, "kepler-abc"))
    early = {**own, "spec": {**own["spec"], "priority": 1}}
    refused.append(("a higher priority", early, "kepler-abc"))
    for why, obj, name in refused:
        assert evaluate(SCOPE, _anp_request(obj, name)), why
    for shared in cluster_admin_policies():  # the host-wide ones are the operator's
        name = shared["metadata"]["name"]
        assert evaluate(SCOPE, _anp_request(None, name, "DELETE")), name
        assert evaluate(SCOPE, _anp_request(shared, name)), name
