"""deploy/: the host RBAC is what the code says, and every manifest is valid Kubernetes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox.provision import ANP_API, bot_cluster_role, host_rbac

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_host_rbac_file_matches_the_code() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "host-rbac.yaml").read_text()))
    assert docs == host_rbac()


def test_bot_has_no_wildcards_and_binds_only_the_syncer_roles() -> None:
    rules = bot_cluster_role()["rules"]
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in rules)
    binds = [r for r in rules if "bind" in r["verbs"] or "escalate" in r["verbs"]]
    assert binds == [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                      "verbs": ["bind"], "resourceNames": ["kepler-vcluster-syncer",
                                                           "kepler-vcluster-syncer-cluster"]}]
    execs = [r for r in rules if "pods/exec" in r["resources"]]  # the browser terminal only
    assert execs == [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"],
                      "resourceNames": ["workbench-0"]}]


@pytest.mark.parametrize("name", ["host-rbac.yaml", "host-admission.yaml"])
def test_manifests_validate(name: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
        kv.validate(doc, "1.31", strict=True)


@pytest.mark.parametrize("exposure", ["Ingress", "LoadBalancer", "NodePort"])
def test_rendered_sandbox_objects_validate(exposure: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    from sandbox.provision import HostSettings, SandboxSpec, render
    from tests.sandbox_lifecycle.conftest import ALL_REQUIREMENTS, CHART_DEFAULTS

    spec = SandboxSpec("kepler-0123456789", ALL_REQUIREMENTS,
                       HostSettings(exposure=exposure, node_address="203.0.113.7"),  # type: ignore[arg-type]
                       CHART_DEFAULTS, "ada", "abc")  # fmt: skip
    for obj in render(spec):
        if obj["apiVersion"] == ANP_API:  # a CRD: no schema in kubernetes-validate
            assert_admin_network_policy(obj)
            continue
        kv.validate(obj, "1.31", strict=True)


# The v1alpha1 (standard channel, network-policy-api v0.1.x) fields of AdminNetworkPolicy.
_ANP_RULE = {"name", "action", "from", "to", "ports"}
_ANP_PEER = {"namespaces", "pods", "networks"}


def assert_admin_network_policy(obj: dict) -> None:
    spec = obj["spec"]
    assert set(spec) <= {"priority", "subject", "ingress", "egress"}
    assert 0 <= spec["priority"] <= 1000
    assert len(spec["subject"]) == 1 and set(spec["subject"]) <= {"namespaces", "pods"}
    for direction, peers_key, actions in (("ingress", "from", {"Allow", "Deny", "Pass"}),
                                          ("egress", "to", {"Allow", "Deny", "Pass"})):
        rules = spec.get(direction) or []
        assert len(rules) <= 100
        for rule in rules:
            assert set(rule) <= _ANP_RULE and rule["action"] in actions
            assert len(rule["name"]) <= 100
            for peer in rule[peers_key]:
                assert len(peer) == 1 and set(peer) <= _ANP_PEER
                if direction == "ingress":
                    assert "networks" not in peer  # egress-only in v1alpha1
                assert len(peer.get("networks", [])) <= 25


def test_host_network_policy_file_matches_the_code() -> None:
    from sandbox.provision import cluster_admin_policies

    docs = list(yaml.safe_load_all((DEPLOY / "host-network-policy.yaml").read_text()))
    assert docs == cluster_admin_policies()
    for doc in docs:
        assert_admin_network_policy(doc)
