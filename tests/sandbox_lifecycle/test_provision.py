"""Provisioning a vcluster sandbox: what is sent to the host, derived from the chapters."""

from __future__ import annotations

import base64
import logging

import pytest
import yaml

from bot.content.course import load_course
from sandbox.apply import Kube
from sandbox.backends.base import learner_hash
from sandbox.provision import (
    PRIVATE_RANGES,
    VALUES_SHA256,
    HostSettings,
    SandboxSpec,
    course_requirements,
    deep_merge,
    load_chart_defaults,
    render,
    widening_rules,
)
from tests.sandbox_lifecycle.conftest import ALL_REQUIREMENTS, CHART_DEFAULTS, drain, make_vcluster


def _only(host, kind: str, ns: str, name: str | None = None) -> dict:
    items = [o for o in host.list(kind, ns) if name is None or o["metadata"]["name"] == name]
    assert len(items) == 1, f"{kind} {name}: {[o['metadata']['name'] for o in items]}"
    return items[0]


def test_course_requirements_come_from_the_chapters() -> None:
    course = load_course()
    req = course_requirements(course.chapters)
    assert req == ALL_REQUIREMENTS  # every declared requirement is used by some chapter
    assert course_requirements(course.chapters[:3]) == frozenset()  # chapters 0-2 need none


async def test_provision_sends_the_expected_host_objects(emu, fake, vbackend) -> None:
    host = emu["host"]
    events = await drain(vbackend.provision("learner-1"))
    assert [e.step for e in events] == ["namespace", "control-plane", "api", "ready"]
    assert events[-1].done

    [ns] = [n for n in host.list("Namespace") if n["metadata"]["name"].startswith("kepler-")]
    name = ns["metadata"]["name"]
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "baseline"
    assert labels["pod-security.kubernetes.io/audit"] == "baseline"
    assert labels["kepler.station/learner-hash"] == learner_hash("learner-1")
    assert ns["metadata"]["annotations"]["kepler.station/learner"] == "learner-1"

    hard = _only(host, "ResourceQuota", name)["spec"]["hard"]
    assert hard["services.loadbalancers"] == "2"  # load-balancer requirement (ch. 6)
    assert hard["requests.storage"] == "6Gi" and hard["persistentvolumeclaims"] == "5"
    assert hard["services.nodeports"] == "4"  # the learner's LoadBalancers' node ports
    assert hard["limits.ephemeral-storage"] and hard["requests.ephemeral-storage"]
    limits = _only(host, "LimitRange", name)["spec"]["limits"][0]
    assert limits["defaultRequest"] == {"cpu": "50m", "memory": "64Mi",
                                        "ephemeral-storage": "64Mi"}
    assert limits["max"]["ephemeral-storage"] == "2Gi"

    # Only the control plane is selected by a host NetworkPolicy; the learner's pods are left
    # to their own policies, and tenant isolation is an AdminNetworkPolicy per sandbox.
    policies = {p["metadata"]["name"]: p["spec"] for p in host.list("NetworkPolicy", name)}
    assert set(policies) == {"kepler-control-plane"}
    anp = host.get("AdminNetworkPolicy", name)
    assert anp["spec"]["subject"] == {"namespaces": {"matchLabels": {
        "kubernetes.io/metadata.name": name}}}
    assert [r["action"] for r in anp["spec"]["ingress"] + anp["spec"]["egress"]] == ["Pass"] * 2
    cp = policies["kepler-control-plane"]
    assert cp["podSelector"]["matchLabels"] == {"app": "vcluster", "release": "kepler"}
    assert cp["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8443}]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
            } in cp["ingress"][0]["from"]  # fmt: skip

    sts = _only(host, "StatefulSet", name, "kepler")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/loft-sh/vcluster-oss:0.26.5"
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["template"]["spec"]["serviceAccountName"] == "vc-kepler"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"

    secret = _only(host, "Secret", name, "vc-config-kepler")
    values = yaml.safe_load(base64.b64decode(secret["data"]["config.yaml"]))
    assert values["sync"]["toHost"]["networkPolicies"]["enabled"] is True
    assert values["sync"]["toHost"]["pods"]["enabled"] is True  # chart default kept
    assert values["sync"]["fromHost"]["storageClasses"]["enabled"] is True
    assert values["integrations"]["metricsServer"]["enabled"] is True
    assert values["controlPlane"]["proxy"]["extraSANs"] == [
        f"kepler.{name}.svc", f"kepler.{name}.svc.cluster.local", f"{name}.sandbox.test"]
    assert values["controlPlane"]["distro"]["k8s"]["enabled"] is True
    assert values["exportKubeConfig"]["server"] == f"https://{name}.sandbox.test"
    assert values["telemetry"]["enabled"] is False

    assert _only(host, "RoleBinding", name)["roleRef"]["name"] == "kepler-vcluster-syncer"
    [crb] = host.list("ClusterRoleBinding")
    assert crb["roleRef"]["name"] == "kepler-vcluster-syncer-cluster"
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "vc-kepler", "namespace": name}]
    ingress = _only(host, "Ingress", name)
    assert ingress["spec"]["rules"][0]["host"] == f"{name}.sandbox.test"
    assert _only(host, "Service", name, "kepler")["spec"]["type"] == "ClusterIP"

    # Every write was a server-side apply by our field manager.
    writes = [r for r in host.requests if r.method in ("POST", "PUT", "PATCH")]
    assert writes and all(r.method == "PATCH" and r.query.get("fieldManager") == "kepler-station"
                          and r.query.get("force") == "true" for r in writes)  # fmt: skip


async def test_no_requirements_means_no_extras(emu, fake) -> None:
    backend = make_vcluster(emu, requirements=frozenset())
    events = await drain(backend.provision("plain"))
    assert events[-1].step == "ready"
    host = emu["host"]
    [ns] = [n["metadata"]["name"] for n in host.list("Namespace") if n["metadata"]["name"] != "default"]
    hard = host.list("ResourceQuota", ns)[0]["spec"]["hard"]
    assert hard["services.loadbalancers"] == "0" and hard["persistentvolumeclaims"] == "1"
    values = yaml.safe_load(base64.b64decode(
        host.get("Secret", "vc-config-kepler", ns)["data"]["config.yaml"]))
    assert values["sync"]["toHost"]["networkPolicies"]["enabled"] is False
    assert values["integrations"]["metricsServer"]["enabled"] is False
    assert values["sync"]["fromHost"]["storageClasses"]["enabled"] is False
    assert host.list("ClusterRoleBinding") == []


@pytest.mark.parametrize("exposure", ["LoadBalancer", "NodePort"])
def test_exposure_modes(exposure: str) -> None:
    settings = HostSettings(exposure=exposure, host_template="", node_address="203.0.113.7")  # type: ignore[arg-type]
    objs = render(SandboxSpec("kepler-abc", ALL_REQUIREMENTS, settings, CHART_DEFAULTS, "l", "h"))
    svc = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "kepler")
    assert svc["spec"]["type"] == exposure
    assert not any(o["kind"] == "Ingress" for o in objs)
    quota = next(o for o in objs if o["kind"] == "ResourceQuota")["spec"]["hard"]
    if exposure == "LoadBalancer":
        assert quota["services.loadbalancers"] == "3"  # 2 for the learner + the API's own
        assert quota["services.nodeports"] == "5"  # 4 for the learner + the API's https port
        assert [p["name"] for p in svc["spec"]["ports"]] == ["https"]
    else:
        assert quota["services.nodeports"] == "6"  # 4 + the API's https and kubelet ports
        assert [p["name"] for p in svc["spec"]["ports"]] == ["https", "kubelet"]
    cp = next(o for o in objs if o["metadata"]["name"] == "kepler-control-plane")
    assert {"ipBlock": {"cidr": "0.0.0.0/0"}} in cp["spec"]["ingress"][0]["from"]


async def test_kubeconfig_points_at_the_external_address_and_is_never_logged(
        emu, fake, vbackend, caplog) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    await drain(vbackend.provision("learner-2"))
    text = await vbackend.kubeconfig_for("learner-2")
    config = yaml.safe_load(text)
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"].endswith(".sandbox.test")
    assert cluster["cluster"]["server"].startswith("https://kepler-")
    assert config["current-context"] == "kepler-station"
    token = config["users"][0]["user"]["token"]
    assert token and all(token not in r.getMessage() for r in caplog.records)
    # The bot's own client reaches the virtual cluster.
    api = await vbackend.client_for("learner-2")
    assert Kube(api).version()["major"] == "1"
    api.close()


def test_chart_defaults_are_checked(tmp_path) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text("controlPlane: {}\n")
    with pytest.raises(ValueError, match=VALUES_SHA256):
        load_chart_defaults(bad)


def test_deep_merge_is_helm_like() -> None:
    merged = deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "d": None})
    assert merged == {"a": {"b": 1, "c": [2]}}


@pytest.mark.parametrize(("egress", "widens"), [
    ([{"to": [{"podSelector": {}}]}], False),
    ([{"ports": [{"port": 53, "protocol": "UDP"}]}], True),  # DNS must name its servers
    ([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}]}], False),
    ([{"to": [{"ipBlock": {"cidr": "8.8.8.8/32"}}]}], False),
    ([{}], True),
    ([{"ports": [{"port": 443}]}], True),
    ([{"to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}]}], True),
    ([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}], True),
])  # fmt: skip
def test_widening_rules(egress: list, widens: bool) -> None:
    assert bool(widening_rules({"spec": {"egress": egress}})) is widens
