"""Every address the bot or a learner dials is in the vcluster's serving certificate.

The SANs are computed from the rendered config Secret the way vcluster v0.26.5 builds them
(pkg/server/cert/cert.go: fixed kubernetes names and localhost, ``controlPlane.ingress.host``,
``controlPlane.proxy.extraSANs``, the Service name and ``<name>.<namespace>``,
``*.nodes.vcluster.com``, the Service's cluster IP, for a NodePort Service the control plane
pod's host IPs, and the LoadBalancer's ingress IPs and hostnames).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sandbox.backends.vcluster import in_cluster_server
from sandbox.provision import RELEASE, HostSettings, SandboxSpec, external_server, render
from tests.sandbox_lifecycle.chart_values import PINNED_VALUES

NS = "kepler-0123456789"
CLUSTER_IP = "10.96.14.7"
NODE_IP = "172.18.0.3"  # the control plane pod's node (kind)
LB_IP = "198.51.100.20"


def serving_sans(config: dict[str, Any], service: dict[str, Any], host_ips: list[str],
                 lb_ingress: list[dict[str, str]]) -> set[str]:  # fmt: skip
    cp = config["controlPlane"]
    domain = config["networking"]["advanced"]["clusterDomain"]
    sans = {f"kubernetes.default.svc.{domain}", "kubernetes.default.svc", "kubernetes.default",
            "kubernetes", "localhost", "127.0.0.1"}  # fmt: skip
    if cp["ingress"].get("host"):
        sans.add(cp["ingress"]["host"])
    sans.update(cp["proxy"].get("extraSANs") or [])
    sans.update({RELEASE, f"{RELEASE}.{NS}", "*.nodes.vcluster.com", CLUSTER_IP})
    if service["spec"]["type"] == "NodePort":
        sans.update(host_ips)
    for ing in lb_ingress:
        sans.update(v for v in (ing.get("ip"), ing.get("hostname")) if v)
    return sans


def covered(host: str, sans: set[str]) -> bool:
    if host in sans:
        return True
    _first, _, rest = host.partition(".")
    return bool(rest) and f"*.{rest}" in sans


def _render(settings: HostSettings) -> tuple[SandboxSpec, dict[str, Any], dict[str, Any]]:
    spec = SandboxSpec(NS, frozenset(), settings, PINNED_VALUES, "ada", "h")
    objs = render(spec)
    secret = next(o for o in objs if o["kind"] == "Secret")
    config = yaml.safe_load(base64.b64decode(secret["data"]["config.yaml"]))
    service = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == RELEASE)
    return spec, config, service


CASES = {
    "Ingress": HostSettings(exposure="Ingress", host_template="{namespace}.sandbox.example.com"),
    "LoadBalancer-ip": HostSettings(exposure="LoadBalancer", host_template=""),
    "LoadBalancer-dns": HostSettings(exposure="LoadBalancer",
                                     host_template="{namespace}.lb.example.com"),
    "NodePort-ip": HostSettings(exposure="NodePort", node_address="203.0.113.7"),
    "NodePort-name": HostSettings(exposure="NodePort", node_address="node1.example.com"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_dialled_address_is_in_the_certificate(case: str) -> None:
    spec, config, service = _render(CASES[case])
    lb = [{"ip": LB_IP}] if spec.host.exposure == "LoadBalancer" else []
    sans = serving_sans(config, service, [NODE_IP], lb)
    dialled = {
        "bot, in-cluster": in_cluster_server(NS),
        "learner / bot from outside": external_server(
            spec, node_port=31443, lb_address=None if spec.host.host_template else LB_IP),
        "server in the exported kubeconfig": config["exportKubeConfig"]["server"] or None,
    }
    for who, url in dialled.items():
        if url is None:
            continue  # LoadBalancer without a DNS name: the address is known only later
        host = urlsplit(url).hostname
        assert host and covered(host, sans), (who, host, sorted(sans))


def test_without_our_extra_sans_the_in_cluster_name_is_missing() -> None:
    """The reason extraSANs carries the .svc names: vcluster itself stops at kepler.<ns>."""
    _spec, config, service = _render(CASES["Ingress"])
    config["controlPlane"]["proxy"]["extraSANs"] = []
    host = urlsplit(in_cluster_server(NS)).hostname
    assert host and not covered(host, serving_sans(config, service, [], []))
